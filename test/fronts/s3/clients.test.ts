/**
 * Real S3 clients against a stand-in S3 endpoint that runs verifySigV4 on every request: aws-cli,
 * boto3, s3cmd and rclone must all produce signatures the verifier accepts, for keys with spaces,
 * +, %, unicode, ~, = and parentheses. The endpoint answers just enough S3 for each client to do
 * its job (list, head, get, put); what is checked is the verification of every request, and that
 * each client got the bytes back. Clients that are not installed are skipped.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { verifySigV4 } from "../../../src/fronts/s3/verify.ts";
import { s3ErrorResponse, s3Error } from "../../../src/fronts/s3/errors.ts";
import { el, renderListBuckets, renderLocationConstraint, S3_XMLNS, XML_DECL } from "../../../src/fronts/s3/xml.ts";
import { decodeComponent } from "../../../src/fronts/s3/uri.ts";
import { SigningKeyCache } from "../../../src/fronts/s3/signing-keys.ts";
import { lookupOf } from "./helpers.ts";
import { BINARIES } from "../../clients/run.ts";

const CREDS = { accessKeyId: "AKIDREALCLIENTS", secretAccessKey: "real/clients+secret=key" };
const BUCKET = "bucket";
const KEYS = ["a b+c.txt", "100% done.txt", "日本語/ファイル.txt", "~tilde/x=y&z.txt", "photo (1)!'*.png", "emoji 😀.txt", "dir/plain.txt"];
const body = (key: string) => `content of ${key}\n`;
const objects = new Map(KEYS.map((k) => [k, body(k)]));

const results: Array<{ client: string; method: string; target: string; kind: string; code?: string; message?: string }> = [];
let client = "none";
let server: ReturnType<typeof Bun.serve>;
let endpoint: string;
let dir: string;

function listXml(query: Map<string, string>): string {
  const prefix = query.get("prefix") ?? "";
  const delimiter = query.get("delimiter") ?? "";
  const v2 = query.get("list-type") === "2";
  const keys: string[] = [];
  const prefixes = new Set<string>();
  for (const k of [...objects.keys()].sort()) {
    if (!k.startsWith(prefix)) continue;
    const rest = k.slice(prefix.length);
    const d = delimiter ? rest.indexOf(delimiter) : -1;
    if (d >= 0) prefixes.add(prefix + rest.slice(0, d + delimiter.length));
    else keys.push(k);
  }
  const enc = query.get("encoding-type") === "url" ? (s: string) => encodeURIComponent(s).replace(/%2F/g, "/") : (s: string) => s;
  let xml = XML_DECL + `<ListBucketResult xmlns="${S3_XMLNS}">` + el("Name", BUCKET) + el("Prefix", enc(prefix)) + el("MaxKeys", "1000") + el("IsTruncated", "false");
  if (delimiter) xml += el("Delimiter", enc(delimiter));
  if (query.has("encoding-type")) xml += el("EncodingType", "url");
  if (v2) xml += el("KeyCount", String(keys.length + prefixes.size));
  else xml += el("Marker", "");
  for (const k of keys) {
    xml += "<Contents>" + el("Key", enc(k)) + el("LastModified", "2024-01-01T00:00:00.000Z") + el("ETag", '"e"') +
      el("Size", String(Buffer.byteLength(objects.get(k)!))) + el("StorageClass", "STANDARD") + "</Contents>";
  }
  for (const p of prefixes) xml += "<CommonPrefixes>" + el("Prefix", enc(p)) + "</CommonPrefixes>";
  return xml + "</ListBucketResult>";
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "s3-clients-"));
  const keyCache = new SigningKeyCache();
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const url = req.url;
      const pathStart = url.indexOf("/", url.indexOf("://") + 3);
      const target = url.slice(pathStart);
      const q = target.indexOf("?");
      const rawPath = q < 0 ? target : target.slice(0, q);
      const rawQuery = q < 0 ? "" : target.slice(q + 1);
      const r = verifySigV4({ method: req.method, rawPath, rawQuery, headers: req.headers }, lookupOf(CREDS), {
        region: "us-east-1", now: Date.now(), maxSkewSeconds: 900, keyCache,
      });
      results.push({ client, method: req.method, target, kind: r.kind, ...(r.kind === "error" ? { code: r.code, message: r.message } : {}) });
      if (r.kind !== "ok") return s3ErrorResponse(r.kind === "error" ? r : s3Error("AccessDenied"), { requestId: "t", method: req.method });

      const query = new Map(r.query);
      const path = decodeComponent(rawPath)!;
      const slash = path.indexOf("/", 1);
      const bucket = slash < 0 ? path.slice(1) : path.slice(1, slash);
      const key = slash < 0 ? "" : path.slice(slash + 1);
      const xml = (s: string) => new Response(s, { headers: { "content-type": "application/xml" } });
      if (bucket === "") return xml(renderListBuckets([{ name: BUCKET, creationDate: 0 }], { owner: { id: "o" } }));
      if (bucket !== BUCKET) return s3ErrorResponse(s3Error("NoSuchBucket"), { requestId: "t", method: req.method });
      if (key === "") {
        if (query.has("location")) return xml(renderLocationConstraint("us-east-1"));
        if (req.method === "HEAD") return new Response(null, { headers: { "x-amz-bucket-region": "us-east-1" } });
        if (req.method === "GET") return xml(listXml(query));
        return s3ErrorResponse(s3Error("NotImplemented"), { requestId: "t", method: req.method });
      }
      if (req.method === "PUT") {
        objects.set(key, await req.text());
        return new Response(null, { headers: { etag: '"put"' } });
      }
      const content = objects.get(key);
      if (content === undefined) return s3ErrorResponse(s3Error("NoSuchKey"), { requestId: "t", method: req.method });
      return new Response(req.method === "HEAD" ? null : content, {
        headers: {
          "content-type": "text/plain",
          "content-length": String(Buffer.byteLength(content)),
          etag: `"${Bun.CryptoHasher.hash("md5", content, "hex")}"`,
          "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT",
        },
      });
    },
  });
  endpoint = `http://127.0.0.1:${server.port}`;
});

afterAll(() => {
  server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

async function run(name: string, cmd: string[], env: Record<string, string> = {}) {
  client = name;
  const proc = Bun.spawn(cmd, {
    env: { PATH: process.env.PATH!, HOME: dir, AWS_CONFIG_FILE: "/dev/null", AWS_SHARED_CREDENTIALS_FILE: "/dev/null", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { out, err, code };
}

const refused = (name: string) => results.filter((r) => r.client === name && r.kind !== "ok");
const verified = (name: string) => results.filter((r) => r.client === name && r.kind === "ok").length;
const awsEnv = { AWS_ACCESS_KEY_ID: CREDS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey, AWS_DEFAULT_REGION: "us-east-1", AWS_MAX_ATTEMPTS: "1" };

// Debian's aws-cli by its path: a pyenv shim on PATH may be another aws-cli (1.x) that refuses AWS_CONFIG_FILE=/dev/null.
const aws = existsSync(BINARIES.aws) ? BINARIES.aws : null;
describe.skipIf(!aws)("aws-cli", () => {
  test("s3 ls --recursive and s3 cp upload of tricky keys", async () => {
    const ls = await run("aws", [aws!, "--endpoint-url", endpoint, "s3", "ls", `s3://${BUCKET}/`, "--recursive"], awsEnv);
    expect({ code: ls.code, err: ls.err }).toEqual({ code: 0, err: "" });
    for (const k of KEYS) expect(ls.out).toContain(k);

    const src = join(dir, "up");
    writeFileSync(src, "uploaded by aws-cli\n");
    const cp = await run("aws", [aws!, "--endpoint-url", endpoint, "s3", "cp", src, `s3://${BUCKET}/up load+=(1).txt`], awsEnv);
    expect({ code: cp.code, err: cp.err }).toEqual({ code: 0, err: "" });
    expect(objects.get("up load+=(1).txt")).toBe("uploaded by aws-cli\n");
    expect(refused("aws")).toEqual([]);
    expect(verified("aws")).toBeGreaterThanOrEqual(2);
  }, 60_000);

  test("s3 presign: SigV4 when s3.signature_version = s3v4; botocore's default SigV2 URL gets S3's clear refusal", async () => {
    const cfg = join(dir, "aws-config");
    writeFileSync(cfg, "[default]\ns3 =\n  signature_version = s3v4\n");
    const v4 = await run("aws", [aws!, "--endpoint-url", endpoint, "s3", "presign", `s3://${BUCKET}/a b+c.txt`, "--expires-in", "300"], { ...awsEnv, AWS_CONFIG_FILE: cfg });
    expect(v4.code).toBe(0);
    expect(v4.out).toContain("X-Amz-Signature=");
    client = "aws-presign";
    const res = await fetch(v4.out.trim());
    expect([res.status, await res.text()]).toEqual([200, body("a b+c.txt")]);
    expect(refused("aws-presign")).toEqual([]);

    // botocore presigns S3 with SigV2 unless told otherwise (aws-cli v1, boto3's generate_presigned_url)
    const v2 = await run("aws", [aws!, "--endpoint-url", endpoint, "s3", "presign", `s3://${BUCKET}/a b+c.txt`], awsEnv);
    if (v2.out.includes("AWSAccessKeyId=")) {
      client = "aws-presign-v2";
      const refusedRes = await fetch(v2.out.trim());
      expect(refusedRes.status).toBe(400);
      expect(await refusedRes.text()).toContain("<Code>InvalidRequest</Code><Message>The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.</Message>");
    }
  }, 60_000);
});

const python = Bun.which("python3");
const hasBoto3 = python !== null && Bun.spawnSync([python, "-c", "import boto3"]).exitCode === 0;
describe.skipIf(!hasBoto3)("boto3", () => {
  test("list_objects_v2 paginator, get_object of every key, download_file, put_object, a SigV4 presigned URL", async () => {
    const script = `
import json, sys, urllib.request, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bucket", PaginationConfig={"PageSize": 2}) for o in page.get("Contents", [])]
bodies = {k: s3.get_object(Bucket="bucket", Key=k)["Body"].read().decode() for k in keys}
pref = [o["Key"] for o in s3.list_objects_v2(Bucket="bucket", Prefix="日本語/", Delimiter="/").get("Contents", [])]
s3.download_file("bucket", "photo (1)!'*.png", sys.argv[2])
s3.put_object(Bucket="bucket", Key="boto 3+%.txt", Body=b"from boto3\\n")
v4 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
url = v4.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": "emoji 😀.txt"}, ExpiresIn=60)
presigned = urllib.request.urlopen(url).read().decode()
print(json.dumps({"keys": keys, "bodies": bodies, "pref": pref, "presigned": presigned}))
`;

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);
    const file = join(dir, "dl");
    const r = await run("boto3", [python!, "-c", script, endpoint, file], awsEnv);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
    const out = JSON.parse(r.out);
    for (const k of KEYS) expect(out.bodies[k]).toBe(body(k));
    expect(out.pref).toEqual(["日本語/ファイル.txt"]);
    expect(out.presigned).toBe(body("emoji 😀.txt"));
    expect(readFileSync(file, "utf8")).toBe(body("photo (1)!'*.png"));
    expect(objects.get("boto 3+%.txt")).toBe("from boto3\n");
    expect(refused("boto3")).toEqual([]);
  }, 60_000);
});

const s3cmd = Bun.which("s3cmd");
describe.skipIf(!s3cmd)("s3cmd", () => {
  test("ls and get of keys with spaces, +, %, unicode", async () => {
    const cfg = join(dir, "s3cfg");
    const host = endpoint.replace("http://", "");
    writeFileSync(cfg, [
      "[default]", `access_key = ${CREDS.accessKeyId}`, `secret_key = ${CREDS.secretAccessKey}`, `host_base = ${host}`, `host_bucket = ${host}`,
      "use_https = False", "signature_v2 = False", "bucket_location = us-east-1", "",
    ].join("\n"));
    const ls = await run("s3cmd", [s3cmd!, "-c", cfg, "ls", "--recursive", `s3://${BUCKET}/`]);
    expect({ code: ls.code, err: ls.err }).toEqual({ code: 0, err: "" });
    for (const k of KEYS) expect(ls.out).toContain(k);
    for (const key of ["a b+c.txt", "100% done.txt", "日本語/ファイル.txt"]) {
      const dest = join(dir, "s3cmd-" + Bun.CryptoHasher.hash("md5", key, "hex"));
      const get = await run("s3cmd", [s3cmd!, "-c", cfg, "get", "--force", `s3://${BUCKET}/${key}`, dest]);
      expect({ key, code: get.code, err: get.err }).toEqual({ key, code: 0, err: "" });
      expect(readFileSync(dest, "utf8")).toBe(body(key));
    }
    expect(refused("s3cmd")).toEqual([]);
  }, 60_000);
});

const rclone = Bun.which("rclone");
describe.skipIf(!rclone)("rclone", () => {
  test("lsf --recursive and copy from the endpoint", async () => {
    const env = {
      RCLONE_CONFIG: "/dev/null",
      RCLONE_CONFIG_P_TYPE: "s3", RCLONE_CONFIG_P_PROVIDER: "Other", RCLONE_CONFIG_P_ENDPOINT: endpoint,
      RCLONE_CONFIG_P_ACCESS_KEY_ID: CREDS.accessKeyId, RCLONE_CONFIG_P_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
      RCLONE_CONFIG_P_REGION: "us-east-1", RCLONE_CONFIG_P_FORCE_PATH_STYLE: "true",
    };
    const ls = await run("rclone", [rclone!, "lsf", "--recursive", "--files-only", `p:${BUCKET}`], env);
    expect({ code: ls.code, err: ls.err }).toEqual({ code: 0, err: "" });
    for (const k of KEYS) expect(ls.out).toContain(k);
    const dest = join(dir, "rclone");
    const cp = await run("rclone", [rclone!, "copy", "--s3-no-check-bucket", `p:${BUCKET}/日本語`, dest], env);
    expect({ code: cp.code, err: cp.err }).toEqual({ code: 0, err: "" });
    expect(readFileSync(join(dest, "ファイル.txt"), "utf8")).toBe(body("日本語/ファイル.txt"));
    // aws-sdk-go signs every header, raw UTF-8 included: 你, à and Р carry the byte 0xA0, which
    // the verifier read as a non-breaking space (trimmed or collapsed) and refused the signature
    for (const v of ["x你y", "voilà", "Рим"]) {
      const cat = await run("rclone", [rclone!, "cat", "--header-download", `X-Amz-Meta-T: ${v}`, `p:${BUCKET}/dir/plain.txt`], env);
      expect({ v, code: cat.code, out: cat.out }).toEqual({ v, code: 0, out: body("dir/plain.txt") });
    }
    expect(refused("rclone")).toEqual([]);
  }, 60_000);
});
