/**
 * How many bytes a client's connection holds in the kernel, received and not yet read by the
 * proxy (Linux: the rx_queue column of /proc/self/net/tcp and tcp6). A framed upload's body goes
 * to the upstream without JavaScript (src/http/framed-body.ts), so this is the one sign left of an
 * upstream that stopped reading it: Bun stops reading the client's socket when the upstream's
 * backs up, and that socket's receive queue then stays full and unchanged (2318542 bytes for a
 * 100 MiB PUT on loopback, Bun 1.4.5), where a client that stops sending leaves it empty and a
 * flowing upload moves it.
 */
import { readFile } from "node:fs/promises";

/** One accepted connection: the listener's port, the client's address and port (Bun.serve requestIP). */
export interface Peer {
  localPort: number;
  address: string;
  port: number;
}

/** The 16 bytes of an IPv6 address ("::ffff:1.2.3.4" included), or undefined. */
function ipv6Bytes(address: string): number[] | undefined {
  let text = address;
  const tail: number[] = [];
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    tail.push(...dotted[2]!.split(".").map(Number));
    text = `${dotted[1]}0:0`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const words = (s: string) => (s === "" ? [] : s.split(":").map((w) => parseInt(w, 16)));
  const head = words(halves[0]!);
  const rest = halves.length === 2 ? words(halves[1]!) : [];
  const all = halves.length === 2 ? [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest] : head;
  if (all.length !== 8 || all.some((w) => !(w >= 0 && w <= 0xffff))) return undefined;
  const bytes = all.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
const port4 = (port: number) => port.toString(16).padStart(4, "0").toUpperCase();

/**
 * What /proc prints for `peer`'s socket from its local port to its remote address (each 32-bit
 * word of an address in host order: little-endian on x64 and arm64), and the file.
 */
function procKey(peer: Peer): { file: string; needle: string } | undefined {
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(peer.address);
  let bytes: number[] | undefined;
  let file = "/proc/self/net/tcp6";
  if (v4 !== null) {
    bytes = v4.slice(1).map(Number);
    file = "/proc/self/net/tcp";
  } else bytes = ipv6Bytes(peer.address);
  if (bytes === undefined) return undefined;
  const words: number[] = [];
  for (let i = 0; i < bytes.length; i += 4) words.push(bytes[i + 3]!, bytes[i + 2]!, bytes[i + 1]!, bytes[i]!);
  return { file, needle: `:${port4(peer.localPort)} ${hex(words)}:${port4(peer.port)} ` };
}

/**
 * The receive queues of `peers` (undefined for one not found: closed, not TCP, or not Linux), one
 * read of each /proc file for all of them. Read asynchronously: the kernel writes a line per socket
 * of the network namespace (~25 ms for 4,000 sockets, ~150 ms for 16,000 on the 2-core test
 * machine), which must not stop the event loop.
 */
async function receiveQueues(peers: readonly Peer[]): Promise<Array<number | undefined>> {
  const keys = peers.map(procKey);
  const files = new Map<string, string | null>();
  for (const key of keys) {
    if (key === undefined || files.has(key.file)) continue;
    files.set(key.file, await readFile(key.file, "latin1").catch(() => null));
  }
  return keys.map((key) => {
    const text = key === undefined ? null : files.get(key.file) ?? null;
    if (text === null) return undefined;
    const at = text.indexOf(key!.needle);
    if (at < 0) return undefined;
    // ... local_address rem_address st tx_queue:rx_queue ...
    const from = at + key!.needle.length;
    const cols = text.slice(from, from + 40).split(" ");
    const rx = cols[1]?.split(":")[1];
    return rx === undefined ? undefined : parseInt(rx, 16);
  });
}

interface Watch {
  peer: Peer;
  stallMs: number;
  onStall: () => void;
  last: number | undefined;
  since: number;
}

const watches = new Set<Watch>();
let ticker: ReturnType<typeof setInterval> | undefined;
let sampling = false;

/**
 * How often watched connections are sampled: a quarter of the shortest stall watched, within
 * [minMs, maxMs] (s3.timeout 20 s: every 5 s), so that the reads cost little while a large upload
 * is in flight; in-process tests may lower the bounds.
 */
const receiveQueueWatch = { minMs: 1000, maxMs: 5000 };
let everyMs = 0;

async function sample(): Promise<void> {
  if (sampling) return;
  sampling = true;
  try {
    const list = [...watches];
    const queues = await receiveQueues(list.map((w) => w.peer));
    const now = performance.now();
    list.forEach((w, i) => {
      if (!watches.has(w)) return;
      const q = queues[i];
      if (q === undefined || q === 0 || q !== w.last) {
        w.last = q;
        w.since = now;
      } else if (now - w.since >= w.stallMs) {
        watches.delete(w);
        w.onStall();
      }
    });
  } finally {
    sampling = false;
  }
  if (watches.size === 0) stopTicker();
}

function stopTicker(): void {
  clearInterval(ticker);
  ticker = undefined;
  everyMs = 0;
}

/**
 * Calls `onStall` once `peer`'s receive queue has stayed non-empty and unchanged for `stallMs`
 * (all watched connections sampled with one read, see receiveQueueWatch). Returns the function
 * that stops watching.
 */
export function watchReceiveQueue(peer: Peer, stallMs: number, onStall: () => void): () => void {
  const w: Watch = { peer, stallMs, onStall, last: undefined, since: performance.now() };
  watches.add(w);
  const every = Math.min(receiveQueueWatch.maxMs, Math.max(receiveQueueWatch.minMs, stallMs / 4));
  if (ticker === undefined || every < everyMs) {
    clearInterval(ticker);
    everyMs = every;
    ticker = setInterval(() => void sample(), every);
    ticker.unref?.();
  }
  return () => {
    watches.delete(w);
    if (watches.size === 0 && !sampling) stopTicker();
  };
}
