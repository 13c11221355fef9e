-- Token bucket as a user would write it without the module: state in a HASH
-- {tokens, ts}, time from the server (TIME), lazy refill on every call.
-- KEYS[1] = bucket key
-- ARGV    = capacity, refill_tokens, refill_ms [, cost]
-- Returns {allowed, limit, remaining, retry_after_ms, reset_after_ms} like RL.TOKENBUCKET.
-- Tokens are Lua numbers (doubles), so fractions are rounded, unlike the module.
local capacity = tonumber(ARGV[1])
local refill_tokens = tonumber(ARGV[2])
local refill_ms = tonumber(ARGV[3])
local cost = tonumber(ARGV[4] or '1')

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * refill_tokens / refill_ms)
else
  now = ts
end

if tokens < cost then
  local retry = -1
  if cost <= capacity then retry = math.ceil((cost - tokens) * refill_ms / refill_tokens) end
  local reset = math.ceil((capacity - tokens) * refill_ms / refill_tokens)
  return {0, capacity, math.floor(tokens), retry, reset}
end

tokens = tokens - cost
local reset = math.ceil((capacity - tokens) * refill_ms / refill_tokens)
if reset > 0 then
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], reset)
end
return {1, capacity, math.floor(tokens), -1, reset}
