/**
 * From the `cache:` config to layers and per-bucket policies.
 *
 *   cache_layers: [memory, disk, redis]     fastest first, any subset in this order
 *   memory: { max_item_size_mb, max_cache_size_mb, default_ttl_seconds }
 *   disk:   { path, max_disk_size_mb, max_item_size_mb, fsync, verify_at_start }
 *   redis:  { url, key_prefix, max_item_size_mb, connect_timeout_ms, operation_timeout_ms }
 *
 * The memory layer always exists (so a reload can enable the cache); disk and Redis exist only
 * while the cache is enabled, and adding, removing or moving them needs a restart
 * (cacheRestartKey). With server.workers > 1 each process gets its own disk folder
 * (<path>/worker-<i>) and 1/N of max_disk_size_mb, as each has its own memory layer.
 */
import { timerDelay } from "../config/durations.ts";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { diskShareMb, type BucketConfig, type CacheConfig } from "../config/schema.ts";
import { StaleHold, type CachePolicy } from "./flight.ts";
import { DiskLayer, positionFileOf, type DiskLogger } from "./disk.ts";
import { MemoryLayer } from "./memory.ts";
import { RedisLayer } from "./redis.ts";
import type { CacheLayer, RemoteInvalidation } from "./types.ts";
import { keyHash } from "./disk-format.ts";
import { liveOthers, scanDir, type ScannedFile } from "./disk-scan.ts";
import { listed } from "../util/text.ts";

const MiB = 1024 * 1024;
const mb = (n: number) => Math.floor(n * MiB);

export interface CacheDeps {
  /** The config file's folder: a relative disk.path is relative to it. */
  baseDir?: string | undefined;
  log?: DiskLogger | undefined;
  /** Processes in this group (server.workers): each gets 1/share of the disk budget. */
  share?: number | undefined;
  /** This process's index in the group (0 = the primary). */
  worker?: number | undefined;
  /** This process among those on one host that may share a disk folder: its listener's port (the disk layer's position file). */
  instance?: string | undefined;
  /**
   * The buckets that cache, each with the stamp of the store it reads (cacheStores). The disk
   * layer drops at start the files of any other bucket, or stamped with another store; the disk
   * and Redis layers stamp what they store with it and the Redis layer serves only entries stamped
   * with it. Undefined (tests of a layer alone): nothing is stamped or dropped.
   */
  stores?: ReadonlyMap<string, string> | undefined;
}

/** The disk layer's folder for this process. */
/** cache.disk.path, resolved against the config file's folder. */
function diskBase(cfg: NonNullable<CacheConfig["disk"]>, deps: CacheDeps): string {
  return isAbsolute(cfg.path) ? cfg.path : resolve(deps.baseDir ?? process.cwd(), cfg.path);
}

/**
 * The folders of the disk layout this process does not use, deleted at start: a single process
 * uses `<path>` itself, a group `<path>/worker-<i>` for i < N. The others hold what an earlier
 * start with another `server.workers` cached, unchecked and never purged by the writes made since
 * (workers 1 -> 2 -> 1 served, from disk, an object replaced while the folder was not in use).
 * A group's worker 0 deletes `<path>`'s own entries and the folders of workers >= N; the others
 * touch nothing. A folder another instance (another proxy sharing the path) runs on is kept, and
 * pushed to `shared`: only this instance's files in it are to go (ownFilesGone).
 */
export function retireOtherLayouts(cfg: NonNullable<CacheConfig["disk"]>, deps: CacheDeps, shared: string[] = []): string[] {
  const base = diskBase(cfg, deps);
  const share = deps.share ?? 1;
  if (share > 1 && (deps.worker ?? 0) !== 0) return [];
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return []; // (not there yet: nothing to retire)
  }
  const gone: string[] = [];
  for (const name of names) {
    const w = /^worker-(\d+)$/.exec(name);
    const retire = share > 1 ? (w !== null ? Number(w[1]) >= share : name === "objects" || name === "tmp") : w !== null;
    // (not the folder another proxy runs on now: its lock names a live process of another instance)
    if (!retire) continue;
    const dir = w !== null ? join(base, name) : base;
    if (liveOthers(dir, deps.instance).size > 0) {
      if (!shared.includes(dir)) shared.push(dir);
      continue;
    }
    rmSync(join(base, name), { recursive: true, force: true });
    gone.push(name);
    // (the single layout's: this instance's purge-stream position of the files just deleted, left
    // behind, is of nothing: a later start back on that layout read it, stale)
    if (w === null && deps.instance !== undefined) rmSync(join(base, positionFileOf(deps.instance)), { force: true });
  }
  return gone.sort();
}

