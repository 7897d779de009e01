/**
 * A plain-front PUT's answer gives the client the ETag the upstream answered with (header and
 * JSON), unless the upstream's Connection header names ETag: then the field is hop-by-hop (RFC
 * 9110 §7.6.1), meant for the proxy alone, and the S3 front's writes already drop it
 * (src/fronts/s3/relay.ts). The plain front echoed it, on every engine and client, and so did the
 * S3 front's PostObject (a browser form upload: its ETag header and PostResponse).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startRawStore, type RawStore } from "../helpers/raw-store.ts";
import { ENGINES_AND_CLIENTS, oneBucketYaml, startBothFronts } from "../helpers/both-fronts.ts";
import { presignPost } from "../../src/fronts/presign.ts";
import { signedFetch } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIDHOPETAG00001", secretAccessKey: "hop-etag-secret-0123456789abcdef" };
let store: RawStore;
let connection = "";

beforeAll(async () => {
  store = await startRawStore(() => ({ bytes: `HTTP/1.1 200 OK\r\nConnection: ${connection}\r\nETag: "hop"\r\nContent-Length: 0\r\n\r\n`, end: true }));
});
afterAll(() => store.close());

describe.each(ENGINES_AND_CLIENTS)("engine %s, upstream client %s", (engine, client) => {
  test("a PUT whose upstream's Connection names ETag: no ETag header and a null etag, as the S3 front's PutObject and PostObject; with close alone: the ETag", async () => {
    await using px = await startBothFronts(engine, oneBucketYaml({ engine, client, port: store.port, creds: CREDS, grants: "[read, write]", writable: true }));
    connection = "close, ETag";
    const hop = await fetch(`${px.main}/b/k.txt`, { method: "PUT", body: "brand new" });
    expect(hop.status).toBe(200);
    expect([hop.headers.get("etag"), await hop.json()]).toEqual([null, { key: "k.txt", etag: null }]);
    // (as the S3 front's PutObject answers it)
    const s3 = await signedFetch(px.front, { method: "PUT", path: "/b/s3.txt", body: "brand new", creds: CREDS });
    expect([s3.status, s3.headers.get("etag")]).toEqual([200, null]);

    // a form upload (PostObject, small enough for one PutObject) answers with the upstream's ETag too
    const post = presignPost({ origin: px.front.endpoint, bucket: "b", key: "form.txt", region: "us-east-1", ...CREDS, now: Date.now(), expiresAt: Date.now() + 300_000, maxSize: 1024, successStatus: "201" });
    const form = new FormData();
    for (const [k, v] of Object.entries(post.fields)) form.append(k, v);
    form.append("file", new Blob(["brand new"]), "f.txt");
    const posted = await fetch(post.url, { method: "POST", body: form });
    expect([posted.status, posted.headers.get("etag"), /<ETag>([^<]*)<\/ETag>/.exec(await posted.text())?.[1]]).toEqual([201, null, ""]);

    connection = "close";
    const kept = await fetch(`${px.main}/b/k.txt`, { method: "PUT", body: "brand new" });
    expect([kept.status, kept.headers.get("etag"), await kept.json()]).toEqual([200, '"hop"', { key: "k.txt", etag: '"hop"' }]);
    expect(store.seen).toContain("PUT /data/k.txt");
  });
});
