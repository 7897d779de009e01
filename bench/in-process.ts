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
