/**
 * The real-client helpers, proven against the S3 fixture directly (no proxy): each client
 * lists and downloads, byte-exact, with awkward key names and a ranged (multipart) download;
 * a wrong secret shows that the helper really signs with the credentials it was given.
 * Reads only: uploads wait for the fixture's aws-chunked support (see payload-modes.ts).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { readFileSync } from "node:fs";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { awsCli } from "./aws.ts";
import { boto3Client } from "./boto3.ts";
import { BIG_KEY, BUCKET, READER, SPECIAL_KEYS, seedClientObjects, sha256 } from "./fixture-objects.ts";
import { rcloneClient } from "./rclone.ts";
import { clientTest, tempDir } from "./run.ts";
import { s3cmdClient } from "./s3cmd.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const WRONG = { accessKeyId: READER.accessKeyId, secretAccessKey: "not-the-secret" };
const T = 120_000; // real clients start Python or Go programs on a loaded 2-core machine

let s3: S3Fixture;
let objects: Map<string, Uint8Array>;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: BUCKET }], credentials: [{ ...READER, buckets: [BUCKET] }] });
  objects = await seedClientObjects(s3);
});
afterAll(async () => {
  await s3?.stop();
});

/** S3's listing order: the keys' UTF-8 bytes, compared as unsigned bytes. */
const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

const target = (credentials = READER) => ({ endpoint: s3.endpoint, credentials });
const ok = (r: { code: number; stderr: string }) => expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });

clientTest("aws")(
  "aws s3 ls, ls --recursive, cp down (ranged) and special keys, byte-exact",
  async () => {
    using admin = awsCli(target(s3.adminCredentials));
    using aws = awsCli(target());
    using dir = tempDir();
    // the reads that send no Range run at once (each aws start costs seconds on a loaded machine);
    // the ranged download runs alone below, its requests counted
    const [buckets, ls, special] = await Promise.all([
      admin.s3("ls"),
      aws.s3("ls", `s3://${BUCKET}/`, "--recursive"),
      // one process for all the awkward keys
      aws.s3("cp", `s3://${BUCKET}/special/`, dir.path, "--recursive"),
    ]);
    ok(buckets);
    expect(buckets.stdout).toMatch(new RegExp(`\\s${BUCKET}\\n`));
    ok(ls);
    const listed = ls.stdout.trim().split("\n").map((l) => l.replace(/^\S+ \S+\s+\d+ /, ""));
    expect(listed.sort()).toEqual([...objects.keys()].sort());

    s3.resetLog();
    const big = await aws.s3("cp", `s3://${BUCKET}/${BIG_KEY}`, "-");
    ok(big);
    expect(big.bytes.byteLength).toBe(objects.get(BIG_KEY)!.byteLength);
    expect(sha256(big.bytes)).toBe(sha256(objects.get(BIG_KEY)!));
    // aws-cli downloads objects over its 8 MiB threshold in ranged parts
    expect(s3.requests.filter((e) => e.method === "GET" && e.headers.range).length).toBeGreaterThan(1);

    ok(special);
    for (const key of SPECIAL_KEYS) {
      expect(sha256(new Uint8Array(readFileSync(dir.file(key.slice("special/".length)))))).toBe(sha256(objects.get(key)!));
    }
  },
  T,
);

clientTest("aws")(
  "aws s3 presign gives a URL that fetch() downloads; a wrong secret gets SignatureDoesNotMatch",
  async () => {
    using aws = awsCli(target());
    using bad = awsCli(target(WRONG));
    const key = SPECIAL_KEYS[0]!;
    // both processes at once (each aws start costs seconds on a loaded machine)
    // (a listing, not a GET: aws s3 cp starts with a HEAD, whose 403 has no body to name the error)
    const [p, get] = await Promise.all([aws.s3("presign", `s3://${BUCKET}/${key}`, "--expires-in", "60"), bad.s3("ls", `s3://${BUCKET}/`)]);
    ok(p);
    const url = p.stdout.trim();
    expect(url).toContain("X-Amz-Signature=");
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(sha256(objects.get(key)!));

    expect(get.code).not.toBe(0);
    expect(get.stderr).toContain("SignatureDoesNotMatch");
  },
  T,
);

clientTest("aws")(
  "aws s3api list-objects-v2 --page-size 2 pages to the end",
  async () => {
    using aws = awsCli(target());
    s3.resetLog();
    const r = await aws.s3api("list-objects-v2", "--bucket", BUCKET, "--page-size", "2");
    ok(r);
    const doc = JSON.parse(r.stdout) as { Contents: Array<{ Key: string }> };
    expect(doc.Contents.map((c) => c.Key)).toEqual([...objects.keys()].sort(byUtf8));
    const lists = s3.requests.filter((e) => e.method === "GET" && e.query["list-type"] === "2");
    expect(lists.length).toBe(Math.ceil(objects.size / 2));
    expect(lists.every((e) => e.query["max-keys"] === "2")).toBe(true);
    expect(lists.slice(1).every((e) => typeof e.query["continuation-token"] === "string")).toBe(true);
  },
  T,
);

