/**
 * The admin API end to end (real proxy process, real S3 fixture): cache purge and stats, hot
 * reload, and who may call it.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { nowSec, sign } from "../fixtures/jwt.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const SECRET = "e2e-admin-hs256-secret-0123456789";
const CREDS = { accessKeyId: "AKIAE2EADMIN", secretAccessKey: "e2e-admin-secret" };

let s3: S3Fixture;
let px: ProxyProcess;
let admin: string;
let user: string;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (r: Response): Promise<any> => r.json();
const auth = (t: string) => ({ authorization: `Bearer ${t}` });
const upstream = (key: string) => s3.requests.filter((r) => !r.admin && r.method === "GET" && r.pathname === `/data/${key}`);

function bucket(name: string, prefix: string, extra = "    cache: { enabled: true }\n") {
  return bucketYaml({ name, prefix, bucket: "data", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra });
}

function config(buckets: string, adminClaims = "  admin_claims: [{ claim: role, operator: equals, value: admin }]\n") {
  return `server: { address: 127.0.0.1, port: 0 }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${SECRET}"
${adminClaims}cache:
  enabled: true
  memory: { max_item_size_mb: 1, max_cache_size_mb: 64, default_ttl_seconds: 60 }
buckets:
${buckets}`;
}

async function get(path: string): Promise<{ status: number; x: string | null; body: string }> {
  const r = await fetch(px.url(path));
  return { status: r.status, x: r.headers.get("x-cache"), body: await r.text() };
}

const post = (path: string, token?: string) => fetch(px.url(path), { method: "POST", headers: token ? auth(token) : {} });

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data" }], credentials: [{ ...CREDS, buckets: ["data"] }] });
  for (const k of ["a.txt", "b.txt", "m.txt", "s1.txt", "s2.txt", "dir x/ü a+b.txt"]) await s3.put("data", k, `body of ${k}\n`);
  admin = await sign({ sub: "ops", role: "admin", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
  user = await sign({ sub: "u", role: "reader", exp: nowSec() + 600 }, { alg: "HS256", key: SECRET });
  px = await startProxy(config(bucket("c", "/c") + bucket("d", "/d") + bucket("s", "/s")));
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

describe("who may call the admin API", () => {
  test("no token → 401 with a Bearer challenge; a valid non-admin token → 403; an invalid token → 401", async () => {
    for (const [method, path] of [["POST", "/admin/cache/purge"], ["GET", "/admin/cache/stats"], ["POST", "/admin/reload"]]) {
      const none = await fetch(px.url(path), { method });
      expect({ path, status: none.status }).toEqual({ path, status: 401 });
      expect(none.headers.get("www-authenticate")).toBe('Bearer realm="yatagarasu"');
      await none.body?.cancel();
      const notAdmin = await fetch(px.url(path), { method, headers: auth(user) });
      expect({ path, status: notAdmin.status }).toEqual({ path, status: 403 });
      expect((await json(notAdmin)).error).toBe("Forbidden");
      const bad = await fetch(px.url(path), { method, headers: auth(admin.slice(0, -1) + (admin.endsWith("A") ? "Q" : "A")) });
      expect({ path, status: bad.status }).toEqual({ path, status: 401 });
      await bad.body?.cancel();
    }
  });

  test("a valid token refused for its claims (403) is logged with its subject, as the plain front logs a 403: who tried to reload or purge", async () => {
    const r = await fetch(px.url("/admin/reload"), { method: "POST", headers: { ...auth(user), "x-request-id": "who-tried" } });
    expect(r.status).toBe(403);
    await r.body?.cancel();
    const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "who-tried");
    expect(line).toMatchObject({ status: 403, error: "Forbidden", subject: "u" });
  });

  test("without jwt.admin_claims every /admin path is a 404, even for a token with role admin", async () => {
    const p = await startProxy(config(bucket("c", "/c"), ""));
    try {
      for (const [method, path] of [["POST", "/admin/cache/purge"], ["GET", "/admin/cache/stats"], ["POST", "/admin/reload"]]) {
        const r = await fetch(p.url(path), { method, headers: auth(admin) });
        expect({ path, status: r.status }).toEqual({ path, status: 404 });
        // says why (an operator following the original README's curl line)
        expect(((await r.json()) as { message: string }).message).toContain("The admin API is off: it needs jwt.enabled and jwt.admin_claims");
      }
    } finally {
      await p.stop();
    }
  });
});

describe("cache purge", () => {
  test("purging one object makes only that object a MISS; the access line names who purged (the token's sub)", async () => {
    await get("/c/a.txt");
    await get("/c/b.txt");
    expect((await get("/c/a.txt")).x).toBe("HIT");
    const r = await fetch(px.url("/admin/cache/purge/c/a.txt"), { method: "POST", headers: { ...auth(admin), "x-request-id": "who-purged" } });
    expect(r.status).toBe(200);
    expect(await json(r)).toEqual({ purged: 1 });
    const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === "who-purged");
    expect(line.subject).toBe("ops");
    expect(await get("/c/a.txt")).toEqual({ status: 200, x: "MISS", body: "body of a.txt\n" });
    expect((await get("/c/b.txt")).x).toBe("HIT");
  });

  test("purging a bucket empties that bucket only; an unknown bucket is a 404", async () => {
    await get("/d/a.txt");
    expect((await get("/d/a.txt")).x).toBe("HIT");
    expect((await get("/c/a.txt")).x).toBe("HIT");
    const r = await post("/admin/cache/purge/c", admin);
    expect(r.status).toBe(200);
    expect(await json(r)).toEqual({ purged: 2 });
    expect((await get("/c/a.txt")).x).toBe("MISS");
    expect((await get("/c/b.txt")).x).toBe("MISS");
    expect((await get("/d/a.txt")).x).toBe("HIT");
    const unknown = await post("/admin/cache/purge/nope", admin);
    expect(unknown.status).toBe(404);
    await unknown.body?.cancel();
  });

  test("purging one object reaches every bucket that reads the same store (as a write does): replaced around the proxy, it is fresh through each", async () => {
    expect((await get("/c/m.txt")).x).toBe("MISS");
    expect((await get("/d/m.txt")).x).toBe("MISS");
    expect((await get("/d/m.txt")).x).toBe("HIT");
    await s3.put("data", "m.txt", "replaced around the proxy\n");
    const r = await post("/admin/cache/purge/c/m.txt", admin);
    expect(r.status).toBe(200);
    expect(await json(r)).toEqual({ purged: 2 });
    expect(await get("/c/m.txt")).toEqual({ status: 200, x: "MISS", body: "replaced around the proxy\n" });
    expect(await get("/d/m.txt")).toEqual({ status: 200, x: "MISS", body: "replaced around the proxy\n" });
    // (named through the other bucket, the same two copies go; none is left for the tests below)
    expect(await json(await post("/admin/cache/purge/d/m.txt", admin))).toEqual({ purged: 2 });
  });

  test("an empty bucket or key segment (a script's empty variable) is a 400 that purges nothing, not a purge of the bucket or of everything", async () => {
    await get("/c/a.txt");
    await get("/d/a.txt");
    expect((await get("/c/a.txt")).x).toBe("HIT");
    for (const path of ["/admin/cache/purge/", "/admin/cache/purge//", "/admin/cache/purge/c/", "/admin/cache/purge/c//", "/admin/cache/purge/c/%2F", "/admin/cache/purge/c%2F", "/admin/cache/purge/%2Fc", "/admin/cache/purge/c/%2Fa.txt", "/admin/cache/purge/%2F%2Fc"]) {
      const r = await post(path, admin);
      expect({ path, status: r.status }).toEqual({ path, status: 400 });
      expect((await json(r)).message).toContain("empty bucket or key");
    }
    expect((await get("/c/a.txt")).x).toBe("HIT");
    expect((await get("/d/a.txt")).x).toBe("HIT");
    // an unknown admin path names the endpoints, not the plain front's "No bucket is mapped"
    const other = await post("/admin/nope", admin);
    expect(other.status).toBe(404);
    expect((await json(other)).message).toContain("No such admin endpoint");
  });

  test("a purge named in a query or a body (by prefix, ?bucket=&key=, a JSON document) is a 400 that purges nothing, not a purge of the bucket or of everything", async () => {
    await get("/c/a.txt");
    await get("/d/a.txt");
    expect((await get("/c/a.txt")).x).toBe("HIT");
    const tries: Array<[string, RequestInit]> = [
      ["/admin/cache/purge/c?prefix=img/", {}],
      ["/admin/cache/purge?bucket=c&key=a.txt", {}],
      ["/admin/cache/purge?prefix=", {}],
      ["/admin/cache/purge", { body: JSON.stringify({ bucket: "c", key: "a.txt" }), headers: { "content-type": "application/json" } }],
      ["/admin/cache/purge/c", { body: "prefix=img/", headers: { "content-type": "application/x-www-form-urlencoded" } }],
    ];
    for (const [path, init] of tries) {
      const r = await fetch(px.url(path), { ...init, method: "POST", headers: { ...(init.headers as Record<string, string>), ...auth(admin) } });
      expect({ path, status: r.status }).toEqual({ path, status: 400 });
      expect((await json(r)).message).toContain("A purge takes no query parameters and no body");
    }
    expect((await get("/c/a.txt")).x).toBe("HIT");
    expect((await get("/d/a.txt")).x).toBe("HIT");
    // a token sent in its configured query parameter is no such parameter
    const p = await startProxy(config(bucket("c", "/c")).replace("  algorithm: HS256\n", "  algorithm: HS256\n  token_sources: [{ type: bearer }, { type: query, name: access_token }]\n"));
    try {
      const r = await fetch(p.url(`/admin/cache/purge/c?access_token=${admin}`), { method: "POST" });
      expect(r.status).toBe(200);
      expect(await json(r)).toEqual({ purged: 0 });
    } finally {
      await p.stop();
    }
  });

  test("purging everything makes every next GET a MISS and goes upstream again", async () => {
    expect((await get("/c/a.txt")).x).toBe("HIT");
    expect((await get("/d/a.txt")).x).toBe("HIT");
    const before = upstream("a.txt").length;
    const r = await post("/admin/cache/purge", admin);
    expect(r.status).toBe(200);
    expect((await json(r)).purged).toBe(3);
    expect((await get("/c/a.txt")).x).toBe("MISS");
    expect((await get("/d/a.txt")).x).toBe("MISS");
    expect(upstream("a.txt")).toHaveLength(before + 2);
  });

  test("purging an object whose key needs percent-encoding uses the same key the cache stored", async () => {
    const path = "/c/dir%20x/%C3%BC%20a%2Bb.txt";
    await get(path);
    expect(await get(path)).toEqual({ status: 200, x: "HIT", body: "body of dir x/ü a+b.txt\n" });
    const r = await post(`/admin/cache/purge${path}`, admin);
    expect(await json(r)).toEqual({ purged: 1 });
    expect((await get(path)).x).toBe("MISS");
  });

  test("purge needs POST", async () => {
    const r = await fetch(px.url("/admin/cache/purge"), { headers: auth(admin) });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("POST");
    await r.body?.cancel();
  });
});

describe("cache stats", () => {
  test("GET /admin/cache/stats reports hits, misses, items and bytes in total and per bucket", async () => {
    expect((await get("/s/s1.txt")).x).toBe("MISS"); // 15 bytes
    expect((await get("/s/s2.txt")).x).toBe("MISS"); // 15 bytes
    expect((await get("/s/s1.txt")).x).toBe("HIT");
    expect((await get("/s/s1.txt")).x).toBe("HIT");
    expect((await get("/s/s2.txt")).x).toBe("HIT");
    const r = await fetch(px.url("/admin/cache/stats"), { headers: auth(admin) });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    const stats = await json(r);
    expect(stats.buckets.s).toMatchObject({ hits: 3, misses: 2, items: 2 });
    expect(stats.buckets.s.bytes).toBeGreaterThanOrEqual(30);
    const names = Object.keys(stats.buckets);
    for (const f of ["hits", "misses", "items", "bytes"]) {
      expect(typeof stats.total[f]).toBe("number");
      expect(stats.total[f]).toBe(names.reduce((n, b) => n + stats.buckets[b][f], 0));
    }
    expect(stats.total.items).toBeGreaterThanOrEqual(2);
  });
});

describe("cache stats: HEAD", () => {
  test("HEAD /admin/cache/stats answers as GET does, without the body (as /health, /ready and /metrics do); other methods are 405 naming GET, HEAD", async () => {
    const head = await fetch(px.url("/admin/cache/stats"), { method: "HEAD", headers: auth(admin) });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("application/json");
    expect(Number(head.headers.get("content-length"))).toBeGreaterThan(0);
    expect(await head.text()).toBe("");
    const put = await fetch(px.url("/admin/cache/stats"), { method: "PUT", headers: auth(admin) });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("GET, HEAD");
    await put.body?.cancel();
  });
});

describe("reload", () => {
  test("a reload with a query or a body (?dry_run=true, ?config=PATH, a config document) is a 400 that reloads nothing: it was ignored, the file applied, 200 'reloaded'", async () => {
    const gen = (await json(await fetch(px.url("/ready")))).generation as number;
    const tries: Array<[string, RequestInit]> = [
      ["/admin/reload?dry_run=true", {}],
      ["/admin/reload?config=/etc/other.yaml", {}],
      ["/admin/reload", { body: "buckets: []\n", headers: { "content-type": "application/yaml" } }],
    ];
    for (const [path, init] of tries) {
      const r = await fetch(px.url(path), { ...init, method: "POST", headers: { ...(init.headers as Record<string, string>), ...auth(admin) } });
      expect({ path, status: r.status }).toEqual({ path, status: 400 });
      expect((await json(r)).message).toContain("A reload takes no query parameters and no body");
    }
    expect((await json(await fetch(px.url("/ready")))).generation).toBe(gen);
  });

  test("a reload whose body names nothing (an empty chunked body, `{}` as requests.post(json={}) or curl --json sends) reloads: it was a 400, the body taken for arguments", async () => {
    const gen = (await json(await fetch(px.url("/ready")))).generation as number;
    const port = Number(new URL(px.url("/")).port);
    // (Node's http.request after flushHeaders(), or a stream that ended at once: chunked, no bytes)
    const chunked = await rawHttp(port, `POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`);
    expect(rawStatus(chunked)).toBe(200);
    const r = await fetch(px.url("/admin/reload"), { method: "POST", body: "{ }\n", headers: { "content-type": "application/json", ...auth(admin) } });
    expect(r.status).toBe(200);
    expect((await json(r)).generation).toBe(gen + 2);
    // (a body past what an empty one can be is still refused unread)
    const long = await fetch(px.url("/admin/reload"), { method: "POST", body: `{${" ".repeat(100)}}`, headers: auth(admin) });
    expect(long.status).toBe(400);
    await long.body?.cancel();
  });

  test("POST /admin/reload picks up a new bucket and bumps the generation; an invalid config is a 400 and the old one keeps serving", async () => {
    const p = await startProxy(config(bucket("c", "/c")));
    try {
      const gen0 = (await json(await fetch(p.url("/ready")))).generation as number;
      expect(typeof gen0).toBe("number");
      const before = await fetch(p.url("/new/a.txt"));
      expect(before.status).toBe(404);
      await before.body?.cancel();

      p.writeConfig(config(bucket("c", "/c") + bucket("n", "/new")));
      const ok = await fetch(p.url("/admin/reload"), { method: "POST", headers: auth(admin) });
      expect(ok.status).toBe(200);
      expect(await json(ok)).toEqual({ status: "reloaded", generation: gen0 + 1 });
      const routed = await fetch(p.url("/new/a.txt"));
      expect(routed.status).toBe(200);
      expect(await routed.text()).toBe("body of a.txt\n");

      p.writeConfig(config(bucket("c", "/c") + "  - name: broken\n    path_prefix: no-slash\n"));
      const bad = await fetch(p.url("/admin/reload"), { method: "POST", headers: auth(admin) });
      expect(bad.status).toBe(400);
      const body = await json(bad);
      expect(body.status).toBe("failed");
      expect(typeof body.error).toBe("string");
      expect(body.error.length).toBeGreaterThan(0);
      expect(body.generation).toBe(gen0 + 1);
      const still = await fetch(p.url("/new/a.txt"));
      expect(still.status).toBe(200);
      expect(await still.text()).toBe("body of a.txt\n");
      expect((await json(await fetch(p.url("/ready")))).generation).toBe(gen0 + 1);
    } finally {
      await p.stop();
    }
  });
});

describe("reload and the cache", () => {
  test("a reload that removes a bucket purges its entries; the kept bucket's entries survive (HIT)", async () => {
    const p = await startProxy(config(bucket("keep", "/keep") + bucket("gone", "/gone")));
    try {
      for (const path of ["/keep/a.txt", "/gone/b.txt"]) expect((await (await fetch(p.url(path))).text()).length).toBeGreaterThan(0);
      const before = await json(await fetch(p.url("/admin/cache/stats"), { headers: auth(admin) }));
      expect(before.buckets.gone.items).toBe(1);
      expect(before.buckets.keep.items).toBe(1);

      p.writeConfig(config(bucket("keep", "/keep")));
      expect((await fetch(p.url("/admin/reload"), { method: "POST", headers: auth(admin) })).status).toBe(200);

      const after = await json(await fetch(p.url("/admin/cache/stats"), { headers: auth(admin) }));
      expect(after.buckets.gone).toBeUndefined();
      expect(after.total.items).toBe(1);
      const kept = await fetch(p.url("/keep/a.txt"));
      expect(kept.headers.get("x-cache")).toBe("HIT");
      expect(await kept.text()).toBe("body of a.txt\n");
      const removed = await fetch(p.url("/gone/b.txt"));
      expect(removed.status).toBe(404);
      await removed.body?.cancel();
    } finally {
      await p.stop();
    }
  });
});

describe("the control plane's answers in the access log", () => {
  test("/ready, /health and an admin answer are logged with the bytes of their JSON body, not 0", async () => {
    // (logging at debug: a 2xx probe's access line is at debug)
    await using px = await startProxy(config(bucket("c", "/c")).replace("server: { address: 127.0.0.1, port: 0 }\n", "server: { address: 127.0.0.1, port: 0 }\nlogging: { level: debug }\n"));
    for (const [path, init, id] of [
      ["/ready", {}, "bytes-ready"],
      ["/health", {}, "bytes-health"],
      ["/admin/cache/stats", { headers: auth(admin) }, "bytes-stats"],
    ] as const) {
      const headers = { ...("headers" in init ? init.headers : {}), "x-request-id": id };
      const r = await fetch(px.url(path), { headers });
      const body = await r.arrayBuffer();
      expect(r.headers.get("content-length")).toBe(String(body.byteLength));
      const line = await px.waitForLog((l) => l.msg === "request" && l.request_id === id);
      expect({ path, bytes: line.bytes }).toEqual({ path, bytes: body.byteLength });
    }
  });
});
