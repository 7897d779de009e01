/**
 * The disk layer: objects as files (format and names in disk-format.ts), an in-memory index with
 * LRU order bounded by bytes (the files' sizes), served with Bun.file: sendfile, an exact
 * Content-Length and zero-copy ranges (a slice of a file is still the file), on both engines.
 *
 * - Writes are atomic (disk-write.ts): visible only once complete, through one rename.
 * - The index is rebuilt at start (disk-scan.ts); purges and the adoption of a write wait for it, a
 *   lookup at most lookupWaitMs (LOOKUP_WAIT_MS), then is a miss.
 * - A hit checks the file (stat) before handing it out: a file that is gone, has another length or
 *   is not the file indexed (another inode or modification time: replaced or rewritten behind our
 *   back) is a miss and leaves the index, never wrong bytes.
 * - A replaced, evicted or purged file is unlinked at once: a response already sending it keeps
 *   its open file, and a new version always has a new name, so nothing is overwritten under a
 *   reader.
 * - A write of a key purged after it began drops its result (PurgeLog), as a fill into memory does.
 * - Each file records the store its object was read from (its bucket's stamp, `stores`). At start
 *   a file of a bucket that does not cache now, or stamped with another store than its bucket
 *   reads now, is deleted, never indexed: a restart drops what a reload would have purged (a
 *   bucket pointed at another store, a cache switched off, a bucket removed). A file with no stamp
 *   (written by an earlier version) is dropped too: its store cannot be known. The check is
 *   made once, at start; a hit costs nothing more. Files dropped before the listeners are bound
 *   are deleted only once they are (claimLock): a start that fails to bind deletes none.
 */
