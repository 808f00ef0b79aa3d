"""The Lua scripts behind :class:`~.redis_state.RedisState`: each is one atomic round trip.

Times are Redis's own clock (``TIME``, milliseconds), so processes on different machines
agree. Key layout under ``<namespace>:<scope>:``: ``leases`` (sorted set, token → expiry),
``breaker`` (hash), ``probe`` (string with a TTL), ``cool:<key id>`` (string with a TTL),
``rpm:<key id>`` (sorted set of reservations), ``tpm:<key id>`` (hash bucket), ``budget``.
"""

from __future__ import annotations

NOW = """
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
"""

# KEYS[1] leases; ARGV: limit, ttl_ms, token → 1 granted, 0 full
LEASE_ACQUIRE = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"""
)

# KEYS[1] leases; ARGV: ttl_ms, token... → renew the tokens still held
LEASE_RENEW = (
    NOW
    + """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
"""
)

# KEYS: breaker, probe, cool, rpm, tpm
# ARGV: probe_ttl_ms, rpm, tpm, est_tokens, window_ms, token, margin_ms (a reservation
# is sent a little after it is made: spacing by window + margin keeps the provider's view)
# → {verdict (0 go, 1 open, 2 probing, 3 cooling), wait_ms, probe}
ADMIT = (
    NOW
    + """
local probe = 0
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > 0 then
  if open_until > now then return {1, open_until - now, 0} end
  if redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PX', ARGV[1]) then
    probe = 1
  else
    return {2, 0, 0}
  end
end
local cool = redis.call('PTTL', KEYS[3])
if cool > 0 then
  if probe == 1 then redis.call('DEL', KEYS[2]) end
  return {3, cool, 0}
end
local wait = 0
local window = tonumber(ARGV[5])
local rpm = tonumber(ARGV[2])
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  local n = redis.call('ZCARD', KEYS[4])
  local at = now
  if n >= rpm then
    local e = redis.call('ZRANGE', KEYS[4], n - rpm, n - rpm, 'WITHSCORES')
    at = math.max(now, tonumber(e[2]) + window + tonumber(ARGV[7]))
  end
  redis.call('ZADD', KEYS[4], at, ARGV[6])
  redis.call('PEXPIRE', KEYS[4], at - now + window)
  wait = at - now
end
local tpm = tonumber(ARGV[3])
if tpm > 0 then
  local rate = tpm / window
  local b = redis.call('HMGET', KEYS[5], 'tokens', 'ts')
  local tokens = tonumber(b[1] or tpm)
  local ts = tonumber(b[2] or now)
  tokens = math.min(tpm, tokens + (now - ts) * rate) - tonumber(ARGV[4])
  if tokens < 0 then wait = math.max(wait, math.ceil(-tokens / rate)) end
  redis.call('HSET', KEYS[5], 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', KEYS[5], window * 2)
end
return {0, wait, probe}
"""
)

# KEYS: breaker, probe, cool, tpm, usage
# ARGV: result, failure_threshold, reset_ms, success_threshold, probe(0/1), cool_ms,
#       tokens_refund, tpm, usage_field, requests, failures, prompt, completion, cost
SETTLE = (
    NOW
    + """
local result = ARGV[1]
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if result == 'ok' then
  if open_until > 0 then
    if ARGV[5] == '1' then
      redis.call('DEL', KEYS[2])
      if redis.call('HINCRBY', KEYS[1], 'probe_ok', 1) >= tonumber(ARGV[4]) then
        redis.call('DEL', KEYS[1])
      end
    end
  else
    redis.call('HSET', KEYS[1], 'consecutive', 0)
  end
elseif result == 'fail' then
  if open_until > 0 then
    if ARGV[5] == '1' or open_until <= now then
      redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[3]), 'probe_ok', 0)
      redis.call('DEL', KEYS[2])
    end
  elseif redis.call('HINCRBY', KEYS[1], 'consecutive', 1) >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[3]), 'consecutive', 0,
               'probe_ok', 0)
  end
elseif result == 'ignore' and ARGV[5] == '1' then
  redis.call('DEL', KEYS[2])
end
local cool = tonumber(ARGV[6])
if cool > 0 and redis.call('PTTL', KEYS[3]) < cool then
  redis.call('SET', KEYS[3], '1', 'PX', cool)
end
local refund = tonumber(ARGV[7])
if refund ~= 0 and tonumber(ARGV[8]) > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HINCRBYFLOAT', KEYS[4], 'tokens', refund)
end
local field = ARGV[9]
if field ~= '' then
  local names = {'requests', 'failures', 'prompt_tokens', 'completion_tokens'}
  for i = 1, 4 do
    local n = tonumber(ARGV[9 + i])
    if n ~= 0 then redis.call('HINCRBY', KEYS[5], field .. '\\t' .. names[i], n) end
  end
  if tonumber(ARGV[14]) ~= 0 then
    redis.call('HINCRBYFLOAT', KEYS[5], field .. '\\tcost', ARGV[14])
  end
end
return 1
"""
)

# KEYS[1] budget; ARGV: cost, capacity → cost granted, or 0
BUDGET_WITHDRAW = """
local avail = tonumber(redis.call('GET', KEYS[1]) or ARGV[2])
local cost = tonumber(ARGV[1])
if cost > avail then return 0 end
redis.call('SET', KEYS[1], avail - cost)
return cost
"""

# KEYS[1] budget; ARGV: amount, capacity
BUDGET_DEPOSIT = """
local avail = tonumber(redis.call('GET', KEYS[1]) or ARGV[2])
redis.call('SET', KEYS[1], math.min(avail + tonumber(ARGV[1]), tonumber(ARGV[2])))
return 1
"""

# KEYS[1] counter; ARGV: amount, ttl_ms (0: none) → new total (string)
COUNTER_ADD = """
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""
