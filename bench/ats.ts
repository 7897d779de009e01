/**
 * Apache Traffic Server with its `s3_auth` plugin (Debian's `trafficserver`, 9.2), the C peer that
 * signs for S3 (issue 14), as a self-contained instance the bench starts and stops:
 *
 * - its own runroot (a `runroot.yaml` in a temp dir, passed as TS_RUNROOT): config, runtime, log
 *   and cache directories all under that dir; binaries and plugins from the package (/usr);
 * - `proxy.config.admin.user_id #-1`: it never changes user, so it runs as whoever starts it (root
 *   or not) and can read its 0700 temp dir;
 * - `traffic_server` alone (no traffic_manager), one process: its CPU is read from /proc like
 *   nginx's;
 * - `exec_thread.autoconfig 0`, `exec_thread.limit` = `threads` (1 beside one Yatagarasu worker
 *   and one nginx worker), `accept_threads 0` (accepts on the net threads);
 * - logging off, no Via / X-Forwarded-For / client-IP headers (nothing the other peers do);
 * - remap rules: each maps `/<prefix>/` on ATS's port to `/<bucket>/` on the origin, signed with
 *   s3_auth v4 (`v4-include-headers=host,x-amz-content-sha256,x-amz-date`, region map with one
 *   default region); `cache: false` turns the HTTP cache off for that rule (conf_remap), `cache:
 *   true` caches what the origin answers (heuristic freshness from Last-Modified: the origin sends
 *   no Cache-Control, as S3 does not by default).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, cpSync } from "node:fs";
import { join } from "node:path";

export const TRAFFIC_SERVER = "/usr/bin/traffic_server";
const PLUGIN_DIR = "/usr/lib/trafficserver/modules";
const SYSCONF = "/etc/trafficserver";

/** True when the Debian package's traffic_server and s3_auth plugin are installed. */
export function atsInstalled(): boolean {
  return existsSync(TRAFFIC_SERVER) && existsSync(join(PLUGIN_DIR, "s3_auth.so"));
}

export interface AtsRemap {
  /** Path prefix on ATS's port, e.g. "/signed/". */
  from: string;
  /** Path prefix on the origin, e.g. "/bucket/". */
  to: string;
  /** false: the HTTP cache is off for this rule; true: responses are cached. */
  cache: boolean;
}

export interface AtsOptions {
  /** A directory of its own (created; the caller removes it). */
  dir: string;
  /** Origin "host:port" (plain HTTP). */
  origin: string;
  /** ET_NET threads (proxy.config.exec_thread.limit). */
  threads: number;
  accessKey: string;
  secretKey: string;
  region?: string;
  remaps: AtsRemap[];
}

export interface Ats {
  port: number;
  pids(): number[];
  /** diags.log + traffic.out, for error messages. */
  logs(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(null) });
  const port = s.port!;
  await s.stop(true);
  return port;
}

export function recordsConfig(o: { port: number; threads: number; dir: string }): string {
  const rec: Array<[string, "INT" | "STRING" | "FLOAT", string | number]> = [
    ["proxy.config.admin.user_id", "STRING", "#-1"],
    ["proxy.config.crash_log_helper", "STRING", "/bin/true"],
    ["proxy.config.http.server_ports", "STRING", `${o.port}`],
    ["proxy.config.exec_thread.autoconfig", "INT", 0],
    ["proxy.config.exec_thread.limit", "INT", o.threads],
    ["proxy.config.exec_thread.affinity", "INT", 0],
    ["proxy.config.accept_threads", "INT", 0],
    ["proxy.config.task_threads", "INT", 1],
    ["proxy.config.cache.threads_per_disk", "INT", 2],
    ["proxy.config.log.logging_enabled", "INT", 0],
    ["proxy.config.diags.debug.enabled", "INT", 0],
    ["proxy.config.url_remap.remap_required", "INT", 1],
    ["proxy.config.reverse_proxy.enabled", "INT", 1],
    ["proxy.config.url_remap.pristine_host_hdr", "INT", 0],
    ["proxy.config.http.insert_request_via_str", "INT", 0],
    ["proxy.config.http.insert_response_via_str", "INT", 0],
    ["proxy.config.http.insert_client_ip", "INT", 0],
    ["proxy.config.http.insert_squid_x_forwarded_for", "INT", 0],
    ["proxy.config.http.keep_alive_no_activity_timeout_in", "INT", 120],
    ["proxy.config.http.keep_alive_no_activity_timeout_out", "INT", 120],
    ["proxy.config.http.transaction_no_activity_timeout_in", "INT", 30],
    ["proxy.config.http.transaction_no_activity_timeout_out", "INT", 30],
    ["proxy.config.net.connections_throttle", "INT", 10000],
    ["proxy.config.http.cache.http", "INT", 1],
    // The origin (like S3) sends Last-Modified and ETag but no Cache-Control: heuristic freshness.
    ["proxy.config.http.cache.required_headers", "INT", 1],
    ["proxy.config.http.cache.heuristic_min_lifetime", "INT", 3600],
    ["proxy.config.http.cache.heuristic_max_lifetime", "INT", 86400],
    ["proxy.config.http.cache.when_to_revalidate", "INT", 0],
    ["proxy.config.cache.ram_cache.size", "INT", 64 * 1024 * 1024],
    ["proxy.config.cache.ram_cache_cutoff", "INT", 4 * 1024 * 1024],
    ["proxy.config.http.negative_caching_enabled", "INT", 0],
    ["proxy.config.body_factory.template_sets_dir", "STRING", join(o.dir, "etc", "body_factory")],
    ["proxy.config.hostdb.host_file.path", "STRING", "/etc/hosts"],
  ];
  return rec.map(([k, t, v]) => `CONFIG ${k} ${t} ${v}`).join("\n") + "\n";
}

