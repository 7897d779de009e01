export { TokenBucket, ADMIT, monotonicClock, type Clock, type TakeResult } from "./token-bucket.ts";
export {
  RateLimiter,
  type RateCheck,
  type RateScope,
  type RateLimiterOptions,
  type RateLimitSource,
  type ServerRateLimit,
} from "./rate-limiter.ts";
export {
  CircuitBreaker,
  BREAKER_STATE_CODE,
  type Admission,
  type BreakerState,
  type StateChangeListener,
} from "./circuit-breaker.ts";
export { backoffDelay, isRetryableStatus } from "./retry.ts";
export { ConcurrencyLimiter, UploadLimiter } from "./concurrency.ts";
export { ByteBudget } from "./byte-budget.ts";
export { buildLimiter, limiterKeyPrefix, limiterRedisUrl, type Limiter, type LimiterSource } from "./limiter.ts";
export { RedisRateLimiter, type RedisLimiterOptions } from "./redis-limiter.ts";
export { LruMap } from "../util/lru.ts";