/**
 * retireOtherLayouts for a configuration's disk layer, logged; called once this process's
 * listeners are bound (cli.ts), so that a second instance that cannot start (its port in use)
 * changes nothing: it deleted the running instance's whole disk cache.
 */
export async function retireOtherDiskLayouts(cfg: CacheConfig, deps: CacheDeps): Promise<void> {
  if (!cfg.enabled || cfg.disk === undefined || !cfg.cache_layers.includes("disk")) return;
  const shared: string[] = [];
  const retired = retireOtherLayouts(cfg.disk, deps, shared);
  if (retired.length > 0) deps.log?.info("disk cache: folders of another server.workers layout deleted", { path: cfg.disk.path, folders: retired });
  const own = await ownFilesGone(shared, deps.instance);
  if (own > 0) deps.log?.info("disk cache: files of another server.workers layout deleted from folders another instance runs on", { path: cfg.disk.path, files: own });
}

/**
 * This instance's files in the folders of its other layout that another instance runs on: kept
 * with the folder, they were served again, unpurged since, when this instance went back to that
 * layout (workers 1 -> 2 -> 1 beside another proxy: the object replaced meanwhile, a disk HIT).
 */
async function ownFilesGone(folders: string[], instance: string | undefined): Promise<number> {
  if (instance === undefined) return 0;
  let n = 0;
  for (const dir of folders) {
    // (shared: a file it cannot read may be the other's, and is left)
    const { files } = await scanDir(dir, (f) => f.owner !== instance, true).catch(() => ({ files: [] as ScannedFile[] }));
    for (const f of files) await unlink(f.file).then(() => n++, () => {});
    // (and its position of them: see retireOtherLayouts)
    await unlink(join(dir, positionFileOf(instance))).catch(() => {});
  }
  return n;
}

/**
 * A purge that the process of worker slot `deps.worker` could not apply (none ran in it), applied
 * to its disk folder by the primary: the folder outlives the group too, so what is purged only
 * when its next process starts was served again after a restart of the whole group. A key's
 * files go by name; a prefix takes every object file (a name does not say its key).
 */
export function purgeUnservedFolder(cfg: CacheConfig, deps: CacheDeps, inv: RemoteInvalidation): void {
  if (!cfg.enabled || cfg.disk === undefined || !cfg.cache_layers.includes("disk")) return;
  const objects = join(diskDir(cfg.disk, deps), "objects");
  try {
    if (inv.kind === "prefix") return rmSync(objects, { recursive: true, force: true });
    const hash = keyHash(inv.key);
    const folder = join(objects, hash.slice(0, 2));
    for (const name of readdirSync(folder)) if (name.startsWith(`${hash}.`)) rmSync(join(folder, name), { force: true });
  } catch {
    // (no such folder: nothing of the key is there)
  }
}

export function diskDir(cfg: NonNullable<CacheConfig["disk"]>, deps: CacheDeps): string {
  const base = diskBase(cfg, deps);
  return (deps.share ?? 1) > 1 ? join(base, `worker-${deps.worker ?? 0}`) : base;
}

export function buildLayers(cfg: CacheConfig, deps: CacheDeps): CacheLayer[] {
  const layers: CacheLayer[] = [];
  const share = Math.max(1, deps.share ?? 1);
  const wanted = cfg.enabled ? cfg.cache_layers : ["memory" as const];
  try {
    for (const name of wanted) {
      if (name === "memory") layers.push(new MemoryLayer(mb(cfg.memory.max_cache_size_mb), mb(cfg.memory.max_item_size_mb)));
      else if (name === "disk" && cfg.disk) {
        const d = cfg.disk;
        layers.push(new DiskLayer({ dir: diskDir(d, deps), maxBytes: Math.floor(mb(d.max_disk_size_mb) / share), maxItemBytes: mb(d.max_item_size_mb), fsync: d.fsync, verify: d.verify_at_start, log: deps.log, share, instance: deps.instance, stores: deps.stores, groupWarnings: (deps.worker ?? 0) === 0 }));
      } else if (name === "redis" && cfg.redis) {
        const r = cfg.redis;
        layers.push(
          new RedisLayer({
            url: r.url,
            keyPrefix: r.key_prefix,
            maxItemBytes: mb(r.max_item_size_mb),
            connectTimeoutMs: r.connect_timeout_ms,
            operationTimeoutMs: r.operation_timeout_ms,
            log: deps.log,
            stores: deps.stores,
          }),
        );
      }
    }
  } catch (err) {
    for (const l of layers) void l.close?.();
    throw err;
  }
  if (layers.length === 0) layers.push(new MemoryLayer(mb(cfg.memory.max_cache_size_mb), mb(cfg.memory.max_item_size_mb)));
  return layers;
}

