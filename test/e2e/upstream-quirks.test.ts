/**
 * Legal but unusual upstream answers (test/e2e/quirky-upstream.ts), through both fronts, both
 * engines and both upstream clients where the path differs: the client must get the object's
 * truth (a HEAD's length, its content, its type) or a clean error, never a plausible lie.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger } from "../../src/observe/log.ts";
import { listenBun, listenNode, type Listener } from "../../src/server.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { smithySigned } from "../fronts/s3/helpers.ts";
import { BODY, RELISTED_KEYS, startQuirkyUpstream, type QuirkyUpstream } from "./quirky-upstream.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CRED = { accessKeyId: "AKIAQUIRKYTEST000001", secretAccessKey: "quirky-secret-0123456789abcdefghijkl" };

interface Proxy {
  name: string;
  /** The S3 front: "http://127.0.0.1:PORT". */
  endpoint: string;
  main(path: string): string;
  /** A signed S3-front request (path-style), answered. */
  s3(method: string, path: string, opts?: { query?: Record<string, string>; headers?: Record<string, string> }): Promise<Response>;
  stop(): Promise<void>;
}

let up: QuirkyUpstream;
const dirs: string[] = [];
const proxies: Proxy[] = [];

async function startProxy(o: { engine: "bun" | "node"; client: "auto" | "fetch"; layers?: string; extraBucket?: string }): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), "yata-quirks-"));
  dirs.push(dir);
  const s3 = (bucket: string) => `s3: { bucket: ${bucket}, region: us-east-1, endpoint: "${up.endpoint}", access_key: UPAK, secret_key: UPSECRET-0123456789, timeout: 10, retry: { max_attempts: 1 } }`;
  const yaml = `server: { address: 127.0.0.1, port: 0, engine: ${o.engine}, upstream_client: ${o.client}, readiness_probe_interval_seconds: 3600 }
logging: { level: error }
cache: { enabled: true, cache_layers: [${o.layers ?? "memory"}]${o.layers?.includes("disk") ? `, disk: { path: "${dir}" }` : ""} }
buckets:
  - { name: nc, path_prefix: /nc, access: read-write, ${s3("fakebucket")}, listing: { enabled: true } }
  - { name: c, path_prefix: /c, ${s3("fakebucket")}, cache: { enabled: true, ttl_seconds: 600 }, listing: { enabled: true } }
s3_api:
  enabled: true
  address: 127.0.0.1
  port: 0
  region: us-east-1
  credentials:
    - { access_key_id: "${CRED.accessKeyId}", secret_access_key: "${CRED.secretAccessKey}", identity: tester, buckets: { nc: [read, list, write], c: [read, list] } }
`;
  const config = parseConfig(yaml);
  const app = await App.create(config, { log: nullLogger, probeIntervalMs: 600_000 });
  const main: Listener = o.engine === "node" ? await listenNode(app, config) : listenBun(app, config);
  const front = (await listenS3(app, config))!;
  const host = `127.0.0.1:${front.port}`;
  const p: Proxy = {
    name: `engine ${o.engine}, upstream_client ${o.client}${o.layers ? `, cache ${o.layers}` : ""}`,
    endpoint: `http://${host}`,
    main: (path) => `http://127.0.0.1:${main.port}${path}`,
    async s3(method, path, opts = {}) {
      const v = await smithySigned({ method, path, query: opts.query, headers: opts.headers, creds: CRED, date: new Date(), host });
      v.headers.delete("host");
      return fetch(`http://${host}${v.rawPath}${v.rawQuery ? `?${v.rawQuery}` : ""}`, { method, headers: v.headers });
    },
    async stop() {
      await front.stop(true);
      await main.stop(true);
      app.close();
    },
  };
  proxies.push(p);
  return p;
}

const MATRIX = [
  { engine: "bun", client: "auto" },
  { engine: "bun", client: "fetch" },
  { engine: "node", client: "auto" },
  { engine: "node", client: "fetch" },
] as const;

