/**
 * Load-bench plumbing: free ports, nginx (origin + peers) in a temp prefix, the proxy as a
 * subprocess, load generators (autocannon programmatic API, wrk), RSS sampling.
 * Nothing here installs anything: missing tools are reported by `requireTools()`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { SHIPPED_HEADER_LIMIT } from "../src/http/header-limit.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";

export const MAIN = join(import.meta.dir, "../src/main.ts");
export const KIB = 1024;
export const MIB = 1024 * 1024;

/** Exits with a clear message when nginx or wrk is missing (scripts never install anything). */
export function requireTools(tools = ["nginx", "wrk"]): void {
  const missing = tools.filter((t) => !Bun.which(t, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` }));
  if (missing.length) {
    process.stderr.write(`bench: missing ${missing.join(", ")}. Install with: apt-get install -y nginx-light wrk\n`);
    process.exit(2);
  }
}

export function nginxBin(): string {
  return Bun.which("nginx", { PATH: `${process.env.PATH}:/usr/sbin:/sbin` })!;
}

/** A free TCP port: bind 0 with a throwaway Bun.serve, read it, stop. */
/**
 * Starts a bench script in its server mode (`bun <script> ...args`), which prints {"port":N} as its
 * first line on stdout: the child process and that port.
 */
export async function spawnServerMode(script: string, args: string[]): Promise<{ proc: ReturnType<typeof Bun.spawn>; port: number }> {
  const proc = Bun.spawn([process.execPath, script, ...args], { stdout: "pipe", stderr: "inherit" });
  const { value } = await proc.stdout.getReader().read();
  return { proc, port: JSON.parse(new TextDecoder().decode(value).split("\n")[0]!).port };
}

export async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(null) });
  const port = s.port!;
  await s.stop(true);
  return port;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitHttp(url: string, timeoutMs = 10_000, headers?: Record<string, string>): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < end) {
    try {
      const r = await fetch(url, { headers });
      await r.arrayBuffer();
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (e) {
      last = String(e);
    }
    await sleep(50);
  }
  throw new Error(`bench: ${url} did not answer 200 within ${timeoutMs} ms (${last})`);
}

export interface Fixture {
  dir: string;
  /** Served root: <root>/bucket/1k.bin, <root>/bucket/100m.bin */
  root: string;
  cleanup(): void;
}

export function makeFixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), "yata-bench-"));
  const root = join(dir, "www");
  mkdirSync(join(root, "bucket"), { recursive: true });
  const one = Buffer.alloc(KIB);
  for (let i = 0; i < one.length; i++) one[i] = 97 + (i % 26);
  writeFileSync(join(root, "bucket", "1k.bin"), one);
  const big = Buffer.alloc(100 * MIB);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  writeFileSync(join(root, "bucket", "100m.bin"), big);
  return { dir, root, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Nginx {
  /** master + workers */
  ports: Record<string, number>;
  proc: ReturnType<typeof Bun.spawn>;
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * Starts one nginx master with `workers` worker processes and the given server blocks.
 * Root-less: everything (pid, temp paths, cache) lives in a fresh prefix directory.
 */
export async function startNginx(name: string, fx: Fixture, workers: number, servers: Record<string, (port: number) => string>, httpExtra = ""): Promise<Nginx> {
  const prefix = join(fx.dir, `nginx-${name}`);
  mkdirSync(join(prefix, "logs"), { recursive: true });
  const ports: Record<string, number> = {};
  let blocks = "";
  for (const [k, body] of Object.entries(servers)) {
    ports[k] = await freePort();
    blocks += `  server {\n    listen 127.0.0.1:${ports[k]} reuseport backlog=4096;\n${body(ports[k])}\n  }\n`;
  }
  // Root: keep workers as root too (the temp prefix is 0700); non-root: nginx needs no user directive.
  const user = process.getuid?.() === 0 ? "user root root;\n" : "";
  const conf = `${user}worker_processes ${workers};
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 120s;
  default_type application/octet-stream;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy_temp;
  fastcgi_temp_path ${prefix}/fastcgi_temp;
  uwsgi_temp_path ${prefix}/uwsgi_temp;
  scgi_temp_path ${prefix}/scgi_temp;
${httpExtra.replaceAll("$PREFIX", prefix)}
${blocks}}
`;
  const confPath = join(prefix, "nginx.conf");
  writeFileSync(confPath, conf);
  const proc = Bun.spawn([nginxBin(), "-p", prefix, "-c", confPath, "-g", "daemon off;"], { stdout: "ignore", stderr: "pipe" });
  for (const k of Object.keys(ports)) {
    try {
      await waitHttp(`http://127.0.0.1:${ports[k]}/health`, 10_000);
    } catch (e) {
      proc.kill("SIGKILL");
      const err = existsSync(join(prefix, "logs/error.log")) ? readFileSync(join(prefix, "logs/error.log"), "utf8") : "";
      throw new Error(`${(e as Error).message}\nnginx ${name} error.log:\n${err}`);
    }
  }
  return {
    ports,
    proc,
    pids: () => [proc.pid, ...childPids(proc.pid)],
    stop: async () => {
      proc.kill("SIGQUIT");
      const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (kids) for (const k of kids.split(/\s+/)) out.push(Number(k), ...childPids(Number(k)));
    }
  } catch {
    // exited
  }
  return out;
}

/** CPU seconds (user + system) used so far by the given processes. */
export function cpuSeconds(pids: number[]): number {
  let t = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      t += (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
    } catch {
      // exited
    }
  }
  return t;
}

