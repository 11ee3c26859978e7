-- wrk: the reporter awards medals (POST /olympics/teams/romans/medals), one commit each.
request = function()
  return wrk.format("POST", "/olympics/teams/romans/medals", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("REPORTER_TOKEN"),
  }, '{"medal":"bronze"}')
end
