/**
 * One S3 bucket exposed by several proxy buckets (an anonymous cached mirror beside a read-write
 * one): a write or delete through any of them purges the key from every caching bucket that reads
 * the same store (src/fronts/purge.ts), on both fronts, even when the writing bucket does not
 * cache. A caching bucket on another store keeps its entry. A write refused (by the upstream, or
 * by the proxy before it went out) changed nothing: the cached copies stay HITs.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { presignPost } from "../../src/fronts/presign.ts";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bearer, bucket, startWriteEnv, WRITER, type WriteEnv } from "./plain-write-env.ts";

setDefaultTimeout(30_000);

const CLIENT = { accessKeyId: "AKIDCACHEMATES01", secretAccessKey: "cache-mates-client-secret-0123456789" };
let s3: S3Fixture;
let env: WriteEnv;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  const buckets = (ep: string) =>
    // writes here; does not cache
    bucket("rw", "/rw", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n") +
    // the same store, cached, anonymous
    bucket("mirror", "/mirror", "rw", ep, "    cache: { enabled: true, ttl_seconds: 600 }\n") +
    // the same store, cached and writable
    bucket("crw", "/crw", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n    cache: { enabled: true, ttl_seconds: 600 }\n") +
    // another store, cached
    bucket("elsewhere", "/elsewhere", "ro", ep, "    cache: { enabled: true, ttl_seconds: 600 }\n");
  env = await startWriteEnv({
    buckets,
    extra: "cache: { enabled: true }\n",
    s3Api: true,
    sts: false,
    s3Extra: `  credentials:\n    - { access_key_id: "${CLIENT.accessKeyId}", secret_access_key: "${CLIENT.secretAccessKey}", identity: client, buckets: { rw: [read, write, delete], crw: [read, write, delete] } }\n`,
  }, s3);
});
afterAll(async () => {
  await env?.stop();
  await s3?.stop();
});

const get = async (path: string) => {
  const res = await fetch(env.url(path));
  return { status: res.status, cache: res.headers.get("x-cache"), body: await res.text() };
};

/** A cached copy in `mirror` (and `crw`, read with a token): MISS then HIT. */
async function warm(key: string, body: string) {
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "MISS", body });
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "HIT", body });
  expect((await fetch(env.url(`/crw/${key}`), { headers: bearer() })).headers.get("x-cache")).toBe("MISS");
  expect((await fetch(env.url(`/crw/${key}`), { headers: bearer() })).headers.get("x-cache")).toBe("HIT");
}

test("plain front: a PUT and a DELETE through a bucket that does not cache purge the key from the cached mirrors of its store", async () => {
  const key = "plain/shared.txt";
  await s3.put("rw", key, "v1");
  await s3.put("ro", key, "elsewhere");
  await warm(key, "v1");
  expect(await get(`/elsewhere/${key}`)).toMatchObject({ cache: "MISS" });

  expect((await fetch(env.url(`/rw/${key}`), { method: "PUT", body: "v2", headers: bearer() })).status).toBe(200);
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "MISS", body: "v2" });
  expect(await (await fetch(env.url(`/crw/${key}`), { headers: bearer() })).text()).toBe("v2");

  expect((await fetch(env.url(`/rw/${key}`), { method: "DELETE", headers: bearer() })).status).toBe(204);
  expect((await get(`/mirror/${key}`)).status).toBe(404);
  // another store's cached copy of the same key name is not touched
  expect(await get(`/elsewhere/${key}`)).toEqual({ status: 200, cache: "HIT", body: "elsewhere" });
});

test("S3 front: PutObject and DeleteObject through one bucket purge the mirrors; a write through a cached bucket purges the others too", async () => {
  const key = "s3/shared.txt";
  await s3.put("rw", key, "v1");
  await warm(key, "v1");
  const host = `127.0.0.1:${env.s3Port}`;
  const signer = new S3Signer(CLIENT, "us-east-1");
  const put = (bucketName: string, body: string) =>
    fetch(`${env.s3Endpoint}/${bucketName}/${key}`, { method: "PUT", body, headers: signer.sign({ method: "PUT", host, path: `/${bucketName}/${key}`, payloadHash: "UNSIGNED-PAYLOAD" }) });
  expect((await put("rw", "v2")).status).toBe(200);
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "MISS", body: "v2" });
  expect(await get(`/mirror/${key}`)).toMatchObject({ cache: "HIT" });
  // through the cached read-write bucket: its own entry and the mirror's go
  expect((await put("crw", "v3")).status).toBe(200);
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "MISS", body: "v3" });
  const del = await fetch(`${env.s3Endpoint}/rw/${key}`, { method: "DELETE", headers: signer.sign({ method: "DELETE", host, path: `/rw/${key}` }) });
  expect(del.status).toBe(204);
  expect((await get(`/mirror/${key}`)).status).toBe(404);
  expect((await fetch(env.url(`/crw/${key}`), { headers: bearer() })).status).toBe(404);
});

/**
 * `write` (v1 → v2 of `key`) answered 500 by the upstream, retries included: it may have landed,
 * so the cached v1 is purged; then it succeeds (`ok`) and v2 is served at once.
 */
async function purgedUnsure(key: string, write: () => Promise<Response>, ok: number): Promise<void> {
  s3.faults.set(`/rw/${key}`, { kind: "error500", method: "PUT" });
  expect((await write()).status).toBe(500);
  s3.faults.delete(`/rw/${key}`);
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "MISS", body: "v1" });
  expect((await write()).status).toBe(ok);
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "MISS", body: "v2" });
}

