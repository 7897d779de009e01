#!/usr/bin/env bun
/**
 * The command line. Exit codes (documented in the README):
 *   0  served and shut down cleanly / --check passed / --healthcheck got 200
 *   1  the config is invalid (every problem is listed) / --healthcheck failed
 *   2  bad command-line usage (unknown or repeated option, two modes, --config beside a mode other than --check)
 *   3  could not start (a listener cannot bind: its address in use, not resolving or not this machine's; TLS files unreadable, ...)
 *  70  crashed: an uncaught exception or unhandled rejection (logged as fatal, drained, exited)
 */
// First: it catches the signals that would otherwise kill the process while the rest loads.
import { timerDelay } from "./config/durations.ts";
import { early } from "./early-signals.ts";
import { lookup } from "node:dns/promises";
import { App } from "./app.ts";
import { RedisRateLimiter } from "./limits/index.ts";
import { likelyKey } from "./config/likely.ts";
import { ConfigError, loadConfigSource, loggedProblems, loadConfigSourceOffThread, parseConfig, shownArgument, type Config } from "./config/load.ts";
import { summarize } from "./config/summary.ts";
import { auditPathNote, authorizerTimeoutNote, demoSecretsNote, presignPortNote, privateKeyPemNote, rateLimitMemoryNote, s3ApiNoIdentityNote, readOnlyWriteGrantNote, shortBucketNameNote, tlsChainNote, unseenClaimValueNote, nestedPrefixNote, uppercaseVirtualHostNote, tlsValidityNote, tlsWeakKeyNote, trustedProxiesNote, userContentNote, userContentUnsandboxedNote } from "./config/notes.ts";
import { parseIp } from "./http/cidr.ts";
import { createLogger, type Logger } from "./observe/log.ts";
import { listenBun, listenMetrics, listenNode, readTls, type Listener, type TlsMaterial } from "./server.ts";
import { listenS3 } from "./server/s3-listener.ts";
import { startFetchClient } from "./util/descriptors.ts";
import { collectWhenIdle } from "./server/body-garbage.ts";
import { connectTimeoutNote, fetchConcurrencyWarning, poolSizeNote } from "./s3/upstream.ts";
import { bucketItemCapNote, cacheOffNote, cacheUnusedNote, diskDir, diskShareNote, memoryLimitNote, purgeUnservedFolder } from "./cache/config.ts";
import { diskDirProblem, diskRoomWarning, folderBytes } from "./cache/disk.ts";
import { loadStaticKeys } from "./auth/keys.ts";
import { COMMIT, VERSION, VERSION_LINE } from "./version.ts";
import {
  askPrimaryToPurge,
  askPrimaryToReloadAll,
  applyPurgesFromPrimary,
  configFromPrimary,
  latestSentConfig,
  onSentConfig,
  purgeDone,
  reloadAnswered,
  reportGeneration,
  START_WAITED_ENV,
  startChildren,
  workerCount,
  nameWorkerProcess,
  workerIndex,
  type Children,
  type ReloadResult,
  type SentConfig,
} from "./workers.ts";

/**
 * stdout and stderr writes still queued in the runtime (the pipe was full: a pipe holds 64 KiB).
 * Exiting right after such a write cut --check's problem list and summary off there, so every
 * write of this file goes through write() and the exit waits for the queue to drain (Bun calls a
 * write's callback, and an empty write's, before the data is flushed; its 'drain' is what counts).
 */
const unflushed = new Map<NodeJS.WriteStream, Promise<void>>();

function write(stream: NodeJS.WriteStream, text: string): void {
  if (stream.write(text) || unflushed.has(stream)) return;
  unflushed.set(
    stream,
    new Promise<void>((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("error", done);
        unflushed.delete(stream);
        resolve();
      };
      stream.on("drain", done);
      // (a reader that has gone: EPIPE)
      stream.on("error", done);
    }),
  );
}

/** Waits until what was written to stdout and stderr has left this process, or for at most limitMs (a reader that never reads). */
async function flushed(limitMs = 30_000): Promise<void> {
  const limit = new Promise<void>((resolve) => setTimeout(resolve, limitMs).unref?.());
  while (unflushed.size > 0) await Promise.race([Promise.all(unflushed.values()), limit.then(() => unflushed.clear())]);
}

const HELP = `yatagarasu ${VERSION} — a high-performance S3 proxy

Usage:
  yatagarasu [--config PATH]          serve (PATH defaults to ./config.yaml)
  yatagarasu --check [--config PATH]  validate the config, print a summary, exit 0 or 1
  yatagarasu --healthcheck [URL]      GET URL (default http://127.0.0.1:8080/health), exit 0 on 200
  yatagarasu --version | --help
Short forms: -c PATH (or --config=PATH) for --config PATH, -V for --version, -h for --help.

Signals: SIGTERM/SIGINT/SIGQUIT drain and exit 0 (a second one cuts the drain short, a third exits at once);
  SIGHUP reloads the config (of every worker); SIGUSR1/SIGUSR2 are ignored.
Exit codes: 0 ok, 1 invalid config (or --check NOT OK, a failed --healthcheck), 2 usage error,
  3 could not start, 70 crashed (uncaught exception or unhandled rejection: logged as fatal, drained, exited).
`;

/** sysexits' EX_SOFTWARE: an internal error, distinct from every other exit, for supervisors and alerts. */
const EXIT_CRASH = 70;
/** How long after the drain (server.shutdown_delay + shutdown_timeout) a child still running is waited for before it is killed. */
const CHILD_DRAIN_GRACE_MS = 5000;
/** How long after the drain's end a form upload's abort of its multipart upload is waited for (below CHILD_DRAIN_GRACE_MS, with the cut requests' ~1 s). */
const OPEN_WORK_GRACE_MS = 3000;

interface Args {
  config: string;
  /** --config was given (else `config` is the default, ./config.yaml). */
  configGiven?: boolean;
  check: boolean;
  healthcheck?: string;
}

const OPTIONS = ["--config", "--check", "--healthcheck", "--version", "--help"];