clientTest("s3cmd")(
  "s3cmd ls and get, byte-exact; a wrong secret fails",
  async () => {
    using s3cmd = s3cmdClient(target());
    using bad = s3cmdClient(target(WRONG));
    using dir = tempDir();
    // the four processes at once (each s3cmd start costs a second or more on a loaded machine)
    const [ls, big, special, r] = await Promise.all([
      s3cmd.run("ls", "--recursive", `s3://${BUCKET}/`),
      s3cmd.run("get", `s3://${BUCKET}/${BIG_KEY}`, dir.file("big")),
      s3cmd.run("get", "--recursive", `s3://${BUCKET}/special/`, `${dir.path}/`),
      // a listing: s3cmd get starts with a HEAD, whose 403 has no body to name the error
      bad.run("ls", `s3://${BUCKET}/`),
    ]);
    ok(ls);
    const prefix = `s3://${BUCKET}/`;
    const urls = ls.stdout.trim().split("\n").map((l) => l.slice(l.indexOf(prefix) + prefix.length));
    expect(urls.sort()).toEqual([...objects.keys()].sort());

    ok(big);
    expect(sha256(new Uint8Array(readFileSync(dir.file("big"))))).toBe(sha256(objects.get(BIG_KEY)!));
    ok(special);
    for (const key of SPECIAL_KEYS) {
      expect(sha256(new Uint8Array(readFileSync(dir.file(key.slice("special/".length)))))).toBe(sha256(objects.get(key)!));
    }

    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("SignatureDoesNotMatch");
  },
  T,
);

clientTest("rclone")(
  "rclone ls and copy, byte-exact; a wrong secret fails",
  async () => {
    using rc = rcloneClient(target());
    using bad = rcloneClient(target(WRONG));
    using dir = tempDir();
    // the three processes at once
    const [ls, cp, r] = await Promise.all([rc.run("ls", rc.remote(BUCKET)), rc.run("copy", rc.remote(BUCKET), dir.path), bad.run("ls", bad.remote(BUCKET))]);
    ok(ls);
    const entries = ls.stdout
      .trim()
      .split("\n")
      .map((l) => /^\s*(\d+) (.*)$/.exec(l)!)
      .map((m) => [m[2]!, Number(m[1])] as const);
    expect(new Map(entries)).toEqual(new Map([...objects].map(([k, v]) => [k, v.byteLength] as const)));

    ok(cp);
    for (const [key, body] of objects) {
      expect(sha256(new Uint8Array(readFileSync(dir.file(key))))).toBe(sha256(body));
    }

    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("SignatureDoesNotMatch");
  },
  T,
);

clientTest("python3", "boto3")(
  "boto3 list_objects_v2 (one page, with a delimiter) and download_file (ranged), byte-exact; errors come back per op",
  async () => {
    using dir = tempDir();
    const b = boto3Client(target());
    s3.resetLog();
    // the wrong secret's process runs meanwhile (a GET without Range: the ranged GETs counted below are the download's)
    const badRun = boto3Client(target(WRONG)).run([{ op: "get_object", Bucket: BUCKET, Key: "hello.txt" }]);
    const [all, prefixed, dl, special, missing] = await b.run([
      { op: "list", Bucket: BUCKET },
      { op: "list", Bucket: BUCKET, Prefix: "dir/", Delimiter: "/" },
      { op: "download_file", Bucket: BUCKET, Key: BIG_KEY, Filename: dir.file("big"), multipartThreshold: 4 << 20, multipartChunksize: 4 << 20 },
      { op: "download_file", Bucket: BUCKET, Key: SPECIAL_KEYS[3]!, Filename: dir.file("special") },
      { op: "call", method: "head_object", params: { Bucket: BUCKET, Key: "no/such/key" } },
    ]);
    if (!all!.ok) throw new Error(JSON.stringify(all!.error));
    expect(all!.value.pages).toBe(1);
    expect((all!.value.keys as Array<{ Key: string }>).map((k) => k.Key).sort()).toEqual([...objects.keys()].sort());
    expect(prefixed).toEqual({ ok: true, value: { pages: 1, keys: expect.any(Array), prefixes: ["dir/sub/"] } });
    expect(prefixed!.ok && prefixed!.value.keys.map((k: { Key: string }) => k.Key).sort()).toEqual(["dir/a.txt", "dir/b.txt"]);
    expect(dl).toEqual({ ok: true, value: {} });
    expect(sha256(new Uint8Array(readFileSync(dir.file("big"))))).toBe(sha256(objects.get(BIG_KEY)!));
    expect(s3.requests.filter((e) => e.method === "GET" && e.headers.range).length).toBeGreaterThanOrEqual(3);
    expect(special).toEqual({ ok: true, value: {} });
    expect(sha256(new Uint8Array(readFileSync(dir.file("special"))))).toBe(sha256(objects.get(SPECIAL_KEYS[3]!)!));
    expect(missing).toEqual({ ok: false, error: { code: "404", message: "Not Found", status: 404 } });

    const [bad] = await badRun;
    expect(bad).toMatchObject({ ok: false, error: { code: "SignatureDoesNotMatch", status: 403 } });
  },
  T,
);

clientTest("python3", "boto3")(
  "boto3 list_objects_v2 paginator (PageSize 3) pages to the end, in key order",
  async () => {
    const [list] = await boto3Client(target()).run([{ op: "list", Bucket: BUCKET, PageSize: 3 }]);
    if (!list!.ok) throw new Error(JSON.stringify(list!.error));
    expect(list!.value.pages).toBe(Math.ceil(objects.size / 3));
    expect((list!.value.keys as Array<{ Key: string }>).map((k) => k.Key)).toEqual([...objects.keys()].sort(byUtf8));
  },
  T,
);
