-- wrk: one producer enqueues single messages, again and again
-- (POST /queue/producers/$PRODUCER_ID/messages; PRODUCER_TOKEN, PRODUCER_ID from the environment).
local n = 0
local path = "/queue/producers/" .. os.getenv("PRODUCER_ID") .. "/messages"
request = function()
  n = n + 1
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("PRODUCER_TOKEN"),
  }, string.format('{"topic":"bench","message":"message %d"}', n))
end
