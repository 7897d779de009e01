/**
 * Real S3 clients through the proxy's S3 front to the S3 fixture: aws-cli, s3cmd, rclone, boto3
 * and @aws-sdk/client-s3 list and download with credentials the proxy issued; the proxy re-signs
 * toward the fixture with the bucket's own key (the fixture checks that signature independently).
 * Keys with spaces, "+", "%", unicode and "~" come back byte-exact; so does a 40 MiB object.
 */
import { afterAll, expect, setDefaultTimeout } from "bun:test";
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { readFileSync } from "node:fs";
import { awsCli } from "../clients/aws.ts";
import { boto3Client } from "../clients/boto3.ts";
import { pseudoRandom, SPECIAL_KEYS } from "../clients/fixture-objects.ts";
import { rcloneClient } from "../clients/rclone.ts";
import { clientTest, isolatedEnv, runProcess, tempDir } from "../clients/run.ts";
import { s3cmdClient } from "../clients/s3cmd.ts";
import { APP, startS3FrontEnv, UPSTREAM } from "./s3-front-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 180_000; // real clients start Python or Go programs on a loaded 2-core machine
const BIG_KEY = "big/forty.bin";
const BIG_SIZE = 40 * 1024 * 1024 + 13;
/** S3's listing order: the keys' UTF-8 bytes. */
const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

const env = await startS3FrontEnv();
const objects = new Map<string, Uint8Array>([
  ["hello.txt", new TextEncoder().encode("Hello through the S3 front\n")],
  ["dir/a.txt", new TextEncoder().encode("A")],
  ["dir/b.txt", new TextEncoder().encode("BB")],
  ["dir/sub/c.txt", new TextEncoder().encode("CCC")],
  ...SPECIAL_KEYS.map((k, i) => [k, new TextEncoder().encode(`body of ${k} #${i}`)] as [string, Uint8Array]),
  [BIG_KEY, pseudoRandom(BIG_SIZE, 40)],
]);
for (const [key, body] of objects) await env.s3.put("data", key, body);
afterAll(() => env.stop());

const target = { endpoint: env.endpoint, credentials: APP };
const ok = (r: { code: number; stderr: string }) => expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
const allKeys = [...objects.keys()].sort(byUtf8);
/** Every request the fixture got since mark() was signed by the proxy with the bucket's key, never the client's. */
const reSigned = () => {
  const calls = env.upstreamCalls();
  expect(calls.length).toBeGreaterThan(0);
  expect(calls.filter((c) => c.accessKeyId !== UPSTREAM.accessKeyId || c.errorCode !== undefined)).toEqual([]);
};

clientTest("aws")(
  "aws s3 ls, ls --recursive, cp of 40 MiB to stdout and of the awkward keys, byte-exact",
  async () => {
    using aws = awsCli(target);
    using dir = tempDir();
    env.mark();
    // the five processes at once (each aws start costs seconds on a loaded machine)
    const [buckets, ls, under, big, special] = await Promise.all([
      aws.s3("ls"),
      aws.s3("ls", "s3://data/", "--recursive"),
      aws.s3("ls", "s3://data/dir/"),
      aws.s3("cp", `s3://data/${BIG_KEY}`, "-"),
      aws.s3("cp", "s3://data/special/", dir.path, "--recursive"),
    ]);
    ok(buckets);
    expect(buckets.stdout.trim().split("\n").map((l) => l.split(/\s+/).at(-1))).toEqual(["data", "private"]);

    ok(ls);
    expect(ls.stdout.trim().split("\n").map((l) => l.replace(/^\S+ \S+\s+\d+ /, "")).sort(byUtf8)).toEqual(allKeys);
    ok(under);
    expect(under.stdout).toMatch(/PRE sub\/\n/);

    ok(big);
    expect(big.bytes.byteLength).toBe(BIG_SIZE);
    expect(sha256(big.bytes)).toBe(sha256(objects.get(BIG_KEY)!));

    ok(special);
    for (const key of SPECIAL_KEYS) expect(sha256(new Uint8Array(readFileSync(dir.file(key.slice("special/".length)))))).toBe(sha256(objects.get(key)!));
    reSigned();
  },
  T,
);

