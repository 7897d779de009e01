/**
 * A CopyObject, UploadPartCopy or CompleteMultipartUpload the upstream answers 200 and then stops
 * sending its result document (the head, a few bytes, nothing more): S3 keeps such an answer alive
 * with whitespace, so the read is bounded by s3.timeout's stall check, not by
 * server.request_timeout. Through fetch (https endpoints, `upstream_client: fetch`) nothing checked
 * the stall: the client had its 200 head (the proxy's own keep-alive, patient.ts) and then waited
 * for as long as the upstream held the connection (Bun's fetch gives up after 5 minutes).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { oneBucketYaml, startBothFronts } from "../helpers/both-fronts.ts";
import { startFaultUpstream, type FaultUpstream } from "../helpers/fault-upstream.ts";

setDefaultTimeout(30_000);

const CLIENT = { accessKeyId: "AKIDRESULTSTALL01", secretAccessKey: "result-stall-secret-0123456789" };
const RESULT = `<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult><ETag>"e1"</ETag><LastModified>2025-01-01T00:00:00.000Z</LastModified></CopyObjectResult>`;
const ERROR = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`;
const COMPLETE = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"e1"</ETag></Part></CompleteMultipartUpload>`;

let up: FaultUpstream;
beforeAll(async () => {
  // every write: a 200 head, the document's first 40 bytes as a chunk, then nothing (the connection held open)
  // (GetObjectTagging's: a 403 error document, the same way)
  up = await startFaultUpstream((req) => (req.target.includes("?tagging") ? { kind: "cut", status: 403, body: ERROR, send: 40, chunked: true, then: "stall" } : { kind: "cut", status: 200, body: RESULT, send: 40, chunked: true, then: "stall" }));
});
afterAll(() => up?.stop());

/** Both fronts on the fault upstream (s3.timeout 1 s, server.request_timeout `requestTimeout` s, and `serverExtra`), with `signed`, a signed S3-front request given up 2 s after that timeout. */
async function startFront(client: "auto" | "fetch", requestTimeout: number, serverExtra = "") {
  const yaml = oneBucketYaml({ engine: "bun", client, port: Number(new URL(up.endpoint).port), creds: CLIENT, grants: "[read, list, write, delete]", writable: true, s3Extra: ", timeout: 1" }).replace("upstream_client:", `request_timeout: ${requestTimeout}, ${serverExtra}upstream_client:`);
  const px = await startBothFronts("bun", yaml);
  const host = `127.0.0.1:${px.front.port}`;
  const signed = (method: string, path: string, query: Array<[string, string]>, headers: Record<string, string>, body?: string) => {
    const s = new S3Signer(CLIENT, "us-east-1").signRequest({ method, host, path, query, headers, payloadHash: "UNSIGNED-PAYLOAD" });
    return fetch(`http://${host}${s.path}${s.query ? `?${s.query}` : ""}`, { method, headers: { ...headers, ...s.headers }, body, signal: AbortSignal.timeout((requestTimeout + 2) * 1000) });
  };
  return Object.assign(px, { signed });
}

describe.concurrent("a 200 whose result document stalls", () => {
  for (const client of ["auto", "fetch"] as const) {
    test(`upstream_client ${client}: CopyObject, UploadPartCopy and CompleteMultipartUpload end with an error after s3.timeout, not at the upstream's pleasure`, async () => {
      await using px = await startFront(client, 6);
      const signed = px.signed;
      const calls = {
        CopyObject: () => signed("PUT", "/b/copy", [], { "x-amz-copy-source": "/b/src" }),
        UploadPartCopy: () => signed("PUT", "/b/part", [["partNumber", "1"], ["uploadId", "u1"]], { "x-amz-copy-source": "/b/src" }),
        CompleteMultipartUpload: () => signed("POST", "/b/done", [["uploadId", "u1"]], {}, COMPLETE),
      };
      for (const [name, call] of Object.entries(calls)) {
        const res = await call();
        const body = await res.text();
        // (before the keep-alive interval, 1 s here: the 503; after it, S3's 200 with the <Error> document)
        const code = /<Error><Code>([^<]+)<\/Code>/.exec(body)?.[1];
        expect([name, res.status === 200 ? "late" : res.status, code]).toEqual([name, expect.anything(), "ServiceUnavailable"]);
        expect(body).not.toContain("ETag");
      }
    });
  }
});

