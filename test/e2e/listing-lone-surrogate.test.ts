/**
 * The plain front's folder index over an upstream listing that names a key holding a lone UTF-16
 * surrogate, which no UTF-8 key can be: url-encoded (%ED%A0%80) it was already a 502 (a listing
 * that cannot be read); unencoded as a character reference (&#xD800;, which the lenient reader
 * takes from upstream documents) it reached the renderer, where encodeURIComponent threw: a 500
 * InternalError for the JSON and the HTML index alike, on both engines. Both are now the 502.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { oneBucketYaml, startBothFronts } from "../helpers/both-fronts.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDLONESURROGATE", secretAccessKey: "lone-surrogate-secret-0123456789" };
const listing = (contents: string) => {
  const body = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>data</Name><Prefix>d/</Prefix><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`;
  return `HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
};

let store: RawStore;
beforeAll(async () => {
  store = await startRawStore(() => ({ bytes: listing(`<Contents><Key>d/ok.txt</Key><Size>1</Size></Contents><Contents><Key>d/a&#xD800;b</Key><Size>1</Size></Contents>`), end: true }));
});
afterAll(() => store.close());

for (const engine of ["bun", "node"] as const)
  test(`${engine} engine: a listed key with a lone surrogate makes the folder index a 502, JSON and HTML`, async () => {
    const yaml = oneBucketYaml({ engine, port: store.port, creds: CREDS, grants: "[read, list]" }).replace("    auth: { enabled: false }\n", "    auth: { enabled: false }\n    listing: { enabled: true }\n");
    await using px = await startBothFronts(engine, yaml);
    for (const accept of ["application/json", "text/html"]) {
      const res = await fetch(`${px.main}/b/d/`, { headers: { accept } });
      const body = (await res.json()) as { error?: string; message?: string };
      expect({ accept, status: res.status, error: body.error, message: body.message }).toEqual({ accept, status: 502, error: "BadGateway", message: "The upstream sent a listing that cannot be read" });
    }
  });
