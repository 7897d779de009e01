/**
 * The side-by-side setup: one nginx origin (the "S3" stand-in: nginx ignores Authorization, serves
 * /bucket/key with ETag, Last-Modified, Content-Length, Range), one nginx peer with N workers
 * (static / proxy_pass keepalive / proxy_cache), and Yatagarasu with N workers (anonymous, SigV4,
 * HS256 JWT + SigV4, cached buckets; and the S3 front's verified GetObject on its own port).
 *
 * Uploads (issue 12): the origin also takes PUT: WebDAV (`dav_methods PUT`, 201/204, the file
 * written under its root) for the 100 MiB uploads of bench/uploads.ts through the read-write
 * bucket `uploads`, and `/sink/` (200, nothing stored) for the 1 KiB PutObject (scenario 11,
 * bucket `sink`), whose cost would otherwise be nginx writing a file per request.
 *
 * With `layers` (issue 13), two more Yatagarasu processes with N workers beside it, each with one
 * cache layer under test, so every hit is a hit of that layer: cache_layers [memory, disk] with a
 * 1 MiB memory item limit (the 100 MiB object is a disk hit, sent with sendfile), and
 * cache_layers [redis] against a redis-server started here (the 1 KiB object is a Redis GET on
 * every request). The main proxy's config, and so the memory-hit scenario, is unchanged.
 */
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RedisClient } from "bun";
import { type Ats, startAts } from "./ats.ts";
import { S3Signer } from "../src/s3/sigv4.ts";
import { type Fixture, freePort, MIB, type Nginx, type Proxy, sleep, startNginx, startProxy, waitHttp } from "./lib.ts";

export const REDIS_SERVER = "/usr/bin/redis-server";

export const JWT_SECRET = "bench-secret-0123456789abcdef0123456789";

function b64url(s: string | Buffer): string {
  return Buffer.from(s).toString("base64url");
}
export function hs256(claims: Record<string, unknown>, secret = JWT_SECRET): string {
  const h = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const p = b64url(JSON.stringify(claims));
  return `${h}.${p}.${createHmac("sha256", secret).update(`${h}.${p}`).digest("base64url")}`;
}

/** The S3 front's credential in the bench config (the client side of scenario 9). */
export const S3_CLIENT = { accessKeyId: "AKIDBENCHS3CLIENT", secretAccessKey: "bench-s3-client-secret-0123456789" };

/** A replayable signed PutObject head (UNSIGNED-PAYLOAD: the body is not signed), for wrk and curl. */
export function s3PutHeaders(port: number, path: string): Record<string, string> {
  return new S3Signer(S3_CLIENT, "us-east-1").sign({ method: "PUT", host: `127.0.0.1:${port}`, path, payloadHash: "UNSIGNED-PAYLOAD" });
}

/**
 * The headers an SDK sends for GetObject (Authorization, x-amz-date, x-amz-content-sha256), signed
 * once: wrk replays them, which S3 (and the front) accept within the clock skew allowed. The bench
 * config allows an hour (max_clock_skew_seconds), longer than any run.
 */
export function s3GetHeaders(port: number, path: string): Record<string, string> {
  const signer = new S3Signer(S3_CLIENT, "us-east-1");
  return signer.sign({ method: "GET", host: `127.0.0.1:${port}`, path });
}

export const TOKEN = hs256({ sub: "bench-user", iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 86_400 });

export interface Target {
  url: string;
  headers?: Record<string, string>;
  label: string;
  /** The processes whose CPU is the server's (default: the nginx peer for nginx_*, else the main proxy). */
  pids?: () => number[];
  /** A wrk Lua script (method and body of an upload). */
  script?: string;
}

export interface Setup {
  workers: number;
  origin: Nginx;
  peer: Nginx;
  proxy: Proxy;
  /** Apache Traffic Server + s3_auth with exec_thread.limit = workers (opts.ats). */
  ats?: Ats;
  /** id → { url, headers } */
  targets: Record<string, Target>;
  stop(): Promise<void>;
}

export interface RedisProc {
  url: string;
  pids(): number[];
  stop(): Promise<void>;
}

