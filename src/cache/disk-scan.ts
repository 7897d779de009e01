/**
 * Rebuilding the disk layer's index at start: every object file's head is read and checked (its
 * length, its metadata, its key against its name). A file that is not a complete object is
 * deleted, never indexed; of two versions of one key (a crash between a rename and the removal
 * of the older one) the newer is kept. Temporary files of writers that are no longer alive are
 * deleted (another live process sharing the folder keeps its own).
 */
import { constants, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { open, readdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { decodeHead, hashOfName, HEAD_BYTES, keyHash, metaLength, ownerOfTemp, START_ID, type DiskHead } from "./disk-format.ts";

export interface ScannedFile extends DiskHead {
  /** Absolute path. */
  file: string;
  fileSize: number;
  mtimeMs: number;
  /**
   * The last change of the file (written and renamed, or its times rewritten by a revalidation):
   * the order of the LRU at start. Not mtimeMs, which is whole seconds (DiskWrite.store): the
   * objects written within one second came back in any order, the newest evicted first. (Equal
   * times, a kernel's coarse clock, go by storedAt.)
   */
  ctimeMs: number;
  ino: number;
}

export interface ScanResult {
  /** Oldest first (by ctimeMs): the order to insert them into the LRU. */
  files: ScannedFile[];
  /** Files deleted because they were not complete objects, or an older version of a key. */
  dropped: number;
  tempsRemoved: number;
}

const CONCURRENCY = 32;

/**
 * Whether the writer of a temporary file may still be writing it. One with this process's pid is
 * this process's own only when it carries this start's id: written by an earlier process that had
 * the same pid (a container's PID 1 restarted after a crash), it is left over. The folder's other
 * processes are asked by pid: processes sharing a folder must see each other's pids (one PID
 * namespace; server.workers give each worker its own folder anyway).
 */
function alive(owner: { pid: number; start: string | undefined }, writtenMs: number): boolean {
  const { pid } = owner;
  // (an empty or garbled file, such as a lock whose write failed on a full file system, reads as pid
  // 0 or below: kill 0 asks this process's own group, -1 every process, and both "answered", so such
  // a lock was a running owner's and the next start on the port warned another process held it)
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return owner.start === START_ID;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as { code?: string }).code !== "EPERM") return false; // (EPERM: exists, but not ours to signal)
  }
  return !notTheWriter(pid, writtenMs);
}

/**
 * Whether the live `pid` is not the writer of a temporary file last written at `writtenMs` (Linux,
 * from /proc; elsewhere it is taken as the writer):
 * - a dead process not yet reaped (state Z or X), which kill 0 answers for: a writer killed -9
 *   mid-fill whose parent (a supervisor, a shell as PID 1) had not reaped it when the proxy started
 *   again had its half file kept as a live writer's;
 * - a process started after the file was last written: the pid reused by another process (another
 *   worker of a group restarted in a fresh container, an unrelated program), which kept the dead
 *   writer's file for as long as it ran.
 * Either way the file stayed on disk, counted by no max_disk_size_mb.
 */
function notTheWriter(pid: number, writtenMs: number): boolean {
  let fields: string[];
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // (from field 3, the state; the name may hold spaces)
  } catch {
    return false;
  }
  if (fields[0] === "Z" || fields[0] === "X") return true;
  const ticks = Number(fields[19]); // field 22: the start, in clock ticks (USER_HZ, 100) since boot
  const booted = bootTime();
  // (2 s of slack: the boot time is whole seconds)
  return booted !== undefined && Number.isFinite(ticks) && booted + ticks * 10 > writtenMs + 2000;
}

