/**
 * Bun.serve answers 431 itself, before any of our code, when a request head exceeds Bun's
 * `--max-http-header-size` (16 KiB unless the process was started with it). The shipped binary
 * (build.ts), `bun run start` and `bun run demo` raise it to the default
 * server.security_limits.max_header_size, so that default holds as configured.
 */
export const SHIPPED_HEADER_LIMIT = 65536;

/** Bun's request-head limit for this process, read from its execArgv. */
export function listenerHeaderLimit(execArgv: readonly string[] = process.execArgv): number {
  for (const a of execArgv) {
    const m = /^--max-http-header-size=(\d+)$/.exec(a);
    if (m) return Number(m[1]);
  }
  return 16 * 1024;
}