/** The original's (Pingora's) options that have no counterpart here, with what to do instead. */
const NO_DAEMON = "the original's daemon mode is not supported: run yatagarasu in the foreground under a supervisor (systemd, Docker, Kubernetes), which keeps its log";
const ORIGINAL_ONLY = new Map([
  ["-d", NO_DAEMON],
  ["--daemon", NO_DAEMON],
  [
    "--upgrade",
    "the original's in-place binary upgrade is not supported: start the new version beside the old one behind a load balancer and stop the old one with SIGTERM (server.shutdown_delay lets the balancer stop sending first; see Upgrading and rolling back in the README)",
  ],
]);

/**
 * What an unknown argument was probably meant as: a config file named without --config (`yatagarasu
 * config.yaml`), an option written with `=` that takes its value after a space, or a misspelt option.
 */
function unknownArgHint(a: string, configGiven: boolean): string {
  a = shownArg(a);
  if (!a.startsWith("-")) return configGiven ? "" : `: to use it as the config file, write --config ${a}`;
  const eq = a.indexOf("=");
  const name = a.slice(0, eq);
  if (eq > 0 && OPTIONS.includes(name)) return name === "--healthcheck" ? `: write ${name} ${a.slice(eq + 1)} (with a space)` : `: ${name} takes no value`;
  // (a long option written with one dash, as Go's flags take them: -config, -config=x.yaml, -chek)
  const long = a.startsWith("--") ? a : a.length > 2 ? `-${eq > 0 ? name : a}` : undefined;
  const like = long === undefined ? undefined : OPTIONS.includes(long) ? long : likelyKey(long, OPTIONS);
  return like ? ` (did you mean ${like}?)` : "";
}

function parseArgs(argv: string[]): Args | { exit: number; out: string; err?: boolean } {
  const args: Args = { config: "config.yaml", check: false };
  // --help and --version answer once the whole command line is known to be valid.
  let info: { exit: number; out: string } | undefined;
  // One mode at most (serving when none), and each option once: a second one was silently
  // ignored (--healthcheck --check ran the healthcheck) or silently won (--config a --config b).
  let mode: string | undefined;
  let configFlag: string | undefined;
  const usage = (msg: string) => ({ exit: 2, out: `error: ${msg}\n`, err: true });
  // (a config file named before --config, `x.yaml --config y.yaml`, was told "write --config x.yaml")
  const configAnywhere = argv.some((a) => a === "--config" || a === "-c" || a.startsWith("--config="));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const isConfig = a === "--config" || a === "-c" || a.startsWith("--config=");
    const flag = isConfig ? "--config" : a === "-h" ? "--help" : a === "-V" ? "--version" : a;
    if (["--help", "--version", "--check", "--healthcheck"].includes(flag)) {
      if (mode !== undefined) return usage(mode === flag ? `${flag} given twice` : `${mode} and ${flag} cannot be combined`);
      mode = flag;
    }
    if (isConfig && configFlag !== undefined) return usage("--config given twice");
    if (a === "--help" || a === "-h") info ??= { exit: 0, out: HELP };
    else if (a === "--version" || a === "-V") info ??= { exit: 0, out: `${VERSION_LINE}\n` };
    else if (a === "--check") args.check = true;
    else if (a === "--config" || a === "-c") {
      const v = argv[++i];
      if (!v) return { exit: 2, out: "error: --config needs a path\n", err: true };
      // (`--config --check`, the path left out: the option was read as the config's path, and the
      // process started serving, to exit 1 "cannot read config --check: file not found")
      if (OPTIONS.includes(v.split("=")[0]!) || v === "-c" || v === "-h" || v === "-V") return usage(`--config needs a path (the next argument, ${shownArg(v)}, is an option: write ${a} PATH)`);
      args.config = v;
      configFlag = a;
    } else if (a.startsWith("--config=")) {
      if (a === "--config=") return usage("--config needs a path");
      args.config = a.slice(9);
      configFlag = a;
    } else if (a === "--healthcheck") {
      const next = argv[i + 1];
      args.healthcheck = next && !next.startsWith("-") ? argv[++i] : "http://127.0.0.1:8080/health";
    } else if (a === "--test" || a === "-t") {
      // (the original project's and nginx's spelling of "check the config and exit")
      return usage(`unknown argument '${a}': to check a config and exit, use --check`);
    } else if (ORIGINAL_ONLY.has(a)) {
      // (the original's Pingora options: a unit file or script written for it stopped at "unknown argument")
      return usage(`unknown argument '${a}': ${ORIGINAL_ONLY.get(a)}`);
    } else return { exit: 2, out: `error: unknown argument '${shownArg(a)}'${unknownArgHint(a, configFlag !== undefined || configAnywhere)}\n\n${HELP}`, err: true };
  }
  args.configGiven = configFlag !== undefined;
  if (configFlag !== undefined && mode !== undefined && mode !== "--check") return usage(`${mode} and --config cannot be combined`);
  // (one that fits the pattern and still does not parse, a port past 65535 or a bracket left open,
  // was thrown again by the failure's own description: a crash with a stack trace, exit 1)
  // (shown without a user name and password, as the check's own lines: Docker keeps the output in its health log)
  if (info === undefined && args.healthcheck !== undefined && (!/^https?:\/\/[^/\s]+/i.test(args.healthcheck) || !URL.canParse(args.healthcheck))) {
    return usage(`--healthcheck takes an http:// or https:// URL, not '${shownUrl(args.healthcheck)}'`);
  }
  return info ?? args;
}

/** GET url: exit 0 on 200; otherwise 1, with the reason on stderr (what a container runtime shows). */
/** Loopback: a container's own listener, whose certificate (often self-signed, issued for its public name) says nothing about this check. */
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** The proxy variables Bun's fetch goes through (a container given an egress proxy has them). */
const PROXY_ENV = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

/** An argument (or a --healthcheck URL) as an error shows it: shownArgument (credentials hidden, cut, control characters escaped). */
const shownArg = shownArgument;

/**
 * A --healthcheck URL as its messages show it: shownArg, and its query and fragment as `?…` and
 * `#…` (a probe given a token as `?token=...` or `#token` printed it, and Docker keeps a health
 * check's output in its health log). Cut at the first `?` or `#` after the scheme: shownArg left no
 * password to hold one (it is `***`), and an `@` after the host is the query's (`?token=a@b`: a cut
 * after the last `@` showed the token whole).
 */