/** The boot time (epoch ms, /proc/stat's btime), or undefined: read once (it was read per temporary file). */
let boot: { ms: number | undefined } | undefined;
function bootTime(): number | undefined {
  if (boot === undefined) {
    try {
      const m = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"));
      boot = { ms: m ? Number(m[1]) * 1000 : undefined };
    } catch {
      boot = { ms: undefined };
    }
  }
  return boot.ms;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/**
 * The folders under objects/ (never a symbolic link, which is removed: the link only). A link
 * there to a folder outside was followed: the files in it with an object's name were indexed,
 * served, and deleted by the rebuild (not an object), an eviction or a purge, and new objects were
 * written through it. Anything else under a folder's name (a file) is removed too: the objects of
 * its keys (1/256 of them) could never be stored, each fill failing with ENOTDIR, across restarts.
 */
async function objectFolders(objects: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(objects, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (!/^[0-9a-f]{2}$/.test(e.name)) continue;
    if (e.isDirectory()) out.push(e.name);
    else await unlink(join(objects, e.name)).catch(() => {});
  }
  return out;
}

/**
 * How an object file is opened to be checked: never through a symlink, and without waiting (a FIFO
 * in the folder, or a symlink to one, made a plain open wait for a writer forever, and every
 * lookup, purge and stop waits for the rebuild).
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0);

/** Reads and checks one object file; a string says why it is not a complete object. */
export async function readObjectFile(file: string, hash: string): Promise<ScannedFile | string> {
  let fh;
  try {
    fh = await open(file, OPEN_FLAGS);
  } catch {
    return "unreadable";
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return "not a regular file";
    const first = new Uint8Array(Math.min(st.size, 4096));
    await fh.read(first, 0, first.byteLength, 0);
    const n = metaLength(first);
    if (typeof n === "string") return n;
    let head = first;
    if (HEAD_BYTES + n > first.byteLength && HEAD_BYTES + n <= st.size) {
      head = new Uint8Array(HEAD_BYTES + n);
      await fh.read(head, 0, head.byteLength, 0);
    }
    const h = decodeHead(head, st.size);
    if (typeof h === "string") return h;
    if (keyHash(h.key) !== hash) return "key does not match the file name";
    return { ...h, file, fileSize: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
  } catch {
    return "unreadable";
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Whether `a` was written after `b` (two versions of one key: a crash between the rename of the
 * newer and the unlink of the older). By the files' ctime, not storedAt: an answer that came with
 * Age (a CDN in front) is stored as fetched that long ago, and the older version was kept.
 */
const written = (a: ScannedFile, b: ScannedFile): boolean => (a.ctimeMs - b.ctimeMs || a.storedAt - b.storedAt) > 0;

/** The lock file of a running instance (DiskLayerOptions.instance) in a disk folder: "<pid> <START_ID>". */
export const lockFileOf = (instance: string): string => `instance-${instance}.lock`;

/**
 * What this process writes in a lock it holds: "<pid> <START_ID>", followed by " starting" until
 * its listeners are bound (takeLock's `bound`). A start that then fails to bind (its port in use)
 * removes its lock; until then a running instance alone on the folder does not take it for
 * another proxy sharing the folder (watchShared: liveOthers' `boundOnly`), while starts still
 * spare its files. (An earlier release reads the pid and start only.)
 */
const MY_LOCK = `${process.pid} ${START_ID}\n`;
const MY_STARTING_LOCK = `${process.pid} ${START_ID} starting\n`;

/** Whether the lock file `file` names a process still running (the pid's start checked, as for temporary files), other than this one with `notMine`; with `boundOnly`, one whose listeners are bound. */
function liveLock(file: string, o: { notMine?: boolean; boundOnly?: boolean } = {}): boolean {
  try {
    const text = readFileSync(file, "utf8");
    if (o.notMine === true && (text === MY_LOCK || text === MY_STARTING_LOCK)) return false;
    const [pid, start, state] = text.trim().split(" ");
    if (o.boundOnly === true && state === "starting") return false;
    return alive({ pid: Number(pid), start }, statSync(file).mtimeMs);
  } catch {
    return false; // (gone meanwhile, or unreadable: not a live owner)
  }
}

/** The writer of a lock written aside by takeLock (instance-<port>.lock.<pid>.tmp), until renamed into place. */
function lockAsideOwner(name: string): { pid: number; start: undefined } | undefined {
  const m = /^instance-.+\.lock\.(\d+)\.tmp$/.exec(name);
  return m === null ? undefined : { pid: Number(m[1]), start: undefined };
}

/** Removes the files in `folder` whose name `ownerOf` reads a writer from, that writer gone (alive); how many. */
async function removeLeftOver(folder: string, ownerOf: (name: string) => { pid: number; start: string | undefined } | undefined): Promise<number> {
  let removed = 0;
  for (const name of await list(folder)) {
    const owner = ownerOf(name);
    if (owner === undefined) continue;
    const file = join(folder, name);
    const written = await stat(file).then((st) => st.mtimeMs, () => undefined);
    if (written === undefined || alive(owner, written)) continue;
    await unlink(file).catch(() => {});
    removed++;
  }
  return removed;
}

/**
 * Writes this process's lock for `instance` in `dir` (it names the files' owner while it runs;
 * `bound`: its listeners are bound); false, leaving it, when it names another running process,
 * unless `force` (this process holds the instance's port now): a second start on the instance's
 * port, which fails to bind (the cache opens first), rewrote it with its own pid, and the running
 * one's files were then a stopped instance's to the next start of another proxy on the folder.
 */
export function takeLock(dir: string, instance: string, force = false, bound = true): boolean {
  const file = join(dir, lockFileOf(instance));
  if (!force && liveLock(file, { notMine: true })) return false; // (this process's own is taken again: a layer opened again in it)
  // Written aside and renamed into place: a start on the folder reading the lock meanwhile sees
  // the old text or the new one, never the empty file a rewrite in place leaves for a moment (it
  // took the running instance for a stopped one, whose files it may delete).
  const aside = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(aside, bound ? MY_LOCK : MY_STARTING_LOCK, { mode: 0o600 });
    renameSync(aside, file);
  } catch (err) {
    // (a full file system, ENOSPC: the file made, its text not written)
    rmSync(aside, { force: true });
    throw err;
  }
  return true;
}

/** Removes this process's lock for `instance` (not one a later process of the instance wrote since), and its list of adopted instances. */
export function dropLock(dir: string, instance: string): void {
  const file = join(dir, lockFileOf(instance));
  try {
    const text = readFileSync(file, "utf8");
    if (text === MY_LOCK || text === MY_STARTING_LOCK) {
      rmSync(join(dir, adoptedFileOf(instance)), { force: true });
      unlinkSync(file);
    }
  } catch {
    // (gone already)
  }
}

/** The stopped instances whose files a running instance adopted at its start ("<instance> <start, ms>" a line), read by the others' starts while its lock is live. */
const adoptedFileOf = (instance: string): string => `instance-${instance}.adopted`;

/** Records the instances whose files this instance's start (at `since`) indexed (none: the record removed). */
export function recordAdopted(dir: string, instance: string, adopted: ReadonlySet<string>, since: number): void {
  const file = join(dir, adoptedFileOf(instance));
  if (adopted.size === 0) rmSync(file, { force: true });
  else writeFileSync(file, [...adopted].map((name) => `${name} ${since}\n`).join(""), { mode: 0o600 });
}

/**
 * Instance → the files of it a start must neither index nor delete, those written before the
 * time given: all of the others running on the folder (liveOthers), and of a stopped one, `mine`
 * included, those one of them adopted at its start (written before it). Those are its own now: it
 * counts them against its size limit, evicts and purges them (a proxy back on the folder took
 * them back as well, and both counted them). A file's time is when it was put in place, in its
 * name (namedAt; the modification time is kept to the second, and the ctime moves when a
 * revalidation rewrites the file's times in place).
 */
export function sparedInstances(dir: string, mine: string | undefined): Map<string, number> {
  const live = liveOthers(dir, mine);
  const out = new Map<string, number>();
  for (const other of live) out.set(other, Infinity);
  for (const other of live) {
    let text: string;
    try {
      text = readFileSync(join(dir, adoptedFileOf(other)), "utf8");
    } catch {
      continue; // (adopted none)
    }
    for (const line of text.split("\n")) {
      const [name, since] = line.split(" ");
      const before = Number(since);
      if (name !== undefined && name !== "" && Number.isFinite(before) && !live.has(name)) out.set(name, Math.max(out.get(name) ?? -Infinity, before));
    }
  }
  return out;
}

/**
 * The instances other than `mine` whose lock in `dir` names a process still running (the pid's
 * start checked, as for temporary files): another proxy sharing the folder, whose files a start
 * must neither index nor delete.
 */
export function liveOthers(dir: string, mine: string | undefined, boundOnly = false): Set<string> {
  const out = new Set<string>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const m = /^instance-(.+)\.lock$/.exec(name);
    if (m !== null && m[1] !== mine && liveLock(join(dir, name), { boundOnly })) out.add(m[1]!);
  }
  return out;
}

/**
 * `spare`: files the scan must neither return nor delete (another running instance's: liveOthers).
 * `shared`: another instance runs on the folder: a file that is not an object this release can
 * read is left in place, since it may be that one's (a later release's format; one this process
 * could not open now): the scan deleted it, and the other instance lost the object. It is dropped
 * by a start that finds no other instance running.
 * `remove`: how a dropped file (not an object, an older copy of a key) is deleted (the disk layer
 * defers it until its listeners are bound).
 */
export async function scanDir(dir: string, spare: (f: ScannedFile) => boolean = () => false, shared = false, remove: (file: string) => Promise<void> = (file) => unlink(file).catch(() => {})): Promise<ScanResult> {
  // Only names of temporary files (tmp/<pid>.<start>.<random>.part) whose writer is gone: every
  // other file in tmp/ was deleted too, and with tmp/ a symbolic link to a folder outside, every
  // file in that folder. And a lock's text written aside (takeLock) by a process that stopped
  // before renaming it into place (killed, the machine down): never removed, one more each time.
  const tempsRemoved = (await removeLeftOver(join(dir, "tmp"), ownerOfTemp)) + (await removeLeftOver(dir, lockAsideOwner));

  const candidates: { file: string; hash: string }[] = [];
  for (const sub of await objectFolders(join(dir, "objects"))) {
    for (const name of await list(join(dir, "objects", sub))) {
      const hash = hashOfName(name);
      if (hash !== undefined && hash.startsWith(sub)) candidates.push({ file: join(dir, "objects", sub, name), hash });
    }
  }

  let dropped = 0;
  const newest = new Map<string, ScannedFile>();
  const drop = async (file: string) => {
    dropped++;
    await remove(file);
  };
  for (let i = 0; i < candidates.length; i += CONCURRENCY) {
    const batch = candidates.slice(i, i + CONCURRENCY);
    const read = await Promise.all(batch.map((c) => readObjectFile(c.file, c.hash)));
    for (let j = 0; j < read.length; j++) {
      const r = read[j]!;
      if (typeof r === "string") {
        if (!shared) await drop(batch[j]!.file);
        continue;
      }
      if (spare(r)) continue;
      const other = newest.get(r.key);
      if (other === undefined) newest.set(r.key, r);
      else if (!written(r, other)) await drop(r.file);
      else {
        await drop(other.file);
        newest.set(r.key, r);
      }
    }
  }
  const files = [...newest.values()].sort((a, b) => a.ctimeMs - b.ctimeMs || a.storedAt - b.storedAt);
  return { files, dropped, tempsRemoved };
}
