-- wrk: the reporter sets a score, again and again (PUT /olympics/games/curling/score).
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"scores":{"gauls":%d,"romans":%d}}', n % 1000, (n * 7) % 1000)
  return wrk.format("PUT", "/olympics/games/curling/score", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("REPORTER_TOKEN"),
  }, body)
end