function shownUrl(url: string): string {
  const shown = shownArg(url);
  const scheme = shown.indexOf("://");
  const from = scheme < 0 ? 0 : scheme + 3;
  const q = shown.slice(from).search(/[?#]/);
  return q < 0 ? shown : `${shown.slice(0, from + q + 1)}…`;
}

async function healthcheck(url: string): Promise<number> {
  // This instance's own listener, asked directly: through the proxy the environment names, a
  // check of the loopback failed while the listener served ("connection refused" was the proxy's),
  // or passed on the proxy's answer.
  for (const v of PROXY_ENV) delete process.env[v];
  try {
    // An https:// check of this process's own listener on the loopback does not verify its
    // certificate (self-signed, or issued for a name other than 127.0.0.1); anywhere else it does.
    const u = new URL(url);
    const own = u.protocol === "https:" && LOOPBACK_HOSTS.has(u.hostname);
    // A redirect is an answer, never followed: the check is of this URL's listener, not of another
    // host (reached with the loopback's unverified TLS) or a name that does not resolve.
    const res = await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(3000), ...(own ? { tls: { rejectUnauthorized: false } } : {}) });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status === 200) return 0;
    write(process.stderr, `healthcheck: ${shownUrl(url)} answered ${res.status}\n`);
    return 1;
  } catch (err) {
    write(process.stderr, `healthcheck: ${shownUrl(url)}: ${healthcheckFailure(url, err)}\n`);
    return 1;
  }
}

/** The certificate refusals of a TLS handshake (the peer's certificate), by Bun's codes. */
const CERT_CODES = /^(?:ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_\w+|CERT_\w+)$/;

/**
 * What start-up logs (at `level`) and --check prints (as `note:` lines) about a valid config that
 * is probably not what its operator wants, in one list so that the two never drift apart.
 */
function configNotes(config: Config): Array<{ level: "info" | "warn"; text: string }> {
  const out: Array<{ level: "info" | "warn"; text: string }> = [];
  const add = (level: "info" | "warn", text: string | undefined) => {
    if (text) out.push({ level, text });
  };
  // (the environment --check runs in may not be the service's: what it says is about this one)
  add("warn", fetchConcurrencyWarning(config.buckets, config.server.upstream_client, config.server.max_concurrent_requests, process.env));
  add("info", connectTimeoutNote(config.buckets, config.server.upstream_client));
  add("info", poolSizeNote(config.buckets));
  add("warn", cacheOffNote(config));
  add("warn", cacheUnusedNote(config));
  add("warn", bucketItemCapNote(config));
  add("warn", diskShareNote(config.cache, workerCount(config)));
  add("warn", memoryLimitNote(config.cache, workerCount(config)));
  add("warn", demoSecretsNote(config));
  add("warn", privateKeyPemNote(config));
  add("warn", auditPathNote(config));
  add("warn", authorizerTimeoutNote(config));
  add("warn", tlsValidityNote(config));
  add("warn", tlsWeakKeyNote(config));
  add("warn", tlsChainNote(config));
  add("warn", trustedProxiesNote(config));
  add("warn", readOnlyWriteGrantNote(config));
  add("warn", uppercaseVirtualHostNote(config));
  add("warn", shortBucketNameNote(config));
  add("warn", rateLimitMemoryNote(config));
  add("warn", presignPortNote(config));
  add("warn", s3ApiNoIdentityNote(config));
  add("warn", unseenClaimValueNote(config));
  add("warn", nestedPrefixNote(config));
  add("info", userContentNote(config));
  add("warn", userContentUnsandboxedNote(config));
  for (const n of config.notes ?? []) add(config.warnings?.includes(n) ? "warn" : "info", n);
  return out;
}

/**
 * Why a healthcheck got no HTTP answer, in our words (never the runtime's message: Bun's says
 * "pass `verbose: true` in the second argument to fetch()"), with what to try when the scheme is
 * probably the wrong one.
 */
function healthcheckFailure(url: string, err: unknown): string {
  const u = new URL(url);
  const at = u.host;
  const other = (scheme: string) => `${scheme}//${u.host}${u.pathname}${u.search === "" ? "" : "?…"}`; // (the query as shownUrl shows it)
  if ((err as Error)?.name === "TimeoutError") return `no answer from ${at} within 3 s`;
  const code = (err as { code?: unknown })?.code;
  const c = typeof code === "string" ? code : "";
  if (c === "ECONNREFUSED" || c === "ConnectionRefused") return `connection refused by ${at}: nothing listens there (is the proxy running, and on this port?)`;
  if (c === "ECONNRESET" || c === "ConnectionClosed") return `connection reset by ${at}${u.protocol === "http:" ? `: is the listener https? try ${other("https:")}` : ""}`;
  if (c === "EPROTO" || (/^ERR_SSL|^ERR_TLS|SSL/.test(c) && !CERT_CODES.test(c))) return `TLS handshake with ${at} failed${u.protocol === "https:" ? `: is the listener plain http? try ${other("http:")}` : ""}`;
  if (CERT_CODES.test(c)) return `the certificate of ${at} was refused (${c})`;
  if (c === "ENOTFOUND" || c === "EAI_AGAIN") return `${u.hostname} does not resolve`;
  return `no answer from ${at} (${/^[A-Za-z0-9_]{1,64}$/.test(c) ? c : ((err as Error)?.name ?? "error")})`;
}

/**
 * A start refused for its config also says so as a JSON error line on stdout, where the log is
 * (the config's logging.format unread: JSON, its default), beside the text on stderr: a pipeline
 * that keeps stdout's JSON lines (a container's log shipper) saw a crash loop over an unset
 * ${VAR} with no line at all, where "could not start" (exit 3) has one.
 */
function logStartFailure(error: string, problems: string[]): void {
  const log = createLogger({ level: "error", format: "json" });
  log.error("could not start", { error, problems });
  log.flush();
}

/**
 * Start-up loads on this thread (nothing is served yet). --check loads on the worker thread a
 * reload uses, so it validates by the very code path a SIGHUP takes (and proves, in the compiled
 * executable, that the worker entry is there).
 */