/**
 * What a bucket reads from, and as whom: its objects, cached under its name, are what this store
 * gave that access key. A reload that changes it drops the bucket's cached objects (app.ts);
 * across a restart the disk and Redis layers compare it with the stamp stored with each object
 * (storeStamp). The access key counts (not its secret: a rotated secret reads the same objects):
 * an operator who narrows a bucket's credentials must not see the wider key's objects served on
 * from the cache until their TTL.
 *
 * With replicas, the store is the primary's (the top-level keys hold it): replicas hold the same
 * objects by definition, so one added, removed or reordered beside an unchanged primary keeps the
 * cache (every proxy behind a balancer reloading at once purged every layer: a cluster-wide miss
 * storm for the same data); another primary drops it. (The trailing [] keeps the stamps written
 * before, when the replica list counted, for buckets without replicas.)
 */
export function upstreamIdentity(b: Pick<BucketConfig, "s3">): string {
  const s3 = b.s3;
  return JSON.stringify([s3.bucket, s3.endpoint ?? "", s3.region, s3.access_key ?? "", []]);
}

/** The short form of upstreamIdentity stored with each cached object (64 bits of its SHA-256, hex). */
export function storeStamp(b: Pick<BucketConfig, "s3">): string {
  return new Bun.CryptoHasher("sha256").update(upstreamIdentity(b)).digest("hex").slice(0, 16);
}

/** The buckets that use the cache under `config`, each with its store's stamp (CacheDeps.stores). */
export function cacheStores(config: { cache: CacheConfig; buckets: readonly BucketConfig[] }): Map<string, string> {
  const out = new Map<string, string>();
  for (const b of config.buckets) if (bucketCachePolicy(config.cache, b) !== null) out.set(b.name, storeStamp(b));
  return out;
}

/**
 * The settings behind a changed cacheRestartKey, by name (the reload's refusal names them: it said
 * only "the redis connection", for a key_prefix or a timeout too). Never their values (a URL may
 * hold a password).
 */
export function cacheRestartChanges(old: CacheConfig, next: CacheConfig, baseDir?: string): string[] {
  if (cacheRestartKey(old, baseDir) === cacheRestartKey(next, baseDir)) return [];
  const has = (c: CacheConfig, l: "disk" | "redis") => c.enabled && c.cache_layers.includes(l);
  // (named with how it follows the buckets: the first bucket given cache: { enabled: true } under a
  // top-level section without `enabled` was refused as "cache.enabled changed", a key never written)
  if (old.enabled !== next.enabled && (has(old, "disk") || has(old, "redis") || has(next, "disk") || has(next, "redis")))
    return ["cache.enabled (which, when not written, is on once any bucket sets cache: { enabled: true } and off while none does)"];
  if (has(old, "disk") !== has(next, "disk") || has(old, "redis") !== has(next, "redis")) return ["cache.cache_layers"];
  // (the memory layer added or removed beside a disk or Redis layer: the layers are built once, so
  // such a reload was accepted and the change silently ignored)
  if (old.cache_layers.includes("memory") !== next.cache_layers.includes("memory")) return ["cache.cache_layers"];
  const out: string[] = [];
  if (has(old, "disk")) {
    if (folderOf(old.disk!.path, baseDir) !== folderOf(next.disk!.path, baseDir)) out.push("cache.disk.path");
    if (old.disk!.fsync !== next.disk!.fsync) out.push("cache.disk.fsync");
  }
  if (has(old, "redis")) for (const k of ["url", "key_prefix", "connect_timeout_ms", "operation_timeout_ms"] as const) if (old.redis![k] !== next.redis![k]) out.push(`cache.redis.${k}`);
  return out;
}

