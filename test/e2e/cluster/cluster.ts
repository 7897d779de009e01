/**
 * A small Yatagarasu cluster of real parts, for test/e2e/cluster.test.ts:
 *
 *   redis-server ── 3 × Yatagarasu (one config) ── haproxy round-robin in front
 *                         │
 *                bucket replicas: primary + secondary (two S3 fixtures, own region/bucket/keys)
 *
 * Every part runs on a free loopback port and is stopped by stop(). The proxies listen on fixed
 * ports (picked free, passed as ${PORT}) so haproxy's backend list stays valid when one restarts;
 * each has its own disk-cache folder (${DISK_DIR}: memory and disk are per replica) and all share
 * one Redis (${REDIS_URL}: cache tier, purges, rate limits).
 *
 * Buckets (each on both replicas):
 *   /c        cached: the cache tests (memory 1 MiB items, disk 16 MiB, Redis 1 MiB)
 *   /live     not cached: every read reaches S3 (failover)
 *   /limited  cached, s3.rate_limit LIMIT_RPS (burst = 1 s's worth), shared through Redis
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nowSec, sign } from "../../fixtures/jwt.ts";
import { startS3Fixture, type S3Fixture } from "../../fixtures/s3.ts";
import { freePort, startHaproxy, startRedis, type Haproxy, type RedisServer } from "../../fixtures/services.ts";
import { waitFor } from "../../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "../harness.ts";

export const LIMIT_RPS = 60;
const SECRET = "cluster-e2e-hs256-secret-0123456789ab";
const PRIMARY_KEY = { accessKeyId: "AKIACLUSTERPRIMARY01", secretAccessKey: "cluster/primary/secret/EXAMPLE/0000000" };
const SECONDARY_KEY = { accessKeyId: "AKIACLUSTERSECOND002", secretAccessKey: "cluster/secondary/secret/EXAMPLE/00000" };
export const PRIMARY_BUCKET = "p-use1";
export const SECONDARY_BUCKET = "p-usw2";

export interface Ready {
  ready: boolean;
  reasons: string[];
  degraded?: string[];
  buckets: Record<string, { ok: boolean; serving?: string; replicas?: Record<string, { ok: boolean; reason?: string; circuit?: string }> }>;
  rate_limit?: { backend: string; shared: boolean };
  cache_layers?: Record<string, { up: boolean; state: string; reason?: string }>;
}

export interface Node {
  /** haproxy's name for it ("s0", "s1", "s2"): the x-haproxy-server header. */
  readonly name: string;
  readonly port: number;
  readonly diskDir: string;
  readonly proc: ProxyProcess;
  url(path: string): string;
  ready(): Promise<{ status: number; body: Ready }>;
  /** SIGTERM, wait for the exit, start again on the same port with the same disk folder. */
  restart(): Promise<void>;
}

export interface Cluster {
  redis: RedisServer;
  primary: S3Fixture;
  secondary: S3Fixture;
  nodes: Node[];
  lb: Haproxy;
  /** Bearer token satisfying jwt.admin_claims. */
  admin: string;
  stop(): Promise<void>;
}

