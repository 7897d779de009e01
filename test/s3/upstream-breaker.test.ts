/**
 * BucketUpstream through its circuit breaker: a request whose client went away (or whose upload
 * body failed) says nothing about the upstream, so it counts neither as a success nor as a
 * failure. Counted as a success, a half-open probe abandoned by its client closed the breaker
 * over a dead upstream, and clients whose own timeout is shorter than s3.timeout reset the
 * failure streak each time, so a dead upstream never opened it.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import type { Socket } from "bun";
import { parseConfig } from "../../src/config/load.ts";
import { ProxyError } from "../../src/errors.ts";
import { UpstreamPools } from "../../src/s3/http1/index.ts";
import { abandonUpstream, BucketUpstream, RequestBodyError } from "../../src/s3/upstream.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

function bucket(breaker: string, endpoint = "http://dead.test:9000") {
  return parseConfig(
    `buckets:
  - name: b
    path_prefix: /b
    s3: { bucket: bk, region: us-east-1, endpoint: "${endpoint}", access_key: AK, secret_key: SK, timeout: 30,
          retry: { max_attempts: 1, initial_backoff_ms: 1, max_backoff_ms: 1 },
          circuit_breaker: { ${breaker} } }
`,
    { env: {} },
  ).buckets[0];
}

/**
 * A fetch whose every call waits, until the test settles it: `fail()` rejects the oldest waiting
 * call as a reset connection would; the client's abort rejects it with the abort reason.
 */
function controlledFetch() {
  const waiting: Array<(err: unknown) => void> = [];
  let calls = 0;
  const impl = ((_url: unknown, init?: RequestInit) => {
    calls++;
    return new Promise<Response>((_resolve, reject) => {
      waiting.push(reject);
      init?.signal?.addEventListener(
        "abort",
        () => {
          waiting.splice(waiting.indexOf(reject), 1);
          reject(init.signal!.reason);
        },
        { once: true },
      );
    });
  }) as typeof fetch;
  return {
    impl,
    get calls() {
      return calls;
    },
    fail() {
      waiting.shift()!(new TypeError("The socket connection was closed unexpectedly"));
    },
  };
}

const timing = () => ({ upstreamMs: 0, attempts: 0 });

/** A GET that the upstream fails (a connection reset: 502). */
async function failing(up: BucketUpstream, f: ReturnType<typeof controlledFetch>): Promise<void> {
  const before = f.calls;
  const p = up.fetchObject("GET", "k", {}, new AbortController().signal, timing());
  await waitFor(() => f.calls > before);
  f.fail();
  expect(((await p.catch((e) => e)) as ProxyError).status).toBeGreaterThanOrEqual(500);
}

/** A GET whose client goes away while the upstream has not answered. */
async function abandoned(up: BucketUpstream, f: ReturnType<typeof controlledFetch>): Promise<void> {
  const before = f.calls;
  const client = new AbortController();
  const p = up.fetchObject("GET", "k", {}, client.signal, timing());
  await waitFor(() => f.calls > before);
  client.abort(new Error("client left"));
  expect(((await p.catch((e) => e)) as Error).message).toBe("client left");
}

