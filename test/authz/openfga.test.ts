import { afterEach, describe, expect, test, setDefaultTimeout } from "bun:test";
import { AuthorizationSchema } from "../../src/config/schema.ts";
import { createAuthorizer, type AuthzInput } from "../../src/authz/index.ts";
import { AuthorizerUnavailable } from "../../src/errors.ts";
import { logCapture } from "../fixtures/jwt.ts";
import { OpenFgaServer, type Tuple } from "../fixtures/openfga.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const cleanup: Array<() => void> = [];
afterEach(() => cleanup.splice(0).forEach((f) => f()));

const STORE = "01JSTORE00000000000000TEST";
const MODEL_ID = "01JMODEL00000000000000TEST";

/** The documented tuples for bucket `catalog` (see src/authz/openfga.ts). */
const parent = (child: string, folder: string): Tuple => ({ user: `folder:${folder}`, relation: "parent", object: child });
const TUPLES: Tuple[] = [
  parent("file:catalog/products/shoes/red.jpg", "catalog/products/shoes/"),
  parent("file:catalog/products/hats/cap.jpg", "catalog/products/hats/"),
  parent("file:catalog/readme.txt", "catalog/"),
  parent("file:catalog/public/logo.png", "catalog/public/"),
  parent("folder:catalog/products/shoes/", "catalog/products/"),
  parent("folder:catalog/products/hats/", "catalog/products/"),
  parent("folder:catalog/products/", "catalog/"),
  parent("folder:catalog/public/", "catalog/"),
  { user: "user:alice", relation: "viewer", object: "folder:catalog/" },
  { user: "user:bob", relation: "viewer", object: "folder:catalog/products/shoes/" },
  { user: "user:carol", relation: "viewer", object: "file:catalog/products/hats/cap.jpg" },
  { user: "user:*", relation: "viewer", object: "folder:catalog/public/" },
];

function setup(cfg: Record<string, unknown> = {}, server: Parameters<typeof OpenFgaServer.start>[0] = {}) {
  const fga = OpenFgaServer.start({ storeId: STORE, tuples: TUPLES, ...server });
  const clock = { now: 5_000_000 };
  const logs = logCapture();
  const authz = createAuthorizer(AuthorizationSchema.parse({ type: "openfga", openfga_endpoint: fga.url, openfga_store_id: STORE, openfga_timeout_ms: 5000, ...cfg }), { now: () => clock.now, log: logs.log });
  cleanup.push(() => authz.close?.(), () => fga.close());
  return { fga, clock, logs, authz };
}
/** What a check came to: true (allowed), false (denied) or "503" (AuthorizerUnavailable: no decision). */
async function outcome(p: Promise<boolean>): Promise<boolean | "503"> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof AuthorizerUnavailable) return "503";
    throw e;
  }
}
const req = (sub: string | undefined, key: string, over: Partial<AuthzInput> = {}): AuthzInput => ({
  claims: sub === undefined ? { name: "nobody" } : { sub },
  principal: "jwt",
  bucket: "catalog",
  key,
  path: `/catalog/${key}`,
  method: "GET",
  clientIp: "10.1.1.1",
  ...over,
});

describe("the documented model: inheritance through folders", () => {
  const cases: Array<[string, string, boolean]> = [
    ["alice", "products/shoes/red.jpg", true], // bucket-level grant, two folders up
    ["alice", "readme.txt", true],
    ["bob", "products/shoes/red.jpg", true], // folder grant
    ["bob", "products/hats/cap.jpg", false], // sibling folder
    ["bob", "readme.txt", false], // parent folder
    ["carol", "products/hats/cap.jpg", true], // direct file grant
    ["carol", "products/shoes/red.jpg", false],
    ["dave", "public/logo.png", true], // user:* on a folder
    ["dave", "products/shoes/red.jpg", false],
    ["alice", "products/shoes/unlinked.jpg", false], // no parent tuple written → no inheritance
  ];
  for (const [user, key, allowed] of cases)
    test(`${user} ${allowed ? "may" : "may not"} read ${key}`, async () => {
      const { authz, fga } = setup();
      expect(await authz.authorize(req(user, key))).toBe(allowed);
      expect(fga.check(`user:${user}`, "viewer", `file:catalog/${key}`)).toBe(allowed); // the fixture agrees
    });
});

