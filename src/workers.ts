/**
 * server.workers: N > 1 runs a primary process that spawns N workers of the same executable,
 * all listening on one port with SO_REUSEPORT (the kernel spreads connections).
 *
 * - Signals: SIGTERM/SIGINT/SIGHUP to the primary are forwarded to every worker.
 * - Reload: SIGHUP, or POST /admin/reload on any worker (that worker asks the primary, which
 *   sends SIGHUP to all), so every worker runs the same config generation.
 * - Metrics: the primary serves the metrics listener and merges the workers' snapshots over IPC.
 * - Per process (not shared): memory cache, request coalescing, rate-limit buckets (each worker
 *   enforces 1/N of every configured rate, so the total stays correct), concurrency cap (each
 *   worker allows max_concurrent_requests / N).
 * - A worker that dies unexpectedly is restarted (at most once per second per slot).
 */
import type { Subprocess } from "bun";
import type { Config } from "./config/load.ts";
import { renderMerged } from "./observe/metrics.ts";
import type { Logger } from "./observe/log.ts";
import type { Snapshot } from "./observe/registry.ts";
import { listenMetrics } from "./server.ts";

export function workerIndex(): number | undefined {
  const v = process.env.YATAGARASU_WORKER;
  return v === undefined ? undefined : Number(v);
}

export function workerCount(cfg: Config): number {
  const w = cfg.server.workers;
  return w === "auto" ? Math.max(1, navigator.hardwareConcurrency || 1) : w;
}

/** argv to start this same program again (compiled binary or `bun src/main.ts`). */
function selfCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  return compiled ? [process.execPath] : [process.execPath, Bun.main];
}

async function freePort(host: string): Promise<number> {
  const s = Bun.serve({ hostname: host, port: 0, fetch: () => new Response(null) });
  const port = s.port ?? 0;
  await s.stop(true);
  return port;
}

export async function runPrimary(config: Config, configPath: string, n: number, log: Logger): Promise<number> {
  const port = config.server.port === 0 ? await freePort(config.server.address) : config.server.port;
  const children: Array<Subprocess | undefined> = [];
  const pendingMetrics = new Map<number, (s: Snapshot) => void>();
  let stopping = false;
  let exited = 0;
  const lastStart: number[] = [];
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const spawn = (i: number) => {
    lastStart[i] = Date.now();
    const child = Bun.spawn([...selfCommand(), "--config", configPath], {
      env: { ...process.env, YATAGARASU_WORKER: String(i), YATAGARASU_PORT: String(port), YATAGARASU_WORKERS: String(n) },
      stdio: ["ignore", "inherit", "inherit"],
      ipc(message) {
        const m = message as { type?: string; snapshot?: Snapshot } | null;
        if (m?.type === "metrics" && m.snapshot) pendingMetrics.get(i)?.(m.snapshot);
        if (m?.type === "reload-all") for (const [j, c] of children.entries()) if (j !== i) c?.kill("SIGHUP");
      },
      onExit(_p, code, signal) {
        children[i] = undefined;
        if (stopping) {
          if (++exited === n) resolveDone();
          return;
        }
        log.error("worker exited unexpectedly; restarting", { worker: i, code, signal });
        const wait = Math.max(0, 1000 - (Date.now() - lastStart[i]));
        setTimeout(() => !stopping && spawn(i), wait);
      },
    });
    children[i] = child;
  };
  for (let i = 0; i < n; i++) spawn(i);

  const metrics = config.metrics.enabled
    ? listenMetrics(config, async () => {
        const snaps = await Promise.all(
          children.map(
            (c, i) =>
              new Promise<Snapshot | undefined>((resolve) => {
                if (!c) return resolve(undefined);
                const t = setTimeout(() => resolve(undefined), 1000);
                pendingMetrics.set(i, (s) => {
                  clearTimeout(t);
                  resolve(s);
                });
                c.send({ type: "metrics" });
              }),
          ),
        );
        return renderMerged(snaps.filter((s): s is Snapshot => s !== undefined));
      })
    : undefined;
  log.info("primary started", { workers: n, port, pid: process.pid, ...(metrics ? { metrics_port: metrics.port } : undefined) });

  const forward = (sig: NodeJS.Signals) => {
    if (sig !== "SIGHUP") {
      if (stopping) return;
      stopping = true;
      exited = n - children.filter(Boolean).length;
      if (exited === n) resolveDone();
    }
    for (const c of children) c?.kill(sig);
  };
  process.on("SIGTERM", () => forward("SIGTERM"));
  process.on("SIGINT", () => forward("SIGINT"));
  process.on("SIGHUP", () => forward("SIGHUP"));
  await done;
  await metrics?.stop(true);
  log.info("primary stopped");
  log.flush();
  return 0;
}
