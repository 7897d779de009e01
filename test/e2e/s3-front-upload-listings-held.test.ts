/**
 * ListParts and ListMultipartUploads are listings read whole (relayListing), sent chunked by S3 as
 * the object listings are: a body the upstream cut or stalled after a good head was not held
 * inside its attempt (holdAnswer, as ListObjects' is), so a cut one answered 500 InternalError
 * ("The upstream's listing could not be read") where the retry (s3.retry) would have answered.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger } from "../../src/observe/log.ts";
import { S3Signer } from "../../src/s3/sigv4.ts";
import type { Listener } from "../../src/server.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { type Fault, startFaultUpstream, type FaultUpstream } from "../helpers/fault-upstream.ts";

setDefaultTimeout(30_000);

const CLIENT = { accessKeyId: "AKIDLISTHELD00001", secretAccessKey: "list-held-secret-0123456789" };
const PARTS = `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>up</Bucket><Key>k</Key><UploadId>abc</UploadId><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>1</NextPartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>${"<Part><PartNumber>1</PartNumber><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;e1&quot;</ETag><Size>5242880</Size></Part>".repeat(8)}</ListPartsResult>`;
const TAGGING = `<?xml version="1.0" encoding="UTF-8"?>\n<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>${"<Tag><Key>team</Key><Value>blue</Value></Tag>".repeat(8)}</TagSet></Tagging>`;
const ATTRIBUTES = `<?xml version="1.0" encoding="UTF-8"?>\n<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ETag>e1</ETag><StorageClass>STANDARD</StorageClass><ObjectSize>5242880</ObjectSize>${" ".repeat(400)}</GetObjectAttributesResponse>`;
const VERSIONING = `<?xml version="1.0" encoding="UTF-8"?>\n<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status>${" ".repeat(400)}</VersioningConfiguration>`;
const UPLOADS = `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>up</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>abc</NextUploadIdMarker><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated><Upload><Key>k</Key><UploadId>abc</UploadId><Initiated>2025-01-01T00:00:00.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload></ListMultipartUploadsResult>`;

/** What the upstream does to the first attempt of the current test; later attempts get the whole body. */
let first: (body: string) => Fault;
let attempts = 0;
let up: FaultUpstream;

beforeAll(async () => {
  up = await startFaultUpstream((req) => {
    const body = req.target.includes("uploadId=") ? PARTS : req.target.includes("?tagging") ? TAGGING : req.target.includes("?attributes") ? ATTRIBUTES : req.target.includes("?versioning") ? VERSIONING : UPLOADS;
    if (req.method !== "GET") return { kind: "whole", status: 200, body: "" }; // (the start-up probe)
    return attempts++ === 0 ? first(body) : { kind: "whole", status: 200, body };
  });
});

afterAll(() => {
  up?.stop();
});

function signedGet(front: Listener, path: string, query: Array<[string, string]>): Promise<Response> {
  const host = `127.0.0.1:${front.port}`;
  const signed = new S3Signer(CLIENT, "us-east-1").signRequest({ method: "GET", host, path, query, headers: {} });
  return fetch(`http://${host}${signed.path}${signed.query ? `?${signed.query}` : ""}`, { headers: signed.headers });
}

const cut = (body: string): Fault => ({ kind: "cut", status: 200, body, send: 300, chunked: true, then: "close" });

for (const client of ["auto", "fetch"]) {
  describe(`upstream_client: ${client}`, () => {
    let app: App;
    let front: Listener;
    beforeAll(async () => {
      const config = parseConfig(`server: { address: 127.0.0.1, port: 0, upstream_client: ${client}, request_timeout: 10 }
logging: { level: error }
buckets:
  - name: rw
    path_prefix: /rw
    s3: { bucket: up, endpoint: "${up.endpoint}", access_key: "AKIDUPSTREAM00001", secret_key: "upstream-secret-0123456789", timeout: 1, retry: { max_attempts: 2, initial_backoff_ms: 0, max_backoff_ms: 0 } }
    access: read-write
s3_api: { enabled: true, address: 127.0.0.1, port: 0, region: us-east-1, credentials: [{ access_key_id: "${CLIENT.accessKeyId}", secret_access_key: "${CLIENT.secretAccessKey}", identity: t, buckets: { rw: [read, list, write] } }] }
`);
      app = await App.create(config, { log: nullLogger, probeIntervalMs: 600_000 });
      front = (await listenS3(app, config))!;
    });
    afterAll(async () => {
      await front?.stop(true);
      app?.close();
    });

    for (const [op, path, query, root] of [
      ["ListParts", "/rw/k", [["uploadId", "abc"]], "ListPartsResult"],
      ["ListMultipartUploads", "/rw", [["uploads", ""]], "ListMultipartUploadsResult"],
      // (the other documents read whole: held alike)
      ["GetObjectTagging", "/rw/k", [["tagging", ""]], "Tagging"],
      ["GetBucketVersioning", "/rw", [["versioning", ""]], "VersioningConfiguration"],
    ] as const) {
      test(`${op} whose first answer is cut after its head (chunked): retried and answered`, async () => {
        first = cut;
        attempts = 0;
        const res = await signedGet(front, path, query.map(([k, v]) => [k, v] as [string, string]));
        const text = await res.text();
        expect(res.status).toBe(200);
        expect(text).toContain(`<${root}`);
        expect(attempts).toBe(2);
      });
    }
  });
}
