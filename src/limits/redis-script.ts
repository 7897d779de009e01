/**
 * The Redis side of the shared rate limits: one Lua script, run atomically by Redis (EVALSHA, one
 * round trip per request), that does for several token buckets at once what RateLimiter.check
 * does in memory: refill each from the time elapsed, admit only if every bucket holds a token, and
 * only then take one from each. So a client refused by its per-IP limit does not drain the global
 * budget, and two processes can never both take the last token.
 *
 * The clock is Redis's own (TIME), so the processes' clocks do not need to agree. Each bucket is a
 * hash {tokens, ts (µs)} that expires once it would have refilled completely (an absent bucket is
 * a full one; at most 1e13 ms, which Lua still writes as an integer), so per-IP keys never pile up. A key of another type (written under the prefix by
 * another client) is replaced by a full bucket: its WRONGTYPE error made every request local and
 * the background check (whose probe key was fine) shared again, flipping every 500 ms.
 *
 *   KEYS[i]          the bucket keys
 *   ARGV[2i-1, 2i]   rate (tokens per second) and capacity of KEYS[i]
 *   returns          {0, 0} admitted, or {i, µs until every bucket holds a token}, KEYS[i] the
 *                    first without one (its own wait sent a client back to be refused by the next)
 */

/** Lua: `now` (Redis's clock, µs). */
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])`;

/** Lua: the tokens of KEYS[i] now (rate, burst given), a key of another type deleted (a full bucket). */
const LEVEL = `
  local s = redis.pcall('HMGET', KEYS[i], 'tokens', 'ts')
  if s.err then
    redis.call('DEL', KEYS[i])
    s = {}
  end
  local tokens = tonumber(s[1])
  local ts = tonumber(s[2])
  if tokens == nil or ts == nil then
    tokens = burst
  elseif now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
  end`;

/** Lua: KEYS[i] holds `stored` tokens as of now, and expires once it would be full again. */
const STORE = `
  redis.call('HSET', KEYS[i], 'tokens', stored, 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.min(math.ceil(burst * 1000 / rate) + 1000, 1e13))`;

export const RATE_SCRIPT = `${NOW}
local level = {}
local short = 0
local wait = 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])${LEVEL}
  if tokens < 1 then
    if short == 0 then short = i end
    wait = math.max(wait, math.ceil((1 - tokens) * 1000000 / rate))
  end
  level[i] = tokens
end
if short > 0 then
  return { short, wait }
end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local stored = level[i] - 1${STORE}
end
return { 0, 0 }
`;

/**
 * The limits refused while they were decided locally, drained in Redis as the limits are shared
 * again: each bucket holds no more than one token as of `age` µs ago refilled since (the local
 * share's drain, RateLimiter.spentAt), not what it refilled to while nobody charged it.
 *
 *   KEYS[i]                       the bucket keys
 *   ARGV[3i-2, 3i-1, 3i]          rate, capacity and age (µs) of KEYS[i]
 */
export const DRAIN_SCRIPT = `${NOW}
for i = 1, #KEYS do
  local rate = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])${LEVEL}
  local stored = math.min(burst, 1 + tonumber(ARGV[3 * i]) * rate / 1000000)
  if stored < tokens then${STORE}
  end
end
return 0
`;

export const RATE_SCRIPT_SHA1 = new Bun.CryptoHasher("sha1").update(RATE_SCRIPT).digest("hex");
