/**
 * Traversal through the real listeners, with raw request bytes (fetch would normalize the path
 * before sending it). Both engines route on the target as the client sent it: node:http hands it
 * over as received; on Bun.serve, whose URL parser resolves dot segments and turns `\` into `/`,
 * the raw segments come from parametrised routes (src/http/raw-target.ts). So every `..` form is
 * a 400 on both, and a literal backslash is an ordinary key character.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { parseConfig } from "../../src/config/load.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
const proxies: Record<string, InProcessProxy> = {};

function rawRequest(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () => sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let buf = "";
    sock.on("data", (d) => (buf += d.toString("latin1")));
    sock.on("error", reject);
    sock.on("close", () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0), body: buf.slice(buf.indexOf("\r\n\r\n") + 4) }));
  });
}
const rawGet = async (port: number, target: string) => (await rawRequest(port, target)).status;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "pub", public: true }], credentials: [] });
  await s3.put("pub", "ok.txt", "ok");
  await s3.put("pub", "dir\\file.txt", "the key with a backslash");
  await s3.put("pub", "dir/file.txt", "the key with a slash");
  await s3.put("pub", "end\\", "the key ending in a backslash");
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startInProcess(`server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}`);
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  await s3?.stop();
});

// (a dot segment at the end too: Bun's URL resolves `/pub/a/..` to `/pub/`, with a slash the client never sent)
const ESCAPES = ["/pub/../etc/passwd", "/pub/a/../../x", "/pub/%2e%2e/x", "/pub/%2E%2e/x", "/pub/.%2e/x", "/pub/./ok.txt", "/pub/a/..", "/pub/a/.", "/pub/a/b/..", "/pub/a/../"];
const ENCODED = ["/pub/a%2F..%2Fb", "/pub/%00x", "/pub/a%0d%0a%00b", "/pub/%zz"];
// With an empty segment (`//`) Bun.serve took its fallback, with the dot segments resolved: /pub//../ok.txt
// was served as /pub/ok.txt, /pub//../../other/x routed to /other/x (node refused both). Two empty
// segments are the fallback still: refused when the dot segments shortened the URL out of that form.
const EMPTY_SEGMENT = ["/pub//../ok.txt", "/pub/a//..", "/pub//..", "//../pub/ok.txt", "/pub//%2e%2e/ok.txt", "/pub//x//../../ok.txt", "/pub//x//../../../pub/ok.txt"];

// Two or more empty segments (or deeper than 32): Bun resolved the dot segments and the URL kept
// that form, so /other/../pub///ok.txt was served from bucket pub and /pub/../health/// was the
// health check (node refused both). Now a URL whose start is not the raw one is refused, and so is
// one with two leading empty segments (no raw segment then names the bucket: README Known limits).
const ACROSS_PREFIX = ["/other/../pub///ok.txt", "/other/x/../../pub///ok.txt", "/x//y//../../../../pub///ok.txt", "///../../pub//ok.txt//", "/pub/../health///", "///other/../pub//ok.txt", "///x/../health", `/other/${"a/".repeat(33)}${"../".repeat(34)}pub/ok.txt`];

for (const engine of ["node", "bun"]) {
  describe(`${engine} engine (routes on the raw request target)`, () => {
    for (const t of [...ESCAPES, ...ENCODED, ...EMPTY_SEGMENT, ...ACROSS_PREFIX]) test(`rejects ${t} with 400`, async () => expect(await rawGet(proxies[engine].port, t)).toBe(400));
    test("a plain key still works", async () => expect(await rawGet(proxies[engine].port, "/pub/ok.txt")).toBe(200));
    // (key characters in S3, served on the S3 front: until 2026-12-07 a 400 here)
    test("a key with control characters but NUL is a key (answered as any missing key)", async () => {
      const missing = await rawGet(proxies[engine].port, "/pub/no-such-key");
      expect(missing).not.toBe(400);
      expect(await rawGet(proxies[engine].port, "/pub/a%0d%0a%01%7fb")).toBe(missing);
    });
    // One empty segment deeper than MAX_EMPTY_DEPTH (8) takes the wildcard routes on bun (a route of
    // its own for every depth was 1,024 routes, ~10 MiB of Bun's router per process): routed as the
    // key it names, and a dot segment that climbs out of the raw start refused as before.
    test("a key with an empty segment deeper than 8 segments is routed (answered as any missing key), one climbing out of its start refused", async () => {
      const deep = `/pub/${"d/".repeat(9)}`;
      const missing = await rawGet(proxies[engine].port, "/pub/no-such-key");
      expect(missing).not.toBe(400);
      expect(await rawGet(proxies[engine].port, `${deep}/x`)).toBe(missing);
      expect(await rawGet(proxies[engine].port, `${deep}/${"../".repeat(11)}other/x`)).toBe(400);
    });
    test("a literal backslash is a key character: /pub/dir\\file.txt is the key dir\\file.txt, not dir/file.txt", async () => {
      const r = await rawRequest(proxies[engine].port, "/pub/dir\\file.txt");
      expect(r.status).toBe(200);
      expect(r.body).toContain("the key with a backslash");
      const slash = await rawRequest(proxies[engine].port, "/pub/dir/file.txt");
      expect(slash.body).toContain("the key with a slash");
    });
    test("a backslash cannot reroute to another prefix: /other/..\\pub/ok.txt is not bucket pub", async () => {
      expect(await rawGet(proxies[engine].port, "/other/..\\pub/ok.txt")).toBe(404);
      expect(await rawGet(proxies[engine].port, "/pub/..\\pub/ok.txt")).not.toBe(200);
      // (two empty segments: Bun's URL, /pub//ok.txt//, was served from pub; node: no bucket `other\..\pub`)
      expect(await rawGet(proxies[engine].port, "/other\\..\\pub//ok.txt//")).not.toBe(200);
    });
    test("a key ending in a literal backslash is that key (no slash added)", async () => {
      const r = await rawRequest(proxies[engine].port, "/pub/end\\");
      expect(r.status).toBe(200);
      expect(r.body).toContain("the key ending in a backslash");
    });
    // Bun.serve's parameters decode %FF, %ZZ and a lone % as U+FFFD: rebuilt from them, the
    // target with a backslash was served as the key a\<U+FFFD>b (404 here) instead of refused.
    for (const t of ["/pub/a\\%FFb", "/pub/a\\%ZZb", "/pub/a\\%", "/pub/a\\%ED%A0%80b", "/pub/a\\%C0%AFb"])
      test(`a malformed percent-encoding beside a backslash is still a 400: ${t}`, async () => {
        const r = await rawRequest(proxies[engine].port, t);
        expect({ status: r.status, malformed: r.body.includes("malformed percent-encoding") }).toEqual({ status: 400, malformed: true });
      });
    test("%5C is a backslash too", async () => {
      const r = await rawRequest(proxies[engine].port, "/pub/dir%5Cfile.txt");
      expect(r.body).toContain("the key with a backslash");
    });
  });
}

test("two or more leading empty segments (///pub/ok.txt, nothing traversing): node serves them as /pub/ok.txt; bun, whose URL no longer shows the raw segments, refuses them saying so (it said 'Path traversal segments are not allowed'); a real dot segment keeps its words", async () => {
  const message = async (engine: string, t: string) => {
    const r = await rawRequest(proxies[engine]!.port, t);
    return [t, r.status, r.status === 400 ? (JSON.parse(r.body) as { message: string }).message : r.body];
  };
  const LEADING = "The path starts with two or more empty segments (///), which this listener does not route; send it with one leading slash";
  expect(await message("bun", "///pub/ok.txt")).toEqual(["///pub/ok.txt", 400, LEADING]);
  expect(await message("bun", "////x?a=1")).toEqual(["////x?a=1", 400, LEADING]);
  expect(await message("node", "///pub/ok.txt")).toEqual(["///pub/ok.txt", 200, "ok"]);
  for (const engine of ["bun", "node"]) expect(await message(engine, "/pub/../x")).toEqual(["/pub/../x", 400, "Path traversal segments are not allowed"]);
});

describe("the S3 front answers a dot segment after an empty one the same on both engines (S3's words)", () => {
  // (and with two empty segments: on bun /other/../pub///ok.txt was pub's object, the second bucket other's NoSuchBucket)
  test("//.. is InvalidURI, /pub//../ok.txt a key refused: on bun it was ListBuckets (403) and the object (200)", async () => {
    const seen: string[] = [];
    for (const engine of ["bun", "node"]) {
      const yaml = `server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n${bucketYaml({ name: "pub", prefix: "/pub", bucket: "pub", endpoint: s3.endpoint })}s3_api: { enabled: true, address: 127.0.0.1, port: 0, region: us-east-1, credentials: [{ access_key_id: AKIDTRAVERSAL0001, secret_access_key: traversal-secret-0123456789abcdef, identity: t, buckets: { pub: [read, list] } }] }\n`;
      const px = await startInProcess(yaml);
      const front = (await listenS3(px.app, parseConfig(yaml)))!;
      try {
        for (const t of ["//..", "/pub//../ok.txt", "//../pub/ok.txt", "/pub/a//..", "/other/../pub///ok.txt", "/pub/x//y//../../../../../other///k", "///..", "///a/../../.."]) {
          const r = await rawRequest(front.port, t);
          seen.push(`${engine} ${t} ${r.status} ${/<Code>([^<]*)</.exec(r.body)?.[1]}`);
        }
      } finally {
        await front.stop(true);
        await px.stop();
      }
    }
    const answers = (engine: string) => seen.filter((l) => l.startsWith(engine + " ")).map((l) => l.slice(engine.length + 1));
    expect(answers("bun")).toEqual(answers("node"));
    expect(answers("node")).toEqual(["//.. 400 InvalidURI", "/pub//../ok.txt 400 InvalidArgument", "//../pub/ok.txt 400 InvalidURI", "/pub/a//.. 400 InvalidArgument", "/other/../pub///ok.txt 404 NoSuchBucket", "/pub/x//y//../../../../../other///k 400 InvalidArgument", "///.. 400 InvalidURI", "///a/../../.. 400 InvalidURI"]);
  });
});
