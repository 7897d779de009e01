/** UpstreamPools: the pools of one process, owned by the App — sharing, retiring on reload, closing. */
import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { UpstreamPools } from "../../../src/s3/http1/index.ts";
import { waitFor } from "../../helpers/wait.ts";
import { cleanup, T, ok, onCleanup, rawServer } from "./helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

afterEach(cleanup);

function owned(): UpstreamPools {
  const pools = new UpstreamPools();
  onCleanup(() => pools.close());
  return pools;
}

describe("UpstreamPools", () => {
  test("get() shares by endpoint, Host and buffering limit; close() closes them all", async () => {
    const srv = rawServer((c) => c.socket.write(ok("s")));
    const pools = owned();
    const a = pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "h1" });
    const b = pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "h1", maxIdle: 3 });
    const c = pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "h2" });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    // A different body-buffering limit (a reloaded buffer_threshold_bytes) gets its own pool.
    const d = pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "h1", bufferBodyUpTo: 4096 });
    expect(d).not.toBe(a);
    expect(pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "h1", bufferBodyUpTo: 4096 })).toBe(d);
    expect(pools.size).toBe(3);
    await (await a.request("GET", "/x", {}, T)).text();
    await (await c.request("GET", "/x", {}, T)).text();
    expect(a.idleCount + c.idleCount).toBe(2);
    pools.close();
    expect(pools.size).toBe(0);
    await waitFor(() => srv.openCount() === 0, { message: "pool sockets to close" });
    expect(pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "h1" })).not.toBe(a);
  });

  test("two instances share nothing", () => {
    const one = owned();
    const two = owned();
    expect(one.get({ host: "127.0.0.1", port: 1, hostHeader: "h" })).not.toBe(two.get({ host: "127.0.0.1", port: 1, hostHeader: "h" }));
  });

  test("retainOnly() retires the pools a reload dropped: idle sockets close, a request in flight finishes", async () => {
    let release: (() => void) | undefined;
    const srv = rawServer((c, head) => {
      if (head.startsWith("GET /slow")) release = () => c.socket.write(ok("late"));
      else c.socket.write(ok("s"));
    });
    const pools = owned();
    const old = pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "old" });
    const kept = pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "kept" });
    await (await old.request("GET", "/x", {}, T)).text();
    await (await kept.request("GET", "/x", {}, T)).text();
    const inflight = old.request("GET", "/slow", {}, T);
    await waitFor(() => release !== undefined, { message: "the slow request to arrive" });

    expect(pools.retainOnly([kept])).toBe(1);
    expect(pools.size).toBe(1);
    expect(old.idleCount).toBe(0); // the idle socket closed at once
    expect(kept.idleCount).toBe(1);
    release!();
    expect(await (await inflight).text()).toBe("late"); // not cut by the reload
    expect(old.idleCount).toBe(0); // and its socket is not pooled again
    // A straggler of the old generation still gets an answer, on a socket that is then closed.
    expect(await (await old.request("GET", "/x", {}, T)).text()).toBe("s");
    expect(old.idleCount).toBe(0);
    await waitFor(() => srv.openCount() === 1, { message: "only the kept pool's socket to stay open" });
    // The same options now make a fresh pool.
    expect(pools.get({ host: "127.0.0.1", port: srv.port, hostHeader: "old" })).not.toBe(old);
  });
});
