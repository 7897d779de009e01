/** Http1Pool: a streamed request body's batched writes (src/s3/http1/request-body.ts). */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { WRITE_BATCH_BYTES } from "../../../src/s3/http1/request-body.ts";
import { UpstreamProtocolError } from "../../../src/s3/http1/index.ts";
import { waitFor } from "../../helpers/wait.ts";
import { cleanup, pool, rawServer } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

afterEach(cleanup);

/** Bytes of the body received so far on the server's first connection (its buffer holds what follows the head). */
const received = (srv: ReturnType<typeof rawServer>) => srv.conns[0]?.buf.length ?? 0;

describe("Http1Pool: streamed request bodies", () => {
  test("chunks smaller and larger than a write batch arrive byte for byte, in order", async () => {
    const srv = rawServer(() => {});
    const p = pool(srv.port);
    const sizes = [1, 7000, WRITE_BATCH_BYTES - 1, 2, WRITE_BATCH_BYTES, 65_536, WRITE_BATCH_BYTES * 3 + 5, 10, 1];
    const chunks = sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + k) & 0xff));
    const total = sizes.reduce((a, b) => a + b, 0);
    let k = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (k < chunks.length) c.enqueue(chunks[k++]);
        else c.close();
      },
    });
    const answered = p.request("PUT", "/k", {}, { timeoutMs: 5000, body, contentLength: total });
    await waitFor(() => received(srv) === total, { message: "the whole body to arrive" });
    srv.conns[0].socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    expect((await answered).status).toBe(200);
    expect(Buffer.from(srv.conns[0].buf, "latin1").equals(Buffer.concat(chunks))).toBe(true);
  });

  test("releaseChunks: each whole chunk is freed once sent (copied into a batch, or taken whole by the socket: the 1 GiB copy in s3-front-upload-memory measures that); views and the held-back last byte are not; the bytes arrive exact", async () => {
    const srv = rawServer(() => {});
    const p = pool(srv.port);
    const sizes = [5000, WRITE_BATCH_BYTES * 2, 70_000, WRITE_BATCH_BYTES + 3];
    const chunks = sizes.map((n, k) => Uint8Array.from({ length: n }, (_, i) => (i * 17 + k) & 0xff));
    const expected = Buffer.concat(chunks.map((c) => Buffer.from(c)));
    // one view into a larger buffer (another owner's bytes around it): never freed
    const backing = new Uint8Array(10_000).fill(9);
    const view = backing.subarray(100, 1100);
    const all = [chunks[0]!, chunks[1]!, view, chunks[2]!, chunks[3]!];
    const total = expected.byteLength + view.byteLength;
    let k = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (k < all.length) c.enqueue(all[k++]!);
        else c.close();
      },
    });
    const answered = p.request("PUT", "/k", {}, { timeoutMs: 5000, body, contentLength: total, releaseChunks: true });
    await waitFor(() => received(srv) === total, { message: "the whole body to arrive" });
    srv.conns[0].socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    expect((await answered).status).toBe(200);
    const got = Buffer.from(srv.conns[0].buf, "latin1");
    expect(got.equals(Buffer.concat([expected.subarray(0, sizes[0]! + sizes[1]!), Buffer.from(view), expected.subarray(sizes[0]! + sizes[1]!)]))).toBe(true);
    // the whole chunks copied into a batch were freed; the one written as it is was freed if the
    // socket took it whole (else its tail waited for drain, still in use: kept), which the
    // kernel's buffer decides; the view and its buffer were not; nor the last chunk (sent as a
    // view before its held-back last byte)
    expect([chunks[0]!.byteLength, chunks[2]!.byteLength]).toEqual([0, 0]);
    expect([0, WRITE_BATCH_BYTES * 2]).toContain(chunks[1]!.byteLength);
    expect([view.byteLength, backing.byteLength, chunks[3]!.byteLength]).toEqual([1000, 10_000, WRITE_BATCH_BYTES + 3]);
  });

  test("without releaseChunks no chunk is touched", async () => {
    const srv = rawServer(() => {});
    const p = pool(srv.port);
    const chunks = [new Uint8Array(5000).fill(1), new Uint8Array(WRITE_BATCH_BYTES * 2).fill(2), new Uint8Array(10).fill(3)];
    const total = chunks.reduce((a, c) => a + c.byteLength, 0);
    let k = 0;
    const body = new ReadableStream<Uint8Array>({ pull: (c) => (k < chunks.length ? c.enqueue(chunks[k++]!) : c.close()) });
    const answered = p.request("PUT", "/k", {}, { timeoutMs: 5000, body, contentLength: total });
    await waitFor(() => received(srv) === total, { message: "the whole body to arrive" });
    srv.conns[0].socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    expect((await answered).status).toBe(200);
    expect(chunks.map((c) => c.byteLength)).toEqual([5000, WRITE_BATCH_BYTES * 2, 10]);
  });

  test("a slow source's bytes are not held back waiting for a full batch: the sweep writes them", async () => {
    const srv = rawServer(() => {});
    const p = pool(srv.port, { sweepIntervalMs: 20 });
    let ctrl!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctrl = c) });
    const answered = p.request("PUT", "/k", {}, { timeoutMs: 5000, body, contentLength: 2000 });
    ctrl.enqueue(new Uint8Array(1000).fill(1));
    // far less than a batch, and the source says nothing more until the upstream has it
    await waitFor(() => received(srv) === 1000, { message: "the first 1000 bytes to reach the upstream" });
    ctrl.enqueue(new Uint8Array(1000).fill(2));
    ctrl.close();
    await waitFor(() => received(srv) === 2000, { message: "the rest to arrive" });
    srv.conns[0].socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    expect((await answered).status).toBe(200);
  });
});

