-- wrk: the reporter sets scores spread over the six games (PUT /olympics/games/<game>/score).
local games = { "curling", "skating", "skiing", "biathlon", "bobsleigh", "boar-hunting" }
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"scores":{"gauls":%d,"romans":%d}}', n % 1000, (n * 7) % 1000)
  return wrk.format("PUT", "/olympics/games/" .. games[(n % #games) + 1] .. "/score", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("REPORTER_TOKEN"),
  }, body)
end