beforeAll(async () => {
  up = await startQuirkyUpstream();
});
afterAll(async () => {
  for (const p of proxies) await p.stop();
  await up?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("a HEAD whose upstream answer has no Content-Length claims no length (RFC 9110 §8.6: not a made-up 0)", () => {
  for (const m of MATRIX) {
    test(`engine ${m.engine}, upstream_client ${m.client}: chunked and HTTP/1.0 HEAD answers, 200 and 206, both fronts`, async () => {
      const p = await startProxy(m);
      for (const key of ["te-head.txt", "close-head.txt"]) {
        const plain = await fetch(p.main(`/nc/${key}`), { method: "HEAD" });
        expect({ key, status: plain.status, length: plain.headers.get("content-length") }).toEqual({ key, status: 200, length: null });
        expect(plain.headers.get("etag")).not.toBeNull();
        const s3 = await p.s3("HEAD", `/nc/${key}`);
        expect({ key, status: s3.status, length: s3.headers.get("content-length") }).toEqual({ key, status: 200, length: null });
        // the GET still sends the whole object
        const get = await fetch(p.main(`/nc/${key}`));
        expect(await get.text()).toBe(BODY);
      }
      // a range's HEAD: the range's length, which its GET sends (it said chunked on the bun engine, nothing on node)
      const part = await fetch(p.main("/nc/te-head.txt"), { method: "HEAD", headers: { range: "bytes=0-4" } });
      expect({ status: part.status, range: part.headers.get("content-range"), length: part.headers.get("content-length"), te: part.headers.get("transfer-encoding") }).toEqual({ status: 206, range: "bytes 0-4/26", length: "5", te: null });
      const s3Part = await p.s3("HEAD", "/nc/te-head.txt", { headers: { range: "bytes=0-4" } });
      expect({ status: s3Part.status, length: s3Part.headers.get("content-length"), te: s3Part.headers.get("transfer-encoding") }).toEqual({ status: 206, length: "5", te: null });
      // a cached bucket's HEAD: the object's length once known, never 0
      for (const key of ["te-head.txt", "close-head.txt"]) {
        const lengths = [];
        for (let i = 0; i < 2; i++) lengths.push((await fetch(p.main(`/c/${key}`), { method: "HEAD" })).headers.get("content-length"));
        for (const l of lengths) expect([null, "26"]).toContain(l);
      }
      await p.stop();
      proxies.splice(proxies.indexOf(p), 1);
    });
  }
});

describe("an upstream listing in a content coding (the proxy sends no Accept-Encoding: any coding is legal)", () => {
  for (const client of ["auto", "fetch"] as const) {
    test(`upstream_client ${client}: gzip and deflate listings are decoded on both fronts (V1, V2, versions); a coding that does not decode is an error, never a 200 of its bytes`, async () => {
      const p = await startProxy({ engine: "bun", client });
      for (const prefix of ["gzip/", "gzip-deflate/"]) {
        for (const query of [{ "list-type": "2", prefix }, { prefix }, { versions: "", prefix }] as Array<Record<string, string>>) {
          const r = await p.s3("GET", "/nc", { query });
          const xml = await r.text();
          expect({ query, status: r.status, encoding: r.headers.get("content-encoding") }).toEqual({ query, status: 200, encoding: null });
          expect(xml).toContain("<Name>nc</Name>");
          expect(xml).toContain(`<Key>${prefix}a.txt</Key>`);
        }
        const plain = await fetch(p.main(`/nc/${prefix}`));
        expect(plain.status).toBe(200);
        expect(JSON.stringify(await plain.json())).toContain("a.txt");
      }
      const broken = await p.s3("GET", "/nc", { query: { "list-type": "2", prefix: "gzip-br/" } });
      expect(broken.status).toBe(500);
      expect(await broken.text()).toContain("<Code>InternalError</Code>");
      expect((await fetch(p.main("/nc/gzip-br/"))).status).toBe(502);
      // a coded error body still names its code
      const denied = await p.s3("GET", "/nc", { query: { "list-type": "2", prefix: "gzip-denied/" } });
      expect(denied.status).toBe(403);
      expect(await denied.text()).toContain("<Code>AccessDenied</Code>");
    });
  }
});

describe("an object stored without Content-Type goes out as application/octet-stream on every path (RFC 9110 §8.3), never a type each path makes up", () => {
  for (const engine of ["bun", "node"] as const) {
    test(`engine ${engine}: uncached, MISS, memory HIT, disk HIT, REVALIDATED; GET and HEAD; both fronts`, async () => {
      const mem = await startProxy({ engine, client: "auto" });
      const disk = await startProxy({ engine, client: "fetch", layers: "disk" });
      const seen: Record<string, string | null> = {};
      const read = async (name: string, r: Promise<Response>) => {
        const res = await r;
        await res.arrayBuffer();
        expect(res.status).toBe(200);
        seen[`${name} ${res.headers.get("x-cache") ?? ""} ${res.headers.get("x-cache-layer") ?? ""}`.trim()] = res.headers.get("content-type");
      };
      for (const method of ["GET", "HEAD"]) {
        await read(`${method} uncached`, fetch(mem.main("/nc/ct-none.txt"), { method }));
        await read(`${method} s3 uncached`, mem.s3(method, "/nc/ct-none.txt"));
      }
      for (const p of [mem, disk]) {
        // A disk fill commits after its answer: on a loaded host the second round can come first
        // (until the label this test is after has been seen, a few more rounds, never a sleep).
        const wanted = p === mem ? "GET HIT memory" : "GET HIT disk";
        for (let i = 0; i < 2 || (!(wanted in seen) && i < 40); i++) {
          for (const method of ["GET", "HEAD"]) {
            await read(`${method}`, fetch(p.main("/c/ct-none.txt"), { method }));
            await read(`${method} s3`, p.s3(method, "/c/ct-none.txt"));
            await read(`${method} stale`, fetch(p.main("/c/ct-none-stale.txt"), { method }));
          }
        }
      }
      expect(Object.keys(seen)).toContain("GET HIT memory");
      expect(Object.keys(seen)).toContain("GET HIT disk");
      expect(Object.keys(seen)).toContain("GET stale REVALIDATED");
      const want = seen["GET uncached"];
      expect(want).toBe("application/octet-stream");
      expect(seen).toEqual(Object.fromEntries(Object.keys(seen).map((k) => [k, want])));
    });
  }
});

describe("an upstream that sends the whole object's checksum with a range (S3 sends none: it does not describe the bytes)", () => {
  const crc = Buffer.from(new Uint32Array([Bun.hash.crc32(BODY)]).buffer).reverse().toString("base64");
  for (const m of MATRIX) {
    test(`engine ${m.engine}, upstream_client ${m.client}: a range carries none, so the SDK's validation of it passes, uncached and on a cached bucket's miss; the whole object keeps it`, async () => {
      const p = await startProxy(m);
      const c = new S3Client({ endpoint: p.endpoint, region: "us-east-1", forcePathStyle: true, credentials: CRED, maxAttempts: 1 });
      try {
        for (const bucket of ["nc", "c"]) {
          const g = await c.send(new GetObjectCommand({ Bucket: bucket, Key: "range-sum.txt", Range: "bytes=2-5", ChecksumMode: "ENABLED" }));
          expect([await g.Body!.transformToString(), g.ChecksumCRC32]).toEqual([BODY.slice(2, 6), undefined]);
          const h = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: "range-sum.txt", Range: "bytes=2-5", ChecksumMode: "ENABLED" }));
          expect([h.$metadata.httpStatusCode, h.ChecksumCRC32, h.ChecksumType]).toEqual([206, undefined, undefined]);
          const raw = await fetch(p.main(`/${bucket}/range-sum.txt`), { headers: { range: "bytes=0-3", "x-amz-checksum-mode": "ENABLED" } });
          expect([raw.status, raw.headers.get("x-amz-checksum-crc32"), raw.headers.get("x-amz-checksum-type"), await raw.text()]).toEqual([206, null, null, BODY.slice(0, 4)]);
        }
        // the whole object: its checksum, validated by the SDK against the body
        const whole = await c.send(new GetObjectCommand({ Bucket: "nc", Key: "range-sum.txt", ChecksumMode: "ENABLED" }));
        expect([await whole.Body!.transformToString(), whole.ChecksumCRC32]).toEqual([BODY, crc]);
      } finally {
        c.destroy();
      }
    });
  }
});