/**
 * disk.path as the folder it names (against the config's folder, `baseDir`, when given): the same
 * folder written another way ("cache", "./cache/", its absolute path) was a change that refused the reload.
 */
function folderOf(path: string, baseDir: string | undefined): string {
  return baseDir === undefined ? path : resolve(baseDir, path);
}

/** What a reload cannot change: which persistent or shared layers exist and where they are. */
export function cacheRestartKey(cfg: CacheConfig, baseDir?: string): string {
  if (!cfg.enabled) return "[]";
  const d = cfg.cache_layers.includes("disk") ? cfg.disk : undefined;
  const r = cfg.cache_layers.includes("redis") ? cfg.redis : undefined;
  if (d === undefined && r === undefined) return "[]"; // memory only: enabling or disabling it reloads
  return JSON.stringify([cfg.cache_layers.includes("memory"), d && [folderOf(d.path, baseDir), d.fsync], r && [r.url, r.key_prefix, r.connect_timeout_ms, r.operation_timeout_ms]]);
}

/**
 * The policy of one bucket, or null when the bucket must not use the cache (global `cache.enabled`
 * and the bucket's `cache.enabled` must both be true).
 *
 * - maxItemBytes: the bucket's max_item_size_mb, capped by the largest item any configured layer keeps.
 * - bufferBytes: what is buffered and shared with coalesced waiters: up to the largest item the
 *   memory or Redis layer keeps. Larger objects (up to maxItemBytes) go to the disk as they stream.
 * - fillTimeoutMs: s3.timeout for the response head plus time for 1 MiB/s of a buffered body,
 *   per replica of the bucket (each replica's own timeout, which may override the bucket's);
 *   fillBodyMs, with replicas, is the body's part of one replica's share.
 * - stallTimeoutMs: s3.timeout between two reads of a streamed body.
 */
export function bucketCachePolicy(cfg: CacheConfig, bucket: Pick<BucketConfig, "cache"> & { s3?: { timeout: number; replicas?: readonly { timeout?: number | undefined }[] | undefined } }): CachePolicy | null {
  if (!cfg.enabled || bucket.cache?.enabled !== true) return null;
  const { limits, layerMax } = layerItemLimits(cfg);
  const buffered = cfg.cache_layers.filter((l) => l !== "disk").map((l) => limits[l] ?? 0);
  const bufferMb = buffered.length > 0 ? Math.max(...buffered) : cfg.memory.max_item_size_mb;
  const maxItemBytes = mb(Math.min(bucket.cache.max_item_size_mb ?? layerMax, layerMax));
  const policy: CachePolicy = { ttlSeconds: bucket.cache.ttl_seconds, defaultTtlSeconds: cfg.memory.default_ttl_seconds, maxItemBytes };
  const bufferBytes = Math.min(maxItemBytes, mb(bufferMb));
  const stale = bucket.cache.stale_if_error_seconds ?? cfg.stale_if_error_seconds;
  if (stale > 0) {
    policy.staleIfErrorSeconds = stale;
    policy.staleHold = new StaleHold();
  }
  if (bufferBytes !== maxItemBytes) policy.bufferBytes = bufferBytes;
  if (bucket.s3 !== undefined) {
    const bodyMs = (bufferBytes / MiB) * 1000;
    const timeouts = bucket.s3.replicas?.map((r) => r.timeout ?? bucket.s3!.timeout) ?? [bucket.s3.timeout];
    policy.fillTimeoutMs = timerDelay(timeouts.reduce((sum, t) => sum + t * 1000 + bodyMs, 0));
    if (timeouts.length > 1) policy.fillBodyMs = bodyMs;
    policy.stallTimeoutMs = bucket.s3.timeout * 1000;
  }
  return policy;
}

/** The largest item (MiB) each configured layer keeps, and the largest of those: what caps a bucket's max_item_size_mb. */
export function layerItemLimits(cfg: CacheConfig): { limits: Record<string, number>; layerMax: number } {
  const limits: Record<string, number> = { memory: cfg.memory.max_item_size_mb };
  if (cfg.disk) limits.disk = cfg.disk.max_item_size_mb;
  if (cfg.redis) limits.redis = cfg.redis.max_item_size_mb;
  return { limits, layerMax: Math.max(...cfg.cache_layers.map((l) => limits[l] ?? 0)) };
}

