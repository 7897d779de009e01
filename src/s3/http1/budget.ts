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

/**
 * When a body of unknown length, held since `from` (performance.now() clock) and `received` bytes
 * into it, is too slow (pure): s3.timeout of grace plus the floor's deadline for what came so far
 * (framedTimeoutMs), and never later than `cap` (the deadline for the whole hold). It moves with
 * every chunk: a body that keeps up with the floor, give or take a timeout's burst, never reaches
 * it; one trickling below it does, soon after s3.timeout, as a known length's does. (A fixed
 * deadline for the most it may hold, 8 MiB at 16 KiB/s, let a chunked body at 2 KiB/s hold its
 * attempt, and the failover to another replica, until server.request_timeout.)
 */
export function heldBodyDue(from: number, timeoutMs: number, received: number, cap: number): number {
  return from + Math.min(cap, timeoutMs + framedTimeoutMs(timeoutMs, received));
}