describe("a revalidation answered 304 with another ETag than the stored one (RFC 9111 §4.3.4)", () => {
  test("the stored bytes are not served under the new ETag: the object is fetched again, whole", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const first = await fetch(p.main("/c/reval-other.txt"));
    expect([first.headers.get("x-cache"), first.headers.get("etag"), await first.text()]).toEqual(["MISS", '"v1"', BODY]);
    // stale at once (max-age=0): revalidated with If-None-Match "v1"; the upstream answers 304 naming "v2"
    for (let i = 0; i < 2; i++) {
      const again = await fetch(p.main("/c/reval-other.txt"));
      const body = await again.text();
      expect({ etag: again.headers.get("etag"), body }).toEqual({ etag: '"v2"', body: BODY.toUpperCase() });
    }
    const s3 = await p.s3("GET", "/c/reval-other.txt");
    expect({ etag: s3.headers.get("etag"), body: await s3.text() }).toEqual({ etag: '"v2"', body: BODY.toUpperCase() });
  });
});

describe("a response head with bare LF line ends (the own HTTP/1.1 client)", () => {
  test("is a bad upstream answer at once (502), not a wait for s3.timeout (504)", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const started = performance.now();
    const r = await fetch(p.main("/nc/lf-only.txt"));
    await r.arrayBuffer();
    expect(r.status).toBe(502);
    expect(performance.now() - started).toBeLessThan(5000); // s3.timeout is 10 s here
  });
});

