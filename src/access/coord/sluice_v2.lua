#!lua name=sluice_v2
-- Sluice's coordinator functions (docs/scaling.md). Loaded with FUNCTION LOAD by every
-- replica; called with FCALL. Any change of behaviour or reply shape needs a new library and
-- function names (sluice_v2, sluice_v2_admit, ...), so replicas of two releases can run side
-- by side during a rolling upgrade, each calling its own version over the same keys.
--
-- Buckets (rate limits): a hash {level, at, cap}, one per scope. A bucket of capacity `cap`
-- per minute starts full, refills continuously at cap per 60 s up to cap, and may go below
-- zero (debt) when settled usage exceeds the estimate. When a call brings another `cap` (the
-- limit was changed), what was used stays used. `at` is the server's clock (TIME) in microseconds, so
-- replicas' clocks never matter.
--
-- Budgets: a string key holding the USD spent this period, and the reservations of requests
-- in flight: a hash {id -> usd} and a sorted set {id -> expiry, ms}. Expired reservations (a
-- replica died mid-request) are dropped before every budget decision. A request counts against
-- several budgets (its key's and those of the keys up its creator chain): it reserves on all
-- of them or none, and its cost is added to each.
--
-- v2 (from v1): any number of budgets per call, each with its own amount (a remote-only
-- budget counts remote cost only); a budget refusal names which one; a spend
-- below the replica's seed is raised to it; a bucket is one per scope (its key no longer
-- names the limit) and keeps what was used when the limit changes.

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function bucket_level(key, cap, now)
  local v = redis.call('HMGET', key, 'level', 'at', 'cap')
  local level, at, old = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  if level == nil or at == nil then
    return cap
  end
  local elapsed = now - at
  if elapsed < 0 then
    elapsed = 0
  end
  if old ~= nil and old ~= cap then
    -- The limit changed (a config reload): refill at the old rate up to now, then keep what
    -- was used, so a lowered limit is not a fresh bucket and a debt stays a debt.
    level = math.min(old, level + elapsed * old / 60000000)
    return level + (cap - old)
  end
  return math.min(cap, level + elapsed * cap / 60000000)
end

local function bucket_store(key, level, cap, now)
  redis.call('HSET', key, 'level', string.format('%.6f', level), 'at', string.format('%d', now),
    'cap', string.format('%d', cap))
  -- Once full again the bucket is the same as no bucket: let it expire then (plus a margin).
  local secs = math.ceil((cap - level) * 60 / cap) + 60
  redis.call('EXPIRE', key, secs)
end

-- Drops expired reservations; returns the sum of the live ones, USD.
local function live_reserved(hkey, zkey, now_ms)
  local dead = redis.call('ZRANGEBYSCORE', zkey, '-inf', now_ms)
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now_ms)
    redis.call('HDEL', hkey, unpack(dead))
  end
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', hkey)) do
    sum = sum + tonumber(v)
  end
  return sum
end

-- sluice_v2_admit: one request's admission, all or nothing.
-- KEYS: n bucket keys, then for each of m budgets: spend key, reservation hash, reservation
--       zset.
-- ARGV: n, then cost_1, cap_1, ..., cost_n, cap_n, then m, reservation_id,
--       reservation_ttl_ms, then for each budget: usd (what it reserves), budget_usd,
--       seed_spent_usd, spend_ttl_s.
-- Reply: {1, level_1, ..., level_n} (levels after charging, as strings)
--     or {0, 'rate', i, wait_ms}: bucket i (1-based) lacks the cost; it is there in wait_ms
--     or {0, 'budget', j, spent, reserved}: budget j (1-based) cannot hold its usd (USD, as
--        strings).
local function admit(keys, args)
  local n = tonumber(args[1])
  local now = now_us()
  local levels = {}
  for i = 1, n do
    local cost, cap = tonumber(args[2 * i]), tonumber(args[2 * i + 1])
    local level = bucket_level(keys[i], cap, now)
    if cost > level then
      return {0, 'rate', i, math.ceil((cost - level) * 60000 / cap)}
    end
    levels[i] = level - cost
  end
  local b = 2 * n + 2
  local m = tonumber(args[b]) or 0
  local id, ttl_ms = args[b + 1], tonumber(args[b + 2])
  local now_ms = math.floor(now / 1000)
  for j = 1, m do
    local k, a = n + 3 * (j - 1), b + 3 + 4 * (j - 1)
    local usd, budget, seed = tonumber(args[a]), tonumber(args[a + 1]), args[a + 2]
    redis.call('SET', keys[k + 1], seed, 'NX', 'EX', tonumber(args[a + 3]))
    local spent = tonumber(redis.call('GET', keys[k + 1]))
    if spent < tonumber(seed) then
      -- The replica knows of more spend than the server (its own log: requests decided
      -- while the server was away, or a maker's total before v2 counted its keys' spend on
      -- it): the larger of the two holds; neither counts a request twice.
      redis.call('SET', keys[k + 1], seed, 'KEEPTTL')
      spent = tonumber(seed)
    end
    local reserved = live_reserved(keys[k + 2], keys[k + 3], now_ms)
    if spent + reserved + usd > budget then
      return {0, 'budget', j, string.format('%.6f', spent), string.format('%.6f', reserved)}
    end
  end
  for j = 1, m do
    local k, a = n + 3 * (j - 1), b + 3 + 4 * (j - 1)
    redis.call('HSET', keys[k + 2], id, string.format('%.9f', tonumber(args[a])))
    redis.call('ZADD', keys[k + 3], now_ms + ttl_ms, id)
    redis.call('PEXPIRE', keys[k + 2], ttl_ms + 60000)
    redis.call('PEXPIRE', keys[k + 3], ttl_ms + 60000)
  end
  local reply = {1}
  for i = 1, n do
    bucket_store(keys[i], levels[i], tonumber(args[2 * i + 1]), now)
    reply[i + 1] = string.format('%.3f', levels[i])
  end
  return reply
end

-- sluice_v2_settle: a finished request's real usage.
-- KEYS: n token-bucket keys, then for each of m budgets: spend key, reservation hash and
--       zset.
-- ARGV: n, then delta_1, cap_1, ... (tokens used minus tokens charged at admission; may be
--       negative), then m, reservation_id, then for each budget: cost_usd (what it counts
--       of the real cost), spend_ttl_s.
-- Reply: the number of buckets settled.
local function settle(keys, args)
  local n = tonumber(args[1])
  local now = now_us()
  for i = 1, n do
    local delta, cap = tonumber(args[2 * i]), tonumber(args[2 * i + 1])
    local level = bucket_level(keys[i], cap, now)
    bucket_store(keys[i], math.min(cap, level - delta), cap, now)
  end
  local b = 2 * n + 2
  local m = tonumber(args[b]) or 0
  local id = args[b + 1]
  for j = 1, m do
    local k, a = n + 3 * (j - 1), b + 2 + 2 * (j - 1)
    local cost = tonumber(args[a])
    redis.call('HDEL', keys[k + 2], id)
    redis.call('ZREM', keys[k + 3], id)
    if cost > 0 then
      redis.call('INCRBYFLOAT', keys[k + 1], string.format('%.9f', cost))
      redis.call('EXPIRE', keys[k + 1], tonumber(args[a + 1]))
    end
  end
  return n
end

redis.register_function('sluice_v2_admit', admit)
redis.register_function('sluice_v2_settle', settle)
