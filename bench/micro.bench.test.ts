/**
 * Routing among 100 buckets, and loading a 100-bucket config.
 * Run: bun test bench/micro.bench.test.ts   (targets: routing ≤ 200 ns per request; no time
 * assertions here — the figures are printed; `bun test` runs this file, so it stays short).
 */
import { expect, test, setDefaultTimeout } from "bun:test";

// Figures, not assertions on time; on a loaded machine a measurement can take longer than bun's 5 s default.
setDefaultTimeout(120_000);
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, parseConfig } from "../src/config/load.ts";
import { normalizePath, Router } from "../src/router.ts";
import { measure } from "./measure.ts";

const N = 100;
/** A mix of prefix shapes: one segment, two segments, and a root bucket. */
const prefixes = Array.from({ length: N }, (_, i) => (i === 0 ? "/" : i % 3 === 0 ? `/tenant-${i}/assets` : `/bucket-${i}`));

function config100(): string {
  let y = "server: { port: 0 }\nbuckets:\n";
  for (let i = 0; i < N; i++) {
    y += `  - name: b${i}\n    path_prefix: ${prefixes[i]}\n    s3: { bucket: data-${i}, region: eu-west-1, endpoint: "http://127.0.0.1:9000", access_key: "AKID${i}", secret_key: "secret-${i}" }\n`;
    if (i % 4 === 0) y += "    cache: { enabled: true, ttl_seconds: 60 }\n";
  }
  return y;
}

test("routing among 100 buckets (normalizePath + Router.match)", () => {
  const router = new Router(prefixes.map((prefix, i) => ({ prefix, bucket: { name: `b${i}` } })));
  // Request paths spread over every bucket, plus misses that fall to the root bucket. Built as
  // fresh strings (as a request's URL would be), cycled so no single string stays hot.
  const paths = Array.from({ length: 1024 }, (_, i) => {
    const b = i % N;
    return b === 0 ? `/unknown-${i}/file.bin` : `${prefixes[b]}/dir/obj-${i}.jpg`;
  });
  for (const [i, p] of paths.entries()) {
    const r = router.match(normalizePath(p))!;
    expect(r.bucket.name).toBe(`b${i % N}`);
  }
  const match = measure((i) => router.match(paths[i & 1023]), 1_000_000);
  const full = measure((i) => router.match(normalizePath(paths[i & 1023])), 1_000_000);
  console.log(`Router.match, 100 buckets: ${match.toFixed(0)} ns/op; normalizePath + match: ${full.toFixed(0)} ns/op (target ≤ 200 ns)`);
  expect(match).toBeGreaterThan(0);
});

test("config load of 100 buckets (YAML parse + schema + validation)", async () => {
  const text = config100();
  const cfg = parseConfig(text);
  expect(cfg.buckets.length).toBe(N);
  const parse = measure(() => parseConfig(text), 100, 10);
  const dir = mkdtempSync(join(tmpdir(), "yata-micro-"));
  try {
    const file = join(dir, "config.yaml");
    writeFileSync(file, text);
    expect((await loadConfig(file)).buckets.length).toBe(N);
    const start = Bun.nanoseconds();
    for (let i = 0; i < 50; i++) await loadConfig(file);
    const load = (Bun.nanoseconds() - start) / 50;
    console.log(`parseConfig, 100 buckets: ${(parse / 1e6).toFixed(2)} ms; loadConfig (file): ${(load / 1e6).toFixed(2)} ms`);
    const router = new Router(cfg.buckets.map((b) => ({ prefix: b.path_prefix, bucket: b })));
    const build = measure(() => new Router(cfg.buckets.map((b) => ({ prefix: b.path_prefix, bucket: b }))), 10_000, 1000);
    console.log(`Router build, 100 buckets: ${(build / 1000).toFixed(1)} µs`);
    expect(router.match("/bucket-5/x")?.bucket.name).toBe("b5");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
