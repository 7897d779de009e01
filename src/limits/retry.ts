/** Retry helpers for upstream (S3) requests. */

/**
 * Delay before retry number `attempt` (1 = first retry): exponential growth capped at `maxMs`,
 * with full jitter — uniformly random in [0, min(maxMs, initialMs * 2^(attempt-1))).
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.max(1, Math.floor(attempt)) - 1;
  const ceiling = Math.min(maxMs, initialMs * 2 ** exp);
  return random() * ceiling;
}

/** Upstream statuses worth retrying: 500, 502, 503, 504. Never a 4xx (nor 501 or 505+). */
export function isRetryableStatus(status: number): boolean {
  return status === 500 || status === 502 || status === 503 || status === 504;
}
