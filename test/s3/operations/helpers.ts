/**
 * Shared by the operations tests: BucketUpstreams for both clients (the own HTTP/1.1 pool and
 * fetch), call contexts, deterministic generated bodies (verifiable without holding them), and a
 * raw TCP server that records exactly what arrived.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { BucketConfig } from "../../../src/config/schema.ts";
import { UpstreamPools } from "../../../src/s3/http1/index.ts";
import { BucketUpstream, type UpstreamTiming } from "../../../src/s3/upstream.ts";

export type ClientKind = "native" | "fetch";
export const CLIENTS: readonly ClientKind[] = ["native", "fetch"];

export interface UpstreamOptions {
  bucket: string;
  endpoint: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  timeoutSeconds?: number;
  retry?: { max_attempts: number; initial_backoff_ms: number; max_backoff_ms: number };
}

/** A BucketUpstream on `client`; its pools are closed by the returned dispose. */
export function makeUpstream(client: ClientKind, o: UpstreamOptions): { upstream: BucketUpstream; pools: UpstreamPools; [Symbol.dispose](): void } {
  const cfg = {
    name: `proxy-${o.bucket}`,
    path_prefix: "/p",
    s3: {
      bucket: o.bucket,
      region: "us-east-1",
      endpoint: o.endpoint,
      access_key: o.accessKeyId,
      secret_key: o.secretAccessKey,
      timeout: o.timeoutSeconds ?? 10,
      connect_timeout: 5,
      retry: o.retry ?? { max_attempts: 3, initial_backoff_ms: 0, max_backoff_ms: 0 },
    },
  } as unknown as BucketConfig;
  const pools = new UpstreamPools();
  const upstream = new BucketUpstream(cfg, { client: client === "native" ? "auto" : "fetch", pools });
  if ((upstream.pool !== undefined) !== (client === "native")) throw new Error(`expected the ${client} client`);
  return { upstream, pools, [Symbol.dispose]: () => pools.close() };
}

export function ctx(signal: AbortSignal = new AbortController().signal): { signal: AbortSignal; timing: UpstreamTiming } {
  return { signal, timing: { upstreamMs: 0, attempts: 0 } };
}

/** Byte i of every generated body: a pattern that does not repeat on chunk boundaries. */
export function patternByte(i: number): number {
  return (i * 31 + Math.floor(i / 8191)) & 0xff;
}

export function patternBytes(size: number, offset = 0): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = patternByte(offset + i);
  return out;
}

export interface GeneratedOptions {
  chunkSize?: number;
  /** Error the stream (instead of the next chunk) once this many bytes were produced. */
  errorAfter?: number;
}

/** A pull stream of `size` pattern bytes, one fresh chunk per pull (nothing read ahead). */
export function generated(size: number, o: GeneratedOptions = {}): ReadableStream<Uint8Array> & { produced(): number } {
  const chunkSize = o.chunkSize ?? 64 * 1024;
  let produced = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(c) {
        if (o.errorAfter !== undefined && produced >= o.errorAfter) {
          c.error(new Error("source failed"));
          return;
        }
        if (produced >= size) {
          c.close();
          return;
        }
        let n = Math.min(chunkSize, size - produced);
        if (o.errorAfter !== undefined) n = Math.min(n, o.errorAfter - produced);
        c.enqueue(patternBytes(n, produced));
        produced += n;
      },
    },
    { highWaterMark: 0 },
  ) as ReadableStream<Uint8Array> & { produced(): number };
  stream.produced = () => produced;
  return stream;
}

/**
 * A cheap big body for memory tests: a fresh copy of one random block per pull (as a request
 * body's chunks are fresh), with the SHA-256 of what was produced.
 */
export function bulk(size: number, chunkSize = 256 * 1024): { stream: ReadableStream<Uint8Array>; sha256(): string } {
  const block = crypto.getRandomValues(new Uint8Array(chunkSize));
  const hash = new Bun.CryptoHasher("sha256");
  let produced = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(c) {
        if (produced >= size) return c.close();
        const n = Math.min(chunkSize, size - produced);
        const chunk = block.slice(0, n);
        chunk[0] = produced & 0xff; // chunks differ, so a reordered or repeated chunk changes the hash
        hash.update(chunk);
        produced += n;
        c.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, sha256: () => hash.digest("hex") };
}

export function sha256(b: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(b).digest("hex");
}

export interface RawRequest {
  head: string;
  /** Body bytes received after the head. */
  bodyBytes: number;
  body: Buffer[];
}

export interface RawConn {
  socket: Socket<RawConn>;
  requests: RawRequest[];
  /** Bytes of a head still incomplete. */
  pending: Buffer;
  closed: boolean;
}

/**
 * A raw HTTP/1.1 server that records every request (head, body bytes) on every connection and
 * answers `respond(request)` once its Content-Length body bytes arrived (never, if they do not);
 * `null` from respond cuts the connection instead (the request received whole, no answer).
 */
export function rawServer(o: { keepBody?: boolean; respond?: (r: RawRequest) => string | null } = {}): { port: number; conns: RawConn[]; requests(): RawRequest[]; [Symbol.dispose](): void } {
  const conns: RawConn[] = [];
  const respond = o.respond ?? (() => "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  const expected = (r: RawRequest) => Number(/\r\ncontent-length: *(\d+)/i.exec(r.head)?.[1] ?? 0);
  const answer = (s: Socket<RawConn>, r: RawRequest) => {
    const text = respond(r);
    if (text === null) s.terminate();
    else s.write(text);
  };
  const listener: TCPSocketListener<RawConn> = Bun.listen<RawConn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { socket: s, requests: [], pending: Buffer.alloc(0), closed: false };
        conns.push(s.data);
      },
      data(s, d) {
        const c = s.data;
        let rest: Buffer = d; // Bun hands every data event a fresh Buffer
        while (rest.length > 0) {
          let r = c.requests.at(-1);
          if (r === undefined || r.bodyBytes === expected(r)) {
            const all = Buffer.concat([c.pending, rest]);
            const i = all.indexOf("\r\n\r\n");
            if (i < 0) {
              c.pending = all;
              return;
            }
            c.pending = Buffer.alloc(0);
            r = { head: all.subarray(0, i).toString("latin1"), bodyBytes: 0, body: [] };
            c.requests.push(r);
            rest = all.subarray(i + 4);
            if (expected(r) === 0) answer(s, r);
            continue;
          }
          const take = rest.subarray(0, Math.min(rest.length, expected(r) - r.bodyBytes));
          r.bodyBytes += take.length;
          if (o.keepBody) r.body.push(Buffer.from(take));
          rest = rest.subarray(take.length);
          if (r.bodyBytes === expected(r)) answer(s, r);
        }
      },
      close(s) {
        s.data.closed = true;
      },
      error() {},
    },
  });
  const stop = () => listener.stop(true);
  return { port: listener.port, conns, requests: () => conns.flatMap((c) => c.requests), [Symbol.dispose]: stop };
}

export function headerOf(head: string, name: string): string | undefined {
  const m = new RegExp(`\\r\\n${name}: *([^\\r]*)`, "i").exec(head);
  return m === null ? undefined : m[1];
}