clientTest("aws")(
  "aws s3api list-objects-v2 --max-keys 2, following NextContinuationToken to the end",
  async () => {
    using aws = awsCli(target);
    env.mark();
    const keys: string[] = [];
    let token: string | undefined;
    for (let page = 0; page <= objects.size; page++) {
      // with --max-keys the CLI answers one page (it does so against S3 too); the token is the client's to follow
      const r = await aws.s3api("list-objects-v2", "--bucket", "data", "--max-keys", "2", ...(token ? ["--continuation-token", token] : []));
      ok(r);
      const doc = JSON.parse(r.stdout) as { Contents: Array<{ Key: string }>; IsTruncated: boolean; NextContinuationToken?: string; KeyCount: number; Name: string };
      expect(doc.KeyCount).toBeLessThanOrEqual(2);
      expect(doc.Name).toBe("data");
      keys.push(...doc.Contents.map((c) => c.Key));
      if (!doc.IsTruncated) break;
      token = doc.NextContinuationToken;
    }
    expect(keys).toEqual(allKeys);
    const lists = env.upstreamCalls().filter((e) => e.query["list-type"] === "2");
    expect(lists.length).toBe(Math.ceil(objects.size / 2));
    expect(lists.slice(1).every((e) => typeof e.query["continuation-token"] === "string" && e.query["max-keys"] === "2")).toBe(true);
  },
  T,
);

clientTest("aws", "python3", "boto3")(
  "aws s3 presign fetched with curl; boto3's default (SigV2) presign gets a clear InvalidRequest, with signature_version s3v4 it works",
  async () => {
    const key = SPECIAL_KEYS[3]!;
    using aws = awsCli({ ...target, s3Settings: { signature_version: "s3v4" } });
    using dir = tempDir();
    // botocore (boto3; aws-cli v1) presigns with SigV2 unless signature_version says s3v4
    const script = `import boto3, sys
from botocore.config import Config
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
for cfg in (Config(s3={"addressing_style": "path"}), Config(s3={"addressing_style": "path"}, signature_version="s3v4")):
    print(boto3.client("s3", config=cfg, **kw).generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "hello.txt"}))`;
    // the two presigning processes at once (each Python start costs seconds on a loaded machine)
    const [p, py] = await Promise.all([
      aws.s3("presign", `s3://data/${key}`, "--expires-in", "60"),
      runProcess(["/usr/bin/python3", "-c", script, env.endpoint, APP.accessKeyId, APP.secretAccessKey], { env: isolatedEnv(dir.path) }),
    ]);
    ok(p);
    const url = p.stdout.trim();
    expect(url).toContain("X-Amz-Signature=");
    const curl = Bun.spawn(["curl", "-sS", "-o", dir.file("out"), "-w", "%{http_code}", url], { stdout: "pipe", stderr: "pipe" });
    const [status, code] = await Promise.all([new Response(curl.stdout).text(), curl.exited]);
    expect({ code, status }).toEqual({ code: 0, status: "200" });
    expect(sha256(new Uint8Array(readFileSync(dir.file("out"))))).toBe(sha256(objects.get(key)!));

    expect({ code: py.code, stderr: py.stderr }).toEqual({ code: 0, stderr: "" });
    const [v2, v4] = py.stdout.trim().split("\n");
    expect(v2).toContain("Signature=");
    const old = await fetch(v2!);
    expect(old.status).toBe(400);
    expect(await old.text()).toContain("Please use AWS4-HMAC-SHA256");
    const fresh = await fetch(v4!);
    expect([fresh.status, await fresh.text()]).toEqual([200, "Hello through the S3 front\n"]);
  },
  T,
);

clientTest("s3cmd")(
  "s3cmd ls and get (the awkward keys; the 40 MiB object from the node-engine S3 listener), byte-exact",
  async () => {
    using s3cmd = s3cmdClient(target);
    env.mark();
    using dir = tempDir();
    // s3cmd needs Content-Length on a GetObject; the bun engine streams this one without it
    await using nodeEnv = await startS3FrontEnv({ s3Extra: "  engine: node\n" }, env.s3);
    using viaNode = s3cmdClient({ ...target, endpoint: nodeEnv.endpoint });
    // the three processes at once (each s3cmd start costs a second or more on a loaded machine)
    const [ls, big, special] = await Promise.all([
      s3cmd.run("ls", "--recursive", "s3://data/"),
      viaNode.run("get", `s3://data/${BIG_KEY}`, dir.file("big")),
      s3cmd.run("get", "--recursive", "s3://data/special/", `${dir.path}/`),
    ]);
    ok(ls);
    const urls = ls.stdout.trim().split("\n").map((l) => l.slice(l.indexOf("s3://data/") + "s3://data/".length));
    expect(urls.sort(byUtf8)).toEqual(allKeys);
    ok(big);
    expect(sha256(new Uint8Array(readFileSync(dir.file("big"))))).toBe(sha256(objects.get(BIG_KEY)!));
    ok(special);
    for (const key of SPECIAL_KEYS) expect(sha256(new Uint8Array(readFileSync(dir.file(key.slice("special/".length)))))).toBe(sha256(objects.get(key)!));
    reSigned();
  },
  T,
);