describe("BucketUpstream's breaker and requests the upstream did not get to answer", () => {
  test("half-open: a probe whose client went away does not close the breaker; its slot is freed for the next probe", async () => {
    const f = controlledFetch();
    const up = new BucketUpstream(bucket("failure_threshold: 1, success_threshold: 1, timeout_seconds: 0.05, half_open_max_requests: 1"), { fetch: f.impl });
    await failing(up, f);
    expect(up.breaker!.state).toBe("open");
    await waitFor(() => up.breaker!.state === "half_open", { message: "the breaker's timeout" });
    await abandoned(up, f);
    expect(up.breaker!.state).toBe("half_open");
    // the next probe is admitted (the slot was freed) and its failure opens the breaker again
    await failing(up, f);
    expect(up.breaker!.state).toBe("open");
  });

  test("closed: requests abandoned by their clients do not reset the failure streak, so a dead upstream still opens the breaker", async () => {
    const f = controlledFetch();
    const up = new BucketUpstream(bucket("failure_threshold: 2, success_threshold: 1, timeout_seconds: 60, half_open_max_requests: 1"), { fetch: f.impl });
    await failing(up, f);
    await abandoned(up, f);
    expect(up.breaker!.state).toBe("closed");
    await failing(up, f);
    expect(up.breaker!.state).toBe("open");
  });

  test("a failed upload body is neither a success nor a failure", async () => {
    const up = new BucketUpstream(bucket("failure_threshold: 1, success_threshold: 1, timeout_seconds: 0.05, half_open_max_requests: 1"), {
      // a reset connection for the GET; an upload's body is read as fetch reads it, then answered
      fetch: (async (_url: unknown, init?: RequestInit) => {
        if (init?.body == null) throw new TypeError("The socket connection was closed unexpectedly");
        await new Response(init.body).arrayBuffer();
        return new Response(null, { status: 200 });
      }) as unknown as typeof fetch,
    });
    await up.fetchObject("GET", "k", {}, new AbortController().signal, timing()).catch(() => {});
    await waitFor(() => up.breaker!.state === "half_open", { message: "the breaker's timeout" });
    // a PUT whose source stream fails: the upstream never got to answer
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        c.error(new Error("client's upload broke"));
      },
    });
    const err = await up.send({ method: "PUT", key: "k", body, contentLength: 10, signal: new AbortController().signal, timing: timing() }).catch((e) => e);
    expect(err).toBeInstanceOf(RequestBodyError);
    expect(up.breaker!.state).toBe("half_open");
  });
});

describe("writes given up by server.request_timeout before they were sent", () => {
  test("a write given up while an authorizer decided is not sent and charges no breaker (as a read given up: fetchObject)", async () => {
    let sent = 0;
    const up = new BucketUpstream(bucket("failure_threshold: 1, success_threshold: 1, timeout_seconds: 60, half_open_max_requests: 1"), {
      fetch: (async (_url: unknown, init?: RequestInit) => {
        if (init?.signal?.aborted) throw init.signal.reason;
        sent++;
        return new Response(null, { status: 200 });
      }) as unknown as typeof fetch,
    });
    const signal = new AbortController().signal;
    const given = () => {
      const t = timing();
      abandonUpstream(t, new ProxyError("GatewayTimeout", { detail: "server.request_timeout" }));
      return t;
    };
    const bytes = await up.send({ method: "PUT", key: "k", body: new TextEncoder().encode("abc"), signal, timing: given() }).catch((e) => e);
    expect((bytes as ProxyError).code).toBe("GatewayTimeout");
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}), cancel: () => void (cancelled = true) });
    const streamed = await up.send({ method: "PUT", key: "s", body: stream, contentLength: 3, signal, timing: given() }).catch((e) => e);
    expect((streamed as ProxyError).code).toBe("GatewayTimeout");
    expect(cancelled).toBe(true);
    const post = await up.send({ method: "POST", key: "", query: [["delete", ""]], body: new TextEncoder().encode("<Delete/>"), signal, timing: given() }).catch((e) => e);
    expect((post as ProxyError).code).toBe("GatewayTimeout");
    expect(sent).toBe(0);
    // the upstream was never asked: its breaker is still closed, and the bucket's next request goes out
    expect(up.breaker!.state).toBe("closed");
    expect((await up.fetchObject("GET", "k", {}, signal, timing())).status).toBe(200);
    expect(sent).toBe(1);
  });
});

describe("half-open probe slots and uploads", () => {
  test("a streamed upload (its body at its client's pace) takes no probe slot: reads are still admitted, and its outcome still counts", async () => {
    const f = controlledFetch();
    const up = new BucketUpstream(bucket("failure_threshold: 1, success_threshold: 1, timeout_seconds: 0.05, half_open_max_requests: 1"), { fetch: f.impl });
    await failing(up, f);
    await waitFor(() => up.breaker!.state === "half_open", { message: "the breaker's timeout" });
    // a slow client's upload: its body never ends while the test runs
    const client = new AbortController();
    const body = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) });
    const put = up.send({ method: "PUT", key: "big", body, contentLength: 1 << 20, signal: client.signal, timing: timing() }).catch((e) => e);
    await waitFor(() => f.calls === 2);
    // the probe slot is still free: a read is sent (not refused CircuitOpen)
    const get = up.fetchObject("GET", "k", {}, new AbortController().signal, timing()).catch((e) => e);
    await waitFor(() => f.calls === 3, { message: "the read sent while the upload runs" });
    // the upload's client leaves (counts neither way); the read's failure reopens the breaker
    client.abort(new Error("client left"));
    expect(((await put) as Error).message).toBe("client left");
    expect(up.breaker!.state).toBe("half_open");
    f.fail();
    expect(((await get) as ProxyError).status).toBeGreaterThanOrEqual(500);
    expect(up.breaker!.state).toBe("open");
  });
});