async function load(path: string, offThread: boolean, given = true): Promise<{ config: Config; text: string } | number> {
  try {
    return await (offThread ? loadConfigSourceOffThread(path) : loadConfigSource(path));
  } catch (err) {
    if (err instanceof ConfigError) {
      const more = err.more ? "; the checks across keys run once these are fixed" : "";
      // (a first run with no arguments, in a folder without config.yaml: say that it is the default)
      const notFound = err.issues.length === 1 && /^cannot read config.*: file not found$/.test(err.issues[0]!.message);
      const hint = !notFound ? "" : !given ? " (no --config was given, and ./config.yaml is the default: give --config PATH)" : /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(path) ? " (--config takes a file's path: a URL is not fetched)" : "";
      const headline = `invalid config (${err.issues.length} problem${err.issues.length === 1 ? "" : "s"}${more})`;
      write(process.stderr, `${headline}:\n${err.message}${hint}\n`);
      if (!offThread) logStartFailure(headline, loggedProblems(`${err.message}${hint}`.split("\n")));
      return 1;
    }
    write(process.stderr, `cannot load config: ${(err as Error)?.message ?? err}\n`);
    if (!offThread) logStartFailure("cannot load config", [String((err as Error)?.message ?? err)]);
    return 1;
  }
}

/**
 * A listener that could not bind, in plain words: which listener (main, metrics, s3_api), its
 * address:port, and why. Bun and node:http say only "EADDRNOTAVAIL: address not available, listen",
 * or EINVAL / EINPROGRESS for a host name that does not resolve. Errors that are not the bind's
 * (TLS material the runtime refuses) keep their own message, after `other`.
 */
async function listenFailure(listener: "main" | "metrics" | "s3_api", address: string, port: number, err: unknown, other = ""): Promise<Error> {
  const e = err as { code?: string; syscall?: string; message?: string } | undefined;
  const at = `${listener} address ${address.includes(":") && !address.startsWith("[") ? `[${address}]` : address}:${port}`;
  if (e?.code === "EADDRINUSE") return new Error(`${at} is already in use`);
  if (e?.code === "EADDRNOTAVAIL") return new Error(`${at} is not an address of this machine`);
  if (e?.syscall === "listen") {
    if (parseIp(address) === null && !(await resolves(address))) return new Error(`${at}: ${address} does not resolve`);
    return new Error(`${at}: ${e.message ?? String(err)}`);
  }
  return new Error(`${other}${e?.message ?? String(err)}`);
}

/**
 * A group's primary listens with SO_REUSEPORT so that its workers can share the port, which lets
 * any other process of the same user that also sets it (another instance with server.workers > 1,
 * started on the same port by mistake) join the port silently and take a share of its
 * connections. So the primary first binds the port alone, without it: taken by anyone, that is
 * EADDRINUSE (exit 3, "already in use"), as for a single process. Port 0 is a fresh port.
 */
function probeExclusive(address: string, port: number): void {
  if (port === 0) return;
  let probe: { stop(closeActiveConnections?: boolean): void } | undefined;
  try {
    probe = Bun.listen({ hostname: address, port, socket: { data() {} } });
  } catch (err) {
    // Only a taken port is the probe's to report: any other failure (an address that does not
    // resolve, or is not this machine's) the listener's own bind reports, in its words.
    if ((err as { code?: string }).code === "EADDRINUSE") throw err;
  }
  probe?.stop(true);
}

/** Whether a host name resolves to an address (given 3 s). */
async function resolves(host: string): Promise<boolean> {
  const timeout = new Promise<boolean>((resolve) => setTimeout(resolve, 3000, true).unref());
  return Promise.race([lookup(host).then(() => true, () => false), timeout]);
}

/**
 * A worker process (server.workers > 1, started by its primary): serves the config text the
 * primary validated and sent over IPC, never the file (which may have changed since the primary
 * read it, or be invalid now). What the primary sent cannot fail here but for a file the config
 * names (a PEM file) changing in between: then it waits for the primary's next config instead of
 * exiting (a restarted child would fail the same way, over and over).
 */
async function serveWorker(): Promise<number> {
  for (let after = 0; ; ) {
    let sent: SentConfig;
    try {
      sent = await configFromPrimary(after);
    } catch (err) {
      write(process.stderr, `could not start: ${(err as Error)?.message ?? err}\n`);
      return 3;
    }
    let config: Config;
    try {
      config = parseConfig(sent.text, { file: sent.file, baseDir: sent.baseDir, tls: sent.tls });
    } catch (err) {
      const why = (err as Error)?.message ?? String(err);
      write(process.stderr, `worker ${workerIndex()}: cannot apply the primary's config (generation ${sent.generation}); waiting for its next one:\n${why}\n`);
      // (a reload of the group waits for this: the answer says this worker failed)
      reportGeneration(undefined, { generation: sent.generation, error: why });
      after = sent.generation;
      continue;
    }
    return serve(config, { text: sent.text, generation: sent.generation, tls: sent.tls });
  }
}

/** The longest start-up waits for Redis (the cache layer's first connection, the shared limits' first check) before listening. */
const START_WAIT_CAP_MS = 5000;

/** Whether a Redis this process waited for at start is not found: the rate limits not shared, or a cache layer (Redis) down. */
function redisMissing(app: App): boolean {
  const l = app.runtime.limiter;
  return (l instanceof RedisRateLimiter && !l.shared) || app.cache.layers.some((c) => c.health?.().up === false);
}

/**
 * Crash policy. An uncaught exception means some code stopped half-way with nothing to handle
 * it: whatever state it was changing may be inconsistent, so this process must not go on
 * serving for days. It is logged as fatal (message and stack; never config values), the
 * listener stops accepting, in-flight requests get at most server.shutdown_timeout to finish,
 * and the process exits EXIT_CRASH (70) so the supervisor restarts it and alerts can tell a
 * crash from a clean stop (0) or a bad config (1).
 *
 * An unhandled rejection gets the same policy, as Node's default (--unhandled-rejections=throw)
 * and Bun's: it is an exception thrown in an async function that nobody awaited, so the same
 * half-done state is possible, and "log and go on" would hide the bug for good. Draining first
 * means no in-flight request is cut off by it.
 *
 * Before the listener is up there is nothing to drain: log and exit at once (the `handle` this
 * installs; runUntilStopped replaces it with the drain).
 */
