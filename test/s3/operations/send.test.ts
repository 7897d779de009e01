/**
 * BucketUpstream.send against a raw TCP server, on both clients: what goes on the wire for a
 * request body (exact Content-Length, never chunked), and that a body that fails, runs short or
 * long, or is abandoned never reaches the server whole.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ProxyError } from "../../../src/errors.ts";
import { RequestBodyError } from "../../../src/s3/upstream.ts";
import { waitFor } from "../../helpers/wait.ts";
import { CLIENTS, ctx, generated, headerOf, makeUpstream, patternBytes, rawServer } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const up = (client: (typeof CLIENTS)[number], port: number, extra: { timeoutSeconds?: number } = {}) =>
  makeUpstream(client, { bucket: "b", endpoint: `http://127.0.0.1:${port}`, accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret", ...extra });

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe.each(CLIENTS)("send() on the %s client: an answer lost after the request went out", (client) => {
  // The server takes each request whole (as if it applied it), then cuts the connection unanswered.
  const cut = () => rawServer({ respond: () => null });
  const lost = async (req: Parameters<ReturnType<typeof up>["upstream"]["send"]>[0]) => {
    using srv = cut();
    using u = up(client, srv.port);
    const err = await rejection(u.upstream.send(req));
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).status).toBeGreaterThanOrEqual(500);
    return srv.requests().length;
  };
  const body = new TextEncoder().encode("<CompleteMultipartUpload/>");

  test("not idempotent (a POST other than DeleteObjects, a conditional write): sent once, never again (re-sent, a conditional create that won was answered 412, a completed upload NoSuchUpload)", async () => {
    expect(await lost({ method: "POST", key: "k", query: [["uploadId", "U1"]], body, ...ctx() })).toBe(1);
    expect(await lost({ method: "POST", key: "k", query: [["uploads", ""]], ...ctx() })).toBe(1);
    expect(await lost({ method: "PUT", key: "k", headers: { "if-none-match": "*" }, body: new Uint8Array(5000), ...ctx() })).toBe(1);
    expect(await lost({ method: "PUT", key: "k", headers: { "if-match": '"abc"' }, body: new Uint8Array(10), ...ctx() })).toBe(1);
    expect(await lost({ method: "PUT", key: "k", headers: { "x-amz-copy-source": "/b/src", "if-none-match": "*" }, ...ctx() })).toBe(1);
  });

  test("idempotent (PUT, DELETE, DeleteObjects): retried as configured (3 attempts)", async () => {
    expect(await lost({ method: "PUT", key: "k", body: new Uint8Array(5000), ...ctx() })).toBeGreaterThanOrEqual(3);
    expect(await lost({ method: "DELETE", key: "k", ...ctx() })).toBeGreaterThanOrEqual(3);
    expect(await lost({ method: "POST", key: "", query: [["delete", ""]], body, ...ctx() })).toBeGreaterThanOrEqual(3);
  });

  test("a POST that never reached the upstream (connection refused) is retried: nothing was sent", async () => {
    const srv = rawServer();
    const port = srv.port;
    srv[Symbol.dispose]();
    using u = up(client, port);
    const c = ctx();
    await rejection(u.upstream.send({ method: "POST", key: "k", query: [["uploadId", "U1"]], body, ...c }));
    expect(c.timing.attempts).toBe(3);
  });
});

describe.each(CLIENTS)("send() on the %s client", (client) => {
  test("a streamed body goes out with its exact Content-Length (never chunked), byte for byte", async () => {
    using srv = rawServer({ keepBody: true });
    using u = up(client, srv.port);
    const size = 300_001;
    const res = await u.upstream.send({ method: "PUT", key: "dir/a b.bin", body: generated(size, { chunkSize: 7000 }), contentLength: size, ...ctx() });
    expect(res.status).toBe(200);
    const r = srv.requests()[0];
    expect(r.head).toStartWith("PUT /b/dir/a%20b.bin HTTP/1.1\r\n");
    expect(headerOf(r.head, "content-length")).toBe(String(size));
    expect(headerOf(r.head, "transfer-encoding")).toBeUndefined();
    expect(headerOf(r.head, "x-amz-content-sha256")).toBe("UNSIGNED-PAYLOAD");
    expect(Buffer.concat(r.body).equals(Buffer.from(patternBytes(size)))).toBe(true);
  });

  test("bytes: Content-Length and their SHA-256 as the payload hash; no body on PUT/POST → Content-Length: 0", async () => {
    using srv = rawServer({ keepBody: true });
    using u = up(client, srv.port);
    const body = new TextEncoder().encode("<Delete/>");
    await u.upstream.send({ method: "POST", key: "", query: [["delete", ""]], body, ...ctx() });
    await u.upstream.send({ method: "POST", key: "k", query: [["uploads", ""]], ...ctx() });
    await u.upstream.send({ method: "DELETE", key: "k", ...ctx() });
    const [del, create, remove] = srv.requests().map((r) => r.head);
    expect(del).toStartWith("POST /b?delete= HTTP/1.1\r\n");
    expect(headerOf(del, "content-length")).toBe(String(body.byteLength));
    expect(headerOf(del, "x-amz-content-sha256")).toBe(new Bun.CryptoHasher("sha256").update(body).digest("hex"));
    expect(create).toStartWith("POST /b/k?uploads= HTTP/1.1\r\n");
    expect(headerOf(create, "content-length")).toBe("0");
    expect(headerOf(create, "x-amz-content-sha256")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(remove).toStartWith("DELETE /b/k HTTP/1.1\r\n");
  });

  test("a body stream that errors after N bytes: the server gets fewer than Content-Length and a closed socket", async () => {
    using srv = rawServer();
    using u = up(client, srv.port);
    const err = await rejection(u.upstream.send({ method: "PUT", key: "k", body: generated(1_000_000, { errorAfter: 200_000 }), contentLength: 1_000_000, ...ctx() }));
    expect(err).toBeInstanceOf(RequestBodyError);
    expect(((err as RequestBodyError).cause as Error).message).toBe("source failed");
    await waitFor(() => srv.conns[0]?.closed, { message: "the upstream connection to close" });
    expect(srv.requests()[0].bodyBytes).toBeLessThanOrEqual(200_000);
  });

  test("a stream that errors after its LAST byte: the last byte is never sent", async () => {
    using srv = rawServer();
    using u = up(client, srv.port);
    const size = 100_000;
    const err = await rejection(u.upstream.send({ method: "PUT", key: "k", body: generated(size, { errorAfter: size }), contentLength: size, ...ctx() }));
    expect(err).toBeInstanceOf(RequestBodyError);
    await waitFor(() => srv.conns[0]?.closed);
    // Batched writes (http1/request-body.ts) may hold back more than the last byte; never all of it.
    expect(srv.requests()[0].bodyBytes).toBeLessThan(size);
  });

  test("a stream longer or shorter than contentLength is refused before it completes the request", async () => {
    using srv = rawServer();
    using u = up(client, srv.port);
    const long = await rejection(u.upstream.send({ method: "PUT", key: "long", body: generated(150_000), contentLength: 100_000, ...ctx() }));
    expect(long).toBeInstanceOf(RequestBodyError);
    expect((long as Error).message).toBe("request body longer than its declared length of 100000 bytes");
    const short = await rejection(u.upstream.send({ method: "PUT", key: "short", body: generated(99_999), contentLength: 100_000, ...ctx() }));
    expect((short as Error).message).toBe("request body ended after 99999 of 100000 bytes");
    await waitFor(() => srv.conns.length === 2 && srv.conns.every((c) => c.closed));
    expect(srv.requests().map((r) => r.bodyBytes < 100_000)).toEqual([true, true]);
  });

  test("the client's abort mid-body cuts the upstream connection and cancels the source", async () => {
    using srv = rawServer();
    using u = up(client, srv.port);
    let cancelled = false;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent >= 50_000) return new Promise<void>(() => {}); // the client stops sending
        c.enqueue(new Uint8Array(10_000));
        sent += 10_000;
      },
      cancel() {
        cancelled = true;
      },
    }, { highWaterMark: 0 });
    const ac = new AbortController();
    const p = rejection(u.upstream.send({ method: "PUT", key: "k", body, contentLength: 1_000_000, ...ctx(ac.signal) }));
    await waitFor(() => srv.requests()[0]?.bodyBytes === 50_000, { message: "50 kB to arrive" });
    const reason = new Error("client went away");
    ac.abort(reason);
    expect(await p).toBe(reason);
    await waitFor(() => srv.conns[0].closed && cancelled, { message: () => `connection closed (${srv.conns[0].closed}) and source cancelled (${cancelled})` });
    expect(srv.requests()[0].bodyBytes).toBe(50_000);
  });

  test("a replayable body (bytes) is retried after a 503 and sent whole again; a streamed one is not retried", async () => {
    let n = 0;
    using srv = rawServer({ keepBody: true, respond: () => (n++ % 2 === 0 ? "HTTP/1.1 503 Slow Down\r\ncontent-length: 0\r\n\r\n" : "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n") });
    using u = up(client, srv.port);
    const body = patternBytes(10_000);
    const c1 = ctx();
    expect((await u.upstream.send({ method: "PUT", key: "k", body, ...c1 })).status).toBe(200);
    expect(c1.timing.attempts).toBe(2);
    const bodies = srv.requests().map((r) => Buffer.concat(r.body));
    expect(bodies.length).toBe(2);
    for (const b of bodies) expect(b.equals(Buffer.from(body))).toBe(true);
    const c2 = ctx();
    expect((await u.upstream.send({ method: "PUT", key: "k", body: generated(10_000), contentLength: 10_000, ...c2 })).status).toBe(503);
    expect(c2.timing.attempts).toBe(1);
  });

  test("an upstream that stops reading the body is a timeout (504), not a hang", async () => {
    using srv = rawServer();
    using u = up(client, srv.port, { timeoutSeconds: 0.5 });
    // the server never reads: pause every socket as it opens
    const paused = setInterval(() => srv.conns.forEach((c) => c.socket.pause()), 1);
    try {
      const started = performance.now();
      const size = 512 * 1024 * 1024;
      const err = await rejection(u.upstream.send({ method: "PUT", key: "k", body: generated(size, { chunkSize: 1 << 20 }), contentLength: size, ...ctx() }));
      expect(err).toBeInstanceOf(ProxyError);
      expect((err as ProxyError).code).toBe("GatewayTimeout");
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      clearInterval(paused);
    }
  });

  test("a stream without its length is refused (type and run time): nothing is sent", async () => {
    using srv = rawServer();
    using u = up(client, srv.port);
    // @ts-expect-error a streamed body must declare contentLength
    const p = u.upstream.send({ method: "PUT", key: "k", body: generated(10), ...ctx() });
    const err = await rejection(p);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toBe("a streamed request body needs its exact length (contentLength)");
    expect(await rejection(u.upstream.send({ method: "PUT", key: "k", body: generated(10), contentLength: -1, ...ctx() }))).toBeInstanceOf(TypeError);
    expect(await rejection(u.upstream.send({ method: "PUT", key: "k", body: new Uint8Array(3), contentLength: 4, ...ctx() }))).toBeInstanceOf(TypeError);
    expect(await rejection(u.upstream.send({ method: "PUT", key: "k", payloadHash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", ...ctx() }))).toBeInstanceOf(TypeError);
    expect(await rejection(u.upstream.send({ method: "PUT", key: "k", headers: { "x-a": "v\r\nx-b: 1" }, ...ctx() }))).toBeInstanceOf(TypeError);
    expect(srv.conns.length).toBe(0);
  });

  test("a stream already read or locked is a RequestBodyError, not an upstream failure", async () => {
    using srv = rawServer();
    using u = up(client, srv.port);
    const body = generated(10);
    body.getReader(); // locked
    expect(await rejection(u.upstream.send({ method: "PUT", key: "k", body, contentLength: 10, ...ctx() }))).toBeInstanceOf(RequestBodyError);
  });
});