/**
 * Cached buckets whose own `cache.max_item_size_mb` is above the largest item any configured layer
 * keeps: it is capped there, and the objects between the two are never cached (the original
 * README's `max_size: "1GB"` rewritten as `max_item_size_mb: 1024` over the memory layer's
 * default 10 MiB cached nothing above 10 MiB, unsaid). Said at start and by --check.
 */
export function bucketItemCapNote(config: { cache: CacheConfig; buckets: readonly Pick<BucketConfig, "name" | "cache">[] }): string | undefined {
  if (!config.cache.enabled) return undefined;
  const { limits, layerMax } = layerItemLimits(config.cache);
  const over = config.buckets.filter((b) => b.cache?.enabled === true && (b.cache.max_item_size_mb ?? 0) > layerMax);
  if (over.length === 0) return undefined;
  const layers = config.cache.cache_layers.map((l) => `${l} ${limits[l]} MiB`).join(", ");
  const raise = config.cache.cache_layers.map((l) => `cache.${l}.max_item_size_mb`).join(" or ");
  return `cache.max_item_size_mb of bucket${over.length > 1 ? "s" : ""} ${listed(over.map((b) => `${b.name} (${b.cache!.max_item_size_mb} MiB)`))} is more than the largest object the cache layers keep (${layers}): objects over ${layerMax} MiB are not cached; raise ${raise} (a disk layer keeps large objects), or lower the bucket's to ${layerMax} or less`;
}

/** Buckets that enable their cache under a top-level `cache.enabled: false` (the switch wins): said at start and by --check. */
export function cacheOffNote(config: { cache: { enabled?: boolean }; buckets: readonly Pick<BucketConfig, "name" | "cache">[] }): string | undefined {
  if (config.cache.enabled !== false) return undefined;
  const off = config.buckets.filter((b) => b.cache?.enabled === true).map((b) => b.name);
  if (off.length === 0) return undefined;
  return `cache.enabled is false, so these buckets are not cached although their own cache.enabled is true: ${listed(off)} (remove the top-level cache.enabled: false, or set it true, to cache them)`;
}

/**
 * The cache is on, or its disk or Redis layer is configured, but no bucket opts in (each bucket
 * caches only with its own `cache: { enabled: true }`): nothing is cached, though --check lists
 * the layers, or says only `cache off`. Said at start and by --check.
 */
export function cacheUnusedNote(config: { cache: { enabled?: boolean; cache_layers?: readonly string[] }; buckets: readonly Pick<BucketConfig, "name" | "cache">[] }): string | undefined {
  if (config.buckets.some((b) => b.cache?.enabled === true)) return undefined;
  const fix = "add it to each bucket to cache (a bucket caches only when its own cache section says so)";
  if (config.cache.enabled === true) return `cache.enabled is true but no bucket sets its own cache: { enabled: true }, so nothing is cached: ${fix}`;
  // (a top-level cache.enabled left out is off when no bucket opts in, so a disk or Redis layer set up for them was never opened, in silence)
  const layers = (config.cache.cache_layers ?? []).filter((l) => l !== "memory");
  if (layers.length === 0) return undefined;
  return `cache.cache_layers lists ${layers.join(" and ")} but no bucket sets its own cache: { enabled: true }, so nothing is cached and the ${layers.join(" and ")} layer${layers.length > 1 ? "s are" : " is"} never used: ${fix}, then restart (a reload cannot open a layer)`;
}

/** What a process takes besides its memory layer (RSS after start and light traffic, Bun 1.4.5: 70-80 MiB). */
const PROCESS_OWN_MIB = 80;
/** RSS per MiB of a full memory layer (README, Cache layers: ~1.6x max_cache_size_mb under churn). */
const MEMORY_LAYER_RSS = 1.6;

/**
 * The memory limit of this process's control group, in bytes: the lowest `memory.max` (cgroup v2)
 * or `memory.limit_in_bytes` (v1) of its group and every group above it, up to the mount `root`
 * (a limit set on a parent, a pod's or a systemd slice's, binds the process as well: only the
 * mount root's was read, so a limit on a parent was missed). The group's path is the one
 * /proc/self/cgroup (`self`) names; in a container with its own cgroup namespace it is `/`, the
 * root alone. Undefined when there is none ("max", v1's page-rounded 2^63) or no file can be read.
 */