describe("Http1Pool: a streamed body never goes on a pooled socket", () => {
  test("an upstream that closed an idle keep-alive socket (racing its reuse) cannot fail a streamed upload: it gets a fresh connection", async () => {
    // The origin answers the first request on a connection and keeps it alive; a second request on
    // the same connection finds it gone (the origin closes on it, as a server whose idle timeout
    // fired just as the request was sent).
    const srv = rawServer((c, head) => {
      if (c.requests.length === 1) {
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        const answer = () => c.socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        if (length === 0) answer();
        else void waitFor(() => c.buf.length >= length).then(answer);
      } else c.socket.end();
    });
    const p = pool(srv.port);
    expect((await p.request("GET", "/warm", {}, { timeoutMs: 5000 })).status).toBe(200);
    expect(p.idleCount).toBe(1);
    const bytes = Uint8Array.from({ length: 300_000 }, (_, i) => i & 0xff);
    const body = new Response(bytes).body!;
    const res = await p.request("PUT", "/up", {}, { timeoutMs: 5000, body, contentLength: bytes.byteLength });
    expect(res.status).toBe(200);
    expect(srv.conns.length).toBe(2); // the upload opened its own
    expect(srv.conns[1]!.requests[0]).toStartWith("PUT /up ");
    expect(srv.conns[0]!.requests).toHaveLength(1); // the pooled socket was left alone
  });
});

describe("Http1Pool: an answer before the request body was all sent", () => {
  /** A body of `total` bytes whose first chunk is sent and whose rest never comes (the client is slow). */
  const halfSent = (total: number) => {
    let first = true;
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (!first) return new Promise<void>(() => {});
        first = false;
        c.enqueue(new Uint8Array(1000).fill(7));
      },
      cancel() {
        cancelled = true;
      },
    });
    return { body, total, cancelled: () => cancelled };
  };

  test("a 200 is the upstream's failure (it never got the object), and the body is no longer read; a 403 is relayed", async () => {
    const srv = rawServer((c) => {
      void waitFor(() => c.buf.length >= 1000).then(() =>
        c.socket.write(c.requests[0]!.startsWith("PUT /ok ") ? "HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 0\r\n\r\n" : "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"),
      );
    });
    const p = pool(srv.port);
    const ok = halfSent(1_000_000);
    const err = await p.request("PUT", "/ok", {}, { timeoutMs: 5000, body: ok.body, contentLength: ok.total }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamProtocolError);
    expect((err as Error).message).toContain("before the request body was sent");
    await waitFor(ok.cancelled, { message: "the body to be cancelled" });
    const refused = halfSent(1_000_000);
    expect((await p.request("PUT", "/no", {}, { timeoutMs: 5000, body: refused.body, contentLength: refused.total })).status).toBe(403);
  });

  test("so is a 200 before a bytes body's tail left the socket (a 32 MiB body, answered once its first bytes are in)", async () => {
    const srv = rawServer((c) => c.socket.write("HTTP/1.1 200 OK\r\netag: \"e\"\r\ncontent-length: 0\r\n\r\n"));
    const p = pool(srv.port);
    const err = await p.request("PUT", "/big", {}, { timeoutMs: 5000, body: new Uint8Array(32 * 1024 * 1024) }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpstreamProtocolError);
    expect((err as Error).message).toContain("before the request body was sent");
  });
});