describe("listings: a prefix lists every key that starts with it, and is checked as the folder it is in", () => {
  // carol may read the file products/hats/cap.jpg: the prefix `products/hats/cap.jpg` would list
  // `products/hats/cap.jpg.orig` and `products/hats/cap.jpg/…` too, which she may not see
  const folders: Tuple[] = [parent("file:catalog/products/shoes/", "catalog/products/shoes/"), parent("file:catalog/", "catalog/")];
  const cases: Array<[string, string, string, boolean, string]> = [
    ["carol", "s3:ListBucket", "products/hats/cap.jpg", false, "file:catalog/products/hats/"],
    ["carol", "s3:ListBucketVersions", "products/hats/cap.jpg", false, "file:catalog/products/hats/"],
    ["bob", "s3:ListBucket", "products/shoes/", true, "file:catalog/products/shoes/"],
    ["bob", "s3:ListBucket", "products/shoes/re", true, "file:catalog/products/shoes/"],
    ["bob", "s3:ListBucket", "products/sho", false, "file:catalog/products/"],
    ["alice", "s3:ListBucket", "", true, "file:catalog/"],
    ["alice", "s3:ListBucket", "read", true, "file:catalog/"],
  ];
  for (const [user, action, prefix, allowed, object] of cases)
    test(`${user} ${allowed ? "may" : "may not"} ${action} with prefix "${prefix}" (asked about ${object})`, async () => {
      const { authz, fga } = setup({}, { tuples: [...TUPLES, ...folders] });
      expect(await authz.authorize(req(user, prefix, { action }))).toBe(allowed);
      expect(fga.requests.map((r) => r.body.tuple_key.object)).toEqual([object]);
    });
  test("an object read is still asked about the file itself", async () => {
    const { authz, fga } = setup();
    expect(await authz.authorize(req("carol", "products/hats/cap.jpg", { action: "s3:GetObject" }))).toBe(true);
    expect(fga.requests.map((r) => r.body.tuple_key.object)).toEqual(["file:catalog/products/hats/cap.jpg"]);
  });
});

