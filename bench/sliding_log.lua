-- Sliding log as a user would write it without the module: one sorted-set member
-- per admitted request, scored by its time in ms (server TIME).
-- KEYS[1] = log key
-- ARGV    = limit, window_ms [, request_id]
-- The member is the time in microseconds plus the caller's request id, so it is
-- unique per request ("<sec><usec>:<request_id>", about 20 bytes).
-- Returns {allowed, limit, remaining, retry_after_ms, reset_after_ms} like RL.SLIDING (cost 1).
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local id = ARGV[3] or ''

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used >= limit then
  local retry = -1
  if limit >= 1 then
    -- the oldest entry that must expire before one more fits
    local e = redis.call('ZRANGE', KEYS[1], used - limit, used - limit, 'WITHSCORES')
    retry = tonumber(e[2]) + window - now
  end
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  return {0, limit, 0, retry, tonumber(newest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, t[1] .. string.format('%06d', tonumber(t[2])) .. ':' .. id)
redis.call('PEXPIRE', KEYS[1], window)
return {1, limit, limit - used - 1, -1, window}