describe("a plain-front folder listing whose upstream ignores max-keys", () => {
  test("a page of 10,000 keys is listed (it was a 502: too many XML elements)", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const r = await fetch(p.main("/nc/big/"));
    expect(r.status).toBe(200);
    const page = (await r.json()) as { entries: Array<{ name: string }> };
    expect(page.entries.length).toBe(10_000);
    expect(page.entries[9_999]!.name).toBe("09999.txt");
  });
});

describe("an S3-front listing whose root element is not the operation's", () => {
  test("a ListObjectVersions answered with a ListBucketResult (an upstream that ignored ?versions) is InternalError, not a 200 of no versions", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const wrong = await p.s3("GET", "/nc", { query: { versions: "", prefix: "wrongroot/" } });
    expect(wrong.status).toBe(500);
    expect(await wrong.text()).toContain("<Code>InternalError</Code>");
    // the same answer to a ListObjects is what it asked for
    const v1 = await p.s3("GET", "/nc", { query: { prefix: "wrongroot/" } });
    expect(v1.status).toBe(200);
    expect(await v1.text()).toContain("<Key>wrongroot/a.txt</Key>");
    const versions = await p.s3("GET", "/nc", { query: { versions: "", prefix: "other/" } });
    expect(versions.status).toBe(200);
    expect(await versions.text()).toContain("<Version><Key>other/a.txt</Key>");
  });
});

describe("an S3-front listing that is not XML (a document cut short behind a 200, a DOCTYPE, bytes that are not UTF-8)", () => {
  // (a Latin-1 key's byte was read as U+FFFD: a 200 naming a key no store holds, that no client could read or delete)
  test("is InternalError, never relayed as a 200 (V1, V2, versions): the upstream's owner id and its DOCTYPE never reach the client", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    for (const prefix of ["cut/", "doctype/", "latin1/"]) {
      for (const query of [{ "list-type": "2", prefix }, { prefix }, { versions: "", prefix }] as Array<Record<string, string>>) {
        const r = await p.s3("GET", "/nc", { query });
        const xml = await r.text();
        expect({ query, status: r.status }).toEqual({ query, status: 500 });
        expect(xml).toContain("<Code>InternalError</Code>");
        expect(xml).not.toContain("upstream-secret-owner-id");
        expect(xml).not.toContain("DOCTYPE");
      }
    }
    // (and the plain front's folder index of it: 502, a listing that cannot be read)
    const index = await fetch(p.main("/nc/latin1/"));
    expect(`${index.status} ${((await index.json()) as { message: string }).message}`).toBe("502 The upstream sent a listing that cannot be read");
  });

  // (the S3 front's object listings read the BOM as text before the root element: InternalError)
  test("a listing after a UTF-8 byte order mark, which XML allows, is one (V1, V2, versions; the plain front's folder index)", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const seen: string[] = [];
    for (const query of [{ "list-type": "2", prefix: "bom/" }, { prefix: "bom/" }, { versions: "", prefix: "bom/" }] as Array<Record<string, string>>) {
      const r = await p.s3("GET", "/nc", { query });
      seen.push(`${r.status} ${/<Key>([^<]*)<\/Key>/.exec(await r.text())?.[1]}`);
    }
    const index = await fetch(p.main("/nc/bom/"), { headers: { accept: "application/json" } });
    seen.push(`${index.status} ${JSON.stringify(((await index.json()) as { entries?: Array<{ name: string }> }).entries?.map((e) => e.name))}`);
    expect(seen).toEqual(["200 bom/a.txt", "200 bom/a.txt", "200 bom/a.txt", '200 ["a.txt"]']);
  });
});