clientTest()(
  "known limit, bun engine: a GetObject above server.buffer_threshold_bytes streams without Content-Length; s3_api.engine node sends it",
  async () => {
    const c = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: APP, maxAttempts: 1 });
    await using nodeEnv = await startS3FrontEnv({ s3Extra: "  engine: node\n" }, env.s3);
    const n = new S3Client({ endpoint: nodeEnv.endpoint, region: "us-east-1", forcePathStyle: true, credentials: APP, maxAttempts: 1 });
    try {
      const viaBun = await c.send(new GetObjectCommand({ Bucket: "data", Key: BIG_KEY }));
      expect(viaBun.ContentLength).toBeUndefined(); // README "S3 clients": Known limits
      expect((await viaBun.Body!.transformToByteArray()).byteLength).toBe(BIG_SIZE);
      const viaNode = await n.send(new GetObjectCommand({ Bucket: "data", Key: BIG_KEY }));
      expect(viaNode.ContentLength).toBe(BIG_SIZE);
      expect(sha256(await viaNode.Body!.transformToByteArray())).toBe(sha256(objects.get(BIG_KEY)!));
    } finally {
      c.destroy();
      n.destroy();
    }
  },
  T,
);

clientTest("rclone")(
  "rclone ls and copy of the whole bucket, byte-exact",
  async () => {
    using rc = rcloneClient(target);
    env.mark();
    using dir = tempDir();
    const [ls, cp] = await Promise.all([rc.run("ls", rc.remote("data")), rc.run("copy", rc.remote("data"), dir.path)]);
    ok(ls);
    const entries = ls.stdout.trim().split("\n").map((l) => /^\s*(\d+) (.*)$/.exec(l)!).map((m) => [m[2]!, Number(m[1])] as const);
    expect(new Map(entries)).toEqual(new Map([...objects].map(([k, v]) => [k, v.byteLength] as const)));
    ok(cp);
    for (const [key, body] of objects) expect(sha256(new Uint8Array(readFileSync(dir.file(key))))).toBe(sha256(body));
    reSigned();
  },
  T,
);

clientTest("python3", "boto3")(
  "boto3 list_objects_v2 (delimiter) and download_file (ranged 40 MiB, unicode key), byte-exact",
  async () => {
    using dir = tempDir();
    env.mark();
    const [all, prefixed, dl, special] = await boto3Client(target).run([
      { op: "list", Bucket: "data" },
      { op: "list", Bucket: "data", Prefix: "dir/", Delimiter: "/" },
      { op: "download_file", Bucket: "data", Key: BIG_KEY, Filename: dir.file("big"), multipartThreshold: 8 << 20, multipartChunksize: 8 << 20 },
      { op: "download_file", Bucket: "data", Key: SPECIAL_KEYS[3]!, Filename: dir.file("special") },
    ]);
    if (!all!.ok) throw new Error(JSON.stringify(all!.error));
    expect((all!.value.keys as Array<{ Key: string }>).map((k) => k.Key)).toEqual(allKeys);
    expect(prefixed).toEqual({ ok: true, value: { pages: 1, keys: expect.any(Array), prefixes: ["dir/sub/"] } });
    expect(dl).toEqual({ ok: true, value: {} });
    expect(sha256(new Uint8Array(readFileSync(dir.file("big"))))).toBe(sha256(objects.get(BIG_KEY)!));
    expect(env.upstreamCalls().filter((e) => e.method === "GET" && e.headers.range).length).toBeGreaterThanOrEqual(5);
    expect(special).toEqual({ ok: true, value: {} });
    expect(sha256(new Uint8Array(readFileSync(dir.file("special"))))).toBe(sha256(objects.get(SPECIAL_KEYS[3]!)!));
    reSigned();
  },
  T,
);

clientTest("python3", "boto3")(
  "boto3 list_objects_v2 paginator (PageSize 2) pages to the end, in key order",
  async () => {
    const [list] = await boto3Client(target).run([{ op: "list", Bucket: "data", PageSize: 2 }]);
    if (!list!.ok) throw new Error(JSON.stringify(list!.error));
    expect(list!.value.pages).toBe(Math.ceil(objects.size / 2));
    expect((list!.value.keys as Array<{ Key: string }>).map((k) => k.Key)).toEqual(allKeys);
  },
  T,
);