/** A raw upstream on 127.0.0.1 answering each request (by its path) as `answer` writes. */
function answering(answer: (path: string, s: Socket<undefined>) => void) {
  return Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, d) {
        answer(d.toString("latin1").split(" ")[1], s);
      },
    },
  });
}

/** The bucket on the own client (bodies over 1 KiB streamed), with the breaker `breaker`, toward 127.0.0.1:`port`. */
function ownClient(breaker: string, port: number, pools: UpstreamPools): BucketUpstream {
  const up = new BucketUpstream(bucket(breaker, `http://127.0.0.1:${port}`), { client: "auto", pools, bufferBodyUpTo: 1024 });
  expect(up.pool).toBeDefined();
  return up;
}

describe("BucketUpstream's breaker and bodies of requests admitted in an earlier state", () => {
  test("own client: a body cut after the breaker went open, half-open and closed again does not reopen it", async () => {
    // GET /bk/big: a head and part of a large body, then held (cut when the test says);
    // GET /bk/fail: 500; GET /bk/ok: a small 200.
    const held: Socket<undefined>[] = [];
    const srv = answering((path, s) => {
      if (path.endsWith("/big")) {
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${"x".repeat(5000)}`);
        held.push(s);
      } else if (path.endsWith("/fail")) s.write("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
      else s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    const pools = new UpstreamPools();
    try {
      const up = ownClient("failure_threshold: 1, success_threshold: 1, timeout_seconds: 0.05, half_open_max_requests: 1", srv.port, pools);
      const get = (key: string) => up.fetchObject("GET", key, {}, new AbortController().signal, timing());
      // a long download admitted while closed: its head succeeded, its body streams
      const big = await get("big");
      expect(big.status).toBe(200);
      const bigBody = big.arrayBuffer().then(
        () => "whole",
        () => "failed",
      );
      (await get("fail")).body?.cancel();
      expect(up.breaker!.state).toBe("open");
      await waitFor(() => up.breaker!.state === "half_open", { message: "the breaker's timeout" });
      expect(await (await get("ok")).text()).toBe("ok");
      expect(up.breaker!.state).toBe("closed");
      // now the upstream cuts the old download
      await waitFor(() => held.length === 1);
      held[0].end();
      expect(await bigBody).toBe("failed");
      expect(up.breaker!.state).toBe("closed");
    } finally {
      pools.close();
      srv.stop(true);
    }
  });
});

describe("BucketUpstream's breaker and streamed bodies that end whole", () => {
  test("own client: a body delimited by the connection's close that ends cleanly resets the body-failure streak, as one framed by a length or chunks does", async () => {
    // GET /bk/cut: a head and part of a long body, then the connection closed (a cut);
    // GET /bk/whole: a body without a length (HTTP/1.0, until close), sent whole, then closed.
    const srv = answering((path, s) => {
      if (path.endsWith("/cut")) s.end(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${"x".repeat(5000)}`);
      else s.end(`HTTP/1.0 200 OK\r\n\r\n${"y".repeat(5000)}`);
    });
    const pools = new UpstreamPools();
    try {
      const up = ownClient("failure_threshold: 2, success_threshold: 1, timeout_seconds: 60, half_open_max_requests: 1", srv.port, pools);
      const body = async (key: string) => {
        const res = await up.fetchObject("GET", key, {}, new AbortController().signal, timing());
        expect(res.status).toBe(200);
        return res.arrayBuffer().then(
          (b) => `whole ${b.byteLength}`,
          () => "failed",
        );
      };
      expect(await body("cut")).toBe("failed");
      expect(await body("whole")).toBe("whole 5000");
      expect(await body("cut")).toBe("failed");
      // one failure since the whole body: not failure_threshold (2) in a row
      expect(up.breaker!.state).toBe("closed");
    } finally {
      pools.close();
      srv.stop(true);
    }
  });
});