describe("a truncated listing page without the marker S3 gives it (ListObjects V1 asked with a delimiter, ListObjectVersions)", () => {
  // (relayed without, the SDKs resumed after the last <Key>, before the common prefixes, or, with no
  // key on the page, stopped there)
  test("gets S3's NextMarker, the page's last entry (here a common prefix); without a delimiter none, as on S3", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const marker = async (query: Record<string, string>) => /<NextMarker>([^<]*)<\/NextMarker>/.exec(await (await p.s3("GET", "/nc", { query })).text())?.[1];
    expect(await marker({ prefix: "nomarker/", delimiter: "/" })).toBe("nomarker/y&amp;z/");
    expect(await marker({ prefix: "nomarker/" })).toBeUndefined();
  });

  // (ListObjectVersions alike: the SDKs stopped at such a page)
  test("a truncated ListObjectVersions page without NextKeyMarker gets S3's: its last version's key and VersionId, or its last common prefix", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const markers = async (prefix: string) => {
      const xml = await (await p.s3("GET", "/nc", { query: { versions: "", prefix, delimiter: "/" } })).text();
      return [/<NextKeyMarker>([^<]*)</.exec(xml)?.[1], /<NextVersionIdMarker>([^<]*)</.exec(xml)?.[1]];
    };
    expect(await markers("vnomarker/")).toEqual(["vnomarker/a.txt", "v1"]);
    expect(await markers("nomarker/")).toEqual(["nomarker/y&amp;z/", undefined]);
    // (a store's NextKeyMarker without its NextVersionIdMarker: resumed with the key alone, the key's
    // versions after the page were skipped)
    expect(await markers("vkeyonly/")).toEqual(["vkeyonly/a.txt", "v2"]);
  });
});

describe("a truncated ListParts or ListMultipartUploads page without the resume markers S3 gives it", () => {
  // (relayed without, the SDKs' paginators stopped there, or asked the first page again)
  test("ListParts gets NextPartNumberMarker, its last part; ListMultipartUploads NextKeyMarker and NextUploadIdMarker, its last upload's, or its last common prefix", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const text = async (path: string, query: Record<string, string>) => {
      const r = await p.s3("GET", path, { query });
      expect(r.status).toBe(200);
      return r.text();
    };
    expect(/<NextPartNumberMarker>([^<]*)</.exec(await text("/nc/parts.bin", { uploadId: "up1" }))?.[1]).toBe("2");
    const markers = async (query: Record<string, string>) => {
      const xml = await text("/nc", { uploads: "", prefix: "nomarker-up/", ...query });
      return [/<NextKeyMarker>([^<]*)</.exec(xml)?.[1], /<NextUploadIdMarker>([^<]*)</.exec(xml)?.[1]];
    };
    expect(await markers({})).toEqual(["nomarker-up/a&amp;b.txt", "u2"]);
    expect(await markers({ delimiter: "/" })).toEqual(["nomarker-up/z/", undefined]);
  });
});

describe("a paginator over a store that lists the common prefix a marker falls in again (keys after \"a/\" are under it)", () => {
  // (the proxy's NextMarker "relist/a/", S3's, asked as it came: the store listed "relist/a/" again,
  // and a paginator asked one entry a page never ended)
  test("every entry is listed once and the listing ends (ListObjects V1, ListObjectVersions, ListMultipartUploads, one entry a page); the client's marker is echoed", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const walk = async (query: Record<string, string>, markerName: string, nextName: string) => {
      const seen: string[] = [];
      let marker: string | undefined;
      for (let page = 0; page < 8; page++) {
        const xml = await (await p.s3("GET", "/nc", { query: { prefix: "relist/", delimiter: "/", ...query, ...(marker === undefined ? {} : { [markerName]: marker }) } })).text();
        if (marker !== undefined) expect(new RegExp(`<${markerName === "marker" ? "Marker" : "KeyMarker"}>([^<]*)<`).exec(xml)?.[1]).toBe(marker);
        seen.push(...[...xml.matchAll(/<(?:Key|CommonPrefixes><Prefix)>(relist\/[^<]*)</g)].map((m) => m[1]!));
        if (!xml.includes("<IsTruncated>true<")) return seen;
        marker = new RegExp(`<${nextName}>([^<]*)<`).exec(xml)?.[1];
      }
      return [...seen, "(did not end)"];
    };
    const expected = ["relist/a/", "relist/b.txt", "relist/c/"];
    expect(RELISTED_KEYS.length).toBe(5);
    expect(await walk({ "max-keys": "1" }, "marker", "NextMarker")).toEqual(expected);
    expect(await walk({ versions: "", "max-keys": "1" }, "key-marker", "NextKeyMarker")).toEqual(expected);
    expect(await walk({ uploads: "", "max-uploads": "1" }, "key-marker", "NextKeyMarker")).toEqual(expected);
  });
});

