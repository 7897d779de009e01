/**
 * A copy (CopyObject, UploadPartCopy) whose source does not exist is 404 NoSuchKey only to a caller
 * who may list the source bucket (grant `list`, then its authorizer's s3:ListBucket), as a read of a
 * missing key is: anyone else gets 403 AccessDenied. A caller with read but no list got the copy's
 * NoSuchKey, so a copy told which keys exist where a GetObject would not (server-side and streamed).
 * And a part copy by range from a caching bucket is pinned to the cached copy's ETag (the client
 * sized its ranges from a HeadObject the cache answered).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { OpaServer } from "../fixtures/opa.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { recordingLogger } from "../helpers/logger.ts";
import { waitFor } from "../helpers/wait.ts";
import type { AccessRecord } from "../../src/observe/log.ts";
import { startFrontsOn } from "./s3-front-helpers.ts";
import { answerOf, signedFetch, UPSTREAM_WRITER, uploadYaml, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const T = 30_000;
const FAR_KEY = { accessKeyId: "AKIDUPSTREAMFAR02", secretAccessKey: "upstream-far-secret-0123456789xyz" };
/** read and write, never list: may copy, must not learn which keys exist. */
const PROBER = { accessKeyId: "AKIDCOPYPROBER001", secretAccessKey: "copy-prober-secret-0123456789abcd" };
/** with list on every bucket. */
const LISTER = { accessKeyId: "AKIDCOPYLISTER001", secretAccessKey: "copy-lister-secret-0123456789abcd" };

let s3: S3Fixture;
let env: UploadEnv;
let opa: OpaServer;
const accessLines: AccessRecord[] = [];

beforeAll(async () => {
  // (the `opa` bucket's authorizer allows everything but s3:ListBucket)
  opa = OpaServer.start({ "yatagarasu/allow": (input: { action: string }) => input.action !== "s3:ListBucket" });
  s3 = await startS3Fixture({
    buckets: [{ name: "up" }, { name: "far" }],
    credentials: [
      { ...UPSTREAM_WRITER, buckets: ["up"], write: true },
      { ...FAR_KEY, buckets: ["far"], write: true },
    ],
  });
  env = await startFrontsOn(
    uploadYaml(s3.endpoint, {
      opaUrl: opa.url,
      moreBuckets: () => `  - name: far
    path_prefix: /far
    access: read-write
    s3: { bucket: far, endpoint: "${s3.endpoint}", access_key: "${FAR_KEY.accessKeyId}", secret_key: "${FAR_KEY.secretAccessKey}" }
  - name: opaopen
    path_prefix: /opaopen
    access: read-write
    s3: { bucket: up, endpoint: "${s3.endpoint}", access_key: "${UPSTREAM_WRITER.accessKeyId}", secret_key: "${UPSTREAM_WRITER.secretAccessKey}" }
    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_fail_mode: open, opa_timeout_ms: 5000 }
`,
      moreCredentials: `    - { access_key_id: "${PROBER.accessKeyId}", secret_access_key: "${PROBER.secretAccessKey}", identity: prober, buckets: { up: [read, write], far: [read, write] } }
    - { access_key_id: "${LISTER.accessKeyId}", secret_access_key: "${LISTER.secretAccessKey}", identity: lister, buckets: { up: [read, list, write], far: [read, list, write], opa: [read, list, write], opaopen: [read, list, write] } }
`,
    }),
    s3,
    true,
    { ...recordingLogger(), access: (r: AccessRecord) => void accessLines.push(r) },
  );
  await s3.put("up", "there.txt", "here");
  await s3.put("far", "there.txt", "far here");
});

afterAll(async () => {
  await env?.[Symbol.asyncDispose]();
  opa?.close();
});

const copy = async (dest: string, source: string, creds: { accessKeyId: string; secretAccessKey: string }) => {
  const a = await answerOf(await signedFetch(env, { method: "PUT", path: dest, headers: { "x-amz-copy-source": source }, creds }));
  return `${a.status} ${a.code}`;
};