/** A copy onto `key` in `crw` through the S3 front, with extra (signed) headers. */
function copyOnto(key: string, source: string, headers: Record<string, string> = {}): Promise<Response> {
  const all = { "x-amz-copy-source": `/crw/${source}`, ...headers };
  const signed = new S3Signer(CLIENT, "us-east-1").sign({ method: "PUT", host: `127.0.0.1:${env.s3Port}`, path: `/crw/${key}`, headers: all, payloadHash: "UNSIGNED-PAYLOAD" });
  return fetch(`${env.s3Endpoint}/crw/${key}`, { method: "PUT", headers: { ...signed, ...all } });
}

test("S3 front: a refused CopyObject keeps the destination's cached copies; a 5xx (it may have copied) purges them; a copy is served at once", async () => {
  const key = "copy/dest.txt";
  await s3.put("rw", key, "v1");
  await s3.put("rw", "copy/src.txt", "v2");
  await warm(key, "v1");
  const kept = async () => expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "HIT", body: "v1" });
  // a missing source (AccessDenied to this caller, who may not list the bucket)
  expect((await copyOnto(key, "copy/missing.txt")).status).toBe(403);
  await kept();
  // the source's condition fails, then the destination's (If-None-Match: * on an existing key)
  expect((await copyOnto(key, "copy/src.txt", { "x-amz-copy-source-if-match": '"0123456789abcdef0123456789abcdef"' })).status).toBe(412);
  await kept();
  expect((await copyOnto(key, "copy/src.txt", { "if-none-match": "*" })).status).toBe(412);
  await kept();
  await purgedUnsure(key, () => copyOnto(key, "copy/src.txt"), 200);
});

/** A browser form upload (PostObject) of `file` to `key` in `crw`, its policy allowing 1 KiB at most. */
function postForm(key: string, file: string): Promise<Response> {
  const now = Date.now();
  const p = presignPost({ origin: env.s3Endpoint!, bucket: "crw", key, region: "us-east-1", ...CLIENT, now, expiresAt: now + 300_000, maxSize: 1024 });
  const form = new FormData();
  for (const [k, v] of Object.entries(p.fields)) form.append(k, v);
  form.append("file", new Blob([file]), "f.txt");
  return fetch(p.url, { method: "POST", body: form });
}

test("S3 front: a refused PostObject keeps the key's cached copies; a 5xx purges them; an upload is served at once", async () => {
  const key = "post/k.txt";
  await s3.put("rw", key, "v1");
  await warm(key, "v1");
  // over the policy's size, found while the file streams; then the upstream refuses the PutObject
  expect((await postForm(key, "x".repeat(2048))).status).toBe(400);
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "HIT", body: "v1" });
  s3.faults.set(`/rw/${key}`, { kind: "error", status: 403, code: "AccessDenied", method: "PUT", times: 1 });
  expect((await postForm(key, "v2")).status).toBe(403);
  expect(await get(`/mirror/${key}`)).toEqual({ status: 200, cache: "HIT", body: "v1" });
  await purgedUnsure(key, () => postForm(key, "v2"), 204);
});

// (a copy between two proxy buckets of one store onto the same key is sent as the store's self-copy,
// which rewrites the source's object too: its cached copies in every bucket of the store go)
test("S3 front: a copy between two proxy buckets of one store onto the same key (the store rewrites the object) and a REPLACE self-copy: no cached copy is served after it", async () => {
  const key = "s3/self-copy.txt";
  await s3.put("rw", key, "same", { contentType: "text/x-old" });
  await warm(key, "same");
  const host = `127.0.0.1:${env.s3Port}`;
  const signer = new S3Signer(CLIENT, "us-east-1");
  const copy = (dest: string, source: string, extra: Record<string, string> = {}) => {
    const headers = { "x-amz-copy-source": source, ...extra };
    return fetch(`${env.s3Endpoint}${dest}`, { method: "PUT", headers: { ...signer.sign({ method: "PUT", host, path: dest, headers, payloadHash: "UNSIGNED-PAYLOAD" }), ...headers } });
  };
  const aliased = await copy(`/rw/${key}`, `/crw/${key}`);
  expect([aliased.status, await aliased.text()]).toEqual([200, expect.stringContaining("<CopyObjectResult")]);
  for (const path of [`/mirror/${key}`, `/crw/${key}`]) {
    const r = await fetch(env.url(path), { headers: bearer() });
    expect({ path, cache: r.headers.get("x-cache") }).toEqual({ path, cache: "MISS" });
  }
  // (cached again by the reads above)
  expect(await get(`/mirror/${key}`)).toMatchObject({ cache: "HIT" });
  const replaced = await copy(`/crw/${key}`, `/crw/${key}`, { "x-amz-metadata-directive": "REPLACE", "content-type": "text/x-new" });
  expect(replaced.status).toBe(200);
  await replaced.text();
  for (const path of [`/mirror/${key}`, `/crw/${key}`]) {
    const r = await fetch(env.url(path), { headers: bearer() });
    expect({ path, cache: r.headers.get("x-cache"), type: r.headers.get("content-type") }).toEqual({ path, cache: "MISS", type: "text/x-new" });
  }
});
