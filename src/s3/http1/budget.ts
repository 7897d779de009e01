/**
 * How long a body is given (pure): the slowest steady body an exchange waits for, on both
 * upstream clients. Leaf module (send.ts and the own client's exchange both use it).
 */
import { timerDelay } from "../../config/durations.ts";

/**
 * The slowest steady body given time for: fetch's `timeout` bounds the whole request, so a framed
 * upload gets s3.timeout plus one second per FRAMED_FLOOR_BYTES_PER_SECOND of body; a GET body
 * read whole inside its attempt (up to buffer_threshold_bytes) gets the same after its head.
 */
export const FRAMED_FLOOR_BYTES_PER_SECOND = 16 * 1024;

/** s3.timeout plus the time `contentLength` bytes take at FRAMED_FLOOR_BYTES_PER_SECOND (at most what a timer can wait). */
export function framedTimeoutMs(timeoutMs: number, contentLength: number): number {
  return timerDelay(timeoutMs + Math.ceil((contentLength / FRAMED_FLOOR_BYTES_PER_SECOND) * 1000));
}