describe("an S3-front encoding-type=url listing whose last key is no %-encoding (a cut UTF-8 escape, %ZZ): a store that did not encode", () => {
  test("its keys are encoded by the proxy (they were the proxy's own crash, then InternalError), the continuation token too; the plain front's folder index names them", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    for (const [startAfter, key] of [[undefined, "badpct/%E2%82"], ["badpct/0", "badpct/%ZZ"]] as const) {
      const query: Record<string, string> = { "list-type": "2", prefix: "badpct/", "encoding-type": "url", ...(startAfter === undefined ? {} : { "start-after": startAfter }) };
      const r = await p.s3("GET", "/nc", { query });
      const xml = await r.text();
      expect({ startAfter, status: r.status, key: /<Key>([^<]*)<\/Key>/.exec(xml)?.[1] }).toEqual({ startAfter, status: 200, key: encodeURIComponent(key).replace(/%2F/g, "/") });
      expect(xml).toContain("<NextContinuationToken>");
      expect(xml).not.toContain("bad-pct-next");
    }
    const plain = await fetch(p.main("/nc/badpct/"));
    expect(plain.status).toBe(200);
    expect(((await plain.json()) as { entries: Array<{ name: string }> }).entries.map((e) => e.name)).toEqual(["%E2%82"]);
  });
});

describe("an S3-front listing no S3 could give (a Size of -5 or \"many\", a LastModified of \"junk\", keys outside the prefix asked)", () => {
  test("is InternalError, never relayed (V1, V2, versions): the key outside the prefix never reaches the client; a fair listing is relayed", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    const answers = (prefix: string) =>
      Promise.all(
        ([{ "list-type": "2", prefix }, { prefix }, { versions: "", prefix }] as Array<Record<string, string>>).map(async (query) => {
          const r = await p.s3("GET", "/nc", { query });
          return { query, status: r.status, xml: await r.text() };
        }),
      );
    for (const prefix of ["junk-size/", "junk-nan/", "junk-date/", "junk-outside/", "junk-cp/"])
      for (const a of await answers(prefix)) {
        expect({ query: a.query, status: a.status, unreadable: a.xml.includes("<Code>InternalError</Code><Message>The upstream sent a listing that cannot be read</Message>") }).toEqual({ query: a.query, status: 500, unreadable: true });
        expect(a.xml).not.toContain("other/");
      }
    for (const a of await answers("junk-ok/")) expect({ query: a.query, status: a.status, listed: a.xml.includes("<Key>junk-ok/b.txt</Key>") }).toEqual({ query: a.query, status: 200, listed: true });
  });
});

describe("an S3-front listing the entry searches could not end early in", () => {
  test.each([
    ["commented/", "commented/a.txt", "whose comments hold opening tags (<!--<Contents>-->, 20,000 of them, and 10,000 <!--<oN:Owner>-->: 0.9 MB): each entry or owner search ran from every commented tag to the end of the document (quadratic: the event loop held ~10 s, a 16 MiB listing for hours)"],
    ["spaced/", "spaced/z.txt", "whose end tags carry white space (</Contents >, 20,000 entries: 1.1 MB): each entry search ran from every opening tag to the end of the document (quadratic: a 680 KB one held the event loop ~9 s)"],
  ])("%s is relayed at once (V1, V2, versions): a listing %s", async (prefix, key) => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    for (const query of [{ "list-type": "2", prefix }, { prefix }, { versions: "", prefix }] as Array<Record<string, string>>) {
      const started = performance.now();
      const r = await p.s3("GET", "/nc", { query });
      const xml = await r.text();
      expect({ query, status: r.status, listed: xml.includes(`<Key>${key}</Key>`), fast: performance.now() - started < 5_000 }).toEqual({ query, status: 200, listed: true, fast: true });
    }
  });
});