describe("a copy's missing source", () => {
  test(
    "CopyObject: AccessDenied without list on the source bucket (server-side and streamed), NoSuchKey with it; an existing source copies either way",
    async () => {
      expect(await copy("/up/dst.txt", "/up/missing.txt", PROBER)).toBe("403 AccessDenied");
      expect(await copy("/up/dst.txt", "/far/missing.txt", PROBER)).toBe("403 AccessDenied"); // streamed
      expect(await copy("/up/dst.txt", "/up/missing.txt", LISTER)).toBe("404 NoSuchKey");
      expect(await copy("/up/dst.txt", "/far/missing.txt", LISTER)).toBe("404 NoSuchKey");
      expect(await copy("/up/dst.txt", "/up/there.txt", PROBER)).toBe("200 ");
      expect(await copy("/up/dst2.txt", "/far/there.txt", PROBER)).toBe("200 ");
      expect(new TextDecoder().decode((await s3.read("up", "dst2.txt"))!)).toBe("far here");
    },
    T,
  );

  // S3's NoSuchKey for a copy's missing source names the source's key (<Key>), as a GetObject's
  // names its key; the proxy's had no <Key> (it is the client's key: never the upstream's name).
  test(
    "CopyObject and UploadPartCopy: the NoSuchKey names the source's key, server-side and streamed",
    async () => {
      const create = await signedFetch(env, { method: "POST", path: "/up/part-dst.bin", query: [["uploads", ""]], creds: LISTER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await create.text())![1]!;
      const part = (source: string) => signedFetch(env, { method: "PUT", path: "/up/part-dst.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": source }, creds: LISTER });
      const answers = await Promise.all([
        signedFetch(env, { method: "PUT", path: "/up/dst.txt", headers: { "x-amz-copy-source": "/up/gone/a%20b.txt" }, creds: LISTER }),
        signedFetch(env, { method: "PUT", path: "/up/dst.txt", headers: { "x-amz-copy-source": "/far/gone/c.txt" }, creds: LISTER }),
        part("/up/gone/d.txt"),
        part("/far/gone/e.txt"),
      ].map(async (r) => answerOf(await r)));
      expect(answers.map((a) => `${a.status} ${a.code} ${/<Key>([^<]*)<\/Key>/.exec(a.body)?.[1]}`)).toEqual([
        "404 NoSuchKey gone/a b.txt",
        "404 NoSuchKey gone/c.txt",
        "404 NoSuchKey gone/d.txt",
        "404 NoSuchKey gone/e.txt",
      ]);
    },
    T,
  );

  test(
    "the AccessDenied's access line still names the upstream refusal it hides (s3_request_id), server-side and streamed",
    async () => {
      accessLines.length = 0;
      expect(await copy("/up/dst.txt", "/up/missing.txt", PROBER)).toBe("403 AccessDenied");
      expect(await copy("/up/dst.txt", "/far/missing.txt", PROBER)).toBe("403 AccessDenied");
      const lines = await waitFor(() => (accessLines.length >= 2 ? accessLines : undefined), { message: "two access lines" });
      expect(lines.map((l) => [l.status, l.s3_error, /^[0-9A-F]{16}$/.test(String(l.s3_request_id))])).toEqual([
        [403, "AccessDenied", true],
        [403, "AccessDenied", true],
      ]);
    },
    T,
  );

  test(
    "the source bucket's authorizer is asked s3:ListBucket: a policy that refuses it turns NoSuchKey into AccessDenied",
    async () => {
      expect(await copy("/up/dst.txt", "/opa/missing.txt", LISTER)).toBe("403 AccessDenied");
      expect(await copy("/up/dst3.txt", "/opa/there.txt", LISTER)).toBe("200 ");
    },
    T,
  );

  test(
    "the source bucket's authorizer cannot answer (set to fail open): the s3:ListBucket check fails closed, AccessDenied, not NoSuchKey",
    async () => {
      opa.failWith({ status: 500 });
      try {
        expect(await copy("/up/dst5.txt", "/opaopen/missing.txt", LISTER)).toBe("403 AccessDenied");
        // (the copy itself is let through, as the bucket's fail mode says)
        expect(await copy("/up/dst6.txt", "/opaopen/there.txt", LISTER)).toBe("200 ");
      } finally {
        opa.failWith(null);
      }
    },
    T,
  );

  test(
    "UploadPartCopy: AccessDenied without list on the source bucket, NoSuchKey with it",
    async () => {
      const created = await signedFetch(env, { method: "POST", path: "/up/mp.bin", query: [["uploads", ""]], creds: PROBER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
      const part = async (source: string, creds: typeof PROBER) => {
        const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/mp.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": source }, creds }));
        return `${a.status} ${a.code}`;
      };
      expect(await part("/up/missing.txt", PROBER)).toBe("403 AccessDenied");
      expect(await part("/far/missing.txt", PROBER)).toBe("403 AccessDenied");
      expect(await part("/up/missing.txt", LISTER)).toBe("404 NoSuchKey");
      expect(await part("/up/there.txt", PROBER)).toBe("200 ");
    },
    T,
  );
});

describe("a part copy by range from a caching bucket whose object was replaced around the proxy", () => {
  test(
    "pinned to the cached copy's ETag: 412 PreconditionFailed (server-side and streamed), the cached copy dropped, the next copy whole; before, the new object's first bytes were copied with the old size's ranges and stored as a success",
    async () => {
      await s3.put("up", "stale.bin", "a".repeat(10_240));
      const get = (key: string) => signedFetch(env, { method: "GET", path: `/up/${key}`, creds: LISTER });
      expect((await (await get("stale.bin")).arrayBuffer()).byteLength).toBe(10_240); // cached
      await s3.put("up", "stale.bin", "b".repeat(20_480)); // written around the proxy
      const head = await signedFetch(env, { method: "HEAD", path: "/up/stale.bin", creds: LISTER });
      expect(head.headers.get("content-length")).toBe("10240"); // the cache's (what a client sizes its ranges from)
      const partCopy = async (dest: string, range: string) => {
        const created = await signedFetch(env, { method: "POST", path: dest, query: [["uploads", ""]], creds: LISTER });
        const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
        const a = await answerOf(await signedFetch(env, { method: "PUT", path: dest, query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/up/stale.bin", "x-amz-copy-source-range": range }, creds: LISTER }));
        return `${a.status} ${a.code}`;
      };
      expect(await partCopy("/far/mp-streamed.bin", "bytes=0-10239")).toBe("412 PreconditionFailed");
      expect((await (await get("stale.bin")).arrayBuffer()).byteLength).toBe(20_480); // refilled: the new object
      await s3.put("up", "stale.bin", "c".repeat(30_720));
      expect(await partCopy("/up/mp-server-side.bin", "bytes=0-20479")).toBe("412 PreconditionFailed");
      const now = await signedFetch(env, { method: "HEAD", path: "/up/stale.bin", creds: LISTER });
      expect(now.headers.get("content-length")).toBe("30720");
      expect(await partCopy("/up/mp-server-side.bin", "bytes=0-30719")).toBe("200 ");
    },
    T,
  );
});

describe("a part copy by range from a caching bucket whose store sends weak ETags", () => {
  test(
    "pinned to the cached copy's ETag in its strong form (W/\"x\" cached, \"x\" sent): 200, where W/\"x\" was 412 from a store comparing strongly, the cached copy dropped",
    async () => {
      const put = await s3.put("up", "weak.bin", "w".repeat(4096));
      s3.faults.set("/up/weak.bin", { kind: "weakEtag", method: "GET" });
      try {
        const got = await signedFetch(env, { method: "GET", path: "/up/weak.bin", creds: LISTER });
        await got.arrayBuffer();
        expect(got.headers.get("etag")).toBe(`W/${put.etag}`); // cached so
      } finally {
        s3.faults.delete("/up/weak.bin");
      }
      const created = await signedFetch(env, { method: "POST", path: "/up/mp-weak.bin", query: [["uploads", ""]], creds: LISTER });
      const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
      env.mark();
      const a = await answerOf(await signedFetch(env, { method: "PUT", path: "/up/mp-weak.bin", query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": "/up/weak.bin", "x-amz-copy-source-range": "bytes=0-99" }, creds: LISTER }));
      expect(`${a.status} ${a.code}`).toBe("200 ");
      expect(env.upstreamCalls().find((c) => c.method === "PUT")?.headers["x-amz-copy-source-if-match"]).toBe(put.etag);
    },
    T,
  );
});

describe("a part copy by range from a caching bucket, with the client's own x-amz-copy-source-if-* condition", () => {
  const partCopy = async (dest: string, source: string, headers: Record<string, string>) => {
    const created = await signedFetch(env, { method: "POST", path: dest, query: [["uploads", ""]], creds: LISTER });
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await created.text())![1]!;
    return answerOf(await signedFetch(env, { method: "PUT", path: dest, query: [["partNumber", "1"], ["uploadId", uploadId]], headers: { "x-amz-copy-source": source, "x-amz-copy-source-range": "bytes=0-99", ...headers }, creds: LISTER }));
  };
  const cachedSource = async (key: string) => {
    await s3.put("up", key, "s".repeat(4096));
    const get = () => signedFetch(env, { method: "GET", path: `/up/${key}`, creds: LISTER });
    await (await get()).arrayBuffer();
    const hit = await get();
    await hit.arrayBuffer();
    expect(hit.headers.get("x-cache")).toBe("HIT");
    return hit.headers.get("last-modified")!;
  };

  test(
    "-if-unmodified-since before the source's Last-Modified is 412 (server-side and streamed), as S3 answers it: the proxy's pin to the cached ETag made S3 ignore it (a holding -if-match overrides it) and the part was copied",
    async () => {
      const lm = await cachedSource("guarded.bin");
      const before = new Date(Date.parse(lm) - 86_400_000).toUTCString();
      for (const dest of ["/up/guard-server-side.bin", "/far/guard-streamed.bin"]) {
        const a = await partCopy(dest, "/up/guarded.bin", { "x-amz-copy-source-if-unmodified-since": before });
        expect(`${dest} ${a.status} ${a.code}`).toBe(`${dest} 412 PreconditionFailed`);
      }
      // (a date after it holds: copied)
      const after = new Date(Date.parse(lm) + 86_400_000).toUTCString();
      expect((await partCopy("/up/guard-ok.bin", "/up/guarded.bin", { "x-amz-copy-source-if-unmodified-since": after })).status).toBe(200);
    },
    T,
  );

  test(
    "a 412 the client's -if-none-match earned is S3's own (not blamed on the cache) and the cached copy stays",
    async () => {
      await cachedSource("unchanged.bin");
      const etag = (await signedFetch(env, { method: "HEAD", path: "/up/unchanged.bin", creds: LISTER })).headers.get("etag")!;
      const a = await partCopy("/up/inm.bin", "/up/unchanged.bin", { "x-amz-copy-source-if-none-match": etag });
      expect(a.status).toBe(412);
      expect(a.message).not.toContain("cached");
      const again = await signedFetch(env, { method: "GET", path: "/up/unchanged.bin", creds: LISTER });
      await again.arrayBuffer();
      expect(again.headers.get("x-cache")).toBe("HIT");
    },
    T,
  );
});
