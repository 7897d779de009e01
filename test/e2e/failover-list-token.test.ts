/**
 * ListObjectsV2 continuation tokens are the proxy's own (src/fronts/s3/list-token.ts): opaque (no
 * upstream bucket name, even base64-decoded), bound to the listing (bucket, prefix, delimiter), and
 * valid on every replica: a paginated listing whose primary dies between pages goes on on the
 * secondary from the last key (or past the last common prefix), no key repeated or skipped. It
 * failed before: the primary's token was refused by the secondary (400 InvalidArgument).
 */
import { afterAll, afterEach, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { awsCli } from "../clients/aws.ts";
import { boto3Client } from "../clients/boto3.ts";
import { rcloneClient } from "../clients/rclone.ts";
import { clientTest } from "../clients/run.ts";
import { startReplicatedSource, type ReplicatedEnv } from "./s3-front-replica-helpers.ts";
import { answerOf, signedFetch, WRITER } from "./s3-front-upload-helpers.ts";
import { sortsAfter } from "../../src/fronts/s3/list-token.ts";

setDefaultTimeout(30_000);

const KEY = { accessKeyId: "AKIDLISTTOKEN00001", secretAccessKey: "list-token-secret-0123456789abcdef" };
const PRIMARY = "primary-tok-71ac";
const SECONDARY = "secondary-tok-2f9e";
let w: ReplicatedEnv;

// 1100 keys under k/, and 30 folders of two keys each under d/ (a delimiter listing's common prefixes)
const FLAT = Array.from({ length: 1100 }, (_, i) => `k/${String(i).padStart(4, "0")} x+y`);
const FOLDERS = Array.from({ length: 30 }, (_, i) => [`d/f${String(i).padStart(2, "0")}/a`, `d/f${String(i).padStart(2, "0")}/b`]).flat();

beforeAll(async () => {
  // (the plain front's folder index of the same bucket, 7 entries a page: its tokens are the proxy's too)
  w = await startReplicatedSource({ key: KEY, primaryBucket: PRIMARY, secondaryBucket: SECONDARY, bucketExtra: "    listing: { enabled: true, max_keys: 7 }\n" });
  const all = [...FLAT, ...FOLDERS, "d/top.txt"];
  for (let i = 0; i < all.length; i += 100) {
    await Promise.all(all.slice(i, i + 100).flatMap((k) => [w.primary.put(PRIMARY, k, "p"), w.secondary.put(SECONDARY, k, "s")]));
  }
}, 120_000);

afterAll(async () => {
  await w?.[Symbol.asyncDispose]();
});

afterEach(() => {
  w.primary.faults.clear();
});

const text = (m: RegExpExecArray | null) => m?.[1];
const keysOf = (xml: string) => [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!);
const prefixesOf = (xml: string) => [...xml.matchAll(/<CommonPrefixes><Prefix>([^<]*)<\/Prefix>/g)].map((m) => m[1]!);
const list = (query: Array<[string, string]>) => signedFetch(w.env, { method: "GET", path: "/src", query: [["list-type", "2"], ...query] });

/** The primary resets every connection from its next request on, once it has seen a listing (page 1 is served). */
function killPrimaryAfterFirstListing(): void {
  w.primary.faults.clear();
  w.primary.resetLog();
  w.secondary.resetLog();
  void w.primary.waitForRequest((e) => !e.admin && e.method === "GET" && "list-type" in e.query, 60_000).then(() => {
    w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  });
}

/** Page 1 came from the primary; the first page after it from the secondary, with start-after, the rest with the secondary's own token. */
function expectFailedOverOnce(): void {
  const listings = (s: typeof w.primary) => s.requests.filter((r) => !r.admin && "list-type" in r.query);
  // (a reset on a reused connection is tried once more on a new one)
  const onPrimary = listings(w.primary).map((r) => r.fault);
  expect(onPrimary[0]).toBeUndefined();
  expect(new Set(onPrimary.slice(1))).toEqual(new Set(["reset"]));
  const onSecondary = listings(w.secondary);
  expect(onSecondary.length).toBeGreaterThan(1);
  expect(onSecondary.map((r) => [r.query["start-after"] !== undefined, r.query["continuation-token"] !== undefined])).toEqual(onSecondary.map((_, i) => [i === 0, i > 0]));
}

test("the token is opaque and the primary dying between pages loses no key: flat, then with a delimiter (a page ending on a common prefix)", async () => {
  w.secondary.resetLog();
  const first = await list([["prefix", "k/"], ["max-keys", "400"]]);
  const firstXml = await first.text();
  expect(first.status).toBe(200);
  const token = text(/<NextContinuationToken>([^<]*)</.exec(firstXml))!;
  expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
  for (const form of [token, Buffer.from(token, "base64url").toString("latin1")]) {
    expect(form).not.toContain(PRIMARY);
    expect(form).not.toContain("primary-tok");
  }
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  const keys = keysOf(firstXml);
  let next: string | undefined = token;
  while (next !== undefined) {
    const res = await list([["prefix", "k/"], ["max-keys", "400"], ["continuation-token", next]]);
    const xml = await res.text();
    expect(res.status).toBe(200);
    expect(text(/<ContinuationToken>([^<]*)</.exec(xml))).toBe(next);
    expect(xml).not.toContain("<StartAfter>");
    keys.push(...keysOf(xml));
    next = text(/<NextContinuationToken>([^<]*)</.exec(xml));
  }
  expect(keys).toEqual(FLAT);
  // (the secondary went on from the last key the primary listed, then with its own token)
  const onSecondary = w.secondary.requests.filter((r) => !r.admin && "list-type" in r.query);
  expect(onSecondary.map((r) => [String(r.query["start-after"]), r.query["continuation-token"] !== undefined])).toEqual([["k/0399 x+y", false], ["undefined", true]]);

  // With a delimiter, url-encoded: pages of 7 end on a common prefix; the next goes on past every key under it.
  w.primary.faults.clear();
  const entries: string[] = [];
  next = undefined;
  let pages = 0;
  do {
    const res = await list([["prefix", "d/"], ["delimiter", "/"], ["max-keys", "7"], ["encoding-type", "url"], ...(next === undefined ? [] : ([["continuation-token", next]] as Array<[string, string]>))]);
    const xml = await res.text();
    expect(res.status).toBe(200);
    entries.push(...prefixesOf(xml), ...keysOf(xml));
    next = text(/<NextContinuationToken>([^<]*)</.exec(xml));
    if (++pages === 1) w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  } while (next !== undefined);
  expect(entries.sort()).toEqual([...Array.from({ length: 30 }, (_, i) => `d/f${String(i).padStart(2, "0")}/`), "d/top.txt"].sort());
  expect(pages).toBe(5);
});

test("a token for another prefix, delimiter or bucket, altered, or not one the proxy gave: 400 InvalidArgument, nothing upstream", async () => {
  const first = await list([["prefix", "k/"], ["max-keys", "2"]]);
  const token = text(/<NextContinuationToken>([^<]*)</.exec(await first.text()))!;
  const altered = Buffer.from(token, "base64url");
  altered[altered.length - 20]! ^= 1;
  w.primary.resetLog();
  w.secondary.resetLog();
  const refused: Array<Array<[string, string]>> = [
    [["prefix", "d/"], ["continuation-token", token]],
    [["prefix", "k/"], ["delimiter", "/"], ["continuation-token", token]],
    [["prefix", "k/"], ["continuation-token", altered.toString("base64url")]],
    [["prefix", "k/"], ["continuation-token", ""]],
  ];
  for (const q of refused) {
    const a = await answerOf(await list(q));
    expect([a.status, a.code, a.message]).toEqual([400, "InvalidArgument", "The continuation token provided is incorrect"]);
    expect(a.body).toContain("<ArgumentName>continuation-token</ArgumentName>");
  }
  // another bucket's listing (the writable `up`) refuses it too
  const other = await answerOf(await signedFetch(w.env, { method: "GET", path: "/up", query: [["list-type", "2"], ["prefix", "k/"], ["continuation-token", token]] }));
  expect([other.status, other.code]).toEqual([400, "InvalidArgument"]);
  expect(w.primary.requests.filter((r) => !r.admin)).toEqual([]);
  expect(w.secondary.requests.filter((r) => !r.admin)).toEqual([]);
  // the same token where it belongs still works
  const ok = await list([["prefix", "k/"], ["max-keys", "2"], ["continuation-token", token]]);
  expect(keysOf(await ok.text())).toEqual(FLAT.slice(2, 4));
});

clientTest("aws")("aws-cli: list-objects-v2 and `s3 ls --recursive` page through a primary that dies after the first page", async () => {
  using aws = awsCli({ endpoint: w.env.endpoint, credentials: WRITER });
  killPrimaryAfterFirstListing();
  const api = await aws.s3api("list-objects-v2", "--bucket", "src", "--prefix", "k/", "--page-size", "300");
  expect(api.stderr).toBe("");
  expect((JSON.parse(api.stdout) as { Contents: Array<{ Key: string }> }).Contents.map((c) => c.Key)).toEqual(FLAT);

  expectFailedOverOnce();
  killPrimaryAfterFirstListing();
  const ls = await aws.s3("ls", "--recursive", "--page-size", "250", "s3://src/");
  expect(ls.stderr).toBe("");
  expectFailedOverOnce();
  const listed = ls.stdout.trimEnd().split("\n").map((l) => l.replace(/^\S+ \S+ +\d+ /, ""));
  expect(listed).toEqual([...FOLDERS, "d/top.txt", ...FLAT]);
}, 60_000);

clientTest("boto3")("boto3: the list_objects_v2 paginator goes on on the secondary, with and without a delimiter", async () => {
  const b = boto3Client({ endpoint: w.env.endpoint, credentials: WRITER });
  killPrimaryAfterFirstListing();
  const [flat] = await b.run([{ op: "list", Bucket: "src", Prefix: "k/", PageSize: 400 }]);
  if (!flat!.ok) throw new Error(JSON.stringify(flat!.error));
  expect((flat!.value as { pages: number }).pages).toBe(3);
  expect((flat!.value as { keys: Array<{ Key: string }> }).keys.map((k) => k.Key)).toEqual(FLAT);
  expectFailedOverOnce();

  expectFailedOverOnce();
  killPrimaryAfterFirstListing();
  const [folders] = await b.run([{ op: "list", Bucket: "src", Prefix: "d/", Delimiter: "/", PageSize: 4 }]);
  if (!folders!.ok) throw new Error(JSON.stringify(folders!.error));
  expectFailedOverOnce();
  const v = folders!.value as { keys: Array<{ Key: string }>; prefixes: string[] };
  expect(v.prefixes).toEqual(Array.from({ length: 30 }, (_, i) => `d/f${String(i).padStart(2, "0")}/`));
  expect(v.keys.map((k) => k.Key)).toEqual(["d/top.txt"]);
}, 60_000);

clientTest("rclone")("rclone: `lsf -R` (ListObjectsV2, 300 keys a page) pages through a primary that dies after the first page", async () => {
  using rc = rcloneClient({ endpoint: w.env.endpoint, credentials: WRITER, settings: { list_version: 2, list_chunk: 300 } });
  killPrimaryAfterFirstListing();
  const r = await rc.run("lsf", "-R", "--files-only", rc.remote("src/k"));
  expect(r.stderr).toBe("");
  expectFailedOverOnce();
  expect(r.stdout.trimEnd().split("\n").map((l) => `k/${l}`)).toEqual(FLAT);
}, 60_000);

test("the plain front's folder index: its next links carry the proxy's token, and the primary dying between pages loses no entry; a foreign token is 400", async () => {
  const entries: string[] = [];
  let next: string | null = "/src/d/";
  let pages = 0;
  while (next !== null) {
    const res = await fetch(w.env.mainUrl(next));
    expect(res.status).toBe(200);
    const page = (await res.json()) as { entries: Array<{ name: string }>; next: string | null };
    entries.push(...page.entries.map((e) => e.name));
    next = page.next;
    if (next !== null) {
      const token = new URL(next, "http://x").searchParams.get("continuation-token")!;
      expect(Buffer.from(token, "base64url").toString("latin1")).not.toContain("primary-tok");
    }
    if (++pages === 1) w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  }
  expect(entries.sort()).toEqual([...Array.from({ length: 30 }, (_, i) => `f${String(i).padStart(2, "0")}/`), "top.txt"].sort());
  expect(pages).toBe(5);
  // a token of another folder: refused before any upstream request
  w.primary.faults.clear();
  const first = (await (await fetch(w.env.mainUrl("/src/d/"))).json()) as { next: string };
  const token = new URL(first.next, "http://x").searchParams.get("continuation-token")!;
  const other = await fetch(w.env.mainUrl(`/src/k/?continuation-token=${token}`));
  expect(other.status).toBe(400);
  expect(await other.text()).toContain("not one this listing gave");
});

test("a page whose last key holds a character XML 1.0 does not allow, as S3 writes it (&#x1;), is relayed, and the next page on the secondary starts after that key", async () => {
  // (S3 lists such a key unencoded as a character reference; the token's start-after read it strictly: 500 InternalError)
  const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult ${NS}><Name>${PRIMARY}</Name><Prefix>k/</Prefix><NextContinuationToken>UPSTREAM1</NextContinuationToken><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>k/0005&#x1;</Key><Size>1</Size></Contents></ListBucketResult>`;
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reply", status: 200, body, times: 1 });
  const first = await list([["prefix", "k/"], ["max-keys", "1"]]);
  const xml = await first.text();
  expect(first.status).toBe(200);
  expect(xml).toContain("<Key>k/0005&#x1;</Key>");
  const token = text(/<NextContinuationToken>([^<]*)</.exec(xml))!;
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  w.secondary.resetLog();
  const next = await list([["prefix", "k/"], ["max-keys", "1"], ["continuation-token", token]]);
  expect(next.status).toBe(200);
  expect(keysOf(await next.text())).toEqual([FLAT[5]!]); // ("k/0005 x+y": a space sorts after U+0001)
  expect(w.secondary.requests.filter((r) => !r.admin && "list-type" in r.query).map((r) => r.query["start-after"])).toEqual(["k/0005\x01"]);
});

test("a page whose entries list Key after Size and ETag (MinIO, Ceph, R2), with a namespace prefix or not, goes on on the secondary after its last key and past its last common prefix", async () => {
  // (the token's last entry read only a <Key> first in <Contents>: none was found, and the next page started over)
  const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
  const flat = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult ${NS}><Name>${PRIMARY}</Name><Prefix>k/</Prefix><NextContinuationToken>UPSTREAM1</NextContinuationToken><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><Contents><Size>1</Size><ETag>&quot;x&quot;</ETag><Key>k/0001 x+y</Key></Contents><Contents><LastModified>2024-01-01T00:00:00.000Z</LastModified><Size>1</Size><Key>k/0002 x+y</Key><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>`;
  const prefixed = `<?xml version="1.0" encoding="UTF-8"?>\n<s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:Name>${PRIMARY}</s3:Name><s3:Prefix>d/</s3:Prefix><s3:Delimiter>/</s3:Delimiter><s3:NextContinuationToken>UPSTREAM2</s3:NextContinuationToken><s3:KeyCount>2</s3:KeyCount><s3:MaxKeys>2</s3:MaxKeys><s3:IsTruncated>true</s3:IsTruncated><s3:CommonPrefixes><s3:Prefix>d/f00/</s3:Prefix></s3:CommonPrefixes><s3:CommonPrefixes><s3:Prefix>d/f01/</s3:Prefix></s3:CommonPrefixes></s3:ListBucketResult>`;
  for (const [query, body, expected] of [
    [[["prefix", "k/"], ["max-keys", "2"]], flat, [FLAT[3]!, FLAT[4]!]],
    [[["prefix", "d/"], ["delimiter", "/"], ["max-keys", "2"]], prefixed, ["d/f02/", "d/f03/"]],
  ] as Array<[Array<[string, string]>, string, string[]]>) {
    w.primary.faults.set(`/${PRIMARY}*`, { kind: "reply", status: 200, body, times: 1 });
    const first = await list(query);
    expect(first.status).toBe(200);
    const token = text(/<(?:s3:)?NextContinuationToken>([^<]*)</.exec(await first.text()))!;
    w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
    const next = await list([...query, ["continuation-token", token]]);
    const xml = await next.text();
    expect(next.status).toBe(200);
    expect([...keysOf(xml), ...prefixesOf(xml)]).toEqual(expected);
  }
});

test("the folder index: a page holding only the folder's marker object goes on on the secondary after that key, not from the start", async () => {
  // (the marker is no entry of its folder: the page had no last entry, and the secondary was asked for the folder from its start)
  const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult ${NS}><Name>${PRIMARY}</Name><Prefix>d/</Prefix><Delimiter>/</Delimiter><EncodingType>url</EncodingType><NextContinuationToken>UPSTREAM1</NextContinuationToken><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>d/</Key><Size>0</Size></Contents></ListBucketResult>`;
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reply", status: 200, body, times: 1 });
  const first = await fetch(w.env.mainUrl("/src/d/"));
  expect(first.status).toBe(200);
  const page = (await first.json()) as { entries: unknown[]; next: string };
  expect(page.entries).toEqual([]);
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  w.secondary.resetLog();
  const next = await fetch(w.env.mainUrl(page.next));
  expect(next.status).toBe(200);
  await next.arrayBuffer();
  expect(w.secondary.requests.filter((r) => !r.admin && "list-type" in r.query).map((r) => r.query["start-after"])).toEqual(["d/"]);
});

test("the folder index: a page a store listed in its own order (UTF-16, not S3's UTF-8) resumes after the last key it listed, as the S3 front's token does, not after its greatest in S3's order", async () => {
  // (in UTF-16 "\u{1F600}" (D83D...) sorts before "\uFFFD"; in UTF-8 (F0... after EF...) after it: resumed after
  // the greatest, that store listed "d/\uFFFD.txt" again)
  const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
  const enc = (k: string) => encodeURIComponent(k).replace(/%2F/g, "/");
  const long = "u".repeat(300); // (an upstream token over 256 bytes is left out: the next page is asked with start-after)
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult ${NS}><Name>${PRIMARY}</Name><Prefix>d/</Prefix><Delimiter>/</Delimiter><EncodingType>url</EncodingType><NextContinuationToken>${long}</NextContinuationToken><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>${enc("d/\u{1F600}.txt")}</Key><Size>1</Size></Contents><Contents><Key>${enc("d/\uFFFD.txt")}</Key><Size>1</Size></Contents></ListBucketResult>`;
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reply", status: 200, body, times: 1 });
  const first = await fetch(w.env.mainUrl("/src/d/"));
  expect(first.status).toBe(200);
  const page = (await first.json()) as { entries: Array<{ name: string }>; next: string };
  expect(page.entries.map((e) => e.name)).toEqual(["\u{1F600}.txt", "\uFFFD.txt"]);
  w.primary.resetLog();
  const next = await fetch(w.env.mainUrl(page.next));
  expect(next.status).toBe(200);
  await next.arrayBuffer();
  expect(w.primary.requests.filter((r) => !r.admin && "list-type" in r.query).map((r) => r.query["start-after"])).toEqual(["d/\uFFFD.txt"]);
  // the S3 front's token the same
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reply", status: 200, body, times: 1 });
  const query: Array<[string, string]> = [["prefix", "d/"], ["delimiter", "/"], ["max-keys", "2"], ["encoding-type", "url"]];
  const s3first = await list(query);
  const token = text(/<NextContinuationToken>([^<]*)</.exec(await s3first.text()))!;
  w.primary.resetLog();
  expect((await list([...query, ["continuation-token", token]])).status).toBe(200);
  expect(w.primary.requests.filter((r) => !r.admin && "list-type" in r.query).map((r) => r.query["start-after"])).toEqual(["d/\uFFFD.txt"]);
});

test("a page ending on a common prefix goes on on the secondary past every key under it, those going on after a U+10FFFF too (S3's UTF-8 order)", async () => {
  // (the start-after was the prefix followed by U+10FFFF: "d/f01/\u{10FFFF}x" sorts after it, and a
  // store that does not skip the common prefix a start-after falls in listed that prefix again)
  const startsAfter = () => w.secondary.requests.filter((r) => !r.admin && "list-type" in r.query).map((r) => String(r.query["start-after"]));
  const expectPast = (after: string | undefined, p: string) => {
    expect(after!.startsWith(p)).toBe(true);
    for (const k of [p + "\u{10FFFF}x", p + "\u{10FFFF}\u{10FFFF}\u{10FFFF}", p + "\u{10FFFF}".repeat(200) + "\uFFFF"]) expect(sortsAfter(after!, k)).toBe(true);
    expect(sortsAfter(after!, p.slice(0, -1) + "0")).toBe(false);
  };
  const first = await list([["prefix", "d/"], ["delimiter", "/"], ["max-keys", "2"]]);
  const token = text(/<NextContinuationToken>([^<]*)</.exec(await first.text()))!;
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  w.secondary.resetLog();
  const next = await list([["prefix", "d/"], ["delimiter", "/"], ["max-keys", "2"], ["continuation-token", token]]);
  expect(prefixesOf(await next.text())).toEqual(["d/f02/", "d/f03/"]);
  expectPast(startsAfter()[0], "d/f01/");

  // the folder index (7 entries a page: f00/ to f06/)
  w.primary.faults.clear();
  const page = (await (await fetch(w.env.mainUrl("/src/d/"))).json()) as { next: string };
  w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
  w.secondary.resetLog();
  const second = await fetch(w.env.mainUrl(page.next));
  expect(((await second.json()) as { entries: Array<{ name: string }> }).entries[0]!.name).toBe("f07/");
  expectPast(startsAfter()[0], "d/f06/");
});

// Keys of S3's longest (1,024 bytes), stored for one test only (the others list the whole bucket).
const LONG = [0, 1, 2].map((i) => "long/" + ("x".repeat(199) + "/").repeat(4) + "y".repeat(218) + i);
async function withLongKeys(run: () => Promise<void>): Promise<void> {
  await Promise.all(LONG.flatMap((k) => [w.primary.put(PRIMARY, k, "p"), w.secondary.put(SECONDARY, k, "s")]));
  try {
    await run();
  } finally {
    w.primary.faults.clear();
    await Promise.all(LONG.flatMap((k) => [w.primary.remove(PRIMARY, k), w.secondary.remove(SECONDARY, k)]));
  }
}

test("a page ending on a 1,024-byte key (S3's longest) gives a token under 2 KiB, and the listing goes on after it on the same replica and on the secondary", async () => {
  // (the token held the key twice, once in the upstream's own token: ~3.3 KiB)
  expect(LONG.map((k) => Buffer.byteLength(k))).toEqual([1024, 1024, 1024]);
  await withLongKeys(async () => {
    const keys: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const res = await list([["prefix", "long/"], ["max-keys", "1"], ...(next === undefined ? [] : ([["continuation-token", next]] as Array<[string, string]>))]);
      const xml = await res.text();
      expect(res.status).toBe(200);
      keys.push(...keysOf(xml));
      expect(text(/<ContinuationToken>([^<]*)</.exec(xml))).toBe(next);
      expect(xml).not.toContain("<StartAfter>");
      next = text(/<NextContinuationToken>([^<]*)</.exec(xml));
      if (next !== undefined) expect(next.length).toBeLessThan(2048);
      if (++pages === 2) w.primary.faults.set(`/${PRIMARY}*`, { kind: "reset" });
    } while (next !== undefined);
    expect(keys).toEqual(LONG);
  });
});

clientTest("boto3")("boto3 and aws-cli: 1,024-byte keys a page each, through a primary that dies after the first page", async () => {
  await withLongKeys(async () => {
    const b = boto3Client({ endpoint: w.env.endpoint, credentials: WRITER });
    killPrimaryAfterFirstListing();
    const [listed] = await b.run([{ op: "list", Bucket: "src", Prefix: "long/", PageSize: 1 }]);
    if (!listed!.ok) throw new Error(JSON.stringify(listed!.error));
    expect((listed!.value as { keys: Array<{ Key: string }> }).keys.map((k) => k.Key)).toEqual(LONG);
    using aws = awsCli({ endpoint: w.env.endpoint, credentials: WRITER });
    killPrimaryAfterFirstListing();
    const api = await aws.s3api("list-objects-v2", "--bucket", "src", "--prefix", "long/", "--page-size", "1");
    expect(api.stderr).toBe("");
    expect((JSON.parse(api.stdout) as { Contents: Array<{ Key: string }> }).Contents.map((c) => c.Key)).toEqual(LONG);
  });
}, 60_000);

// The token key was derived from the replicas in priority order: a reload that only reordered them
// (the same buckets and secrets) made every listing under way fail on its next page with 400
// InvalidArgument, though the token's replica was still there to go on from.
test("a reload that reorders the replicas keeps the listings under way: the next page goes on with the token's replica", async () => {
  const first = await list([["prefix", "k/"], ["max-keys", "300"]]);
  const token = text(/<NextContinuationToken>([^<]*)</.exec(await first.text()))!;
  const swapped = w.yaml.replace("priority: 1 }", "priority: 3 }").replace("priority: 2 }", "priority: 1 }");
  expect(swapped).not.toBe(w.yaml);
  try {
    expect((await w.env.app.reload(undefined, { text: swapped, file: "reordered.yaml", baseDir: process.cwd() })).ok).toBe(true);
    w.primary.resetLog();
    const res = await list([["prefix", "k/"], ["max-keys", "300"], ["continuation-token", token]]);
    const xml = await res.text();
    expect([res.status, keysOf(xml)[0]]).toEqual([200, FLAT[300]]);
    // (the token's replica, healthy, is asked with its own token, though no longer first)
    expect(w.primary.requests.filter((r) => !r.admin && "list-type" in r.query).map((r) => r.query["continuation-token"] !== undefined)).toEqual([true]);
  } finally {
    expect((await w.env.app.reload(undefined, { text: w.yaml, file: "reordered.yaml", baseDir: process.cwd() })).ok).toBe(true);
  }
});
