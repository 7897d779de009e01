/**
 * loadConfigOffThread: the whole read → parse → validate of a config file on a worker thread, so
 * a reload never blocks the serving event loop for the parse (a 1 MiB YAML takes hundreds of ms).
 * A worker process (server.workers > 1) validates the text its primary sent the same way, without
 * reading the file.
 * The worker posts back the validated config as JSON text (or the ConfigError's issues); this
 * thread only parses that and deep-freezes it, in slices of about 1 ms. One short-lived worker
 * per load: reloads are rare, and nothing stays resident.
 *
 * What remains on this thread is proportional to the config's size: JSON.parse of the result
 * (~25 ms for an 80,000-value list on a busy 2-core machine, microseconds for a usual config).
 *
 * The compiled executable (build.ts) bundles load-worker.ts as a second entry point. Inside it,
 * every module's import.meta.url is the executable's own (/$bunfs/root/<binary>), and entry
 * points keep their paths relative to src/, so the worker is /$bunfs/root/config/load-worker.js.
 * An absolute /$bunfs/ path never falls back to a file of the same name in the working directory.
 */
import { ConfigError, configBaseDir, deepFreezeSliced, type Config, type ConfigIssue } from "./load.ts";

export interface LoadRequest {
  /** The file to read; with `text`, only the name its errors carry. */
  path: string;
  /** The config text to validate instead of reading `path` (a worker process: the text its primary validated). */
  text?: string;
  env: Record<string, string | undefined>;
  baseDir: string;
  /** Keys whose lines the reply gives (ParseOptions.places). */
  places?: readonly string[];
}

/** `text`: what was validated (the file's content as read, or the request's text). */
export type LoadReply =
  | { ok: true; json: string; text: string; lines: Record<string, number> }
  | { ok: true; config: Config; text: string; lines: Record<string, number> }
  | { ok: false; issues: ConfigIssue[]; file?: string; more?: boolean }
  | { ok: false; error: string };

/** Where the worker entry is: beside this file when running from source, in the executable's embedded file system when compiled. */
export function loadWorkerSpecifier(moduleUrl: string = import.meta.url): string {
  return moduleUrl.startsWith("file:///$bunfs/") ? "/$bunfs/root/config/load-worker.js" : new URL("./load-worker.ts", moduleUrl).href;
}

/** A load that hangs (a file on a dead network mount) fails instead of blocking every later reload. */
const DEFAULT_TIMEOUT_MS = 30_000;

export interface OffThreadOptions {
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Validate this text instead of reading `path` (which then only names the file in errors). */
  text?: string;
  /** Defaults to configBaseDir(path). */
  baseDir?: string;
  /** Keys (`server.port`) whose line in the text the result gives in `lines`. */
  places?: readonly string[];
}

/** A loaded config, the text it was read from, and the lines of the keys asked for (OffThreadOptions.places). */
export interface LoadedSource {
  config: Config;
  text: string;
  lines: Record<string, number>;
}

/**
 * Reads and validates a config file on a worker thread. Resolves with a frozen Config; rejects
 * with ConfigError (invalid, unreadable, too large, timed out) or Error (the worker failed).
 */
export async function loadConfigOffThread(path: string, opts: OffThreadOptions = {}): Promise<Config> {
  return (await loadConfigSourceOffThread(path, opts)).config;
}

/** loadConfigOffThread, with the exact text it validated (what a primary hands its worker processes). */
export function loadConfigSourceOffThread(path: string, opts: OffThreadOptions = {}): Promise<LoadedSource> {
  return new Promise<LoadedSource>((resolve, reject) => {
    let worker: Worker;
    try {
      worker = new Worker(loadWorkerSpecifier());
    } catch (err) {
      reject(new Error(`cannot start the config loader thread: ${(err as Error)?.message ?? String(err)}`));
      return;
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      worker.terminate();
      f();
    };
    const timer = setTimeout(
      () => settle(() => reject(new ConfigError([{ path: "", message: `loading the config took longer than ${timeoutMs / 1000} s` }], path))),
      timeoutMs,
    );
    worker.onmessage = (e: MessageEvent<LoadReply>) => {
      const r = e.data;
      settle(() => {
        if (r.ok) resolve(deepFreezeSliced("json" in r ? (JSON.parse(r.json) as Config) : r.config).then((config) => ({ config, text: r.text, lines: r.lines })));
        else if ("issues" in r) reject(new ConfigError(r.issues, r.file, r.more === true));
        else reject(new Error(r.error));
      });
    };
    worker.onerror = (e: ErrorEvent) => settle(() => reject(new Error(`the config loader thread failed: ${e.message}`)));
    const request: LoadRequest = { path, text: opts.text, env: { ...(opts.env ?? process.env) }, baseDir: opts.baseDir ?? configBaseDir(path), places: opts.places };
    worker.postMessage(request);
  });
}
