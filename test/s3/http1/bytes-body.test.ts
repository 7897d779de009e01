/**
 * Http1Pool: a bytes request body goes out in one write with its head, composed in a buffer the
 * pool reuses for every such request. Requests in flight at once, with bodies of different sizes
 * (below and above the reused buffer's cap), must each reach the server whole and byte-exact.
 */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { Http1Pool } from "../../../src/s3/http1/pool.ts";
import { rawServer } from "../operations/helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const stops: Array<() => void> = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 7 + (i >> 9)) & 0xff);

describe("Http1Pool: bytes bodies", () => {
  test("concurrent PUTs with different bodies (1 KiB to 300 KiB) each arrive whole and exact, with their own Content-Length", async () => {
    const srv = rawServer({ keepBody: true });
    stops.push(() => srv[Symbol.dispose]());
    const pool = new Http1Pool({ host: "127.0.0.1", port: srv.port, hostHeader: `127.0.0.1:${srv.port}` });
    stops.push(() => pool.close());
    const sizes = [1024, 70_000, 131_000, 300_000, 5, 64 * 1024, 200_000, 1];
    const bodies = sizes.map((n, k) => bytes(n, k));
    // Three waves: the reused buffer is written over between and within them.
    for (let wave = 0; wave < 3; wave++) {
      const answers = await Promise.all(bodies.map((b, k) => pool.request("PUT", `/w${wave}/k${k}`, { "x-k": String(k) }, { timeoutMs: 5000, body: b })));
      for (const r of answers) expect(r.status).toBe(200);
    }
    const got = srv.requests();
    expect(got).toHaveLength(3 * sizes.length);
    // Nothing but whole requests on the wire: no stray bytes before a head or after a body.
    for (const c of srv.conns) expect(c.pending.length).toBe(0);
    for (const r of got) {
      expect(r.head.startsWith("PUT /w")).toBe(true);
      const k = Number(/ \/w\d\/k(\d+) /.exec(r.head)![1]);
      expect(/\r\ncontent-length: (\d+)/i.exec(r.head)![1]).toBe(String(sizes[k]));
      expect(new Uint8Array(Buffer.concat(r.body))).toEqual(bodies[k]!);
    }
  });
});
