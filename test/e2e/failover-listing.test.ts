/**
 * Listings fail over between bucket replicas as object reads do: ListObjectsV2, ListObjects (V1)
 * and the plain front's folder index, while the primary answers 5xx, come from the secondary (they
 * went to the primary only: `aws s3 ls` and rclone failed while GetObject kept working). Versions
 * stay on the primary (a version id is one store's). No replica's upstream bucket name reaches
 * the client, in a listing or in a relayed 400.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { startReplicatedSource, type ReplicatedEnv } from "./s3-front-replica-helpers.ts";
import { answerOf, signedFetch } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIDLISTREPLICA0001", secretAccessKey: "list-replica-secret-0123456789abcdef" };
let w: ReplicatedEnv;

beforeAll(async () => {
  w = await startReplicatedSource({ key: KEY, primaryBucket: "primary-list-5d2b", secondaryBucket: "secondary-list-8e4c", bucketExtra: "    listing: { enabled: true }\n" });
  await w.primary.put("primary-list-5d2b", "docs/p.txt", "from primary");
  await w.secondary.put("secondary-list-8e4c", "docs/s.txt", "from secondary");
});

afterAll(async () => {
  await w?.[Symbol.asyncDispose]();
});

const keysOf = (xml: string) => [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);

/**
 * Waits until /ready says the primary serves: a readiness probe that failed demotes it until the
 * next one passes (every 5 s), and one fails while the 500 fault below is set, or when a loaded
 * host keeps it past its 2 s timeout (both flaked "listings come from the primary").
 */
async function primaryServing(): Promise<void> {
  for (;;) {
    const r = (await (await fetch(w.env.mainUrl("/ready"))).json()) as { buckets?: Record<string, { serving?: string }> };
    if (r.buckets?.src?.serving === "one") return;
    await Bun.sleep(50);
  }
}

test("both healthy: listings come from the primary", async () => {
  await primaryServing();
  const res = await signedFetch(w.env, { method: "GET", path: "/src", query: [["list-type", "2"]] });
  expect(res.status).toBe(200);
  expect(keysOf(await res.text())).toEqual(["docs/p.txt"]);
});

test("the primary answers 500: ListObjectsV2, ListObjects and the folder index come from the secondary; versions stay on the primary", async () => {
  w.primary.faults.set("/primary-list-5d2b*", { kind: "error500" });
  try {
    const v2 = await signedFetch(w.env, { method: "GET", path: "/src", query: [["list-type", "2"], ["prefix", "docs/"]] });
    const v2Text = await v2.text();
    expect(v2.status).toBe(200);
    expect(keysOf(v2Text)).toEqual(["docs/s.txt"]);
    expect(v2Text).toContain("<Name>src</Name>");
    expect(v2Text).not.toContain("secondary-list-8e4c");

    const v1 = await signedFetch(w.env, { method: "GET", path: "/src", query: [["marker", "a"]] });
    expect(v1.status).toBe(200);
    expect(keysOf(await v1.text())).toEqual(["docs/s.txt"]);

    const index = await fetch(w.env.mainUrl("/src/docs/"), { headers: { accept: "application/json" } });
    const body = await index.text();
    expect(index.status).toBe(200);
    expect(body).toContain("s.txt");
    expect(body).not.toContain("p.txt");

    // A 400 from the secondary (a continuation token it did not issue) is relayed without its bucket's name.
    const bad = await signedFetch(w.env, { method: "GET", path: "/src", query: [["list-type", "2"], ["continuation-token", "bm90LWEtdG9rZW4"]] });
    const badText = await bad.clone().text();
    expect((await answerOf(bad)).status).toBe(400);
    expect(badText).not.toContain("secondary-list-8e4c");
    expect(badText).not.toContain("primary-list-5d2b");

    const versions = await signedFetch(w.env, { method: "GET", path: "/src", query: [["versions", ""]] });
    expect((await answerOf(versions)).status).toBe(500);
    expect(w.secondary.requests.some((r) => !r.admin && "versions" in r.query)).toBe(false);
  } finally {
    w.primary.faults.clear();
  }
});

// A store that said a V2 page was truncated without a NextContinuationToken (against S3's
// contract) had it relayed as it was: a page with more to come and nothing to ask for it by, which
// the SDKs' paginators (aws s3 ls, aws s3 sync) take for the end of the listing, silently short.
test("ListObjectsV2: a truncated page the upstream gave no NextContinuationToken gets the proxy's, resuming after its last key", async () => {
  for (const k of ["a", "b", "c"]) await w.primary.put("primary-list-5d2b", `t/${k}`, k);
  const xml = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>primary-list-5d2b</Name><Prefix>t/</Prefix><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>t/a</Key><Size>1</Size></Contents></ListBucketResult>`;
  await primaryServing();
  w.primary.faults.set("/primary-list-5d2b", { kind: "reply", status: 200, body: xml, method: "GET", times: 1 });
  try {
    const q: Array<[string, string]> = [["list-type", "2"], ["prefix", "t/"], ["max-keys", "1"]];
    const first = await (await signedFetch(w.env, { method: "GET", path: "/src", query: q })).text();
    expect(keysOf(first)).toEqual(["t/a"]);
    const token = /<NextContinuationToken>([^<]+)<\/NextContinuationToken>/.exec(first)?.[1];
    expect(token).toBeDefined();
    const rest = await signedFetch(w.env, { method: "GET", path: "/src", query: [["list-type", "2"], ["prefix", "t/"], ["continuation-token", token!]] });
    expect(rest.status).toBe(200);
    expect(keysOf(await rest.text())).toEqual(["t/b", "t/c"]);
  } finally {
    w.primary.faults.clear();
  }
});

// The folder index had the same gap: a truncated page without a token gave `"next": null`, an index
// that ended there as if the folder held nothing more.
test("the folder index: a truncated page the upstream gave no NextContinuationToken links a next page, resuming after its last key", async () => {
  for (const k of ["a", "b", "c"]) await w.primary.put("primary-list-5d2b", `u/${k}`, k);
  const xml = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>primary-list-5d2b</Name><Prefix>u/</Prefix><Delimiter>/</Delimiter><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>u/a</Key><Size>1</Size></Contents></ListBucketResult>`;
  await primaryServing();
  w.primary.faults.set("/primary-list-5d2b", { kind: "reply", status: 200, body: xml, method: "GET", times: 1 });
  try {
    const first = (await (await fetch(w.env.mainUrl("/src/u/"))).json()) as { entries: Array<{ name: string }>; next: string | null };
    expect(first.entries.map((e) => e.name)).toEqual(["a"]);
    expect(first.next).toStartWith("/src/u/?continuation-token=");
    const rest = await fetch(w.env.mainUrl(first.next!));
    expect(rest.status).toBe(200);
    expect(((await rest.json()) as { entries: Array<{ name: string }> }).entries.map((e) => e.name)).toEqual(["b", "c"]);
  } finally {
    w.primary.faults.clear();
  }
});