describe("protocol", () => {
  test("POST /stores/{id}/check with tuple_key, model id and bearer token when configured", async () => {
    const { authz, fga } = setup({ openfga_authorization_model_id: MODEL_ID, openfga_api_token: "fga-token" }, { apiToken: "fga-token", modelId: MODEL_ID });
    expect(await authz.authorize(req("bob", "products/shoes/red.jpg"))).toBe(true);
    const r = fga.requests[0];
    expect(r.path).toBe(`/stores/${STORE}/check`);
    expect(r.headers.get("authorization")).toBe("Bearer fga-token");
    expect(r.body).toEqual({ tuple_key: { user: "user:bob", relation: "viewer", object: "file:catalog/products/shoes/red.jpg" }, authorization_model_id: MODEL_ID });
  });
  test("without model id and token, neither is sent", async () => {
    const { authz, fga } = setup();
    await authz.authorize(req("bob", "products/shoes/red.jpg"));
    expect(fga.requests[0].headers.get("authorization")).toBeNull();
    expect(fga.requests[0].body).not.toHaveProperty("authorization_model_id");
  });
  test("openfga_user_claim (dot path) and openfga_relation", async () => {
    const { authz, fga } = setup({ openfga_user_claim: "ext.uid", openfga_relation: "viewer" });
    expect(await authz.authorize(req(undefined, "readme.txt", { claims: { sub: "x", ext: { uid: "alice" } } }))).toBe(true);
    expect(fga.requests[0].body.tuple_key.user).toBe("user:alice");
  });
  test("missing user claim, or an id OpenFGA cannot represent → denied without a request", async () => {
    const { authz, fga, logs } = setup();
    expect(await authz.authorize(req(undefined, "readme.txt"))).toBe(false);
    expect(await authz.authorize(req(undefined, "readme.txt", { claims: undefined }))).toBe(false);
    expect(await authz.authorize(req("alice", "has space.txt"))).toBe(false);
    expect(await authz.authorize(req("alice", "2024-01-01T10:00.log"))).toBe(false);
    expect(await authz.authorize(req("alice", "a#b"))).toBe(false);
    expect(await authz.authorize(req("alice", "x".repeat(300)))).toBe(false);
    expect(await authz.authorize(req("*", "readme.txt"))).toBe(false);
    expect(await authz.authorize(req("urn:alice", "readme.txt"))).toBe(false);
    expect(fga.requests).toHaveLength(0);
    expect(logs.lines.every((l) => l.level === "info")).toBe(true);
  });
  test("whitespace is ASCII whitespace, as in OpenFGA's (RE2) patterns: a no-break or ideographic space is asked about", async () => {
    const { authz, fga } = setup();
    for (const key of ["tab\tkey", "line\nkey", "cr\rkey", "ff\fkey"]) expect(await authz.authorize(req("alice", key))).toBe(false);
    expect(fga.requests).toHaveLength(0);
    // (no tuple reaches these files: OpenFGA, and the fixture, answer allowed: false, not a validation error)
    for (const key of ["no\u00a0break.txt", "ideographic\u3000space.txt", "em\u2003space.txt"]) expect(await authz.authorize(req("alice", key))).toBe(false);
    expect(fga.requests.map((r) => r.body.tuple_key.object)).toEqual(["file:catalog/no\u00a0break.txt", "file:catalog/ideographic\u3000space.txt", "file:catalog/em\u2003space.txt"]);
  });
  test("OpenFGA's object limit is 256 characters, not bytes: a long non-ASCII name within it is asked about and granted", async () => {
    // objects of 257 and 293 bytes, 97 and 109 characters: within OpenFGA's ^[^\s]{2,256}$ (an RE2 pattern: it counts characters)
    const long = ["報".repeat(80), "報".repeat(92)].map((name) => `${name}.txt`);
    const { authz, fga } = setup({}, { tuples: long.map((k) => ({ user: "user:dave", relation: "viewer", object: `file:catalog/${k}` })) });
    for (const key of long) expect(await authz.authorize(req("dave", key))).toBe(true);
    expect(fga.requests.map((r) => r.body.tuple_key.object)).toEqual(long.map((k) => `file:catalog/${k}`));
    // 257 characters is past it (ASCII or not): denied without a request
    for (const key of ["x".repeat(257 - "file:catalog/".length), "報".repeat(257 - "file:catalog/".length)]) expect(await authz.authorize(req("dave", key))).toBe(false);
    expect(fga.requests).toHaveLength(2);
  });
  test("the fixture validates like OpenFGA", async () => {
    const { fga } = setup({}, { apiToken: "t" });
    const post = (path: string, body: unknown, token = "t") =>
      fetch(`${fga.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: typeof body === "string" ? body : JSON.stringify(body) });
    const tk = { user: "user:alice", relation: "viewer", object: "file:catalog/readme.txt" };
    expect(await (await post(`/stores/${STORE}/check`, { tuple_key: tk })).json()).toEqual({ allowed: true, resolution: "" });
    let res = await post(`/stores/${STORE}/check`, { tuple_key: tk }, "wrong");
    expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([401, "unauthenticated"]);
    res = await post(`/stores/NOPE/check`, { tuple_key: tk });
    expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([404, "store_id_not_found"]);
    for (const bad of [{}, { tuple_key: { ...tk, object: "catalog/readme.txt" } }, { tuple_key: { ...tk, object: "file:a b" } }, { tuple_key: { ...tk, user: "alice" } }, { tuple_key: { ...tk, relation: "owner" } }, "{nope"]) {
      res = await post(`/stores/${STORE}/check`, bad);
      expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([400, "validation_error"]);
    }
  });
});

describe("cache and failures", () => {
  test("cache hit (no second request), TTL expiry, TTL 0", async () => {
    const { authz, fga, clock } = setup({ openfga_cache_ttl_seconds: 10 });
    expect(await authz.authorize(req("bob", "products/shoes/red.jpg"))).toBe(true);
    expect(await authz.authorize(req("bob", "products/shoes/red.jpg"))).toBe(true);
    expect(fga.requests).toHaveLength(1);
    fga.tuples = fga.tuples.filter((t) => t.user !== "user:bob"); // access revoked
    clock.now += 9_999;
    expect(await authz.authorize(req("bob", "products/shoes/red.jpg"))).toBe(true); // still cached
    clock.now += 1;
    expect(await authz.authorize(req("bob", "products/shoes/red.jpg"))).toBe(false);
    expect(fga.requests).toHaveLength(2);
    const noCache = setup({ openfga_cache_ttl_seconds: 0 });
    await noCache.authz.authorize(req("bob", "x.txt"));
    await noCache.authz.authorize(req("bob", "x.txt"));
    expect(noCache.fga.requests).toHaveLength(2);
  });
  for (const mode of ["closed", "open"] as const) {
    test(`timeout (an outage) → ${mode === "open" ? "allowed" : "503"} with fail mode ${mode}, not cached`, async () => {
      const { authz, fga, logs } = setup({ openfga_timeout_ms: 40, openfga_fail_mode: mode });
      fga.hang(); // never answers: the 40 ms timeout is what ends the request
      expect(await outcome(authz.authorize(req("dave", "products/shoes/red.jpg")))).toBe(mode === "open" ? true : "503");
      expect(logs.lines.at(-1)).toMatchObject({ level: "warn", msg: expect.stringContaining(`failing ${mode}`), fields: { error: "timed out after 40 ms" } });
      fga.restore();
      // not cached: OpenFGA's answer decides (asked until it answers within the 40 ms: on a loaded host the
      // in-process OpenFGA may not, another outage, not cached either)
      await waitFor(async () => (await outcome(authz.authorize(req("dave", "products/shoes/red.jpg")))) === false, { message: "OpenFGA's answer" });
    });
    test(`401 (token not configured) and 404 (unknown store) are configuration errors → 503 with fail mode ${mode}, logged at error`, async () => {
      const { authz, logs } = setup({ openfga_fail_mode: mode }, { apiToken: "needed" });
      expect(await outcome(authz.authorize(req("alice", "readme.txt")))).toBe("503");
      expect(logs.lines.at(-1)).toMatchObject({ level: "error", fields: { error: "HTTP 401 (unauthenticated)" } });
      const other = setup({ openfga_fail_mode: mode, openfga_store_id: "01JOTHERSTORE" });
      expect(await outcome(other.authz.authorize(req("alice", "readme.txt")))).toBe("503");
      expect(other.logs.lines.at(-1)).toMatchObject({ level: "error", fields: { error: "HTTP 404 (store_id_not_found)" } });
      // the API token is never logged
      expect(JSON.stringify([logs.lines, other.logs.lines])).not.toContain("needed");
    });
    test(`a model without the write relation (400 validation_error) → writes 503 with fail mode ${mode}, reads still decided`, async () => {
      const { authz, logs } = setup({ openfga_fail_mode: mode, openfga_write_relation: "writer" });
      expect(await outcome(authz.authorize(req("mallory", "products/shoes/red.jpg", { method: "PUT", action: "s3:PutObject" })))).toBe("503");
      expect(logs.lines).toEqual([
        { level: "error", msg: expect.stringContaining("openfga refused the check: a configuration error"), fields: expect.objectContaining({ error: "HTTP 400 (validation_error)", detail: "relation 'file#writer' not found" }) },
      ]);
      expect(await authz.authorize(req("alice", "readme.txt"))).toBe(true);
      expect(await authz.authorize(req("mallory", "readme.txt"))).toBe(false);
    });
    test(`a 307 redirect is not followed (fail mode ${mode}): the input never reaches the Location, whose answer would allow`, async () => {
      const elsewhere = OpenFgaServer.start({ storeId: STORE, tuples: [{ user: "user:*", relation: "viewer", object: "folder:catalog/" }, parent("file:catalog/readme.txt", "catalog/")] });
      cleanup.push(() => elsewhere.close());
      const { authz, fga, logs } = setup({ openfga_fail_mode: mode });
      fga.redirectTo(307, `${elsewhere.url}/stores/${STORE}/check`);
      expect(await outcome(authz.authorize(req("mallory", "readme.txt")))).toBe("503");
      expect(fga.requests).toHaveLength(1);
      expect(elsewhere.requests).toHaveLength(0);
      expect(logs.lines.at(-1)).toMatchObject({ level: "error", fields: { error: expect.stringContaining("HTTP 307 (a redirect: not followed") } });
    });
  }
  test("an answer without allowed: true denies", async () => {
    const { authz, fga } = setup({ openfga_cache_ttl_seconds: 0 });
    for (const body of [{ allowed: "true" }, {}, { allowed: 1 }]) {
      fga.failWith({ status: 200, body });
      expect(await authz.authorize(req("alice", "readme.txt"))).toBe(false);
    }
  });
});