// A CreateMultipartUpload or DeleteObjects result (short, not kept alive) that stalls: through fetch
// it ended only at server.request_timeout (10 s here), where the own client's stall check ends it
// after s3.timeout (1 s).
describe.concurrent("a CreateMultipartUpload or DeleteObjects 200 whose result stalls", () => {
  for (const client of ["auto", "fetch"] as const) {
    test(`upstream_client ${client}: ends after s3.timeout, not at server.request_timeout`, async () => {
      await using px = await startFront(client, 10);
      const signed = px.signed;
      const DELETE = "<Delete><Object><Key>a</Key></Object></Delete>";
      const calls = {
        CreateMultipartUpload: () => signed("POST", "/b/big", [["uploads", ""]], {}),
        DeleteObjects: () => signed("POST", "/b", [["delete", ""]], { "content-md5": createHash("md5").update(DELETE).digest("base64") }, DELETE),
      };
      const started = performance.now();
      const got = await Promise.all(
        Object.entries(calls).map(async ([name, call]) => {
          const res = await call();
          const body = await res.text();
          return [name, res.status, /<Error><Code>([^<]+)<\/Code>/.exec(body)?.[1], performance.now() - started < 6000];
        }),
      );
      expect(got).toEqual(Object.keys(calls).map((name) => [name, 503, "ServiceUnavailable", true]));
    });
  }
});

// The documents read whole that the proxy does not hold inside the attempt: a listing, ListParts,
// ListMultipartUploads or configuration document longer than server.buffer_threshold_bytes (16 bytes
// here; a 1000-version ListObjectVersions is ~0.5 MiB), and any error body (GetObjectTagging's 403).
// Through fetch each ended only at server.request_timeout (10 s here); the own client's sweep ends
// them after s3.timeout (1 s).
describe.concurrent("a result or error document not held inside the attempt that stalls", () => {
  for (const client of ["auto", "fetch"] as const) {
    test(`upstream_client ${client}: ends after s3.timeout, not at server.request_timeout`, async () => {
      await using px = await startFront(client, 10, "buffer_threshold_bytes: 16, ");
      const signed = px.signed;
      const calls: Record<string, [string, string, Array<[string, string]>, number, string]> = {
        ListObjects: ["GET", "/b", [], 503, "ServiceUnavailable"],
        ListObjectsV2: ["GET", "/b", [["list-type", "2"]], 503, "ServiceUnavailable"],
        ListObjectVersions: ["GET", "/b", [["versions", ""]], 503, "ServiceUnavailable"],
        ListMultipartUploads: ["GET", "/b", [["uploads", ""]], 503, "ServiceUnavailable"],
        ListParts: ["GET", "/b/k", [["uploadId", "u1"]], 503, "ServiceUnavailable"],
        GetBucketVersioning: ["GET", "/b", [["versioning", ""]], 503, "ServiceUnavailable"],
        GetObjectTagging: ["GET", "/b/k", [["tagging", ""]], 403, "AccessDenied"],
      };
      const started = performance.now();
      const got = await Promise.all(
        Object.entries(calls).map(async ([name, [method, path, query]]) => {
          const res = await signed(method, path, query, {});
          const body = await res.text();
          return [name, res.status, /<Error><Code>([^<]+)<\/Code>/.exec(body)?.[1], performance.now() - started < 6000];
        }),
      );
      expect(got).toEqual(Object.entries(calls).map(([name, [, , , status, code]]) => [name, status, code, true]));
    });
  }
});