/**
 * Starts traffic_server in `o.dir` and waits until it answers HTTP on its port (any status: an
 * unmapped path is ATS's own 404). The caller checks the remapped targets itself.
 */
export async function startAts(o: AtsOptions): Promise<Ats> {
  const etc = join(o.dir, "etc");
  const run = join(o.dir, "run");
  const logs = join(o.dir, "log");
  const cache = join(o.dir, "cache");
  for (const d of [etc, run, logs, cache]) mkdirSync(d, { recursive: true });
  // The package's defaults (body_factory templates, ip_allow, ...); the files below replace the rest.
  cpSync(SYSCONF, etc, { recursive: true, dereference: true });
  const port = await freePort();
  writeFileSync(
    join(o.dir, "runroot.yaml"),
    [
      `prefix: ${o.dir}`,
      `exec_prefix: /usr`,
      `bindir: /usr/bin`,
      `sbindir: /usr/sbin`,
      `sysconfdir: ${etc}`,
      `datadir: ${cache}`,
      `includedir: /usr/include`,
      `libdir: /usr/lib/trafficserver`,
      `libexecdir: ${PLUGIN_DIR}`,
      `localstatedir: ${run}`,
      `runtimedir: ${run}`,
      `logdir: ${logs}`,
      `cachedir: ${cache}`,
      "",
    ].join("\n"),
  );
  writeFileSync(join(etc, "records.config"), recordsConfig({ port, threads: o.threads, dir: o.dir }));
  writeFileSync(join(etc, "storage.config"), `${cache} 64M\n`);
  writeFileSync(join(etc, "plugin.config"), "");
  writeFileSync(join(etc, "logging.yaml"), "logging: {}\n");
  writeFileSync(join(etc, "ip_allow.yaml"), "ip_allow:\n  - apply: in\n    ip_addrs: 127.0.0.1\n    action: allow\n    methods: ALL\n  - apply: out\n    ip_addrs: 127.0.0.1\n    action: allow\n    methods: ALL\n");
  const s3conf = join(etc, "s3_auth_v4.config");
  writeFileSync(join(etc, "region_map.config"), `: ${o.region ?? "us-east-1"}\n`);
  writeFileSync(
    s3conf,
    [`access_key=${o.accessKey}`, `secret_key=${o.secretKey}`, "version=4", "v4-include-headers=host,x-amz-content-sha256,x-amz-date", `v4-region-map=${join(etc, "region_map.config")}`, ""].join("\n"),
  );
  const remap = o.remaps
    .map((r) => {
      const noCache = r.cache ? "" : " @plugin=conf_remap.so @pparam=proxy.config.http.cache.http=0";
      return `map http://127.0.0.1:${port}${r.from} http://${o.origin}${r.to}${noCache} @plugin=s3_auth.so @pparam=--config @pparam=${s3conf}`;
    })
    .join("\n");
  writeFileSync(join(etc, "remap.config"), `${remap}\n`);

  const proc = Bun.spawn([TRAFFIC_SERVER], { cwd: o.dir, env: { ...process.env, TS_RUNROOT: join(o.dir, "runroot.yaml") }, stdout: "ignore", stderr: "pipe" });
  let stderr = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of proc.stderr as ReadableStream<Uint8Array>) stderr = (stderr + dec.decode(c, { stream: true })).slice(-20_000);
  })();
  const readLogs = () => {
    let s = `stderr:\n${stderr}`;
    for (const f of ["diags.log", "traffic.out", "error.log"]) {
      const p = join(logs, f);
      if (existsSync(p)) s += `\n${f}:\n${readFileSync(p, "utf8").slice(-8000)}`;
    }
    return s;
  };
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(t);
  };
  // Ready when diags.log says the cache is up (ATS answers on its port before that, but caches
  // nothing until then) and the port answers HTTP at all. Takes ~1 s (the cache file is cleared).
  const diags = join(logs, "diags.log");
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`traffic_server exited (${proc.exitCode ?? proc.signalCode}) before answering on ${port}\n${readLogs()}`);
    try {
      if (existsSync(diags) && readFileSync(diags, "utf8").includes("Traffic Server is fully initialized")) {
        const r = await fetch(`http://127.0.0.1:${port}/`);
        await r.arrayBuffer();
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`traffic_server did not answer on ${port} within 20 s\n${readLogs()}`);
    }
    await Bun.sleep(50); // poll interval while it starts
  }
  return { port, pids: () => [proc.pid], logs: readLogs, stop };
}
