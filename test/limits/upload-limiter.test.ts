import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseConfig } from "../../src/config/load.ts";
import { UploadLimiter } from "../../src/limits/concurrency.ts";
import { App } from "../../src/app.ts";
import { nullLogger } from "../../src/observe/log.ts";

setDefaultTimeout(30_000);

describe("UploadLimiter (server.max_concurrent_uploads, _per_ip)", () => {
  test("with the default caps one address can hold at most half the upload slots (64 of 128): another address still gets in (with 64 per address it took all 128)", () => {
    const cfg = parseConfig(`server: { address: 127.0.0.1, port: 0 }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" }\n`);
    const lim = new UploadLimiter(cfg.server.max_concurrent_uploads, cfg.server.max_concurrent_uploads_per_ip);
    let held = 0;
    for (let i = 0; i < 200; i++) if (lim.tryEnter(() => "10.0.0.1") !== "uploads_per_ip") held++;
    expect(held).toBe(64);
    expect(lim.tryEnter(() => "10.0.0.2")).toEqual({ ip: "10.0.0.2" });
  });

  test("an address at its cap is refused while others are admitted; leaving frees its slot", () => {
    const lim = new UploadLimiter(10, 2);
    expect(lim.tryEnter(() => "a")).toBe("ok"); // below the per-address cap in all: not counted per address
    expect(lim.tryEnter(() => "a")).toBe("ok");
    expect(lim.tryEnter(() => "a")).toEqual({ ip: "a" });
    expect(lim.tryEnter(() => "a")).toEqual({ ip: "a" });
    expect(lim.tryEnter(() => "a")).toBe("uploads_per_ip");
    expect(lim.tryEnter(() => "b")).toEqual({ ip: "b" });
    lim.leave("a");
    expect(lim.tryEnter(() => "a")).toEqual({ ip: "a" });
  });

  test("an upload whose address is not known (its client gone before admission: the listener no longer knows the peer) gives its slot back whole: the \"\" address never fills up (it held a slot per such upload for good, then refused them all)", () => {
    const lim = new UploadLimiter(10, 2);
    expect(lim.tryEnter(() => "a")).toBe("ok");
    expect(lim.tryEnter(() => "a")).toBe("ok"); // from here on, addresses are asked
    for (let i = 0; i < 5; i++) {
      const r = lim.tryEnter(() => "");
      expect(r).toBe("ok");
      lim.leave(typeof r === "object" ? r.ip : "");
    }
    expect(lim.inFlight).toBe(2);
  });

  test("with server.workers, each process gets 1/N of both caps: one address still holds at most half of a worker's slots (the per-address cap was left whole: it took them all)", async () => {
    const cfg = parseConfig(`server: { address: 127.0.0.1, port: 0, workers: 4 }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" }\n`);
    for (const share of [1, 2, 4]) {
      const app = await App.create(cfg, { log: nullLogger, share, probeIntervalMs: 3_600_000 });
      try {
        let held = 0;
        for (let i = 0; i < 200; i++) if (app.uploads.tryEnter(() => "203.0.113.9") !== "uploads_per_ip") held++;
        expect([share, held]).toEqual([share, 128 / share / 2]);
        expect(app.uploads.tryEnter(() => "203.0.113.10")).toEqual({ ip: "203.0.113.10" });
      } finally {
        await app.close();
      }
    }
  });

  test("with many workers a process's part of each cap keeps a floor (8 uploads, 4 per address: counted from 4, so up to 8): 1/32 of the defaults was 4 and 1, and aws s3 sync's 10 concurrent uploads, spread over the processes at random, met SlowDown whenever three landed on one", async () => {
    const cfg = parseConfig(`server: { address: 127.0.0.1, port: 0, workers: 32 }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" }\n`);
    const app = await App.create(cfg, { log: nullLogger, share: 32, probeIntervalMs: 3_600_000 });
    try {
      let held = 0;
      for (let i = 0; i < 200; i++) {
        const r = app.uploads.tryEnter(() => "203.0.113.9");
        if (r === "ok" || typeof r === "object") held++;
      }
      expect(held).toBe(8);
      expect([app.uploads.max, app.uploads.maxPerIp]).toEqual([8, 4]);
      expect([app.concurrency.max, app.concurrency.maxPerIp]).toEqual([31, 8]);
    } finally {
      await app.close();
    }
    // (a cap set below the floor is kept as set)
    const small = await App.create(parseConfig(`server: { address: 127.0.0.1, port: 0, workers: 32, max_concurrent_uploads: 2, max_concurrent_uploads_per_ip: 1 }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9" }\n`), { log: nullLogger, share: 32, probeIntervalMs: 3_600_000 });
    try {
      expect([small.uploads.max, small.uploads.maxPerIp]).toEqual([2, 1]);
    } finally {
      await small.close();
    }
  });
});
