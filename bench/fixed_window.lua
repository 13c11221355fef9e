-- Fixed window counter as a user would write it without the module: INCRBY, and
-- PEXPIRE when the counter is created, so the window starts at the first request
-- (not aligned to the epoch like RL.FIXED).
-- KEYS[1] = counter key
-- ARGV    = limit, window_ms [, cost]
-- Returns {allowed, limit, remaining, retry_after_ms, reset_after_ms} like RL.FIXED.
-- Like most such scripts it counts rejected requests too (RL.FIXED does not).
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3] or '1')

local count = redis.call('INCRBY', KEYS[1], cost)
if count == cost then
  redis.call('PEXPIRE', KEYS[1], window)
end
local ttl = redis.call('PTTL', KEYS[1])
if count > limit then
  local retry = -1
  if cost <= limit then retry = ttl end
  return {0, limit, 0, retry, ttl}
end
return {1, limit, limit - count, -1, ttl}