/** Resident set size in bytes of one process (0 if gone). */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export interface Proxy {
  port: number;
  proc: ReturnType<typeof Bun.spawn>;
  /** primary + workers */
  pids(): number[];
  /** Total RSS of the proxy (primary + workers) in bytes. */
  rss(): number;
  /** RSS per process (workers only when workers > 1). */
  rssEach(): number[];
  stop(): Promise<void>;
  output(): string;
}

/**
 * Starts the proxy. `yaml` may contain `port: $PORT`: with logging.level warn the "listening" line
 * (info) is not printed, so the port is picked here (bind 0, read, release) and then health-polled.
 * With `port: 0` and info logging the port is read from the "listening" log line.
 */
export async function startProxy(fx: Fixture, name: string, yaml: string): Promise<Proxy> {
  const path = join(fx.dir, `proxy-${name}.yaml`);
  const fixed = yaml.includes("$PORT") ? await freePort() : 0;
  writeFileSync(path, yaml.replace("$PORT", String(fixed)));
  const proc = Bun.spawn([process.execPath, `--max-http-header-size=${SHIPPED_HEADER_LIMIT}`, MAIN, "--config", path], { stdout: "pipe", stderr: "pipe", env: { ...process.env } });
  let out = "";
  let port = 0;
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`proxy did not log "listening" in 15 s:\n${out}`)), 15_000);
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
        out += dec.decode(chunk, { stream: true });
        // workers > 1: the primary logs "primary started" with the shared port.
        const m = /"msg":"(?:listening|primary started)".*?"port":(\d+)/.exec(out);
        if (m && !port && !fixed) {
          port = Number(m[1]);
          clearTimeout(t);
          resolve();
        }
        if (out.length > 1_000_000) out = out.slice(-100_000);
      }
      clearTimeout(t);
      reject(new Error(`proxy exited:\n${out}`));
    })();
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) out += dec.decode(chunk, { stream: true });
    })();
  });
  if (fixed) {
    port = fixed;
    await Promise.race([waitHttp(`http://127.0.0.1:${port}/health`, 15_000), ready]);
  } else await ready;
  const all = () => [proc.pid, ...childPids(proc.pid)];
  return {
    port,
    proc,
    pids: all,
    rss: () => all().reduce((s, p) => s + rssOf(p), 0),
    rssEach: () => all().map(rssOf),
    output: () => out,
    stop: async () => {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

export { waitHttp };

export interface LoadResult {
  tool: "autocannon" | "wrk";
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  non2xx: number;
  requests: number;
  bytesPerSec: number;
}

/** autocannon, programmatic API, `workers` worker threads when workers > 0. */
export async function runAutocannon(url: string, o: { connections: number; seconds: number; headers?: Record<string, string>; workers?: number }): Promise<LoadResult> {
  const r = await autocannon({
    url,
    connections: o.connections,
    duration: o.seconds,
    headers: o.headers,
    pipelining: 1,
    ...(o.workers ? { workers: o.workers } : {}),
  } as autocannon.Options);
  return {
    tool: "autocannon",
    rps: r.requests.average,
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    requests: r.requests.total,
    bytesPerSec: r.throughput.average,
  };
}

function parseDur(v: string, unit: string): number {
  const n = Number(v);
  const ms = unit === "us" ? n / 1000 : unit === "ms" ? n : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n;
  return Math.round(ms * 1000) / 1000; // 2.01 s is 2010 ms, not 2009.9999999999998

}
function parseBytes(v: string, unit: string): number {
  const n = Number(v);
  const mult: Record<string, number> = { B: 1, KB: KIB, MB: MIB, GB: 1024 * MIB };
  return n * (mult[unit] ?? 1);
}

/** wrk, `threads` threads, `--latency` for percentiles. */
export async function runWrk(url: string, o: { connections: number; seconds: number; threads?: number; headers?: Record<string, string>; script?: string }): Promise<LoadResult> {
  const threads = Math.min(o.threads ?? 1, o.connections);
  const args = ["wrk", `-t${threads}`, `-c${o.connections}`, `-d${o.seconds}s`, "--latency", "--timeout", "10s"];
  // A Lua script sets what headers cannot (method, body): bench/uploads.ts's PUT.
  if (o.script !== undefined) args.push("-s", o.script);
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push("-H", `${k}: ${v}`);
  args.push(url);
  const p = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  const [text, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m ? m : undefined;
  };
  const rps = num(/Requests\/sec:\s+([\d.]+)/);
  if (!rps) throw new Error(`wrk output not understood:\n${text}\n${err}`);
  const p50 = num(/^\s+50%\s+([\d.]+)(us|ms|s|m)/m);
  const p99 = num(/^\s+99%\s+([\d.]+)(us|ms|s|m)/m);
  const total = num(/(\d+) requests in/);
  const sock = num(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const xfer = num(/Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/);
  return {
    tool: "wrk",
    rps: Number(rps[1]),
    p50ms: p50 ? parseDur(p50[1], p50[2]) : NaN,
    p99ms: p99 ? parseDur(p99[1], p99[2]) : NaN,
    errors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    requests: total ? Number(total[1]) : 0,
    bytesPerSec: xfer ? parseBytes(xfer[1], xfer[2]) : 0,
  };
}

/** Tools: machine description for the results. */
export function machine(): Record<string, unknown> {
  const cpu = /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  const mem = /MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1];
  const nginxV = spawnSync(nginxBin(), ["-v"], { encoding: "utf8" }).stderr.trim();
  const wrkV = (spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout || "").split("\n")[0].trim();
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    mem_mib: mem ? Math.round(Number(mem) / 1024) : undefined,
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    bun: Bun.version,
    nginx: nginxV,
    wrk: wrkV,
    autocannon: JSON.parse(readFileSync(join(import.meta.dir, "../node_modules/autocannon/package.json"), "utf8")).version,
  };
}