clientTest()(
  "@aws-sdk/client-s3: ListObjectsV2 (plain and url-encoded) and GetObject of every awkward key, byte-exact",
  async () => {
    const c = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: APP, maxAttempts: 1 });
    try {
      env.mark();
      const l = await c.send(new ListObjectsV2Command({ Bucket: "data", Prefix: "special/", EncodingType: "url" }));
      // the JS SDK leaves encoding-type=url keys encoded (S3's form: "+" for a space)
      expect((l.Contents ?? []).map((o) => decodeURIComponent(o.Key!.replaceAll("+", " ")))).toEqual([...SPECIAL_KEYS].sort(byUtf8));
      const plain = await c.send(new ListObjectsV2Command({ Bucket: "data", Prefix: "special/" }));
      expect((plain.Contents ?? []).map((o) => o.Key)).toEqual([...SPECIAL_KEYS].sort(byUtf8));
      for (const key of SPECIAL_KEYS) {
        const g = await c.send(new GetObjectCommand({ Bucket: "data", Key: key }));
        expect(sha256(await g.Body!.transformToByteArray())).toBe(sha256(objects.get(key)!));
      }
      reSigned();
    } finally {
      c.destroy();
    }
  },
  T,
);

clientTest()(
  "@aws-sdk/client-s3 under an upstream SlowDown with Retry-After: one longer than s3.retry's max_backoff_ms (30 s, or an HTTP-date a minute ahead: relayed as 60 s, was 1; or 10 digits of seconds: relayed as 99999, was read as none, retried twice and relayed as 1) is passed on after one upstream attempt (was retried twice within ~100 ms); one within it (1 s) is waited for before the retry",
  async () => {
    const c = new S3Client({ endpoint: env.endpoint, region: "us-east-1", forcePathStyle: true, credentials: APP, maxAttempts: 1 });
    const slowDown = (after: string, times?: number) => ({ kind: "error", status: 503, code: "SlowDown", message: "Please reduce your request rate.", headers: { "Retry-After": after }, times, method: "GET" }) as const;
    env.s3.faults.set("/data/dir/a.txt", slowDown("30"));
    env.s3.faults.set("/data/dir/b.txt", slowDown("1", 1));
    // (an HTTP-date, RFC 9110's other form, a minute ahead)
    env.s3.faults.set("/data/dir/sub/c.txt", slowDown(new Date(Date.now() + 60_000).toUTCString()));
    // (delay-seconds of 10 digits: was read as none, retried at once, relayed as 1)
    env.s3.faults.set("/data/dir/far.txt", slowDown("9999999999"));
    const from = Date.now();
    const refusal = (key: string) =>
      c.send(new GetObjectCommand({ Bucket: "data", Key: key })).then(
        () => "answered",
        (e) => ({ code: e.name, retryAfter: e.$response?.headers?.["retry-after"] }),
      );
    try {
      const [long, short, dated, far] = await Promise.all([refusal("dir/a.txt"), c.send(new GetObjectCommand({ Bucket: "data", Key: "dir/b.txt" })).then((g) => g.Body!.transformToString()), refusal("dir/sub/c.txt"), refusal("dir/far.txt")]);
      expect(long).toEqual({ code: "SlowDown", retryAfter: "30" });
      expect(env.s3.faults.hits("/data/dir/a.txt")).toBe(1);
      // (passed on after one attempt, with the seconds until that date: was Retry-After: 1)
      expect(dated).toEqual({ code: "SlowDown", retryAfter: expect.stringMatching(/^(59|60)$/) });
      expect(env.s3.faults.hits("/data/dir/sub/c.txt")).toBe(1);
      expect(far).toEqual({ code: "SlowDown", retryAfter: "99999" });
      expect(env.s3.faults.hits("/data/dir/far.txt")).toBe(1);
      expect(short).toBe("BB");
      const gets = env.s3.requests.filter((e) => e.at >= from && e.method === "GET" && e.pathname === "/data/dir/b.txt");
      expect(gets.map((e) => e.status)).toEqual([503, 200]);
      expect(gets[1]!.at - gets[0]!.at).toBeGreaterThanOrEqual(950);
    } finally {
      env.s3.faults.delete("/data/dir/a.txt");
      env.s3.faults.delete("/data/dir/b.txt");
      env.s3.faults.delete("/data/dir/sub/c.txt");
      env.s3.faults.delete("/data/dir/far.txt");
      c.destroy();
    }
  },
  T,
);