function handleCrashes(log: Logger): { handle: (kind: string, err: unknown) => void } {
  const fatal = {
    handle: (kind: string, err: unknown): void => {
      logFatal(log, kind, err);
      log.flush();
      process.exit(EXIT_CRASH);
    },
  };
  process.on("uncaughtException", (err) => fatal.handle("uncaught exception", err));
  process.on("unhandledRejection", (reason) => fatal.handle("unhandled rejection", reason));
  return fatal;
}

function logFatal(log: Logger, kind: string, err: unknown): void {
  const e = err instanceof Error ? err : undefined;
  log.error(kind, { fatal: true, error: e ? e.message : String(err), ...(e?.stack ? { stack: e.stack.slice(0, 8192) } : undefined), exit_code: EXIT_CRASH });
}

/**
 * A Redis layer's first connection, bounded (connect_timeout_ms + operation_timeout_ms): the
 * first requests would otherwise miss a warm Redis while it connects and go to the upstream.
 * Likewise the shared rate limits' (else decided locally, with full buckets, until then).
 * A stop signal meanwhile (or before) ends it: nothing is served yet, so nothing to drain (it
 * waited the whole wait out, then listened, started the children and drained them).
 * At most START_WAIT_CAP_MS whatever the timeouts (up to 60 s each): a process that does not
 * listen for a minute fails its orchestrator's probes over a Redis it can serve without.
 * A child started with its group whose primary waited in vain (Redis not found) does not wait
 * again: the group's children listened up to 5 s after the primary, for the same Redis.
 */
async function waitForRedisAtStart(app: App): Promise<void> {
  if (process.env[START_WAITED_ENV] === "1") return;
  let capped: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all([app.cache.started(), app.runtime.limiter?.started?.()]),
    early.stopped,
    new Promise<void>((r) => (capped = setTimeout(r, START_WAIT_CAP_MS))),
  ]);
  clearTimeout(capped);
}

/**
 * A child listens once its first readiness probe round is done (at most FIRST_PROBE_WAIT_MS; a
 * probe gives up after 2 s): its workers serve meanwhile (a child restarted after a crash), and
 * listening at once (SO_REUSEPORT gives it a share of the connections) it answered /ready 503 "not
 * probed yet" beside ready ones until that round ended, and a scrape read yatagarasu_ready 0
 * (min over the workers) for a ready group. The primary listens at once: /ready is its to say.
 */
async function firstProbeRound(app: App): Promise<void> {
  const prober = app.runtime.prober;
  if (prober.rounds > 0) return;
  let capped: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([prober.nextRound(), early.stopped, new Promise<void>((r) => (capped = setTimeout(r, FIRST_PROBE_WAIT_MS)))]);
  clearTimeout(capped);
}
const FIRST_PROBE_WAIT_MS = 5000;

/** What a process listens on: the main listener, the S3 API's and the metrics' when enabled. */
interface Listening {
  listener: Listener;
  s3Listener?: Listener;
  metrics?: Listener;
}

/** Binds every listener of this process; throws a listenFailure (exit 3) when one cannot bind. */
async function listenAll(
  app: App,
  config: Config,
  listenConfig: Config,
  o: { primary: boolean; child: boolean; workers: number; tls: TlsMaterial | undefined; renderMetrics: () => string | Promise<string> },
): Promise<Listening> {
  const { workers, tls } = o;
  let listener: Listener;
  let s3Listener: Listener | undefined;
  let metrics: Listener | undefined;
  // A TLS listener binds with SO_REUSEPORT (to serve a renewed certificate beside itself), as a
  // group's do: first make sure no other process holds the port (it would share it silently).
  const exclusive = o.primary || (config.server.https?.enabled === true && !o.child);
  try {
    if (exclusive) probeExclusive(config.server.address, listenConfig.server.port);
    listener = config.server.engine === "node" ? await listenNode(app, listenConfig, { reusePort: workers > 1 }) : listenBun(app, listenConfig, { reusePort: workers > 1, baseDir: config.baseDir, tls });
  } catch (err) {
    throw await listenFailure("main", config.server.address, listenConfig.server.port, err);
  }
  try {
    if (exclusive && config.s3_api?.enabled) probeExclusive(config.s3_api.address, config.s3_api.port);
    s3Listener = await listenS3(app, config, { reusePort: workers > 1, baseDir: config.baseDir, tls });
  } catch (err) {
    const s3 = config.s3_api!;
    throw await listenFailure("s3_api", s3.address, s3.port, err, "s3_api listener: ");
  }
  if (config.metrics.enabled && !o.child) {
    try {
      // Bun.serve with development: false binds beside another process's such listener (another
      // instance's metrics port): scrapes would land on either process in turn.
      probeExclusive(config.metrics.address, config.metrics.port);
      metrics = listenMetrics(config, o.renderMetrics, app.log);
    } catch (err) {
      throw await listenFailure("metrics", config.metrics.address, config.metrics.port, err, "metrics listener: ");
    }
  }
  return { listener, s3Listener, metrics };
}

/** A primary's worker processes, started once everything the primary listens on is up (they get the port it bound). */
function startGroup(app: App, o: { workers: number; port: number; log: Logger; reloadWaitMs: number | undefined }): Children {
  const group = startChildren({
    n: o.workers,
    port: o.port,
    log: o.log,
    own: () => app.metrics.snapshot(),
    reloadSelf: () => app.reload(),
    current: () => app.currentConfig(),
    applyPurge: (inv) => app.cache.applyPeer(inv),
    purgeSlotFolder: (slot, inv) => purgeUnservedFolder(app.runtime.config.cache, { baseDir: app.runtime.config.baseDir, share: o.workers, worker: slot }, inv),
    reloadWaitMs: o.reloadWaitMs,
    redisWaited: redisMissing(app),
  });
  // Every purge here reaches the children's caches before it settles.
  app.cache.setPeers({ publish: (inv) => group.broadcastPurge(inv) });
  return group;
}

/**
 * Serves `config`, validated from `source.text`: read from `source.path` (a single process or a
 * primary, which reloads that file), or sent by the primary (a worker process: no path).
 */
