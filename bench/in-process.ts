/**
 * What the in-process benchmarks share (bench/signed-vs-anon.ts, bench/inproc-ab.ts): the proxy's
 * config (plain anonymous, signed and JWT buckets, a read-write sink, the S3 front with one client
 * identity that may read `signed` and write `sink`), that client's keys, and a fetch-shaped stub
 * upstream answering a 1 KiB GET and a bodiless PUT with S3's headers.
 */
export const STUB_BODY = new Uint8Array(1024).fill(97);

export const stubUpstream = (async (_url: string | URL | Request, init?: RequestInit) =>
  init?.method === "PUT"
    ? new Response(null, { headers: { "content-length": "0", etag: '"e"' } })
    : new Response(init?.method === "HEAD" ? null : STUB_BODY, { headers: { "content-length": "1024", etag: '"e"', "content-type": "application/octet-stream" } })) as typeof fetch;

/** The S3 front's client (one signature replayed: the config's clock skew allows an hour). */
export const BENCH_S3_CLIENT = { accessKeyId: "AKIABENCHCLIENT00000", secretAccessKey: "bench-client-secret-0123456789abcdef" };

export function inProcessYaml(endpoint: string): string {
  return `server: { address: 127.0.0.1, port: 0, max_concurrent_requests: 100000 }
logging: { level: warn }
buckets:
  - name: anon
    path_prefix: /anon
    s3: { bucket: bucket, endpoint: "${endpoint}" }
  - name: signed
    path_prefix: /signed
    s3: { bucket: bucket, endpoint: "${endpoint}", access_key: AKIABENCH0000000000, secret_key: "bench-secret-0123456789abcdefghijklmn" }
  - name: jwt
    path_prefix: /jwt
    auth: { enabled: true }
    s3: { bucket: bucket, endpoint: "${endpoint}", access_key: AKIABENCH0000000000, secret_key: "bench-secret-0123456789abcdefghijklmn" }
  - name: sink
    path_prefix: /sink
    access: read-write
    s3: { bucket: sink, endpoint: "${endpoint}", access_key: AKIABENCH0000000000, secret_key: "bench-secret-0123456789abcdefghijklmn" }
jwt: { enabled: true, secret: "bench-jwt-secret-0123456789abcdefgh" }
s3_api:
  address: 127.0.0.1
  port: 0
  max_clock_skew_seconds: 3600
  credentials:
    - { access_key_id: "AKIABENCHCLIENT00000", secret_access_key: "bench-client-secret-0123456789abcdef", identity: bench, buckets: { signed: [read], sink: [write] } }
`;
}

/**
 * One source tree's App on this config with the stub upstream, each module imported from that tree
 * (its own module graph: trees side by side in one process), and what the A/B tools build with it.
 */
export async function treeApp(tree: string) {
  const { App } = await import(`${tree}/src/app.ts`);
  const { parseConfig } = await import(`${tree}/src/config/load.ts`);
  const { s3Front } = await import(`${tree}/src/fronts/s3/front.ts`);
  const { nullLogger } = await import(`${tree}/src/observe/log.ts`);
  const { createHandler } = await import(`${tree}/src/proxy/runner.ts`);
  const { S3Signer } = await import(`${tree}/src/s3/sigv4.ts`);
  const app = await App.create(parseConfig(inProcessYaml("http://upstream.test:9000"), { env: {} }), { log: nullLogger, fetch: stubUpstream, probeIntervalMs: 3_600_000 });
  return { app, s3Front, createHandler, S3Signer };
}

/** The median of `xs` (the cold-* tools' figure: a round's median call, the median over rounds). */
export function median(xs: ArrayLike<number>): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The cold-* tools' `walk`: reads (and bumps) one word per 64-byte line of a `mib` MiB buffer, evicting the data caches. */
export function cacheWalker(mib: number): () => void {
  const junk = new Uint32Array((mib << 20) / 4);
  return () => {
    for (let i = 0; i < junk.length; i += 16) junk[i]++;
  };
}

/**
 * The cold-* tools' rounds: every item of every tree, hot and walked, in each of R+1 rounds (the
 * first a warm-up, not kept), the trees', the items' and the modes' order reversed every other
 * round. Keyed `tree\tname\tmode`.
 */
export async function interleavedRounds<T extends { name: string }>(R: number, lists: T[][], round: (item: T, mode: string) => Promise<number>): Promise<Map<string, number[]>> {
  const times = new Map<string, number[]>();
  for (let r = 0; r <= R; r++) {
    const order = lists.map((_, i) => i);
    if (r % 2) order.reverse();
    for (const ti of order) {
      const list = r % 2 ? [...lists[ti]!].reverse() : lists[ti]!;
      for (const item of list) {
        for (const mode of r % 2 ? ["walk", "hot"] : ["hot", "walk"]) {
          const x = await round(item, mode);
          const key = `${ti}\t${item.name}\t${mode}`;
          if (r > 0) (times.get(key) ?? times.set(key, []).get(key)!).push(x);
        }
      }
    }
  }
  return times;
}

/** Each later tree against the first: per item and mode, the median paired difference and in how many rounds it was lower. */
export function printPairedDiffs(trees: string[], lists: Array<Array<{ name: string }>>, times: Map<string, number[]>, pad = 26): void {
  for (let ti = 1; ti < trees.length; ti++) {
    console.log(`${trees[ti]!.split("/").pop()} − ${trees[0]!.split("/").pop()}`);
    for (const item of lists[ti]!) {
      const parts = ["hot", "walk"].map((mode) => {
        const a = times.get(`0\t${item.name}\t${mode}`)!, b = times.get(`${ti}\t${item.name}\t${mode}`)!;
        const d = b.map((x, i) => x - a[i]!);
        return `${mode} ${median(d).toFixed(2).padStart(6)} (lower in ${d.filter((x) => x < 0).length} of ${d.length})`;
      });
      console.log(`  ${item.name.padEnd(pad)} ${parts.join("   ")}`);
    }
  }
}