export function cgroupMemoryLimit(root = "/sys/fs/cgroup", self = "/proc/self/cgroup"): number | undefined {
  let lines: string[] = [];
  try {
    lines = readFileSync(self, "utf8").split("\n");
  } catch {
    // (no /proc: the mount root's files alone)
  }
  const v2 = lines.find((l) => l.startsWith("0::"))?.slice(3);
  const v1 = lines.map((l) => /^\d+:([^:]*):(.*)$/.exec(l)).find((m) => m !== null && m[1]!.split(",").includes("memory"))?.[2];
  const limits = [lowestLimit(root, v2, "memory.max"), lowestLimit(join(root, "memory"), v1, "memory.limit_in_bytes")].filter((n) => n !== undefined);
  return limits.length === 0 ? undefined : Math.min(...limits);
}

/** The lowest limit in `name` of the group at `path` under `root` and of each group above it. */
function lowestLimit(root: string, path: string | undefined, name: string): number | undefined {
  // (a path outside the namespace's root, "/../x", is the root's alone)
  const levels = path === undefined || path.split("/").includes("..") ? [] : path.split("/").filter((p) => p !== "");
  let lowest: number | undefined;
  for (let i = levels.length; i >= 0; i--) {
    let text: string;
    try {
      text = readFileSync(join(root, ...levels.slice(0, i), name), "utf8").trim();
    } catch {
      continue;
    }
    const bytes = Number(text);
    if (Number.isSafeInteger(bytes) && bytes > 0 && (lowest === undefined || bytes < lowest)) lowest = bytes;
  }
  return lowest;
}

/**
 * A memory layer that cannot fill within the container's memory limit: the default 1024 MiB in a
 * pod limited to 512 MiB ran until the cache filled, then the kernel killed it (OOMKilled, a
 * restart, the cache lost), with no word at start. Each worker process holds a layer of its own.
 */
export function memoryLimitNote(cache: CacheConfig, workers: number, limit = cgroupMemoryLimit()): string | undefined {
  if (limit === undefined || !cache.enabled || !cache.cache_layers.includes("memory")) return undefined;
  const mib = cache.memory.max_cache_size_mb;
  const need = Math.ceil(workers * (MEMORY_LAYER_RSS * mib + PROCESS_OWN_MIB));
  const have = Math.floor(limit / (1024 * 1024));
  if (need <= have) return undefined;
  const fits = Math.floor((have / workers - PROCESS_OWN_MIB) / MEMORY_LAYER_RSS);
  const each = workers > 1 ? ` in each of ${workers} worker processes` : "";
  return `cache.memory.max_cache_size_mb (${mib} MiB${each}) does not fit this container's memory limit (${have} MiB): a full memory layer takes about ${MEMORY_LAYER_RSS} times its size and a process about ${PROCESS_OWN_MIB} MiB of its own, ${need} MiB in all, so the kernel would kill the process (OOM) as the cache fills; ${fits >= 1 ? `lower max_cache_size_mb to at most ${fits}, or raise the limit` : "raise the limit"}`;
}

/**
 * With several worker processes each disk layer holds 1/N of max_disk_size_mb (buildLayers): a
 * share below max_item_size_mb leaves the objects between the two never disk-cached, which
 * nothing said (a soak's 50 MiB objects under workers: 2, an 80 MiB disk and 60 MiB items).
 */
export function diskShareNote(cache: CacheConfig, workers: number): string | undefined {
  const d = cache.disk;
  if (workers <= 1 || !cache.enabled || d === undefined || !cache.cache_layers.includes("disk")) return undefined;
  const share = diskShareMb(d.max_disk_size_mb, workers);
  if (share >= d.max_item_size_mb) return undefined;
  return `cache.disk: with ${workers} worker processes each holds 1/${workers} of max_disk_size_mb (${share} MiB), less than max_item_size_mb (${d.max_item_size_mb} MiB), so objects over ${share} MiB are never disk-cached: raise max_disk_size_mb to at least ${d.max_item_size_mb * workers}, or lower max_item_size_mb`;
}