import { mkdirSync, accessSync, chmodSync, constants, existsSync, lstatSync, readdirSync, readFileSync, statSync, statfsSync, writeFileSync } from "node:fs";
import { lstat, open, readdir, rename, rmdir, unlink, mkdir, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { UNTYPED_CONTENT_TYPE } from "../http/headers.ts";
import { LruMap } from "../util/lru.ts";
import { bodyIntact, dateBytes, dateOffset, encodeHead, hashOfName, HEAD_BYTES, keyHash, namedAt, newVersion, objectPath, tempName, timesBytes } from "./disk-format.ts";
import { dropLock, liveOthers, lockFileOf, readObjectFile, recordAdopted, scanDir, sparedInstances, takeLock, type ScannedFile } from "./disk-scan.ts";
import { CACHE_DIR_MODE, DiskWrite, type FileIdentity, type WriteTarget } from "./disk-write.ts";
import { PurgeLog } from "./purge-log.ts";
import { idAfter } from "./redis-format.ts";
import { bucketOf, isFileBody, type BucketLayerStats, type CachedObject, type CacheLayer, type LayerStats, type LayerWriter, type ObjectMeta, type StreamCheckpoint } from "./types.ts";

/**
 * The Redis purge-stream position this process's entries in the folder are up to date with (see
 * StreamCheckpoint). One file per process that may share the folder (option `instance`, the
 * listener's port): with one file for the folder, a process restarted on a folder another
 * process kept using read that process's later position and skipped the purges it had missed
 * itself, serving its own stale files (a black-box pass: 3 of 3).
 */
const POSITION_FILE = "redis-position.json";
export const positionFileOf = (instance: string | undefined): string => (instance === undefined ? POSITION_FILE : `redis-position-${instance}.json`);
/** A position file's position in `stream`, or undefined (missing, unreadable, another stream). */
function readPosition(file: string, stream: string): { id: string; epoch: string | undefined } | undefined {
  try {
    const p = JSON.parse(readFileSync(file, "utf8")) as { stream?: unknown; id?: unknown; epoch?: unknown };
    if (p.stream !== stream || typeof p.id !== "string" || !/^\d+-\d+$/.test(p.id)) return undefined;
    return { id: p.id, epoch: typeof p.epoch === "string" ? p.epoch : undefined };
  } catch {
    return undefined;
  }
}

/**
 * Written in a folder by a start that finds another instance running on it, and never removed:
 * the folder may hold files of an instance that stopped while another ran, which no running
 * instance indexes and which purges must reach (DiskLayer.sweep).
 */
const SHARED_MARK = "instances-shared";

/**
 * Whether a file found in the folder is a running instance's (`spared`: sparedInstances): another
 * one's, or a stopped one's adopted by another. A file's time is when it was put in place, in its
 * name: not its ctime, which the adopter's revalidation of the file, rewriting its times in place,
 * moved past the adoption, and a proxy back on the folder took the file back while the adopter
 * ran, both counting it.
 */
const heldBy = (spared: ReadonlyMap<string, number>) => (f: ScannedFile): boolean => f.owner !== undefined && (namedAt(f.file) ?? f.ctimeMs) < (spared.get(f.owner) ?? -Infinity);

/**
 * How often an instance alone on its folder looks for another running there: the previous release
 * takes its lock but writes no SHARED_MARK, and once it stopped its files were no running
 * instance's, out of every purge's reach (its proxy back, upgraded, served them purged).
 */
const SHARED_WATCH_MS = 1000;

/** The position is written at most this often (and at close). */
const POSITION_EVERY_MS = 1000;

/** How often files that could not be deleted (a read-only file system) are tried again. */
const UNDELETED_RETRY_MS = 5000;

/**
 * How long a lookup waits for the index rebuild at start (DiskLayerOptions.lookupWaitMs) before it
 * is a miss: a folder of 100,000 objects took 11-20 s to read on a loaded host, and every request
 * of a cached bucket waited that long after a restart (while /ready said 200).
 */
const LOOKUP_WAIT_MS = 1000;

/** Room kept for an object's head when deciding whether it fits. */
const HEAD_ALLOWANCE = HEAD_BYTES + 4096;

export interface DiskLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface DiskLayerOptions {
  /** The layer's folder (absolute); objects/ and tmp/ are created inside. */
  dir: string;
  maxBytes: number;
  maxItemBytes: number;
  fsync?: boolean;
  /** Check the files found at start against their CRC-32 (in the background, and before each one's first hit); default true. */
  verify?: boolean;
  log?: DiskLogger | undefined;
  /** How long a lookup waits for the index rebuild before it is a miss (LOOKUP_WAIT_MS); writes and purges wait for it whole. */
  lookupWaitMs?: number;
  /** Processes sharing the configured budget (maxBytes is already this process's part). */
  share?: number;
  /** This process among those that may share the folder (its position file: positionFileOf). */
  instance?: string;
  /**
   * Whether this process logs the start's warnings about max_disk_size_mb against the file system
   * (larger than it, more than it has free): about the whole group's budget, so its first process
   * alone says them (buildLayers: worker 0), as the config's start-up notes; with server.workers N
   * they were N identical lines. Default true.
   */
  groupWarnings?: boolean;
  /**
   * The buckets that cache, with their store's stamp (CacheDeps.stores): written into each file,
   * and at start files of other buckets or with another stamp are dropped. Undefined: no stamp, no check.
   */
  stores?: ReadonlyMap<string, string> | undefined;
}

interface Entry extends FileIdentity {
  readonly key: string;
  readonly file: string;
  readonly fileSize: number;
  readonly bodyOffset: number;
  readonly size: number;
  storedAt: number;
  expiresAt: number;
  /** The upstream answer's Date (CachedObject.date): a revalidation's, rewritten in place with the times when the head has its slot. */
  date?: number | undefined;
  /** Whether the file's head holds the date in the slot a revalidation rewrites (disk-format.ts dateOffset; not in files written before 2026-12-08). */
  readonly dateSlot: boolean;
  readonly headers: Record<string, string>;
  readonly bucket: BucketLayerStats;
  /** Found by the index rebuild (stored by an earlier process): held while the layer holds them. */
  restored: boolean;
  /** Revalidations rewriting the file's times in place now (its modification time changes under a hit). */
  refreshing: number;
  /** When its version was last had from the upstream, as the order writes are opened in (opens; 0: found at start). */
  seen: number;
  /**
   * Found at start with a CRC-32 of its body not checked yet by this process (check): its first
   * hit waits for the check, unless the background pass after the rebuild got to it first.
   */
  unchecked: boolean;
  /** The CRC-32 its head recorded (found at start; undefined: none, or a trailer's). */
  crc?: number | undefined;
  /** The check under way (shared by the hits that wait for it). */
  checking?: Promise<"intact" | "damaged" | "unreadable"> | undefined;
}

/**
 * What a file of `size` bytes takes on disk, as the layer's budget counts it: whole 4 KiB blocks
 * (the common file-system block). Counted by bytes alone, 30,000 one-byte objects were counted as
 * ~6.5 MB (218 bytes each) and took 152 MiB (and as many inodes).
 */
const BLOCK = 4096;
export const onDisk = (size: number): number => Math.ceil(size / BLOCK) * BLOCK || BLOCK;

/**
 * An fs error in words an operator acts on (EACCES names the user the process runs as); `made`:
 * about a folder that exists (one a start as another user, root, made), which is given, not created.
 */
export function describeFsError(err: unknown, made = false): string {
  const code = (err as { code?: string }).code;
  if (code === "EACCES" || code === "EPERM") {
    const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
    const user = `the user this process runs as${uid === undefined ? "" : ` (uid ${uid})`}`;
    if (made) return `permission denied (${code}): give it and what it holds to ${user} (chown -R), or set a folder that user may write`;
    return `permission denied (${code}): create the folder and give it to ${user}, or set a folder that user may write`;
  }
  if (code === "EROFS") return "the file system is read-only (EROFS)";
  if (code === "ENOTDIR") return "a part of the path is a file, not a folder (ENOTDIR)";
  // (at start the layer writes its lock file in the folder: a file system left full, by other files
  // or by the cache's own, once answered this start with a bare "ENOSPC")
  if (code === "ENOSPC") return "the file system holding it is full (ENOSPC): free some space on it, or set a folder on another one";
  if (code === "EDQUOT") return "this user's disk quota there is used up (EDQUOT): raise it, free some space, or set a folder on another file system";
  return code ?? String(err);
}

/**
 * Why this process could not use `dir` as the disk layer's folder (undefined: it can), as start-up
 * would find it (the DiskLayer constructor): `objects` and `tmp` in it are made with mkdir -p, so
 * every part of their paths that exists must be a folder (a symbolic link to nothing is not), the
 * nearest existing one writable and searchable; then `dir` must be readable and writable.
 */
export function diskDirProblem(dir: string): string | undefined {
  for (const sub of ["objects", "tmp"]) {
    const problem = mkdirProblem(join(dir, sub), dir);
    if (problem !== undefined) return problem;
  }
  for (const at of objectFolders(dir)) {
    const problem = subfolderProblem(at);
    if (problem !== undefined) return problem;
  }
  try {
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOENT") return describeFsError(err);
  }
  return undefined;
}

/**
 * `dir` made owner-only (CACHE_DIR_MODE) when others may reach into it; best effort (a folder of
 * another owner stays as it is). Not through a symbolic link: the folder it points to, outside
 * the cache folder, was made 0700 (a shared folder locked away from its other users).
 */
function ownerOnly(dir: string): void {
  try {
    const st = lstatSync(dir);
    if (st.isDirectory() && (st.mode & 0o077) !== 0) chmodSync(dir, CACHE_DIR_MODE);
  } catch {
    // (not ours to change: the layer works as before)
  }
}

/** The file system holding `dir` (its nearest existing folder: --check runs before the folder is made): its size, and what this user may still write on it; undefined when statfs fails. */
function volumeOf(dir: string): { total: number; free: number } | undefined {
  for (let at = dir; ; at = dirname(at)) {
    try {
      const fs = statfsSync(at);
      return { total: fs.blocks * fs.frsize, free: fs.bavail * fs.bsize };
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT" || dirname(at) === at) return undefined;
    }
  }
}

/**
 * What `max_disk_size_mb` (`configured` bytes, every worker's part together) is short of on the
 * file system holding `dir`, as --check (a `note:`) and the start-up log (a warning) say it, or
 * undefined when there is room: more than the free space there besides what the cache's files
 * already take (`held`, asked only then). A warning, not a refusal, as nginx's proxy_cache_path
 * takes a max_size above the free space (its min_free evicts as the file system fills): the layer works, evicting
 * its least recently used files when the file system fills (outOfRoom), but it holds less than
 * configured, and the volume's other writers find it full. --check said nothing of free space.
 */
export function diskRoomWarning(dir: string, configured: number, held: () => number): string | undefined {
  const v = volumeOf(dir);
  if (v === undefined || v.total === 0 || configured <= v.free) return undefined;
  const mine = held();
  if (configured <= v.free + mine) return undefined;
  const mib = (b: number) => Math.round(b / (1024 * 1024));
  return `cache.disk: max_disk_size_mb (${mib(configured)} MiB) is more than the file system holding ${dir} has free (${mib(v.free)} MiB${mine > 0 ? `, besides the ${mib(mine)} MiB the cache's files take there` : ""}): the cache fills it, then evicts its least recently used objects and holds less than configured, and the file system's other users find it full; free some space, lower max_disk_size_mb, or set a folder on another file system`;
}

/** The bytes of the files under `dir` (0 when it is missing): what a disk cache folder holds, for diskRoomWarning. */
export function folderBytes(dir: string): number {
  let total = 0;
  const folders = [dir];
  for (let at = folders.pop(); at !== undefined; at = folders.pop()) {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(at, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const file = join(at, e.name);
      if (e.isDirectory()) folders.push(file);
      else if (e.isFile()) total += statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    }
  }
  return total;
}

/** What the layer needs on `objects` and `tmp` in its folder, and on the folders in `objects`: to list, create and delete in them. */
const SUBFOLDER_ACCESS = constants.R_OK | constants.W_OK | constants.X_OK;

/** Why this process may not list and write in `at`, a folder of the layer's that exists (undefined: it may). */
function subfolderProblem(at: string): string | undefined {
  try {
    accessSync(at, SUBFOLDER_ACCESS);
    return undefined;
  } catch (err) {
    return `${at} in it: ${describeFsError(err, true)}`;
  }
}

/**
 * The folders in `dir`'s `objects` (objects/<h2>; none when it cannot be listed, which
 * mkdirProblem says). One another user made (a start as root, the folder then given to the
 * service user without chown -R) took none of the keys that fall in it: their fills failed,
 * EACCES, one warning every 30 s naming no folder, and its files were neither indexed nor deleted.
 */
function objectFolders(dir: string): string[] {
  const objects = join(dir, "objects");
  try {
    return readdirSync(objects, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(objects, e.name));
  } catch {
    return [];
  }
}

/** Why `mkdir -p target` would fail for this process, or `target`, there already, is no folder it may list and write in (undefined: neither); `dir` names the messages. */
function mkdirProblem(target: string, dir: string): string | undefined {
  let at = target;
  for (;;) {
    let exists = true;
    let st: ReturnType<typeof statSync> | undefined;
    try {
      st = statSync(at);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // (ENOTDIR: a part above is a file; the walk up names it)
      if (code !== "ENOENT" && code !== "ENOTDIR") return describeFsError(err);
      exists = false;
      // a symbolic link whose target is missing: mkdir cannot go through it
      try {
        if (lstatSync(at).isSymbolicLink()) return `${at === dir ? "it" : at} is a symbolic link to nothing (ENOENT)`;
      } catch {
        // (really missing)
      }
    }
    if (exists) {
      if (!st!.isDirectory()) {
        if (at === dir) return "it is a file, not a folder (ENOTDIR)";
        if (at === target) return `${at} in it is a file, not a folder (EEXIST)`;
        return "a part of the path is a file, not a folder (ENOTDIR)";
      }
      // (`objects` or `tmp` itself, there already: the layer makes its files and folders in it and
      // the index rebuild lists it; one a start as root left, the folder given to the service
      // user without -R, passed, and every fill failed, EACCES, with nothing cached)
      if (at === target) return subfolderProblem(at);
      try {
        accessSync(at, constants.W_OK | constants.X_OK);
        return undefined;
      } catch (err) {
        return describeFsError(err);
      }
    }
    const up = dirname(at);
    if (up === at) return describeFsError(Object.assign(new Error("ENOENT"), { code: "ENOENT" }));
    at = up;
  }
}

/** How long the lower cap after a full file system holds (DiskLayer.outOfRoom). */
const FULL_HOLD_MS = 60_000;

export class DiskLayer implements CacheLayer, WriteTarget, StreamCheckpoint {
  readonly name = "disk";
  readonly storesFiles = true;
  readonly dir: string;
  readonly share: number;
  /** DiskLayerOptions.groupWarnings. */
  private readonly groupWarnings: boolean;
  /** Resolves when the index has been rebuilt from the folder. */
  readonly ready: Promise<void>;
  /** Whether `ready` has resolved (a lookup then waits for nothing). */
  private rebuilt = false;
  private readonly lookupWaitMs: number;
  /** Whether a lookup was a miss for want of the index yet (said once). */
  private toldRebuilding = false;
  private readonly lru = new LruMap<Entry>(Infinity);
  private readonly perBucket = new Map<string, BucketLayerStats>();
  private readonly writes = new Set<DiskWrite>();
  /**
   * Writes opened and revalidations begun so far (DiskWrite.seen, Entry.seen): which version the
   * upstream gave last (adopt). Not storedAt, which an Age the answer came with (a CDN in front)
   * puts back in time: a new version came older than the expired one held, and was refused at
   * every fetch while the old one stayed.
   */
  private opens = 0;
  /** Each entry's last revalidation (queueRefresh). */
  private readonly refreshes = new WeakMap<Entry, Promise<void>>();
  private bytes = 0;
  /** max_disk_size_mb is over the file system's whole size (said at start: warnIfLargerThanVolume). */
  private largerThanVolume = false;
  /** Room set aside for the writes in progress (their temporary files), counted with `bytes` against maxBytes. */
  private reserved = 0;
  /** Entries whose file a same-body revalidation is copying from (never evicted meanwhile). */
  private readonly copying = new Set<Entry>();
  private evictions = 0;
  private errorCount = 0;
  /** When a `disk cache error` line last named each error (its code, or message). */
  private readonly errorLogged = new Map<string, number>();
  private readonly purges = new PurgeLog();
  private maxBytes: number;
  /** Set when the file system ran out of room (outOfRoom): the lower cap kept until fullUntil. */
  private fullCap = Infinity;
  private fullUntil = 0;
  /** When a fill the lower cap refused last had the volume looked at again (roomAgain). */
  private roomLookedAt = -Infinity;
  private maxItemBytes: number;
  private readonly fsync: boolean;
  private readonly verify: boolean;
  private readonly log: DiskLogger | undefined;
  /** A file remove() could neither delete nor mark: tried again later (undeleted). */
  private keepDeleting(file: string): void {
    this.undeleted.add(file);
    if (this.undeletedTimer !== undefined || this.closing) return;
    this.undeletedTimer = setTimeout(() => {
      this.undeletedTimer = undefined;
      void this.deleteAgain().then(() => {
        if (this.undeleted.size > 0 && !this.closing) this.keepDeleting(this.undeleted.values().next().value!);
      });
    }, UNDELETED_RETRY_MS);
    this.undeletedTimer.unref?.();
  }

  private async deleteAgain(): Promise<void> {
    for (const file of [...this.undeleted]) {
      const gone = await unlinkName(file).then(
        () => true,
        (err) => (err as { code?: string }).code === "ENOENT" || invalidateHead(file),
      );
      if (gone) this.undeleted.delete(file);
    }
  }

  /**
   * This process's listeners could not be bound (it exits): its starting lock is removed now, the
   * rebuild left to the exit (which close() would wait for), as nothing else this start did is kept
   * (the folder marked shared and the stream position are written only once bound: claimLock).
   */
  abandonStart(): void {
    if (this.instance === undefined || this.bound) return;
    this.closing = true;
    dropLock(this.dir, this.instance);
  }

  /** Restored entries are misses until release() (a Redis layer catches up on purges first). */
  private holding = false;
  /** close() began: no write is opened any more. */
  private closing = false;
  private restored = 0;
  /** The rebuild indexed files of this instance's own (not only adopted ones): its position file describes some (loadPosition). */
  private ownRestored = false;
  /**
   * Files purged, evicted or replaced that could be neither deleted nor marked (a read-only file
   * system): deleted again every UNDELETED_RETRY_MS and at close, so that a process stopped after
   * the file system is writable again does not leave them for the next start to serve.
   */
  private readonly undeleted = new Set<string>();
  private undeletedTimer: ReturnType<typeof setTimeout> | undefined;
  /** Files being unlinked: a position is written only once the purges before it are on disk. */
  private readonly unlinking = new Set<Promise<void>>();
  private position: { stream: string; id: string; epoch: string } | undefined;
  private positionTimer: ReturnType<typeof setTimeout> | undefined;
  private positionWrite: Promise<void> = Promise.resolve();
  /** The caching buckets and their store stamps (DiskLayerOptions.stores; a reload sets them: setStores). */
  private stores: ReadonlyMap<string, string> | undefined;

  /** Creates the folders (throws, with the path, when it cannot) and starts rebuilding the index. */
  private readonly positionFile: string;
  /** This process among those that may share the folder (DiskLayerOptions.instance): its files' owner. */
  private readonly instance: string | undefined;
  /** Another process of this instance held the lock at start (a second start on its port, or the previous one still stopping): taken by claimLock. */
  private lockedOut = false;
  /** The other instances (no longer running) whose files the rebuild indexed: up to date with their own positions only. */
  private readonly adopted = new Set<string>();
  /** When the rebuild that adopted them began (recordAdopted). */
  private adoptedSince = 0;
  /** Another instance ran on the folder at once with this one or another (SHARED_MARK: markShared, watchShared). */
  private sharedSeen = false;
  /** claimLock was called: this process's listeners are bound. */
  private bound = false;
  /**
   * Files this process dropped before its listeners were bound (the rebuild's: of buckets it does
   * not cache, older copies of a key, too large, past its budget), deleted once they are
   * (claimLock): a start that failed to bind (its port in use) deleted them, another config's
   * cache (the folder's proxy stopped) lost with a mistaken start.
   */
  private unbound: string[] = [];
  private sharedWatch: ReturnType<typeof setInterval> | undefined;

  constructor(opts: DiskLayerOptions) {
    this.dir = opts.dir;
    this.share = Math.max(1, opts.share ?? 1);
    this.groupWarnings = opts.groupWarnings ?? true;
    this.maxBytes = opts.maxBytes;
    this.maxItemBytes = opts.maxItemBytes;
    this.fsync = opts.fsync ?? false;
    this.verify = opts.verify ?? true;
    this.log = opts.log;
    this.positionFile = positionFileOf(opts.instance);
    this.instance = opts.instance;
    this.bound = opts.instance === undefined; // (no lock to claim)
    this.stores = opts.stores;
    try {
      mkdirSync(join(this.dir, "objects"), { recursive: true, mode: CACHE_DIR_MODE });
      mkdirSync(join(this.dir, "tmp"), { recursive: true, mode: CACHE_DIR_MODE });
      // Folders a cache made before files were owner-only (0755, its files 0644) are made so too:
      // the files in them stay readable to the process only (mkdir's mode applies to new folders).
      for (const sub of ["objects", "tmp"]) ownerOnly(join(this.dir, sub));
      // (either one, or a folder of `objects`, made by another user, root, is no folder this
      // process can use: mkdirProblem, objectFolders)
      for (const sub of [join(this.dir, "objects"), join(this.dir, "tmp"), ...objectFolders(this.dir)]) accessSync(sub, SUBFOLDER_ACCESS);
      accessSync(this.dir, constants.W_OK | constants.R_OK);
      // (a start's lock until its listeners are bound: claimLock)
      this.lockedOut = this.instance !== undefined && !takeLock(this.dir, this.instance, false, false);
    } catch (err) {
      // (--check's walk names what a bare code does not: a symbolic link to nothing, `objects` a file)
      throw new Error(`cache.disk.path: cannot use ${this.dir}: ${diskDirProblem(this.dir) ?? describeFsError(err)}`);
    }
    this.lookupWaitMs = opts.lookupWaitMs ?? LOOKUP_WAIT_MS;
    this.warnIfLargerThanVolume();
    this.ready = this.rebuild().finally(() => {
      this.rebuilt = true;
    });
  }

  /** A max_disk_size_mb the file system cannot hold works (outOfRoom evicts) but is said at start. */
  private warnIfLargerThanVolume(): void {
    const total = volumeOf(this.dir)?.total;
    if (total === undefined) return;
    // (max_disk_size_mb, all workers' parts together: each has its folder on the same file system)
    const configured = this.maxBytes * this.share;
    if (total > 0 && configured > total) {
      this.largerThanVolume = true;
      if (this.groupWarnings) this.log?.warn("disk cache: max_disk_size_mb is larger than the file system holding the folder; objects are evicted when it fills", { dir: this.dir, configured_bytes: configured, file_system_bytes: total });
    }
  }

  private async rebuild(): Promise<void> {
    const started = performance.now();
    // Another instance running on the folder (another proxy: another port) keeps its files: this
    // start neither indexes nor deletes them (it deleted those of buckets it does not cache, older
    // copies of a key, and what went past its own budget, and the other served misses).
    const spared = sparedInstances(this.dir, this.instance);
    // (marked once this process's listeners are bound, claimLock: a start that fails to bind leaves the folder as it found it)
    if (spared.size > 0) {
      this.sharedSeen = true;
      if (this.bound) this.markShared();
    }
    if (this.lockedOut) this.log?.warn("disk cache: another running process holds this instance's lock (a second start on its port, or the previous process still stopping): taken once this one's listeners are bound", { dir: this.dir, lock: lockFileOf(this.instance!) });
    // (spared holds every instance running on the folder: none, and no file here can be another's)
    const r = await scanDir(this.dir, heldBy(spared), spared.size > 0, (file) => this.discard(file)).catch((err) => {
      this.failed(err, "scan");
      return { files: [] as ScannedFile[], dropped: 0, tempsRemoved: 0 };
    });
    // (every file adopted was in place before the scan ended: those of a returning proxy are later; +1: a file's ctime has a fraction of a millisecond)
    const since = Date.now() + 1;
    const { kept, notCached, otherStore, unrecorded } = await this.dropForeign(r.files);
    // Objects larger than max_item_size_mb (lowered since they were stored) are not the layer's
    // any more, as a reload's resize evicts them: they were indexed and served after a restart.
    const tooLarge = kept.filter((f) => f.size > this.maxItemBytes);
    for (const f of tooLarge) await this.discard(f.file);
    const fitting = tooLarge.length === 0 ? kept : kept.filter((f) => f.size <= this.maxItemBytes);
    for (const f of fitting) this.insert(f.key, f, true, 0, this.verify && f.crc !== undefined);
    this.restored = fitting.length;
    for (const f of fitting) if (f.owner !== undefined && f.owner !== this.instance) this.adopted.add(f.owner);
    this.ownRestored = fitting.some((f) => f.owner === undefined || f.owner === this.instance);
    // (said to the others' starts: those files are this process's now; see sparedInstances)
    this.adoptedSince = since;
    if (this.instance !== undefined && !this.lockedOut) this.recordAdopted();
    await this.evictDown().catch(() => {}); // `ready` never rejects: lookups wait on it
    // (a size over the whole file system was said at start, warnIfLargerThanVolume; the workers' parts taken alike)
    const room = this.largerThanVolume || !this.groupWarnings ? undefined : diskRoomWarning(this.dir, this.maxBytes * this.share, () => this.bytes * this.share);
    if (room !== undefined) this.log?.warn(room, { dir: this.dir });
    this.log?.info("disk cache index rebuilt", {
      dir: this.dir,
      objects: this.lru.size,
      bytes: this.bytes,
      dropped: r.dropped,
      ...(this.stores === undefined ? undefined : { dropped_not_cached: notCached, dropped_other_store: otherStore, dropped_unrecorded: unrecorded }),
      ...(tooLarge.length > 0 ? { dropped_too_large: tooLarge.length } : undefined),
      temporary_removed: r.tempsRemoved,
      ...(this.adopted.size > 0 ? { of_stopped_instances: fitting.filter((f) => f.owner !== undefined && this.adopted.has(f.owner)).length } : undefined),
      ms: Math.round(performance.now() - started),
    });
    if (this.verify) void this.checkRestored();
    if (this.instance !== undefined && !this.sharedSeen && !this.closing) this.watchShared();
  }

  /** Marks the folder shared once another instance runs on it (SHARED_WATCH_MS), or sees it marked. */
  private watchShared(): void {
    this.sharedWatch = setInterval(() => {
      if (this.sharedSeen || existsSync(join(this.dir, SHARED_MARK))) this.sharedSeen = true;
      else if (liveOthers(this.dir, this.instance, true).size > 0) this.markShared();
      else return;
      clearInterval(this.sharedWatch);
    }, SHARED_WATCH_MS);
    this.sharedWatch.unref?.();
  }

  /**
   * The files found at start, checked against their CRC-32 one at a time in the background (most
   * recently used first), so that their first hits seldom wait for it; a damaged one is dropped.
   */
  private async checkRestored(): Promise<void> {
    for (const e of [...this.lru.newestFirst()]) {
      if (this.closing) return;
      if (e.unchecked && this.lru.peek(e.key) === e) await this.usable(e);
    }
  }

  /**
   * Whether `e` may be served or copied now: a file found at start is checked against its CRC-32
   * first (check); a damaged one is dropped; one purged or replaced while it was read is gone (its
   * file unlinked: served, Bun's 500); an unreadable one is a miss this time.
   */
  private async usable(e: Entry): Promise<boolean> {
    if (!e.unchecked) return true;
    const checked = await this.check(e);
    if (this.lru.peek(e.key) !== e) return false;
    if (checked === "damaged") await this.remove(e, true);
    return checked === "intact";
  }

  /**
   * Whether `e`'s body still has the CRC-32 it was written with (bit rot, or bytes changed at the
   * same length behind the layer's back, is a miss): once per entry and process, only for files
   * found at start (the writes of this process computed it from the bytes they wrote). A hit pays
   * nothing once it is done: no hash on the sendfile path.
   */
  private check(e: Entry): Promise<"intact" | "damaged" | "unreadable"> {
    e.checking ??= bodyIntact(e.file, e.bodyOffset, e.size, e.crc!).then((r) => {
      if (r === "intact") e.unchecked = false;
      else if (r === "damaged") this.failed(new Error("the body does not match its CRC-32"), "check", undefined, e.file);
      else if (r === "unreadable") {
        // (no descriptor left, an I/O error: nothing is known of the bytes; not served this
        // time, checked again by the next hit, never deleted for it)
        e.checking = undefined;
        this.failed(new Error("the body could not be read to check its CRC-32"), "check", undefined, e.file);
      }
      // ("gone": deleted meanwhile, by a purge or an eviction, or behind the layer's back; a miss)
      return r === "gone" ? "damaged" : r;
    });
    return e.checking;
  }

  /**
   * The files found at start that this configuration may serve: those of a caching bucket,
   * stamped with the store it reads now. The others are deleted (what a reload would have purged:
   * see the module comment); the folder may be shared, and another process then misses them.
   */
  private async dropForeign(files: ScannedFile[]): Promise<{ kept: ScannedFile[]; notCached: number; otherStore: number; unrecorded: number }> {
    const stores = this.stores;
    if (stores === undefined) return { kept: files, notCached: 0, otherStore: 0, unrecorded: 0 };
    const kept: ScannedFile[] = [];
    const gone: ScannedFile[] = [];
    let notCached = 0;
    let otherStore = 0;
    let unrecorded = 0;
    for (const f of files) {
      const stamp = stores.get(bucketOf(f.key));
      if (stamp !== undefined && f.store === stamp) {
        kept.push(f);
        continue;
      }
      if (stamp === undefined) notCached++;
      else if (f.store === undefined) unrecorded++;
      else otherStore++;
      gone.push(f);
    }
    for (let i = 0; i < gone.length; i += 64) await Promise.all(gone.slice(i, i + 64).map((f) => this.discard(f.file)));
    return { kept, notCached, otherStore, unrecorded };
  }

  /**
   * After a reload: the caching buckets and their stores, stamped into the files written from now
   * on (the reload purges what the old ones cached; App.doReload).
   */
  setStores(stores: ReadonlyMap<string, string>): void {
    this.stores = stores;
  }

  accepts(size: number): boolean {
    return size <= this.maxItemBytes && size + HEAD_ALLOWANCE <= this.maxBytes;
  }

  get(key: string): Promise<CachedObject | undefined> {
    return this.find(key, 2);
  }

  /**
   * The lookup; `again`: how many more times it looks again when the key's entry was replaced by a
   * later write (another fill's) while it was being checked: that version is the answer, where the
   * key was a miss for a moment (and the miss started yet another fill).
   */
  private async find(key: string, again: number): Promise<CachedObject | undefined> {
    if (!this.rebuilt && !(await this.rebuiltWithin())) return undefined;
    const e = this.lru.get(key);
    if (e === undefined || (e.restored && this.holding)) return undefined;
    let size: number;
    try {
      // lstat, never stat: an object file replaced by a symbolic link (to a file outside the
      // folder of the same length) was followed and its target's bytes served as the object. A
      // link, a folder or anything but a regular file is a miss (and removed: the link, never its
      // target), as the index rebuild drops them (disk-scan.ts opens with O_NOFOLLOW).
      // (a revalidation under way or begun while the stat ran, which refreshTimes marks by its
      // `seen`, may have changed the time it read: taken after it ended, that was a miss, and the
      // file deleted)
      const seen = e.seen;
      const refreshing = e.refreshing > 0;
      const st = await lstat(e.file);
      // The same file as indexed (its inode and modification time): another file of the same
      // length moved over it, or its bytes rewritten in place, was served as the object, 200.
      const same = st.ino === e.ino && (st.mtimeMs === e.mtimeMs || refreshing || e.refreshing > 0 || e.seen !== seen);
      size = st.isFile() && same ? st.size : -1;
      // A file this process cannot read (its mode or ACL changed, or written by another user: the
      // proxy restarted as another uid) is a miss, dropped: Bun.serve opened it only after the
      // answer's head, and every request for the key was a 500 until a restart. The kernel is
      // asked (access(2): mode bits, ACLs, root), one syscall on the inode stat just read.
      accessSync(e.file, constants.R_OK);
    } catch {
      size = -1;
    }
    if (this.lru.peek(key) !== e || (e.restored && this.holding)) return this.replaced(key, e, again); // replaced or purged meanwhile; or held
    if (size !== e.fileSize) {
      await this.remove(e, true);
      return undefined;
    }
    if (!(await this.usable(e))) return this.replaced(key, e, again);
    const type = e.headers["content-type"] ?? UNTYPED_CONTENT_TYPE;
    const body = Bun.file(e.file).slice(e.bodyOffset, e.bodyOffset + e.size, type);
    return { key, body, headers: { ...e.headers }, storedAt: e.storedAt, expiresAt: e.expiresAt, date: e.date, size: e.size, tpl: undefined, source: "disk" };
  }

  /**
   * Whether the index rebuild ends within lookupWaitMs (a lookup's wait at start): past it the
   * lookup is a miss, answered from the store (and stored once the index is ready), not held.
   */
  private async rebuiltWithin(): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = this.lookupWaitMs <= 0 ? false : await Promise.race([this.ready.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, this.lookupWaitMs, false)))]);
    clearTimeout(timer);
    if (!waited && !this.toldRebuilding) {
      this.toldRebuilding = true;
      this.log?.info("disk cache index still being rebuilt: lookups are misses until it is", { dir: this.dir, waited_ms: this.lookupWaitMs });
    }
    return waited;
  }

  /** The key's newer entry, when a write put one in place of `e` (find); else a miss. */
  private replaced(key: string, e: Entry, again: number): Promise<CachedObject | undefined> | undefined {
    const now = this.lru.peek(key);
    return now === undefined || now === e || again === 0 || (now.restored && this.holding) ? undefined : this.find(key, again - 1);
  }

  /** Stores `obj`. A revalidated entry whose body is unchanged only gets its times (and headers) rewritten. */
  async put(obj: CachedObject): Promise<void> {
    if (!this.accepts(obj.size)) {
      // An older version must not outlive the newer one it can't hold (a faster layer would keep serving it).
      await this.ready;
      const old = this.lru.peek(obj.key);
      if (old !== undefined) await this.remove(old, true);
      return;
    }
    await this.ready;
    const e = this.lru.peek(obj.key);
    if (e !== undefined && !(e.restored && this.holding) && this.sameBody(e, obj)) {
      // (a damaged file is neither refreshed nor copied: dropped, and the object not stored; nor
      // one purged or replaced while it was checked: its file is gone, and a purge is not undone)
      if (!(await this.usable(e))) return;
      // (its Date too: a file without the slot for it, an earlier release's, is copied once with the new one)
      if (sameHeaders(e.headers, obj.headers) && (e.dateSlot || obj.date === e.date)) return this.queueRefresh(e, obj.storedAt, obj.expiresAt, obj.date);
      obj = { ...obj, body: Bun.file(e.file).slice(e.bodyOffset, e.bodyOffset + e.size) }; // copy from our own file
      this.lru.get(obj.key);
      // The source of the copy is never what is evicted to make room for the copy (an object over
      // half of max_disk_size_mb would evict itself and the copy would find no file): the two are
      // on disk together until the copy replaces it.
      this.copying.add(e);
      try {
        return await this.write(obj);
      } finally {
        this.copying.delete(e);
      }
    }
    return this.write(obj);
  }

  private async write(obj: CachedObject): Promise<void> {
    const w = this.begin(obj);
    if (w === undefined) {
      const old = this.lru.peek(obj.key);
      if (old !== undefined) await this.remove(old, true);
      return;
    }
    try {
      await w.writeBlob(obj.body);
    } catch {
      return; // counted by the write; its temporary file is gone
    }
    await w.commit();
  }

  openWriter(meta: ObjectMeta): LayerWriter | undefined {
    return this.accepts(meta.size) ? this.begin(meta) : undefined;
  }

  /**
   * A write, with its file's room set aside: the objects stored and the writes in progress stay
   * within max_disk_size_mb together (the least recently used objects are evicted for it). Without
   * this, six 15 MiB fills at once took a 40 MiB cache folder to 78 MiB. Undefined, the object not
   * cached, when the writes already in progress leave no room for it.
   */
  private begin(meta: ObjectMeta): DiskWrite | undefined {
    // (none once closing: close() waits for the writes it abandons, and a later one would be left behind)
    if (this.closing) return undefined;
    const { key, headers, storedAt, expiresAt, date, size } = meta;
    const m = { key, headers, storedAt, expiresAt, date, size };
    const head = encodeHead(m, this.stores?.get(bucketOf(key)), this.instance);
    const room = onDisk(head.byteLength + size);
    let cap = this.cap();
    // (the file system is full (outOfRoom), unless room was freed on it since: roomAgain)
    if (cap < this.maxBytes && room > cap && room > (cap = this.roomAgain())) return undefined;
    if (this.reserved > 0 && this.reserved + room > cap) return undefined;
    const w = new DiskWrite(this, m, join(this.dir, tempName()), this.purges.now, this.fsync, head);
    w.seen = ++this.opens;
    w.reservation = room;
    this.reserved += room;
    this.writes.add(w);
    void this.evictDown();
    return w;
  }

  /** A write's room given back (once it is stored, counted as the object's file; or it ended). */
  private giveBack(w: DiskWrite): void {
    this.reserved -= w.reservation;
    w.reservation = 0;
  }

  /** WriteTarget: a complete temporary file becomes the key's current version (unless a purge or a newer version came first). */
  async adopt(w: DiskWrite): Promise<boolean> {
    await this.ready;
    const meta = w.meta;
    const older = this.lru.peek(meta.key);
    const seen = w.seen;
    // (meta.size over maxItemBytes: max_item_size_mb lowered by a reload while it was written; resize evicted the others)
    if (this.purges.purgedSince(w.since, meta.key) || (older !== undefined && older.seen > seen) || meta.size > this.maxItemBytes) {
      await unlink(w.tmp).catch(() => {});
      return false;
    }
    const rel = objectPath(keyHash(meta.key), newVersion());
    const file = join(this.dir, rel);
    try {
      await ownFolder(join(file, ".."));
      await rename(w.tmp, file);
      // In a folder shared with another instance, that one's fill may have made the emptied
      // folders again first (its rename found them gone, this one's did not): the lock is looked
      // at with each file stored there (a stat per fill, in shared folders only).
      if (this.sharedSeen) this.relock();
    } catch (err) {
      if ((err as { code?: string }).code !== "ENOENT") throw err;
      await mkdir(join(file, ".."), { recursive: true, mode: CACHE_DIR_MODE }); // the folder was removed behind our back
      this.relock();
      await rename(w.tmp, file);
    }
    if (this.purges.purgedSince(w.since, meta.key)) {
      await unlink(file).catch(() => {});
      return false;
    }
    const fileSize = w.headBytes + meta.size;
    const current = this.lru.peek(meta.key);
    const replaced = current !== undefined ? this.remove(current, true) : undefined;
    this.giveBack(w);
    this.insert(meta.key, { ...meta, file, fileSize, bodyOffset: w.headBytes, dateSlot: true, ...w.identity }, false, seen);
    await Promise.all([replaced, this.evictDown()]);
    return true;
  }

  /** `file`: the file or folder that failed, when the error does not name it (its path). */
  failed(err: unknown, what: string, w?: DiskWrite, file?: string): void {
    this.errorCount++;
    // (elapsed time: a wall clock stepped forward ended the full file system's hold at once, one
    // stepped back held the lower cap that much longer)
    const now = performance.now();
    const code = (err as { code?: string } | undefined)?.code;
    if (code === "ENOSPC" || code === "EDQUOT") {
      // (the failed write's room first: it ends, and counted it made the eviction below empty the
      // layer for one large fill instead of taking it down to 90 %)
      if (w !== undefined) this.giveBack(w);
      this.outOfRoom(now, w === undefined ? 0 : w.headBytes + w.written);
    }
    const error = code ?? String((err as Error)?.message ?? err);
    // At most once per 30 s per error (a full disk would otherwise log once per fill); until
    // 2026-12-07 once per 30 s in all: a folder made read-only after it filled logged ENOSPC only,
    // EROFS unsaid for up to 30 s while every fill failed with it.
    if (now - (this.errorLogged.get(error) ?? -Infinity) < 30_000) return;
    if (this.errorLogged.size >= 16) this.errorLogged.clear(); // (a few codes in practice)
    this.errorLogged.set(error, now);
    // (which file or folder, relative to the cache folder: the operator could not tell which failed)
    const path = file ?? (err as { path?: unknown } | undefined)?.path ?? w?.tmp;
    const named = typeof path === "string" ? { file: relative(this.dir, path) || "." } : undefined;
    this.log?.warn("disk cache error", { dir: this.dir, operation: what, ...named, error, errors: this.errorCount });
  }

  ended(w: DiskWrite): void {
    this.giveBack(w);
    this.writes.delete(w);
  }

  async delete(key: string): Promise<boolean> {
    this.purges.key(key);
    await this.ready;
    this.sweep(key, false);
    const e = this.lru.peek(key);
    if (e === undefined) return false;
    await this.remove(e, true);
    return true;
  }

  async purgePrefix(prefix: string): Promise<number> {
    this.purges.prefix(prefix);
    await this.ready;
    this.sweep(prefix, true);
    const gone: Promise<void>[] = [];
    for (const e of [...this.lru.newestFirst()]) if (e.key.startsWith(prefix)) gone.push(this.remove(e, true));
    await Promise.all(gone);
    for (const [name, b] of this.perBucket) if (b.items === 0 && (name + "/").startsWith(prefix)) this.perBucket.delete(name);
    return gone.length;
  }

  resize(maxBytes: number, maxItemBytes: number = this.maxItemBytes): void {
    this.maxBytes = maxBytes;
    this.maxItemBytes = maxItemBytes;
    for (const e of [...this.lru.newestFirst()]) if (e.size > maxItemBytes) void this.evict(e);
    void this.evictDown();
  }

  stats(): LayerStats {
    const buckets: Record<string, BucketLayerStats> = {};
    for (const [name, b] of this.perBucket) buckets[name] = { ...b };
    return { items: this.lru.size, bytes: this.bytes, evictions: this.evictions, maxBytes: this.maxBytes, buckets };
  }

  errors(): number {
    return this.errorCount;
  }

  /** Keys from most to least recently used (tests). */
  keys(): string[] {
    return [...this.lru.newestFirst()].map((e) => e.key);
  }

  /** Abandons writes in progress (their temporary files are deleted) and writes the stream position; the index needs no saving. */
  async close(): Promise<void> {
    // (awaited: a stop must not leave a temporary file behind, only the next start on this folder would remove it)
    this.closing = true;
    const abandoned = Promise.all([...this.writes].map((w) => w.abort()));
    // The start's rebuild finishes first: the files it drops (of buckets that do not cache here, or
    // of another store) must be gone even when the process stops right after starting, or the
    // next start on this folder, configured otherwise, would serve them.
    await this.ready;
    clearTimeout(this.undeletedTimer);
    clearInterval(this.sharedWatch);
    await this.deleteAgain();
    if (this.positionTimer !== undefined) {
      clearTimeout(this.positionTimer);
      this.positionTimer = undefined;
      await this.writePosition();
    }
    await this.positionWrite;
    await Promise.all([...this.unlinking]);
    await abandoned;
    if (this.instance !== undefined) dropLock(this.dir, this.instance);
  }

  /** The folder is shared (SHARED_MARK), said to the instances that started before, alone. */
  private markShared(): void {
    this.sharedSeen = true;
    try {
      writeFileSync(join(this.dir, SHARED_MARK), "");
    } catch (err) {
      this.failed(err, "lock");
    }
  }

  /**
   * A purge (of `key`, or of the keys it begins when `prefix`) reaches the files in the folder that
   * no running instance holds: those of an instance that stopped while another ran, which no
   * running instance indexes until a start adopts them. It reached none of them: the start that
   * adopted them, or their own proxy back, served them purged (without a Redis layer, whose replay
   * of the purge stream covered them). In the background, its unlinks awaited as the purge's own.
   * (Nothing is computed before the check: a folder of one instance costs a PutObject's purge nothing.)
   */
  private sweep(key: string, prefix: boolean): void {
    // (the folder may hold a stopped instance's files only once marked shared: watchShared)
    if (!this.sharedSeen) return;
    const match = prefix ? (k: string) => k.startsWith(key) : (k: string) => k === key;
    const p = this.sweepFiles(match, prefix ? undefined : keyHash(key)).catch((err) => this.failed(err, "purge"));
    this.unlinking.add(p);
    void p.then(() => this.unlinking.delete(p));
  }

  private async sweepFiles(match: (key: string) => boolean, hash: string | undefined): Promise<void> {
    // (asked only once a file is found: a key's purge seldom finds one)
    let running: ((f: ScannedFile) => boolean) | undefined;
    const objects = join(this.dir, "objects");
    // (folders only, never through a symbolic link put there: disk-scan.ts objectFolders; a key's
    // one folder looked at alone)
    const subs =
      hash !== undefined
        ? (await lstat(join(objects, hash.slice(0, 2))).catch(() => undefined))?.isDirectory()
          ? [hash.slice(0, 2)]
          : []
        : (await readdir(objects, { withFileTypes: true }).catch(() => [])).filter((d) => d.isDirectory() && /^[0-9a-f]{2}$/.test(d.name)).map((d) => d.name);
    for (const sub of subs) {
      for (const name of await readdir(join(objects, sub)).catch(() => [] as string[])) {
        // (a stop does not wait out a whole folder's sweep, which reads every file's head: the files not
        // reached yet keep the purged object, as every stranger's file did before sweeps)
        if (this.closing) return;
        const h = hashOfName(name);
        if (h === undefined || (hash !== undefined && h !== hash)) continue;
        const file = join(objects, sub, name);
        const f = await readObjectFile(file, h);
        // (not one it cannot read, which may be a running instance's; nor this process's own, indexed)
        if (typeof f === "string" || !match(f.key) || this.lru.peek(f.key)?.file === file || (running ??= heldBy(sparedInstances(this.dir, this.instance)))(f)) continue;
        await unlink(file).catch(() => {});
      }
    }
  }

  /**
   * The folder was emptied while this process ran (an operator's `rm -rf` of its contents: a fill
   * found objects/ gone): its lock went with it, and the next start of another proxy on the folder
   * took this running instance's files for a stopped one's (it adopted them, both counting,
   * evicting and purging them, or deleted those of buckets it does not cache). The lock (with the
   * record of adopted instances, and the shared mark) is written again before the fill's file is
   * put in place. On that error path, and (a stat) at each fill stored in a shared folder, where
   * another instance may have made the folders again first: no per-request work.
   */
  private relock(): void {
    if (this.instance === undefined || !this.bound || this.closing || existsSync(join(this.dir, lockFileOf(this.instance)))) return;
    try {
      takeLock(this.dir, this.instance, true);
    } catch (err) {
      this.failed(err, "lock");
      return;
    }
    this.recordAdopted();
    if (this.sharedSeen) this.markShared();
    this.log?.warn("disk cache: the folder was emptied while this process ran; its lock is written again", { dir: this.dir, lock: lockFileOf(this.instance) });
  }

  /** Says which stopped instances' files this process adopted (a failure only logged: their returning proxy then counts them too). */
  private recordAdopted(): void {
    try {
      recordAdopted(this.dir, this.instance!, this.adopted, this.adoptedSince);
    } catch (err) {
      this.failed(err, "lock");
    }
  }

  /**
   * This process holds the instance's port (its listeners are bound): the lock is its own, whoever
   * held it at start, and says so; the folder is marked shared if the start found another running;
   * the files dropped so far are deleted (resolves once they are).
   */
  claimLock(): Promise<void> {
    if (this.instance === undefined || this.closing || this.bound) return Promise.resolve();
    this.bound = true;
    try {
      takeLock(this.dir, this.instance, true);
      if (this.lockedOut) {
        this.lockedOut = false;
        this.recordAdopted();
      }
    } catch (err) {
      this.failed(err, "lock");
    }
    if (this.sharedSeen) this.markShared();
    if (this.position !== undefined) this.savePosition(this.position.stream, this.position.id, this.position.epoch);
    return Promise.all(this.unbound.splice(0).map((file) => this.discard(file))).then(() => {});
  }

  /** Restored entries are misses until release() (called once, before any lookup: Cache wires it with a Redis layer). */
  hold(): void {
    this.holding = true;
  }

  async restoredCount(): Promise<number> {
    await this.ready;
    return this.holding ? this.restored : 0;
  }

  /**
   * This process's position, or the oldest of it and those of the stopped instances whose files
   * the rebuild indexed (adopted): those files missed the purges made since their writer stopped,
   * which this process heard with no copy to delete (they were served, purged, as disk hits).
   * Unknown for one of them, or in another life of the stream: undefined (the entries dropped).
   * Its own position only when the rebuild found files of its own: with none (its folder's files
   * deleted when it left for another server.workers layout), the position it left there is of
   * files no longer there, and, older or of an earlier life of the stream, it dropped the adopted
   * ones with it (or replayed purges from where it was).
   */
  loadPosition(stream: string): { id: string; epoch: string | undefined } | undefined {
    let out: { id: string; epoch: string | undefined } | undefined;
    for (const file of [...(this.ownRestored ? [this.positionFile] : []), ...[...this.adopted].map(positionFileOf)]) {
      const p = readPosition(join(this.dir, file), stream);
      if (p === undefined || (out !== undefined && p.epoch !== out.epoch)) return undefined;
      if (out === undefined || idAfter(out.id, p.id)) out = p;
    }
    return out;
  }

  savePosition(stream: string, id: string, epoch: string): void {
    this.position = { stream, id, epoch };
    // (written once this process's listeners are bound, claimLock: a start that fails to bind
    // leaves the folder as it found it; it wrote its instance's position, even a running one's)
    if (this.positionTimer !== undefined || !this.bound) return;
    this.positionTimer = setTimeout(() => {
      this.positionTimer = undefined;
      void this.writePosition();
    }, POSITION_EVERY_MS);
    this.positionTimer.unref?.();
  }

  async dropRestored(): Promise<unknown> {
    await this.ready;
    const gone: Promise<void>[] = [];
    for (const e of [...this.lru.newestFirst()]) if (e.restored) gone.push(this.remove(e, true));
    this.log?.info("disk cache: entries stored before the restart dropped (the purges made meanwhile cannot be known)", { dir: this.dir, objects: gone.length });
    return Promise.all(gone);
  }

  release(): void {
    this.holding = false;
  }

  /** The position, once every file unlink started before it is done (atomic: temporary file + rename). */
  private writePosition(): Promise<void> {
    const pos = this.position;
    if (pos === undefined) return this.positionWrite;
    const pending = [...this.unlinking];
    this.positionWrite = this.positionWrite.then(async () => {
      await Promise.all(pending);
      // The adopted instances' files are this process's now, purged with its own: their position
      // moves with its own (while their writer stays stopped), or every later start replayed the
      // purges from where that writer stopped, and dropped the whole folder once the stream was
      // trimmed past it.
      const live = this.adopted.size === 0 ? undefined : liveOthers(this.dir, this.instance);
      const files = [this.positionFile, ...[...this.adopted].filter((a) => !live!.has(a)).map(positionFileOf)];
      for (const name of files) {
        const file = join(this.dir, name);
        try {
          await writeFile(file + ".tmp", JSON.stringify(pos));
          await rename(file + ".tmp", file);
        } catch (err) {
          this.failed(err, "position");
        }
      }
    });
    return this.positionWrite;
  }

  private sameBody(e: Entry, obj: CachedObject): boolean {
    if (isFileBody(obj.body) && (obj.body as { name?: string }).name === e.file) return true;
    const etag = obj.headers.etag;
    return etag !== undefined && etag === e.headers.etag && obj.size === e.size;
  }

  /**
   * One revalidation of a file at a time: two at once each took the other's write for a change
   * behind its back (refreshTimes' check), neither put the modification time back, and the next
   * hit took the file for rewritten (a miss, the file deleted).
   */
  private queueRefresh(e: Entry, storedAt: number, expiresAt: number, date: number | undefined): Promise<void> {
    const run = (this.refreshes.get(e) ?? Promise.resolve()).then(() => this.refreshTimes(e, storedAt, expiresAt, date));
    this.refreshes.set(e, run);
    return run;
  }

  /**
   * A revalidation: the 16 bytes of times, and the upstream's Date in its slot, rewritten in place
   * (the body is not touched). The Date stayed the one the file was written with: If-Range and the
   * entry's next revalidation weighed Last-Modified against an old Date, and a Date-less entry
   * (storedExpiry) was revalidated on every read.
   */
  private async refreshTimes(e: Entry, storedAt: number, expiresAt: number, date: number | undefined): Promise<void> {
    const since = this.purges.now;
    e.seen = ++this.opens;
    e.refreshing++;
    try {
      // (O_NOFOLLOW: a link put in the file's place is not written through)
      const fh = await open(e.file, constants.O_RDWR | (constants.O_NOFOLLOW ?? 0));
      try {
        const before = await fh.stat();
        await fh.write(timesBytes(storedAt, expiresAt), 0, 16, 4);
        if (e.dateSlot && date !== e.date) {
          const d = dateBytes(date);
          await fh.write(d, 0, d.byteLength, dateOffset(e.bodyOffset));
        }
        // Its modification time put back (a whole second: DiskWrite.store), unless it had already
        // changed behind our back: another process sharing the folder (README) that indexed the
        // file took the revalidation for a rewrite, a miss, and deleted the file for both.
        if (before.ino === e.ino && before.mtimeMs === e.mtimeMs) {
          await fh.utimes(before.atime, Math.floor(e.mtimeMs / 1000));
          e.mtimeMs = (await fh.stat()).mtimeMs;
        }
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (this.lru.peek(e.key) === e) this.remove(e, true);
      // (gone: deleted meanwhile, by a purge here or by another process on a shared folder; a
      // miss, no error, as a hit's check finds it)
      if ((err as { code?: string }).code !== "ENOENT") this.failed(err, "refresh", undefined, e.file);
      return;
    } finally {
      e.refreshing--;
    }
    if (!this.purges.purgedSince(since, e.key) && this.lru.peek(e.key) === e) {
      e.storedAt = storedAt;
      e.expiresAt = expiresAt;
      if (e.dateSlot) e.date = date;
    }
  }

  private insert(key: string, f: Omit<Entry, "key" | "bucket" | "restored" | "refreshing" | "seen" | "unchecked" | "dateSlot"> & { dateSlot?: boolean | undefined }, restored = false, seen = 0, unchecked = false): void {
    const name = bucketOf(key);
    let b = this.perBucket.get(name);
    if (b === undefined) this.perBucket.set(name, (b = { items: 0, bytes: 0, evictions: 0 }));
    const e: Entry = { key, file: f.file, fileSize: f.fileSize, bodyOffset: f.bodyOffset, size: f.size, storedAt: f.storedAt, expiresAt: f.expiresAt, date: f.date, dateSlot: f.dateSlot ?? false, headers: f.headers, bucket: b, restored, ino: f.ino, mtimeMs: f.mtimeMs, refreshing: 0, seen, unchecked, crc: f.crc };
    this.lru.insert(key, e);
    const charged = onDisk(e.fileSize);
    this.bytes += charged;
    b.items++;
    b.bytes += charged;
  }

  /** The bytes the files may take now: max_disk_size_mb, or less for a while after the file system filled up. */
  private cap(): number {
    if (this.fullUntil === 0) return this.maxBytes;
    if (performance.now() < this.fullUntil) return Math.min(this.maxBytes, this.fullCap);
    this.fullUntil = 0;
    this.fullCap = Infinity;
    return this.maxBytes;
  }

  /**
   * The file system ran out of room before max_disk_size_mb (smaller than configured, or shared
   * with other data): for a minute the layer caps itself at 90 % of what it holds, or of the room
   * free on the volume (with the failed write's temporary file, about to go) when that is more,
   * and evicts the least recently used files down to it, so new objects are cached again instead
   * of every fill failing until an operator steps in (it takes no object larger than the cap). It
   * was 90 % of what it held only: one object larger than the volume's free room capped an empty
   * layer at nothing, and nothing was cached for the minute. A write failing again shrinks the cap
   * again (at most once a second); after the minute the configured size applies, and the next
   * ENOSPC starts over.
   */
  private outOfRoom(now: number, failedBytes = 0): void {
    if (this.fullUntil !== 0 && now - (this.fullUntil - FULL_HOLD_MS) < 1000) return;
    // (unknown: what the layer holds is what it can have)
    const free = volumeOf(this.dir)?.free ?? 0;
    this.fullCap = Math.floor(Math.min(Math.max(this.bytes, free + failedBytes), this.cap()) * 0.9);
    this.fullUntil = now + FULL_HOLD_MS;
    this.log?.warn("disk cache: the file system is full; evicting least recently used objects", { dir: this.dir, cap_bytes: this.fullCap, configured_bytes: this.maxBytes, for_seconds: FULL_HOLD_MS / 1000 });
    void this.evictDown();
  }

  /**
   * A fill the lower cap refuses looks at the volume again (at most once a second: a statfs, on a
   * miss's fill only): room freed there since (another writer's files gone) raises the cap to 90 %
   * of what the layer holds and the room free together, for the rest of the minute. The cap held
   * its minute whatever happened on the volume: an object larger than it was not cached (a BYPASS
   * at every request) for up to a minute after the volume had room for it again.
   */
  private roomAgain(): number {
    const now = performance.now();
    if (now - this.roomLookedAt < 1000) return this.cap();
    this.roomLookedAt = now;
    const free = volumeOf(this.dir)?.free;
    if (free !== undefined) this.fullCap = Math.max(this.fullCap, Math.floor(Math.min(this.bytes + free, this.maxBytes) * 0.9));
    return this.cap();
  }

  /** Evicts least-recently-used entries until the files fit; resolves once their files are deleted. */
  private evictDown(): Promise<unknown> {
    let over = this.bytes + this.reserved - this.cap();
    if (over <= 0) return Promise.resolve();
    const victims: Entry[] = [];
    for (const e of this.lru.oldestFirst()) {
      if (over <= 0) break;
      if (this.copying.has(e)) continue; // (see put)
      victims.push(e);
      over -= onDisk(e.fileSize);
    }
    return Promise.all(victims.map((e) => this.evict(e)));
  }

  private evict(e: Entry): Promise<void> {
    this.evictions++;
    e.bucket.evictions++;
    return this.remove(e, true);
  }

  /** Drops `e` from the index (at once) and, with `unlinkFile`, its file. */
  private remove(e: Entry, unlinkFile: boolean): Promise<void> {
    if (this.lru.peek(e.key) === e) {
      this.lru.delete(e.key);
      const charged = onDisk(e.fileSize);
      this.bytes -= charged;
      e.bucket.items--;
      e.bucket.bytes -= charged;
    }
    return unlinkFile ? this.discard(e.file) : Promise.resolve();
  }

  /** Deletes a file the layer dropped; before the listeners are bound, once they are (unbound). */
  private discard(file: string): Promise<void> {
    if (!this.bound) {
      this.unbound.push(file);
      return Promise.resolve();
    }
    // A file that cannot be deleted (a folder made read-only) is no longer counted: say so (the
    // disk error warning and yatagarasu_cache_layer_errors_total), it was silent. It is also made
    // unreadable as an object (its head's magic zeroed; the body, which a response may be sending,
    // is untouched), so the index rebuilt at the next start drops it: a purged (or replaced) file
    // left in place had come back as a HIT after a restart, the old object served as fresh.
    const p: Promise<void> = unlinkName(file).catch(async (err) => {
      if ((err as { code?: string }).code === "ENOENT") return;
      this.failed(err, "unlink");
      if (!(await invalidateHead(file))) this.keepDeleting(file);
    });
    this.unlinking.add(p);
    void p.then(() => this.unlinking.delete(p));
    return p;
  }
}

/**
 * `folder` (objects/<h2>) made a folder of the layer's again when something else is in its place:
 * a symbolic link put there (to a folder outside) was followed, the object written into the
 * folder it points to, served from there, and left there once a restart removed the link. The
 * link is removed (never what it points to); a missing folder is the rename's (made after ENOENT).
 */
async function ownFolder(folder: string): Promise<void> {
  const st = await lstat(folder).catch(() => undefined);
  if (st === undefined || st.isDirectory()) return;
  await unlink(folder);
  await mkdir(folder, { mode: CACHE_DIR_MODE });
}

/**
 * Deletes a file the layer dropped, or an empty folder made in its place (mkdir): its unlink failed
 * (EISDIR), a disk error counted and warned, naming no file, retried every 5 s while the process
 * ran and again at each start. A folder that holds anything is left (ENOTEMPTY: counted as before).
 */
function unlinkName(file: string): Promise<void> {
  return unlink(file).catch((err) => ((err as { code?: string }).code === "EISDIR" ? rmdir(file) : Promise.reject(err)));
}

/**
 * Zeroes an object file's magic (its first 4 bytes) so that disk-scan.ts drops it ("not an object
 * file"): for a file that could not be deleted. Needs write permission on the file only, not on
 * its folder; on a read-only file system it fails too (false; the unlink's error was counted).
 */
async function invalidateHead(file: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, "r+");
    await fh.write(new Uint8Array(4), 0, 4, 0);
    return true;
  } catch {
    return false;
  } finally {
    await fh?.close().catch(() => {});
  }
}

function sameHeaders(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}
