/**
 * The process's file descriptors running out (EMFILE: a connection flood, a container's low
 * `ulimit -n`).
 */
import { closeSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { outOfDescriptors } from "../errors.ts";

/** Whether this process can open a file descriptor now (one opened and closed at once: two syscalls). */
export function descriptorLeft(): boolean {
  try {
    closeSync(openSync(".", "r"));
    return true;
  } catch (err) {
    return !outOfDescriptors(err);
  }
}

/** How often the listeners check for it. */
const CHECK_MS = 250;
/** At most one warning in this time. */
const WARN_EVERY_MS = 60_000;

const closers = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | undefined;
let warn: ((msg: string, fields: Record<string, unknown>) => void) | undefined;
let warnedAt = -Infinity;
let drains = 0;

/**
 * Closes the listeners' idle kept-alive connections whenever no descriptor is left, as nginx
 * drains its idle keep-alive connections when it runs out. Without it the table stayed full of
 * connections waiting for their next request for the idle timeout (60 s), new clients waited in
 * the listen backlog as long, and Bun's listener retried accept(2) in a tight loop meanwhile
 * (40-90 % of a core). Returns the function that stops watching for `closeIdle`.
 */
export function drainIdleWhenOutOfDescriptors(closeIdle: () => void, log: (msg: string, fields: Record<string, unknown>) => void): () => void {
  closers.add(closeIdle);
  warn = log;
  if (timer === undefined) {
    timer = setInterval(() => {
      if (descriptorLeft()) return;
      drains++;
      for (const close of closers) close();
      const now = performance.now();
      if (now - warnedAt < WARN_EVERY_MS) return;
      warnedAt = now;
      warn?.("out of file descriptors: idle kept-alive connections closed", { drains });
    }, CHECK_MS);
    timer.unref?.();
  }
  return () => {
    closers.delete(closeIdle);
    if (closers.size > 0) return;
    clearInterval(timer);
    timer = undefined;
  };
}

/**
 * Starts Bun's fetch client (its HTTP thread) while descriptors are to spare. Started by a first
 * fetch with none left (a connection flood before the first OPA, OpenFGA or JWKS request), Bun
 * exits the process ("bun ran out of file descriptors", exit 1: no log line, no drain); once
 * started, EMFILE is an error its caller handles. One fetch over a Unix socket that does not
 * exist (refused at once): not over TCP, which went to the HTTP proxy the environment names
 * (HTTP_PROXY: a request to it at every start, waited for up to a second), or to whatever bound
 * the released port meanwhile, and needed a loopback.
 */
export async function startFetchClient(): Promise<void> {
  try {
    const res = await fetch("http://localhost/", { unix: join(tmpdir(), `yatagarasu-none-${crypto.randomUUID()}.sock`), signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
  } catch {
    // refused (the point): the first fetch otherwise starts it, as before
  }
}
