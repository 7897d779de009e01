/**
 * An upstream that dies mid-body. Whatever the engine (bun, node) and upstream client (own
 * HTTP/1.1 pool, fetch), the client must see a broken response (never a clean-looking complete
 * one), and the access log must record the failure with the bytes really sent, with no stack
 * trace on stderr.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const MiB = 1024 * 1024;
const DECLARED = 20 * MiB;
const WHOLE = 4 * MiB;
/** Above the proxy's buffer threshold (1 KiB here), so streamed, but whole in the first packet. */
const SMALL = 3000;

/**
 * A crafted upstream: GET /b/cl → Content-Length 20 MiB, 1 MiB sent, close; GET /b/chunked → one
 * chunk, close; GET /b/whole → head and all of a 4 MiB body in one write (the body's first bytes
 * reach the proxy with its head, before the response is built), connection kept; GET /b/small →
 * the same with 3000 bytes (the body is complete before the response is built).
 */
interface Conn {
  buf: string;
  /** Bytes a write did not take yet (Bun's socket.write may write part of a large buffer): sent on drain. */
  pending?: Uint8Array;
}
let upstream: TCPSocketListener<Conn>;
/** Connections of GET /b/hang, held open unanswered. */
const hung: Socket<Conn>[] = [];

function send(s: Socket<Conn>, bytes: Uint8Array): void {
  const n = s.write(bytes);
  s.data.pending = n < bytes.byteLength ? bytes.subarray(Math.max(0, n)) : undefined;
}
beforeAll(() => {
  upstream = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: "" };
      },
      drain(s) {
        if (s.data.pending !== undefined) send(s, s.data.pending);
      },
      data(s: Socket<Conn>, d) {
        s.data.buf += d.toString("latin1");
        const end = s.data.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = s.data.buf.slice(0, end);
        s.data.buf = s.data.buf.slice(end + 4);
        const [method, path] = head.split(" ");
        if (method === "HEAD") {
          s.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
          return;
        }
        if (path.endsWith("/malformed")) {
          // two different lengths: no reading of this answer can be trusted
          s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello");
          return;
        }
        if (path.endsWith("/shortcut")) {
          // a body small enough to be read whole (800 of buffer_threshold_bytes 1024), cut after 300
          s.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 800\r\n\r\n" + "z".repeat(300));
          s.flush();
          s.end();
          return;
        }
        if (path.endsWith("/hang")) {
          hung.push(s); // never answered: the client leaves first
          return;
        }
        if (path.endsWith("/whole") || path.endsWith("/small")) {
          const size = path.endsWith("/whole") ? WHOLE : SMALL;
          const head = new TextEncoder().encode(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`);
          const all = new Uint8Array(head.byteLength + size).fill(121);
          all.set(head);
          send(s, all);
        } else if (path.endsWith("/cl")) {
          s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${DECLARED}\r\nConnection: keep-alive\r\n\r\n`);
          s.write(new Uint8Array(MiB).fill(120));
          s.flush();
          s.end();
        } else {
          s.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
          s.flush();
          s.end();
        }
      },
    },
  });
});
afterAll(() => {
  for (const s of hung) s.end();
  upstream?.stop(true);
});

/** curl's verdict: exit code, HTTP status, bytes received. curl fails (18/56) on a cut body. */
async function curl(url: string): Promise<{ code: number; status: number; size: number }> {
  const p = Bun.spawn(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "--max-time", "20", url], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  const [status, size] = out.trim().split(" ").map(Number);
  return { code, status, size };
}