async function serve(config: Config, source: { path?: string; text: string; generation?: number; tls?: TlsMaterial }): Promise<number> {
  const forcedPort = process.env.YATAGARASU_PORT;
  /** A worker process its primary started (YATAGARASU_WORKER set). */
  const child = workerIndex() !== undefined;
  // A worker listens on the port the primary chose, but the App keeps the file's config: reload
  // compares restart-only settings against the file, and `port: 0` must not read as a port change.
  const listenConfig = child && forcedPort ? { ...config, server: { ...config.server, port: Number(forcedPort) } } : config;
  const workers = workerCount(config);
  // With server.workers > 1 this process is the primary (worker 0): it serves too, and spawns workers 1..N-1.
  const primary = workers > 1 && !child;
  const worker = primary ? 0 : workerIndex();
  if (worker !== undefined && worker > 0) nameWorkerProcess(worker);
  const log = createLogger({ level: config.logging.level, format: config.logging.format, base: worker !== undefined ? { worker } : undefined });
  const fatal = handleCrashes(log);
  // SIGUSR1/SIGUSR2 are ignored (a copied logrotate `kill -USR1` killed it; the logs go to
  // stdout, there is nothing to reopen). SIGHUP/SIGTERM/SIGINT/SIGQUIT before the listeners are
  // up: caught since main() began (see `early`).
  for (const sig of ["SIGUSR1", "SIGUSR2"] as const) process.on(sig, () => log.info("signal ignored", { signal: sig }));

  let app: App;
  /** The App, once created: closed when the start fails after it. */
  let created: App | undefined;
  let listening: Listening;
  let children: Children | undefined;
  /**
   * In a child: the configs the primary sent, followed one after the other (the newest sent each
   * time), each outcome reported to the primary (a reload of the group waits for it).
   */
  let following: Promise<void> = Promise.resolve();
  const follow = () =>
    (following = following.then(async () => {
      const sent = latestSentConfig();
      if (sent === undefined || app.runtime.generation >= sent.generation) return reportGeneration(app.runtime.generation);
      const r = await app.reload(sent.generation, sent);
      reportGeneration(app.runtime.generation, r.ok ? undefined : { generation: sent.generation, error: r.error ?? "reload failed" });
    }));
  // A reload (admin API or SIGHUP) reaches every process of the group: a child asks the
  // primary, the primary reloads and then sends its children the config it now runs.
  /** A reload of the whole group: the primary's own (then its children's); a child asks the primary. Undefined: this process alone. `hup`: asked by a SIGHUP (Children.hup: one sent to the whole group is one reload). */
  const reloadAll = (hup = false): Promise<ReloadResult> | undefined => (child ? askPrimaryToReloadAll(() => app.runtime.generation, hup) : hup ? children?.hup(0) : children?.reloadAll());
  try {
    // server.readiness_probe_interval_seconds sets the probe period; YATAGARASU_PROBE_INTERVAL_MS overrides it (tests).
    const probeEnv = Number(process.env.YATAGARASU_PROBE_INTERVAL_MS);
    const probeIntervalMs = Number.isInteger(probeEnv) && probeEnv > 0 ? probeEnv : undefined;
    // YATAGARASU_RELOAD_WAIT_MS overrides how long a reload of the group waits for the children (tests).
    const waitEnv = Number(process.env.YATAGARASU_RELOAD_WAIT_MS);
    const reloadWaitMs = Number.isInteger(waitEnv) && waitEnv > 0 ? waitEnv : undefined;
    // The certificate every listener serves: the primary's (sent with its config), else read now.
    const tls = source.tls ?? readTls(config, config.baseDir);
    await startFetchClient();
    const a = (created = app = await App.create(config, { configPath: source.path, configText: source.text, generation: source.generation, log, share: workers, probeIntervalMs, reloadAll: () => reloadAll(), tls }));
    // Another process's purges (through the primary), those made while this child started too:
    // applied before it serves, each confirmed once applied.
    if ((workerIndex() ?? 0) > 0) applyPurgesFromPrimary((inv) => a.cache.applyPeer(inv));
    await waitForRedisAtStart(app);
    if (child) await firstProbeRound(app);
    if (early.stop !== undefined) {
      log.info("stopped before serving", { signal: early.stop, ...(child && !process.connected ? { primary: "gone" } : undefined) });
      await app.close();
      return 0;
    }
    listening = await listenAll(app, config, listenConfig, { primary, child, workers, tls, renderMetrics: () => children?.renderMetrics() ?? a.metrics.render() });
    // Only now that this process holds its ports (a second instance would have failed above).
    app.retireOtherDiskLayouts();
    app.setListeners(listening.s3Listener === undefined ? [listening.listener] : [listening.listener, listening.s3Listener]);
    if (primary) children = startGroup(app, { workers, port: listening.listener.port, log, reloadWaitMs });
    // A child's purges go through the primary to every other process of the group.
    else if ((workerIndex() ?? 0) > 0) app.cache.setPeers({ publish: (inv) => askPrimaryToPurge(inv) ?? Promise.resolve() });
  } catch (err) {
    const why = (err as Error)?.message ?? String(err);
    log.error("could not start", { error: why });
    log.flush();
    write(process.stderr, `could not start: ${why}\n`);
    // (the disk cache's lock removed: a start that could not bind leaves the folder as it found it;
    // not close(), which waited for the disk index rebuild, seconds or minutes for a large folder)
    created?.abandonStart();
    return 3;
  }
  const { listener, s3Listener, metrics } = listening;
  // (a port `port: 0` chose is told by this line only: written at any logging.level, still as info)
  const chosen = config.server.port === 0 || (metrics !== undefined && config.metrics.port === 0) || (s3Listener !== undefined && config.s3_api?.port === 0);
  log.log("info", "listening", {
    version: VERSION,
    commit: COMMIT,
    address: config.server.address,
    port: listener.port,
    engine: config.server.engine,
    ...(metrics ? { metrics_port: metrics.port } : undefined),
    ...(s3Listener ? { s3_port: s3Listener.port } : undefined),
    buckets: config.buckets.length,
    generation: app.runtime.generation,
    pid: process.pid,
  }, chosen);
  if (!child) {
    for (const n of configNotes(config)) log[n.level](n.text);
  }
  // Garbage a burst of requests left is collected once the process is idle (body-garbage.ts).
  const stopIdleCollect = collectWhenIdle();
  if (primary) log.info("primary started", { workers, port: listener.port, pid: process.pid, ...(metrics ? { metrics_port: metrics.port } : undefined) });
  // Workers report their port to the primary (tests and the primary's own log use it).
  if (child) process.send?.({ type: "listening", port: listener.port });
  return runUntilStopped({ app, log, listening, children, primary, child, fatal, reloadAll, follow, stopIdleCollect });
}