describe("an S3-front listing written with a namespace prefix (<s3:ListBucketResult xmlns:s3=...>)", () => {
  test("names the proxy bucket and masks the owner as an unprefixed one does (V1, V2, versions)", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    for (const query of [{ "list-type": "2", prefix: "nsprefix/", "fetch-owner": "true" }, { prefix: "nsprefix/" }, { versions: "", prefix: "nsprefix/" }] as Array<Record<string, string>>) {
      const r = await p.s3("GET", "/nc", { query });
      const xml = await r.text();
      expect({ query, status: r.status }).toEqual({ query, status: 200 });
      expect(xml).toContain("<s3:Name>nc</s3:Name>");
      expect(xml).not.toContain("fakebucket");
      expect(xml).not.toContain("upstream-secret-owner-id");
      expect(xml).not.toContain("upstream-admin");
      expect(xml).toContain("<s3:Owner><s3:ID>");
      expect(xml).toContain("<s3:DisplayName>tester</s3:DisplayName></s3:Owner>");
    }
  });
});

describe("a listing written in ways S3 does not but XML allows (both fronts, V1, V2, versions)", () => {
  const queries = (prefix: string) => [{ "list-type": "2", prefix }, { prefix }, { versions: "", prefix }] as Array<Record<string, string>>;
  test.each([
    ["entries whose children carry a namespace prefix of their own (<Contents><s3:Key>, <Contents xmlns:x=...><x:Key>)", "nschild", "<x:Key>nschild/b.txt</x:Key>", ["d/", "a.txt", "b.txt"]],
    ["keys in CDATA sections (with a comment inside one)", "cdata", "<Key><![CDATA[cdata/a&b <1>.txt]]></Key>", ["d/", "a&b <1>.txt", "x.txt"]],
  ])("%s are read as XML reads them (they were InternalError), and still checked: keys outside the prefix are refused", async (_what, name, relayed, names) => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    for (const [prefix, status, listed] of [[`${name}/`, 200, true], [`${name}-out/`, 500, false]] as const)
      for (const query of queries(prefix)) {
        const r = await p.s3("GET", "/nc", { query });
        const xml = await r.text();
        expect({ query, status: r.status, listed: xml.includes(relayed), leaked: xml.includes("other/") }).toEqual({ query, status, listed, leaked: false });
      }
    const index = await fetch(p.main(`/nc/${name}/`));
    expect(index.status).toBe(200);
    expect(((await index.json()) as { entries: Array<{ name: string }> }).entries.map((e) => e.name)).toEqual(names);
  });
  /** Each listing of `prefix` (V2, V1, versions) asked with encoding-type=url is 200, its keys (decoded as an SDK does) `keys`. */
  const expectDecodedKeys = async (p: Awaited<ReturnType<typeof startProxy>>, prefix: string, keys: string[]) => {
    for (const query of queries(prefix).map((q) => ({ ...q, "encoding-type": "url" }))) {
      const r = await p.s3("GET", "/nc", { query });
      const xml = await r.text();
      const decoded = [...xml.matchAll(/<(?:Key|Prefix)>([^<]*)<\/(?:Key|Prefix)>/g)].map((m) => decodeURIComponent(m[1]!.replace(/\+/g, " ")));
      expect({ query, status: r.status, keys: decoded }).toEqual({ query, status: 200, keys });
    }
  };
  test("a store that echoes EncodingType=url without encoding its keys: the proxy encodes them, so a client that decodes (as every AWS SDK does) reads the keys stored", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    await expectDecodedKeys(p, "rawenc/", ["rawenc/", "rawenc/100% sure.txt", "rawenc/a+b.txt", "rawenc/d d/"]);
    const index = await fetch(p.main("/nc/rawenc/"));
    expect(index.status).toBe(200);
    expect(((await index.json()) as { entries: Array<{ name: string }> }).entries.map((e) => e.name)).toEqual(["d d/", "100% sure.txt", "a+b.txt"]);
  });
  test("a store that encodes its keys but echoes the Prefix as asked (a space in it): only the Prefix is encoded (the keys were encoded twice, or the listing refused); a lone surrogate is a listing that cannot be read", async () => {
    const p = await startProxy({ engine: "bun", client: "auto" });
    await expectDecodedKeys(p, "half enc/", ["half enc/", "half enc/100%.txt", "half enc/a+b.txt", "half enc/d d/"]);
    const r = await p.s3("GET", "/nc", { query: { "list-type": "2", prefix: "surr/", "encoding-type": "url" } });
    const xml = await r.text();
    expect({ status: r.status, message: /<Message>([^<]*)/.exec(xml)?.[1] }).toEqual({ status: 500, message: "The upstream sent a listing that cannot be read" });
  });
});