function configYaml(primary: S3Fixture, secondary: S3Fixture): string {
  const replicas =
    `      replicas:\n` +
    `        - { name: primary, bucket: ${PRIMARY_BUCKET}, region: us-east-1, endpoint: "${primary.endpoint}", access_key: "${PRIMARY_KEY.accessKeyId}", secret_key: "${PRIMARY_KEY.secretAccessKey}", priority: 1 }\n` +
    `        - { name: secondary, bucket: ${SECONDARY_BUCKET}, region: us-west-2, endpoint: "${secondary.endpoint}", access_key: "${SECONDARY_KEY.accessKeyId}", secret_key: "${SECONDARY_KEY.secretAccessKey}", priority: 2 }\n`;
  const s3 =
    `      retry: { max_attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 10 }\n` +
    `      circuit_breaker: { failure_threshold: 3, success_threshold: 1, timeout_seconds: 0.5, half_open_max_requests: 1 }\n`;
  const bucket = (name: string, extraS3: string, extra: string) => `  - name: ${name}\n    path_prefix: /${name}\n    s3:\n${s3}${extraS3}${replicas}${extra}`;
  return `server:
  address: 127.0.0.1
  port: \${PORT}
  readiness_probe_interval_seconds: 0.5
  rate_limit: { backend: redis, redis_timeout_ms: 200, instances: 3 }
metrics: { enabled: true, address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${SECRET}"
  admin_claims: [{ claim: role, operator: equals, value: admin }]
cache:
  enabled: true
  cache_layers: [memory, disk, redis]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 32, default_ttl_seconds: 600 }
  disk: { path: "\${DISK_DIR}", max_disk_size_mb: 64, max_item_size_mb: 16 }
  redis: { url: "\${REDIS_URL}", key_prefix: "cluster:", max_item_size_mb: 1, connect_timeout_ms: 300, operation_timeout_ms: 300 }
buckets:
${bucket("c", "", "    cache: { enabled: true }\n")}${bucket("live", "", "")}${bucket("limited", `      rate_limit: { requests_per_second: ${LIMIT_RPS} }\n`, "    cache: { enabled: true }\n")}`;
}

export async function startCluster(): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), "yata-cluster-"));
  const started: Array<{ stop(): Promise<unknown> }> = [];
  try {
    const [redis, primary, secondary] = await Promise.all([
      startRedis(),
      startS3Fixture({ region: "us-east-1", buckets: [{ name: PRIMARY_BUCKET }], credentials: [{ ...PRIMARY_KEY, buckets: [PRIMARY_BUCKET] }] }),
      startS3Fixture({ region: "us-west-2", buckets: [{ name: SECONDARY_BUCKET }], credentials: [{ ...SECONDARY_KEY, buckets: [SECONDARY_BUCKET] }] }),
    ]);
    started.push(redis, primary, secondary);
    const yaml = configYaml(primary, secondary);
    const nodes = await Promise.all([0, 1, 2].map((i) => startNode(`s${i}`, join(root, `s${i}`), yaml, redis.url)));
    started.push(...nodes.map((n) => ({ stop: () => n.proc.stop() })));
    const lb = await startHaproxy(nodes.map((n) => n.port));
    started.push(lb);
    for (const n of nodes) await waitFor(async () => (await n.ready()).status === 200, { timeoutMs: 10_000, message: `${n.name} to be ready` });
    const admin = await sign({ sub: "ops", role: "admin", exp: nowSec() + 3600 }, { alg: "HS256", key: SECRET });
    return {
      redis,
      primary,
      secondary,
      nodes,
      lb,
      admin,
      async stop() {
        await lb.stop();
        await Promise.all(nodes.map((n) => n.proc.stop()));
        await Promise.all([redis.stop(), primary.stop(), secondary.stop()]);
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (e) {
    for (const s of started.reverse()) await s.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
}

/** One proxy process; at first start a port taken meanwhile by someone else gets another try. */
async function startNode(name: string, diskDir: string, yaml: string, redisUrl: string): Promise<Node> {
  let port = 0;
  let proc: ProxyProcess | undefined;
  const launch = (p: number) => startProxy(yaml, { env: { PORT: String(p), DISK_DIR: diskDir, REDIS_URL: redisUrl } });
  for (let attempt = 1; proc === undefined; attempt++) {
    port = freePort();
    try {
      proc = await launch(port);
    } catch (e) {
      if (attempt >= 3 || !/in use/i.test(String(e))) throw e;
    }
  }
  const node: Node = {
    name,
    port,
    diskDir,
    get proc() {
      return proc!;
    },
    url: (path) => `http://127.0.0.1:${port}${path}`,
    async ready() {
      const r = await fetch(`http://127.0.0.1:${port}/ready`);
      return { status: r.status, body: (await r.json()) as Ready };
    },
    async restart() {
      const code = await proc!.stop();
      if (code !== 0) throw new Error(`${name} exited with ${code} on SIGTERM:\n${proc!.output()}`);
      proc = await launch(port);
    },
  };
  return node;
}