/**
 * Serves until a stop (a signal, the primary asking, the primary gone, or a crash), then drains
 * and resolves with the exit code: 0 for a signal, EXIT_CRASH once anything was fatal. Wires the
 * process's signals and its primary's messages.
 */
function runUntilStopped(s: {
  app: App;
  log: Logger;
  listening: Listening;
  children: Children | undefined;
  primary: boolean;
  child: boolean;
  fatal: { handle: (kind: string, err: unknown) => void };
  reloadAll: (hup?: boolean) => Promise<ReloadResult> | undefined;
  follow: () => void;
  stopIdleCollect: () => void;
}): Promise<number> {
  const { app, log, listening, children, primary, child, reloadAll, stopIdleCollect } = s;
  return new Promise<number>((resolve) => {
    let stopping = false;
    let exitCode = 0;
    /** SIGTERM/SIGINT received so far. */
    let signals = 0;
    let cutDrain!: () => void;
    const drainCut = new Promise<"cut">((r) => (cutDrain = () => r("cut")));
    /**
     * Drains and resolves with the exit code.
     * `how`: a signal to this process; the primary (or its loss) asking a child to drain; or the
     * primary cutting the drain short. A child that is asked and also gets the signal itself (a
     * signal to the process group) counts one signal, in either order.
     */
    const shutdown = async (signal: string, code = 0, how: "signal" | "asked" | "cut" = "signal", askedDelayS = 0) => {
      if (code !== 0) exitCode = code;
      else if (how === "signal") signals++;
      if (how === "cut") cutDrain();
      if (stopping) {
        // A crash during a drain: the drain goes on, the exit code says it crashed.
        if (code !== 0 || how !== "signal" || signals < 2) return;
        children?.cut();
        // A second signal cuts the drain short as the shutdown timeout does (the cut transfers are
        // logged as the timeout's are, the audit trail is written); a third exits at once.
        if (signals === 2) {
          log.warn("second signal: cutting the drain short", { signal });
          cutDrain();
          return;
        }
        log.warn("third signal: exiting now", { signal });
        // (no child left behind on the shared port: one that still drains is ended with the group)
        children?.kill();
        log.flush();
        process.exit(exitCode);
      }
      stopping = true;
      app.draining = true;
      // the current generation's timeout: a reload may have changed it
      const timeoutS = app.runtime.config.server.shutdown_timeout;
      // server.shutdown_delay: /ready says 503 while requests are still served, so that a load
      // balancer stops sending before the listeners close (a second signal ends it early). A child
      // asked by the primary waits the delay the primary gives it (none when the primary is gone).
      const delayS = how === "signal" ? app.runtime.config.server.shutdown_delay : how === "asked" ? askedDelayS : 0;
      // The children are told at once, with the delay: each says 503 from now on too (a load
      // balancer's checks reach any worker), and each closes its listeners when its delay ends.
      const childrenDone = children?.stop(signal === "SIGINT" ? "SIGINT" : "SIGTERM", delayS);
      // The children drain as this process does (the same delay and timeout): one still running
      // CHILD_DRAIN_GRACE_MS after that (wedged, stopped) is killed, so the group always exits.
      const childrenDeadline = performance.now() + (delayS + timeoutS) * 1000 + CHILD_DRAIN_GRACE_MS;
      if (delayS > 0) {
        log.info("not ready: waiting before closing the listeners", { signal, delay_s: delayS });
        await Promise.race([new Promise<void>((r) => setTimeout(r, delayS * 1000).unref?.()), drainCut]);
      }
      log.info("draining", { signal, timeout_s: timeoutS });
      await closeListeners(app, listening, timeoutS, drainCut, log);
      await settleOpenWork(app, log);
      if (childrenDone && children) await waitForChildren(children, childrenDone, childrenDeadline, log);
      await listening.metrics?.stop(true);
      stopIdleCollect();
      // Tracing: the spans of the drained requests go out before exit (bounded wait).
      await app.tracer?.shutdown();
      await app.close();
      log.info("stopped");
      if (primary) log.info("primary stopped");
      log.flush();
      resolve(exitCode);
    };
    s.fatal.handle = (kind, err) => {
      logFatal(log, kind, err);
      if (!stopping) {
        // The drain itself runs on code that just failed once: if it cannot finish, exit anyway.
        setTimeout(() => {
          log.warn("drain after a crash did not finish: exiting now");
          log.flush();
          process.exit(EXIT_CRASH);
        }, timerDelay(app.runtime.config.server.shutdown_timeout * 1000 + 5000)).unref?.();
      }
      void shutdown(kind, EXIT_CRASH);
    };
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    process.on("SIGINT", () => void shutdown("SIGINT"));
    // (nginx's graceful stop: drained like SIGTERM, not a core dump)
    process.on("SIGQUIT", () => void shutdown("SIGQUIT"));
    // Every process of a group reloads to the same generation: SIGHUP to a child asks the primary
    // (one sent to the whole group, reaching every process, is one reload).
    early.release();
    process.on("SIGHUP", () => void (reloadAll(true) ?? app.reload()));
    if (early.stop !== undefined) void shutdown(early.stop);
    else if (early.hup) void (reloadAll(true) ?? app.reload());
    // A child whose primary is gone (killed with SIGKILL, crashed) drains and exits instead of lingering on the port.
    // (gone already, while the listeners started: that disconnect came before this handler)
    if (child) {
      process.on("disconnect", () => void shutdown("primary gone", 0, "asked"));
      if (!process.connected) void shutdown("primary gone", 0, "asked");
    }
    // A child follows every config the primary sends (with each reload), and any sent while it was starting.
    if (child) {
      onSentConfig(() => void s.follow());
      void s.follow();
    }
    process.on("message", (m: unknown) => {
      const msg = m as { type?: string; generation?: number; signal?: string; cut?: boolean; delay_s?: number; id?: number; result?: ReloadResult } | null;
      if (msg?.type === "reload-result") reloadAnswered(msg);
      if (msg?.type === "shutdown") void shutdown(msg.signal ?? "primary", 0, msg.cut ? "cut" : "asked", typeof msg.delay_s === "number" && msg.delay_s > 0 ? msg.delay_s : 0);
      if (msg?.type === "metrics") process.send?.({ type: "metrics", snapshot: app.metrics.snapshot() });
      if (msg?.type === "purge-done") purgeDone(msg);
    });
  });
}

