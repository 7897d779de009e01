/**
 * A 404 that names no code (a balancer's or a gateway's plain-text page) to a call on an upload id
 * (UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload): S3's answer there is
 * NoSuchUpload, the upload being what the call names. It was NoSuchKey, the guess for an object
 * read, which SDKs and sync tools take for a missing object.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { oneBucketYaml, startBothFronts } from "../helpers/both-fronts.ts";
import { startFaultUpstream, type FaultUpstream } from "../helpers/fault-upstream.ts";

setDefaultTimeout(30_000);

const CLIENT = { accessKeyId: "AKIDNOUPLOAD00001", secretAccessKey: "no-upload-secret-0123456789" };
let up: FaultUpstream;
let proxy: Awaited<ReturnType<typeof startBothFronts>>;

beforeAll(async () => {
  // (a gateway's plain-text 404 for an upload, or for the key k2; the start-up probe's 200)
  const page = { kind: "whole", status: 404, body: "404 page not found\n", headers: { "content-type": "text/plain", connection: "close" } } as const;
  up = await startFaultUpstream((req) => (req.target.includes("uploadId=") || req.target.includes("k2") ? page : { kind: "whole", status: 200, body: "" }));
  proxy = await startBothFronts("bun", oneBucketYaml({ engine: "bun", port: Number(new URL(up.endpoint).port), creds: CLIENT, grants: "[read, list, write, delete]", writable: true }));
});
afterAll(async () => {
  await proxy?.[Symbol.asyncDispose]();
  up?.stop();
});

function signed(method: string, path: string, query: Array<[string, string]>, body?: string): Promise<Response> {
  const host = `127.0.0.1:${proxy.front.port}`;
  const s = new S3Signer(CLIENT, "us-east-1").signRequest({ method, host, path, query, headers: {}, payloadHash: "UNSIGNED-PAYLOAD" });
  return fetch(`http://${host}${s.path}${s.query ? `?${s.query}` : ""}`, { method, headers: s.headers, body });
}

const codeOf = async (res: Response) => ({ status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(await res.text())?.[1] });
const COMPLETE = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"e1"</ETag></Part></CompleteMultipartUpload>`;

test("a codeless 404 to UploadPart, ListParts, CompleteMultipartUpload and AbortMultipartUpload is NoSuchUpload, as S3 answers; an object's is still NoSuchKey", async () => {
  expect(await codeOf(await signed("PUT", "/b/k", [["partNumber", "1"], ["uploadId", "gone"]], "hello"))).toEqual({ status: 404, code: "NoSuchUpload" });
  expect(await codeOf(await signed("GET", "/b/k", [["uploadId", "gone"]]))).toEqual({ status: 404, code: "NoSuchUpload" });
  expect(await codeOf(await signed("POST", "/b/k", [["uploadId", "gone"]], COMPLETE))).toEqual({ status: 404, code: "NoSuchUpload" });
  expect(await codeOf(await signed("DELETE", "/b/k", [["uploadId", "gone"]]))).toEqual({ status: 404, code: "NoSuchUpload" });
  expect(await codeOf(await signed("GET", "/b/k2", []))).toEqual({ status: 404, code: "NoSuchKey" });
});
