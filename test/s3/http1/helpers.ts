/** Shared fixtures of the Http1Pool behaviour tests: a raw TCP origin that answers byte for byte as told. */
import type { Socket, TCPSocketListener } from "bun";
import { Http1Pool, type Http1PoolOptions } from "../../../src/s3/http1/index.ts";

export interface RawConn {
  id: number;
  socket: Socket<RawConn>;
  buf: string;
  requests: string[];
  closed: boolean;
}

export interface RawServer {
  port: number;
  conns: RawConn[];
  openCount(): number;
  stop(): void;
}

const cleanups: Array<() => void> = [];

/** Registers something to stop after the current test. */
export function onCleanup(f: () => void): void {
  cleanups.push(f);
}

/** Stops every server and pool the test started (each test file calls it in afterEach). */
export function cleanup(): void {
  while (cleanups.length > 0) {
    try {
      cleanups.pop()!();
    } catch {
      // keep cleaning
    }
  }
}

/** A raw TCP server; `onRequest` is called for every complete request head received on a connection. */
export function rawServer(onRequest: (c: RawConn, head: string) => void): RawServer {
  const conns: RawConn[] = [];
  const listener: TCPSocketListener<RawConn> = Bun.listen<RawConn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        const c: RawConn = { id: conns.length, socket: s, buf: "", requests: [], closed: false };
        s.data = c;
        conns.push(c);
      },
      data(s, d) {
        const c = s.data;
        c.buf += d.toString("latin1");
        let i: number;
        while ((i = c.buf.indexOf("\r\n\r\n")) >= 0) {
          const head = c.buf.slice(0, i + 4);
          c.buf = c.buf.slice(i + 4);
          c.requests.push(head);
          onRequest(c, head);
        }
      },
      close(s) {
        s.data.closed = true;
      },
      error() {},
    },
  });
  const srv: RawServer = {
    port: listener.port,
    conns,
    openCount: () => conns.filter((c) => !c.closed).length,
    stop: () => listener.stop(true),
  };
  cleanups.push(srv.stop);
  return srv;
}

export function pool(port: number, extra: Partial<Http1PoolOptions> = {}): Http1Pool {
  const p = new Http1Pool({ host: "127.0.0.1", port, hostHeader: `127.0.0.1:${port}`, sweepIntervalMs: 20, ...extra });
  cleanups.push(() => p.close());
  return p;
}

export const T = { timeoutMs: 2000 };


/** Write pieces one at a time with a tiny pause in between, so that they arrive as separate reads. */
export async function writePaced(s: Socket<RawConn>, pieces: Array<string | Uint8Array>): Promise<void> {
  for (const p of pieces) {
    if (s.data.closed) return;
    s.write(p);
    s.flush();
    await Bun.sleep(1);
  }
}

/**
 * Write a large buffer honouring partial writes; resolves when all is handed to the kernel.
 * One 1 MiB write per event-loop turn: the pool under test shares this event loop, and a
 * synchronous burst of writes (tens of ms on a busy machine) would starve its reads and timers,
 * making a short timeoutMs fire for reasons that have nothing to do with the pool.
 */
export function writeAll(s: Socket<RawConn>, data: Uint8Array, progress?: (n: number) => void): Promise<void> {
  return new Promise((resolve) => {
    let off = 0;
    const step = () => {
      if (off >= data.length || s.data.closed) return resolve();
      const n = s.write(data.subarray(off, Math.min(data.length, off + 1024 * 1024)));
      if (n <= 0) return void setTimeout(step, 1);
      off += n;
      progress?.(off);
      setImmediate(step);
    };
    step();
  });
}

export async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

export function ok(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
}