/** redis-server on a free loopback port, no persistence, ready when it answers PING. */
export async function startRedisServer(dir: string): Promise<RedisProc> {
  const port = await freePort();
  const proc = Bun.spawn([REDIS_SERVER, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning"], { stdout: "ignore", stderr: "pipe" });
  const url = `redis://127.0.0.1:${port}`;
  const end = Date.now() + 10_000;
  for (;;) {
    const client = new RedisClient(url, { connectionTimeout: 500, autoReconnect: false });
    try {
      if ((await client.send("PING", [])) === "PONG") break;
    } catch {
      // not up yet
    } finally {
      client.close();
    }
    if (Date.now() > end || proc.exitCode !== null) {
      proc.kill("SIGKILL");
      throw new Error(`bench: redis-server did not answer PING on ${port}: ${await new Response(proc.stderr).text()}`);
    }
    await sleep(50);
  }
  return {
    url,
    pids: () => [proc.pid],
    stop: async () => {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

const HEALTH = "    location = /health { return 200 'ok'; }";
/** The origin's ETag for every PUT it takes (it stores no checksum: one value will do). */
const PUT_ETAG = "bench-put";

export async function startOrigin(fx: Fixture): Promise<Nginx> {
  // One worker: the origin's cost is paid equally by nginx proxy_pass and Yatagarasu. PUT (WebDAV)
  // for the upload scenarios: it writes under the root; GETs are served as before.
  // /sink/ takes a PUT and answers 200 without storing it (the 1 KiB PutObject scenario: an
  // origin that writes a file per request would bound it, not the proxy). A PUT's answer carries
  // an ETag, as S3's does (the S3 front answers a stored write without one 500); a GET's keeps
  // nginx's own (an add_header ETag of "" would remove it).
  return startNginx("origin", fx, 1, {
    s3: () => `${HEALTH}\n    location /sink/ { add_header ETag '"${PUT_ETAG}"'; return 200; }\n    location / { if ($request_method = PUT) { add_header ETag '"${PUT_ETAG}"'; } }\n    root ${fx.root};\n    client_max_body_size 6g;\n    dav_methods PUT;\n    create_full_put_path on;`,
  });
}

export async function startPeer(fx: Fixture, workers: number, originPort: number): Promise<Nginx> {
  return startNginx(
    `peer${workers}`,
    fx,
    workers,
    {
      static: () => `${HEALTH}\n    root ${fx.root};`,
      pass: () => `${HEALTH}
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }`,
      // nginx's best proxying configuration for a large object (issue 14): 16 × 64 KiB buffers and
      // no temp file, so it never writes the body to disk when the client is slower than the origin.
      passbuf: () => `${HEALTH}
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 64k;
      proxy_buffers 16 64k;
      proxy_busy_buffers_size 128k;
      proxy_max_temp_file_size 0;
    }`,
      cache: () => `${HEALTH}
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache c;
      proxy_cache_key $uri;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
    }`,
    },
    `  upstream origin { server 127.0.0.1:${originPort}; keepalive 128; keepalive_requests 1000000; }
  proxy_cache_path $PREFIX/cache levels=1:2 keys_zone=c:16m max_size=1g inactive=1h use_temp_path=off;`,
  );
}

export function proxyYaml(workers: number, originPort: number, level: "warn" | "info" = "warn", s3Port = 0): string {
  const ep = `http://127.0.0.1:${originPort}`;
  const creds = `access_key: "AKIDBENCH", secret_key: "bench-secret-key"`;
  return `server:
  address: 127.0.0.1
  port: $PORT
  workers: ${workers}
  max_concurrent_requests: 100000
  # wrk's 64 connections all come from 127.0.0.1 (the 1 KiB PutObject scenario)
  max_concurrent_uploads: 100000
  max_concurrent_uploads_per_ip: 100000
logging:
  level: ${level}
jwt:
  enabled: true
  algorithm: HS256
  secret: "${JWT_SECRET}"
cache:
  enabled: true
  memory: { max_item_size_mb: 10, max_cache_size_mb: 64, default_ttl_seconds: 3600 }
buckets:
  - name: anon
    path_prefix: /anon
    s3: { bucket: bucket, endpoint: "${ep}" }
  - name: signed
    path_prefix: /signed
    s3: { bucket: bucket, endpoint: "${ep}", ${creds} }
  - name: jwt
    path_prefix: /jwt
    s3: { bucket: bucket, endpoint: "${ep}", ${creds} }
    auth: { enabled: true }
  - name: cached
    path_prefix: /cached
    s3: { bucket: bucket, endpoint: "${ep}", ${creds} }
    cache: { enabled: true }
  - name: uploads
    path_prefix: /uploads
    access: read-write
    s3: { bucket: bucket, endpoint: "${ep}", ${creds} }
  - name: sink
    path_prefix: /sink
    access: read-write
    s3: { bucket: sink, endpoint: "${ep}", ${creds} }
s3_api:
  address: 127.0.0.1
  port: ${s3Port}
  max_clock_skew_seconds: 3600
  credentials:
    - { access_key_id: "${S3_CLIENT.accessKeyId}", secret_access_key: "${S3_CLIENT.secretAccessKey}", identity: bench, buckets: { signed: [read], uploads: [read, write], sink: [write] } }
`;
}

/** One process with cache_layers [memory, disk]: the 100 MiB object is above the memory item limit, so a disk hit. */
export function diskProxyYaml(workers: number, originPort: number, diskDir: string): string {
  return `server: { address: 127.0.0.1, port: $PORT, workers: ${workers}, max_concurrent_requests: 100000 }
logging: { level: warn }
cache:
  enabled: true
  cache_layers: [memory, disk]
  memory: { max_item_size_mb: 1, max_cache_size_mb: 64 }
  disk: { path: "${diskDir}", max_disk_size_mb: 1024, max_item_size_mb: 512 }
buckets:
  - name: dc
    path_prefix: /dc
    s3: { bucket: bucket, endpoint: "http://127.0.0.1:${originPort}", access_key: "AKIDBENCH", secret_key: "bench-secret-key" }
    cache: { enabled: true }
`;
}

/** One process with cache_layers [redis] only: every hit is a Redis GET (no memory layer in front). */
export function redisProxyYaml(workers: number, originPort: number, redisUrl: string): string {
  return `server: { address: 127.0.0.1, port: $PORT, workers: ${workers}, max_concurrent_requests: 100000 }
logging: { level: warn }
cache:
  enabled: true
  cache_layers: [redis]
  redis: { url: "${redisUrl}", key_prefix: "bench:", max_item_size_mb: 1 }
buckets:
  - name: rc
    path_prefix: /rc
    s3: { bucket: bucket, endpoint: "http://127.0.0.1:${originPort}", access_key: "AKIDBENCH", secret_key: "bench-secret-key" }
    cache: { enabled: true }
`;
}

/** wrk's Lua for the 1 KiB PutObject (wrk sets Content-Length from the body). */
function writePutScript(fx: Fixture): string {
  const path = join(fx.dir, "put-1k.lua");
  writeFileSync(path, 'wrk.method = "PUT"\nwrk.body = string.rep("a", 1024)\n');
  return path;
}

/** Polls until `url` answers a HIT from `layer` with the expected Content-Length (the fill is committed). */
async function waitLayerHit(url: string, layer: string, size: number): Promise<void> {
  let last = "";
  for (let i = 0; i < 200; i++) {
    const r = await fetch(url);
    const n = (await r.arrayBuffer()).byteLength;
    if (r.status === 200 && n === size && r.headers.get("x-cache") === "HIT" && r.headers.get("x-cache-layer") === layer && r.headers.get("content-length") === String(size)) return;
    last = `status ${r.status}, ${n} bytes, x-cache ${r.headers.get("x-cache")}, layer ${r.headers.get("x-cache-layer")}, content-length ${r.headers.get("content-length")}`;
    await sleep(50); // poll interval while the fill is committed
  }
  throw new Error(`bench: ${url} is not a ${layer} HIT: ${last}`);
}

export async function startSetup(fx: Fixture, origin: Nginx, workers: number, level: "warn" | "info" = "warn", opts: { layers?: boolean; ats?: boolean } = {}): Promise<Setup> {
  const peer = await startPeer(fx, workers, origin.ports.s3);
  const s3Port = await freePort();
  const proxy = await startProxy(fx, `w${workers}-${level}`, proxyYaml(workers, origin.ports.s3, level, s3Port));
  const extra: Array<{ stop(): Promise<void> }> = [];
  const P = (port: number, path: string) => `http://127.0.0.1:${port}${path}`;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const targets: Setup["targets"] = {
    nginx_static: { url: P(peer.ports.static, "/bucket/1k.bin"), label: "1 nginx static" },
    nginx_proxy_pass: { url: P(peer.ports.pass, "/bucket/1k.bin"), label: "2 nginx proxy_pass (keepalive)" },
    nginx_proxy_cache: { url: P(peer.ports.cache, "/bucket/1k.bin"), label: "3 nginx proxy_cache" },
    yata_anon: { url: P(proxy.port, "/anon/1k.bin"), label: "4 Yatagarasu anonymous" },
    yata_signed: { url: P(proxy.port, "/signed/1k.bin"), label: "5 Yatagarasu SigV4" },
    yata_jwt_signed: { url: P(proxy.port, "/jwt/1k.bin"), headers: auth, label: "6 Yatagarasu JWT HS256 + SigV4" },
    yata_cached: { url: P(proxy.port, "/cached/1k.bin"), label: "7 Yatagarasu cache hit" },
    // the same object as yata_signed, through the S3 front: SigV4 verified, grant checked, re-signed
    yata_s3_get: { url: P(s3Port, "/signed/1k.bin"), headers: s3GetHeaders(s3Port, "/signed/1k.bin"), label: "9 Yatagarasu S3 front GetObject" },
    // a 1 KiB PutObject through the S3 front (verified, re-signed, sent to the origin's /sink/, which answers 200)
    yata_s3_put: { url: P(s3Port, "/sink/put-1k.bin"), headers: s3PutHeaders(s3Port, "/sink/put-1k.bin"), script: writePutScript(fx), label: "11 Yatagarasu S3 front PutObject" },
    nginx_static_100m: { url: P(peer.ports.static, "/bucket/100m.bin"), label: "8a nginx static 100 MiB" },
    yata_stream_100m: { url: P(proxy.port, "/signed/100m.bin"), label: "8b Yatagarasu 100 MiB stream" },
    nginx_pass_buffered_100m: { url: P(peer.ports.passbuf, "/bucket/100m.bin"), label: "8d nginx proxy_pass 16×64k, no temp file, 100 MiB" },
  };
  let ats: Ats | undefined;
  const stopAll = async () => {
    for (const e of extra.reverse()) await e.stop();
    await ats?.stop();
    await proxy.stop();
    await peer.stop();
  };
  try {
    if (opts.ats) {
      // The same origin and the same credentials as the proxy's /signed and /cached buckets.
      const a = await startAts({
        dir: mkdtempSync(join(fx.dir, `ats-w${workers}-`)),
        origin: `127.0.0.1:${origin.ports.s3}`,
        threads: workers,
        accessKey: "AKIDBENCH",
        secretKey: "bench-secret-key",
        remaps: [
          { from: "/signed/", to: "/bucket/", cache: false },
          { from: "/cached/", to: "/bucket/", cache: true },
        ],
      });
      ats = a;
      targets.ats_signed = { url: P(a.port, "/signed/1k.bin"), label: "13 ATS s3_auth SigV4", pids: a.pids };
      targets.ats_cached = { url: P(a.port, "/cached/1k.bin"), label: "14 ATS s3_auth cache hit", pids: a.pids };
      targets.ats_signed_100m = { url: P(a.port, "/signed/100m.bin"), label: "8e ATS s3_auth 100 MiB stream", pids: a.pids };
    }
    if (opts.layers) {
      const redis = await startRedisServer(fx.dir);
      extra.push(redis);
      const disk = await startProxy(fx, `w${workers}-disk`, diskProxyYaml(workers, origin.ports.s3, join(fx.dir, `disk-cache-w${workers}`)));
      extra.push(disk);
      const rc = await startProxy(fx, `w${workers}-redis`, redisProxyYaml(workers, origin.ports.s3, redis.url));
      extra.push(rc);
      targets.yata_redis_hit = { url: P(rc.port, "/rc/1k.bin"), label: "10 Yatagarasu Redis-layer hit", pids: () => [...rc.pids(), ...redis.pids()] };
      targets.yata_disk_100m = { url: P(disk.port, "/dc/100m.bin"), label: "8c Yatagarasu disk-cache hit 100 MiB", pids: disk.pids };
      // Filled and checked to be hits of the layer under test before anything is measured.
      await (await fetch(targets.yata_disk_100m.url)).arrayBuffer();
      await waitLayerHit(targets.yata_disk_100m.url, "disk", 100 * MIB);
      await (await fetch(targets.yata_redis_hit.url)).arrayBuffer();
      await waitLayerHit(targets.yata_redis_hit.url, "redis", 1024);
    }
    // Sanity: every target answers 200 with the right size before anything is measured.
    for (const [id, t] of Object.entries(targets)) {
      if (t.script !== undefined) {
        const r = await fetch(t.url, { method: "PUT", headers: t.headers, body: new Uint8Array(1024).fill(0x61) });
        if (r.status !== 200) throw new Error(`${id}: PUT status ${r.status}: ${await r.text()}`);
      } else if (id.endsWith("100m")) {
        const r = await fetch(t.url, { headers: t.headers });
        const n = (await r.arrayBuffer()).byteLength;
        if (r.status !== 200 || n !== 100 * 1024 * 1024) throw new Error(`${id}: status ${r.status}, ${n} bytes`);
      } else {
        await waitHttp(t.url, 10_000, t.headers);
        const r = await fetch(t.url, { headers: t.headers });
        const n = (await r.arrayBuffer()).byteLength;
        if (n !== 1024) throw new Error(`${id}: ${n} bytes, want 1024`);
      }
    }
    if (ats) {
      // ATS's cache hit is a hit: only-if-cached answers 504 for what is not in its cache.
      const r = await fetch(targets.ats_cached.url, { headers: { "cache-control": "only-if-cached" } });
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`ats_cached: not in ATS's cache after a fill (only-if-cached: ${r.status})\n${ats.logs()}`);
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    workers,
    origin,
    peer,
    proxy,
    ats,
    targets,
    stop: stopAll,
  };
}