/**
 * Stops accepting and waits for the requests in flight: at most `timeoutS`, or until the drain is
 * cut (a second signal, the primary), then closes the connections left.
 */
async function closeListeners(app: App, { listener, s3Listener }: Listening, timeoutS: number, drainCut: Promise<"cut">, log: Logger): Promise<void> {
  const graceful = Promise.all([listener.stop(false), s3Listener?.stop(false)]);
  const drained = await Promise.race([
    graceful.then(() => "drained" as const),
    new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timeoutS * 1000).unref?.()),
    drainCut,
  ]);
  if (drained === "drained") return;
  if (drained === "timeout") log.warn("shutdown timeout reached: closing remaining connections");
  await Promise.all([listener.stop(true), s3Listener?.stop(true)]);
  // The cut requests finish on their own (their upstream exchanges abort, then they are
  // logged and release their slots): wait for that, briefly, so that each still gets its
  // access line (ClientClosedRequest) before the exit (a cut upload had none).
  for (let i = 0; i < 100 && app.concurrency.inFlight > 0; i++) await Bun.sleep(10);
  await new Promise((r) => setImmediate(r));
}

/**
 * After the drain: a form upload cut by it aborts its multipart upload (PostObject), which may take
 * longer than the cut requests' wait; up to OPEN_WORK_GRACE_MS more for those, then a warn line for
 * each given up on (its parts stay in the bucket). The abort was dropped with the exit, unsaid.
 */
async function settleOpenWork(app: App, log: Logger): Promise<void> {
  if (app.openWork.size === 0) return;
  log.info("waiting for form uploads' multipart uploads to be aborted", { uploads: app.openWork.size, max_wait_s: OPEN_WORK_GRACE_MS / 1000 });
  for (const left of await app.openWork.settle(OPEN_WORK_GRACE_MS)) {
    log.warn("stopping with a form upload's multipart upload not aborted: its parts stay in the bucket until it is aborted (aws s3api abort-multipart-upload) or a lifecycle rule removes it", left);
  }
}

/** Waits for the children's drain until `deadline` (performance.now()), then kills those still running. */
async function waitForChildren(children: Children, childrenDone: Promise<unknown>, deadline: number, log: Logger): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = await Promise.race([
    childrenDone.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timerDelay(Math.max(0, deadline - performance.now()))))),
  ]);
  clearTimeout(timer);
  if (late) {
    log.warn("workers still running after the drain: killing them", { workers: children.kill() });
    await childrenDone;
  }
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv);
  if ("exit" in parsed) {
    write(parsed.err ? process.stderr : process.stdout, parsed.out);
    return parsed.exit;
  }
  if (parsed.check || parsed.healthcheck) {
    // (not serving: a stop signal has its usual effect)
    early.release();
    if (early.stop !== undefined) return 128 + (early.stop === "SIGINT" ? 2 : early.stop === "SIGQUIT" ? 3 : 15);
  }
  if (parsed.healthcheck) return healthcheck(parsed.healthcheck);
  // A worker process of a group never reads the config file: its primary sends what it validated.
  if (!parsed.check && workerIndex() !== undefined) return serveWorker();
  const loaded = await load(parsed.config, parsed.check, parsed.configGiven);
  if (typeof loaded === "number") return loaded;
  const { config } = loaded;
  if (!parsed.check && early.stop !== undefined) {
    // asked to stop while the config loaded: nothing was served, nothing to drain
    const log = createLogger({ level: config.logging.level, format: config.logging.format });
    log.info("stopped before serving", { signal: early.stop });
    log.flush();
    return 0;
  }
  if (parsed.check) {
    // The disk layer's folder (each worker's, with server.workers), as the proxy would use it when
    // started by this user: one it cannot use stops the start (exit 3), so --check fails too.
    // Checked before the summary: its problems come first, and its headline says OK only for exit 0.
    let unusable = 0;
    if (config.cache.enabled && config.cache.cache_layers.includes("disk") && config.cache.disk) {
      const share = workerCount(config);
      for (let worker = 0; worker < share; worker++) {
        const dir = diskDir(config.cache.disk, { baseDir: config.baseDir, share, worker });
        const problem = diskDirProblem(dir);
        if (!problem) continue;
        unusable++;
        write(process.stderr, `error: cache.disk.path ${dir}: started as this user, the proxy could not use it: ${problem}; it would not start (exit 3)\n`);
      }
    }
    write(process.stdout, summarize(config, parsed.config, unusable === 0 ? "OK" : `NOT OK: valid, but the proxy would not start with it as this user (${unusable === 1 ? "the error" : `${unusable} errors`} above)`));
    for (const n of configNotes(config)) write(process.stdout, `note: ${n.text}\n`);
    // (the free space where the disk layer's folder is, the cache's own files there counted as room: the start-up log says it after its index is rebuilt)
    if (unusable === 0 && config.cache.enabled && config.cache.cache_layers.includes("disk") && config.cache.disk) {
      const base = diskDir(config.cache.disk, { baseDir: config.baseDir });
      const room = diskRoomWarning(base, config.cache.disk.max_disk_size_mb * 1024 * 1024, () => folderBytes(base));
      if (room !== undefined) write(process.stdout, `note: ${room}\n`);
    }
    // What the start-up log warns about the JWT keys, said here too (a key the config names but no
    // accepted algorithm can use is a key that silently does nothing).
    if (config.jwt?.enabled) {
      const keys = await loadStaticKeys(config.jwt, config.baseDir).catch(() => undefined);
      for (const f of keys?.unusedFiles ?? []) write(process.stdout, `note: the JWT key file ${f} fits none of the accepted algorithms (jwt.algorithm / jwt.algorithms), so it is not used\n`);
    }
    return unusable > 0 ? 1 : 0;
  }
  return serve(config, { path: parsed.config, text: loaded.text });
}

const exitCode = await main(process.argv.slice(2));
await flushed();
process.exit(exitCode);