for (const engine of ["bun", "node"] as const) {
  for (const client of ["auto", "fetch"] as const) {
    describe(`engine ${engine}, upstream client ${client}`, () => {
      let px: ProxyProcess;
      beforeAll(async () => {
        px = await startProxy(
          `server: { address: 127.0.0.1, port: 0, engine: ${engine}, upstream_client: ${client}, buffer_threshold_bytes: 1024 }\n` +
            `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:${upstream.port}", retry: { max_attempts: 1 } }\n`,
        );
      });
      afterAll(async () => {
        await px?.stop();
      });

      test("Content-Length 20 MiB, 1 MiB sent, then closed: the client sees a failure, the log says so", async () => {
        const r = await curl(px.url("/b/cl"));
        expect(r.code).not.toBe(0);
        expect(r.size).toBeLessThan(DECLARED);
        const line = await px.waitForLog((l) => l.msg === "request" && l.path === "/b/cl");
        expect(line.error).toBe("UpstreamBodyIncomplete");
        expect(Number(line.bytes)).toBeLessThan(DECLARED);
        expect(Number(line.bytes)).toBeLessThanOrEqual(MiB);
        expect(typeof line.ttfb_ms).toBe("number");
        expect(Number(line.duration_ms)).toBeGreaterThanOrEqual(Number(line.ttfb_ms));
        expect(px.output()).not.toContain("    at ");
      });

      test("a whole body that arrives with its head is logged complete: every byte counted, no error", async () => {
        const r = await curl(px.url("/b/whole"));
        expect(r).toEqual({ code: 0, status: 200, size: WHOLE });
        const line = await px.waitForLog((l) => l.msg === "request" && l.path === "/b/whole");
        expect(line.error).toBeUndefined();
        expect(Number(line.bytes)).toBe(WHOLE);
      });

      test("a streamed body complete before the response is built still ends the request: logged once, every byte", async () => {
        const r = await curl(px.url("/b/small"));
        expect(r).toEqual({ code: 0, status: 200, size: SMALL });
        const line = await px.waitForLog((l) => l.msg === "request" && l.path === "/b/small");
        expect(line.error).toBeUndefined();
        expect(Number(line.status)).toBe(200);
        expect(Number(line.bytes)).toBe(SMALL);
      });

      test("a client that leaves before the answer is logged with its address (499 ClientClosedRequest)", async () => {
        const seen = hung.length;
        const ac = new AbortController();
        const res = fetch(px.url("/b/hang"), { signal: ac.signal }).catch(() => "aborted");
        for (let i = 0; i < 500 && hung.length === seen; i++) await Bun.sleep(10); // until the upstream holds the request
        expect(hung.length).toBe(seen + 1);
        ac.abort();
        expect(await res).toBe("aborted");
        const line = await px.waitForLog((l) => l.msg === "request" && l.path === "/b/hang");
        expect(line.status).toBe(499);
        expect(line.client_ip).toBe("127.0.0.1");
      });

      test("a body read whole that the upstream cuts → 502 BadGateway saying the connection failed while sending, not 'could not be reached' (it answered)", async () => {
        const res = await fetch(px.url("/b/shortcut"));
        const body = (await res.json()) as { error: string; message: string };
        expect([res.status, body.error]).toEqual([502, "BadGateway"]);
        expect(body.message).toContain("failed while sending the object");
      });

      if (client === "auto") {
        test("an answer the proxy cannot read (two Content-Lengths) → 502 BadGateway naming it, not 'could not be reached'", async () => {
          const res = await fetch(px.url("/b/malformed"));
          const body = (await res.json()) as { error: string; message: string };
          expect([res.status, body.error]).toEqual([502, "BadGateway"]);
          expect(body.message).toBe("The upstream sent a response the proxy cannot read (conflicting upstream Content-Length values)");
        });
      }

      test("chunked, one chunk, then closed: never a clean-looking response", async () => {
        const r = await curl(px.url("/b/chunked"));
        // Either an error status (the failure was known before the head went out) or a cut body.
        if (r.status === 200) expect(r.code).not.toBe(0);
        else expect(r.status).toBeGreaterThanOrEqual(500);
        const line = await px.waitForLog((l) => l.msg === "request" && l.path === "/b/chunked");
        if (line.status === 200) expect(line.error).toBe("UpstreamBodyIncomplete");
        else expect(Number(line.status)).toBeGreaterThanOrEqual(500);
        expect(px.output()).not.toContain("    at ");
      });
    });
  }
}

describe("a body cut after the answer was handed over counts against the breaker (own client)", () => {
  let px: ProxyProcess;
  beforeAll(async () => {
    px = await startProxy(
      `server: { address: 127.0.0.1, port: 0, buffer_threshold_bytes: 1024 }\n` +
        `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:${upstream.port}", retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 2, success_threshold: 1, timeout_seconds: 30 } }\n`,
    );
  });
  afterAll(async () => {
    await px?.stop();
  });

  test("two streamed bodies cut mid-way open it (they counted as successes: the breaker and failover never learned); the next request is refused at once", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await curl(px.url("/b/cl"));
      expect(r.code).not.toBe(0); // cut, never clean
    }
    const refused = await fetch(px.url("/b/whole"));
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toBe("CircuitOpen");
  });
});
