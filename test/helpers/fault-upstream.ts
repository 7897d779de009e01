/**
 * A fault-injecting S3 upstream on a raw Bun TCP socket: answers every request itself (no
 * signature check) per a `mode` looked up by the request's path and query, so a test can make a
 * replica cut, stall or trickle a body after a good head.
 *
 *   const up = await startFaultUpstream((req) => ({ kind: "whole", status: 200, body: "..." }));
 *   up.endpoint; up.requests; up.stop();
 */
import { afterAll, beforeAll } from "bun:test";

export type Fault =
  /** A complete answer with a Content-Length. */
  | { kind: "whole"; status: number; body: string; headers?: Record<string, string>; reason?: string }
  /** A head announcing `length` (Content-Length) or chunked, then `body`'s first `send` bytes (and `tail`'s raw bytes, in the same write), then, once all of it is written (however large: the socket's backpressure is waited out), `then`. */
  | { kind: "cut"; status: number; body: string; send: number; chunked?: boolean; length?: number; tail?: string; then: "close" | "stall"; headers?: Record<string, string> }
  /** A chunked body sent one byte every `everyMs`. */
  | { kind: "trickle"; status: number; body: string; everyMs: number; headers?: Record<string, string> };

export interface FaultRequest {
  method: string;
  target: string;
}

export interface FaultUpstream {
  endpoint: string;
  requests: FaultRequest[];
  stop(): void;
}

interface Conn {
  buf: string;
  timer?: ReturnType<typeof setInterval>;
  /** What the socket has not taken yet (Bun's write takes what fits and returns how much). */
  pending: Uint8Array[];
  /** Called once `pending` is written out. */
  sent?: () => void;
}
type Sock = import("bun").Socket<Conn>;

/** Writes `bytes` (a string as UTF-8) after what is pending, keeping what the socket does not take for its drain. */
function out(s: Sock, bytes: string | Uint8Array): void {
  let b = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
  if (s.data.pending.length === 0) {
    const n = s.write(b);
    if (n >= b.byteLength) return;
    b = b.subarray(Math.max(0, n));
  }
  s.data.pending.push(b);
}

function flush(s: Sock): void {
  const d = s.data;
  while (d.pending.length > 0) {
    const b = d.pending[0]!;
    const n = s.write(b);
    if (n < b.byteLength) {
      d.pending[0] = b.subarray(Math.max(0, n));
      return;
    }
    d.pending.shift();
  }
  const sent = d.sent;
  d.sent = undefined;
  sent?.();
}

/** Runs `fn` once everything written so far has gone to the socket. */
function whenSent(s: Sock, fn: () => void): void {
  if (s.data.pending.length === 0) fn();
  else s.data.sent = fn;
}

export async function startFaultUpstream(decide: (req: FaultRequest) => Fault): Promise<FaultUpstream> {
  const requests: FaultRequest[] = [];
  const timers = new Set<ReturnType<typeof setInterval>>();
  const server = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: "", pending: [] };
      },
      drain: flush,
      data(s, chunk) {
        s.data.buf += chunk.toString("latin1");
        for (;;) {
          const end = s.data.buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const headText = s.data.buf.slice(0, end);
          s.data.buf = s.data.buf.slice(end + 4);
          const [method, target] = headText.split("\r\n")[0].split(" ");
          const req = { method, target };
          requests.push(req);
          answer(s, req, decide(req));
        }
      },
      close(s) {
        if (s.data.timer !== undefined) clearInterval(s.data.timer);
      },
      error() {},
    },
  });
  function answer(s: Sock, req: FaultRequest, f: Fault): void {
    const extra = Object.entries(f.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    const body = Buffer.from(f.body);
    const head = (framing: string) => `HTTP/1.1 ${f.status} ${(f.kind === "whole" && f.reason) || "X"}\r\n${extra}Content-Type: application/xml\r\n${framing}\r\n`;
    const isHead = req.method === "HEAD";
    if (f.kind === "whole") {
      out(s, head(`Content-Length: ${body.length}\r\n`));
      if (!isHead) out(s, body);
      return;
    }
    if (f.kind === "cut") {
      const part = body.subarray(0, f.send);
      // (head, body and tail in one write, as a store sends them)
      const tail = Buffer.from(f.tail ?? "");
      if (f.chunked) out(s, Buffer.concat([Buffer.from(head("Transfer-Encoding: chunked\r\n") + (part.length > 0 ? `${part.length.toString(16)}\r\n` : "")), part, Buffer.from(part.length > 0 ? "\r\n" : ""), tail]));
      else out(s, Buffer.concat([Buffer.from(head(`Content-Length: ${f.length ?? body.length}\r\n`)), ...(isHead ? [] : [part, tail])]));
      if (f.then === "close") whenSent(s, () => s.end());
      return;
    }
    out(s, head("Transfer-Encoding: chunked\r\n"));
    let i = 0;
    const t = setInterval(() => {
      if (i >= body.length) {
        out(s, "0\r\n\r\n");
        clearInterval(t);
        timers.delete(t);
        return;
      }
      out(s, Buffer.from([0x31, 13, 10, body[i++]!, 13, 10])); // "1\r\n", the byte, "\r\n"
    }, f.everyMs);
    timers.add(t);
    s.data.timer = t;
  }
  return {
    endpoint: `http://127.0.0.1:${server.port}`,
    requests,
    stop() {
      for (const t of timers) clearInterval(t);
      server.stop(true);
    },
  };
}

/** A ListObjectsV2 (or V1) answer listing `keys`. */
export function listingXml(keys: string[]): string {
  const entries = keys.map((k) => `<Contents><Key>${k}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;e1&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>`).join("");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>up</Name><Prefix></Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entries}</ListBucketResult>`;
}

/** One fault upstream for a test file, started before its tests and stopped after them; it answers `state.fault`. */
export function useFaultUpstream(): { fault: Fault; up: FaultUpstream } {
  const state = { fault: { kind: "whole", status: 200, body: "" } as Fault, up: undefined as unknown as FaultUpstream };
  beforeAll(async () => {
    state.up = await startFaultUpstream(() => state.fault);
  });
  afterAll(() => {
    state.up?.stop();
  });
  return state;
}
