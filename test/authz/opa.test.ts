import { afterEach, describe, expect, test, setDefaultTimeout, setSystemTime } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type AddressInfo } from "node:net";
import { AuthorizationSchema } from "../../src/config/schema.ts";
import { createAuthorizer, type AuthzInput } from "../../src/authz/index.ts";
import { AuthorizerUnavailable } from "../../src/errors.ts";
import { opaDataPath } from "../../src/authz/opa.ts";
import { logCapture } from "../fixtures/jwt.ts";
import { dataPath, OpaServer, type Policy } from "../fixtures/opa.ts";
import { waitFor } from "../helpers/wait.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const cleanup: Array<() => void> = [];
afterEach(() => cleanup.splice(0).forEach((f) => f()));

function setup(policies: Record<string, Policy>, cfg: Record<string, unknown> = {}) {
  const opa = OpaServer.start(policies);
  const clock = { now: 1_000_000 };
  const logs = logCapture();
  const authz = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: opa.url, opa_policy_path: "yatagarasu/allow", opa_timeout_ms: 5000, ...cfg }), { now: () => clock.now, log: logs.log });
  cleanup.push(() => authz.close?.(), () => opa.close());
  return { opa, clock, logs, authz };
}

const input = (over: Partial<AuthzInput> = {}): AuthzInput => ({
  claims: { sub: "alice", role: "admin" },
  principal: "jwt",
  bucket: "products",
  key: "shoes/red.jpg",
  path: "/products/shoes/red.jpg",
  method: "GET",
  action: "s3:GetObject",
  clientIp: "10.0.0.7",
  ...over,
});
const isAdmin = (i: any) => i?.jwt_claims?.role === "admin";

describe("decision cache and the wall clock", () => {
  test("its TTL counts elapsed time: a wall clock stepped back an hour (NTP, a VM restored) keeps no decision past opa_cache_ttl_seconds", async () => {
    let allowed = true;
    const opa = OpaServer.start({ "yatagarasu/allow": () => allowed });
    // (the default clock, as the proxy runs it)
    const authz = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: opa.url, opa_policy_path: "yatagarasu/allow", opa_cache_ttl_seconds: 1, opa_timeout_ms: 5000 }));
    cleanup.push(() => authz.close?.(), () => opa.close(), () => setSystemTime());
    expect(await authz.authorize(input())).toBe(true);
    expect(await authz.authorize(input())).toBe(true);
    expect(opa.requests).toHaveLength(1); // cached
    allowed = false; // revoked
    setSystemTime(new Date(Date.now() - 3_600_000));
    await waitFor(async () => (await authz.authorize(input())) === false, { timeoutMs: 10_000, message: "the revoked allow to expire from the cache" });
    expect(opa.requests).toHaveLength(2);
  });
});

describe("protocol", () => {
  test("POST /v1/data/{path} with the documented input; result true allows, false denies", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": isAdmin });
    expect(await authz.authorize(input())).toBe(true);
    expect(opa.requests).toHaveLength(1);
    expect(opa.requests[0].method).toBe("POST");
    expect(dataPath(opa.requests[0])).toBe("yatagarasu/allow");
    expect(opa.requests[0].headers.get("content-type")).toBe("application/json");
    expect(opa.requests[0].body).toEqual({
      input: { jwt_claims: { sub: "alice", role: "admin" }, principal: "jwt", bucket: "products", key: "shoes/red.jpg", path: "/products/shoes/red.jpg", method: "GET", action: "s3:GetObject", client_ip: "10.0.0.7" },
    });
    expect(await authz.authorize(input({ claims: { sub: "bob", role: "viewer" } }))).toBe(false);
  });
  test("the S3 action is in the input and in the decision cache key (a bucket GET may be ListBucket or GetBucketLocation)", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": (i) => i.action === "s3:GetBucketLocation" });
    expect(await authz.authorize(input({ key: "", action: "s3:GetBucketLocation" }))).toBe(true);
    expect(await authz.authorize(input({ key: "", action: "s3:ListBucket" }))).toBe(false);
    expect(await authz.authorize(input({ key: "", action: "s3:GetBucketLocation" }))).toBe(true);
    expect(opa.requests.map((r) => (r.body as any).input.action)).toEqual(["s3:GetBucketLocation", "s3:ListBucket"]);
  });
  test("anonymous requests send jwt_claims: null", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": (i) => i.jwt_claims === null && i.key.startsWith("public/") });
    expect(await authz.authorize(input({ claims: undefined, key: "public/a.txt" }))).toBe(true);
    expect(await authz.authorize(input({ claims: undefined, key: "private/a.txt" }))).toBe(false);
    expect((opa.requests[0].body as any).input.jwt_claims).toBeNull();
  });
  test('a package path answering {"allow": true} allows; other shapes deny', async () => {
    let result: unknown = { allow: true, reason: "ok" };
    const { authz } = setup({ yatagarasu: () => result }, { opa_policy_path: "yatagarasu", opa_cache_ttl_seconds: 0 });
    expect(await authz.authorize(input())).toBe(true);
    for (result of [{ allow: false }, { allow: "true" }, "true", 1, [true], null, {}]) expect(await authz.authorize(input())).toBe(false);
  });
  test("undefined document ({} without result) denies, with one warning", async () => {
    const { opa, authz, logs } = setup({}, { opa_cache_ttl_seconds: 0 });
    expect(await authz.authorize(input())).toBe(false);
    expect(await authz.authorize(input())).toBe(false);
    expect(opa.requests).toHaveLength(2);
    expect(logs.lines.filter((l) => l.msg.includes("undefined result"))).toHaveLength(1);
  });
  test("dotted and slashed policy paths map to the same URL", () => {
    for (const p of ["yatagarasu/allow", "/yatagarasu/allow/", "yatagarasu.allow", "data.yatagarasu.allow"]) expect(opaDataPath(p)).toBe("yatagarasu/allow");
    expect(opaDataPath("authz")).toBe("authz");
  });
  test("the fixture answers a non-JSON body like OPA (400 invalid_parameter)", async () => {
    const { opa } = setup({});
    const res = await fetch(`${opa.url}/v1/data/yatagarasu/allow`, { method: "POST", body: "{nope" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "invalid_parameter", message: expect.stringContaining("malformed input") });
  });
});

describe("decision cache", () => {
  test("a repeated decision is served from the cache; key, every claim, principal type, method, client IP and path are part of the key", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": isAdmin });
    expect(await authz.authorize(input())).toBe(true);
    expect(await authz.authorize(input({ claims: { role: "admin", sub: "alice" } }))).toBe(true); // the same claims
    expect(opa.requests).toHaveLength(1);
    await authz.authorize(input({ key: "other.jpg" }));
    await authz.authorize(input({ claims: { sub: "carol", role: "admin" } }));
    await authz.authorize(input({ claims: { sub: "alice", role: "admin", iat: 5 } }));
    await authz.authorize(input({ principal: "s3_static" }));
    await authz.authorize(input({ method: "HEAD" }));
    await authz.authorize(input({ clientIp: "10.0.0.8" }));
    expect(opa.requests).toHaveLength(7);
    // the S3 front sends another path for the same bucket and key in virtual-hosted style: a policy on input.path must be asked
    await authz.authorize(input({ path: "/cat.jpg" }));
    expect(opa.requests).toHaveLength(8);
  });

  test("a decision cached for one user is never another's with the same sub: other roles, an S3 identity or a session named alike are asked (and denied)", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": isAdmin });
    expect(await authz.authorize(input({ claims: Object.freeze({ sub: "app1", role: "admin" }) }))).toBe(true);
    expect(await authz.authorize(input({ claims: Object.freeze({ sub: "app1", role: "reader" }) }))).toBe(false);
    expect(await authz.authorize(input({ claims: Object.freeze({ sub: "app1", role: "reader" }), principal: "s3_static" }))).toBe(false);
    expect(await authz.authorize(input({ claims: Object.freeze({ sub: "app1" }), principal: "s3_session" }))).toBe(false);
    expect(opa.requests).toHaveLength(4);
    expect(opa.requests.map((r) => (r.body as { input: { principal: string } }).input.principal)).toEqual(["jwt", "jwt", "s3_static", "s3_session"]);
  });
  test("denials are cached too; the entry expires after the TTL", async () => {
    const { opa, authz, clock } = setup({ "yatagarasu/allow": isAdmin }, { opa_cache_ttl_seconds: 30 });
    const viewer = input({ claims: { sub: "bob", role: "viewer" } });
    expect(await authz.authorize(viewer)).toBe(false);
    clock.now += 29_999;
    expect(await authz.authorize(viewer)).toBe(false);
    expect(opa.requests).toHaveLength(1);
    opa.policies["yatagarasu/allow"] = () => true;
    clock.now += 1;
    expect(await authz.authorize(viewer)).toBe(true);
    expect(opa.requests).toHaveLength(2);
  });
  test("TTL 0 disables the cache", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": isAdmin }, { opa_cache_ttl_seconds: 0 });
    await authz.authorize(input());
    await authz.authorize(input());
    expect(opa.requests).toHaveLength(2);
  });
  test("without sub, the identity is a hash of all claims (order-independent)", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": () => true });
    await authz.authorize(input({ claims: { email: "a@x", groups: ["g1"] } }));
    await authz.authorize(input({ claims: { groups: ["g1"], email: "a@x" } }));
    expect(opa.requests).toHaveLength(1);
    await authz.authorize(input({ claims: { email: "a@x", groups: ["g2"] } }));
    await authz.authorize(input({ claims: undefined }));
    expect(opa.requests).toHaveLength(3);
  });
  test("concurrent identical checks share one request", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": () => true });
    opa.hang(); // the first request stays in flight until restore()
    const all = Promise.all([authz.authorize(input()), authz.authorize(input()), authz.authorize(input())]);
    await waitFor(() => opa.requests.length === 1, { message: "the first OPA request" });
    opa.restore();
    expect(await all).toEqual([true, true, true]);
    expect(opa.requests).toHaveLength(1);
  });
});

/** What a check came to: true (allowed), false (denied) or "503" (AuthorizerUnavailable: no decision). */
async function outcome(p: Promise<boolean>): Promise<boolean | "503"> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof AuthorizerUnavailable && e.status === 503 && e.headers?.["retry-after"] === "1") return "503";
    throw e;
  }
}

/** A fetch answering every call with `res()` (and recording the calls). */
function fakeFetch(res: () => Response) {
  const calls: Array<{ url: string; init: RequestInit | undefined }> = [];
  const f = (async (url: string, init?: RequestInit) => {
    calls.push({ url: String(url), init });
    return res();
  }) as unknown as typeof fetch;
  return { f, calls };
}

describe("an outage (timeout, unreachable, 5xx, 429) follows opa_fail_mode: closed → 503, open → allowed (logged at warn, never cached)", () => {
  for (const mode of ["closed", "open"] as const) {
    const failed = mode === "open" ? true : "503";
    test(`timeout → ${mode}`, async () => {
      const { opa, authz, logs } = setup({ "yatagarasu/allow": () => mode !== "open" }, { opa_timeout_ms: 40, opa_fail_mode: mode });
      opa.hang(); // never answers: the 40 ms timeout is what ends the request
      expect(await outcome(authz.authorize(input()))).toBe(failed);
      expect(logs.lines).toContainEqual({ level: "warn", msg: expect.stringContaining(`opa unavailable; failing ${mode}`), fields: expect.objectContaining({ error: "timed out after 40 ms" }) });
      opa.restore();
      // the failure was not cached: OPA is asked again and the policy's answer (not the fail mode's) decides.
      // On a loaded host the in-process OPA may not answer within 40 ms again (another outage, not cached
      // either), or never have read the timed-out request, or read it late: so asked until it answers in time
      const asked = opa.requests.length;
      await waitFor(async () => (await outcome(authz.authorize(input()))) === (mode !== "open"), { message: "the policy's answer" });
      expect(opa.requests.length).toBeGreaterThan(asked);
    });
    for (const status of [500, 503, 429]) {
      test(`HTTP ${status} → ${mode}`, async () => {
        const { opa, authz, logs } = setup({ "yatagarasu/allow": () => true }, { opa_fail_mode: mode });
        opa.failWith({ status, body: { code: "internal_error", message: "boom" } });
        expect(await outcome(authz.authorize(input()))).toBe(failed);
        expect(logs.lines.at(-1)).toMatchObject({ level: "warn", fields: { error: `HTTP ${status} (internal_error)` } });
        opa.restore();
        expect(await authz.authorize(input())).toBe(true);
      });
    }
    test(`unreachable OPA → ${mode}, and it recovers when OPA is back`, async () => {
      const { opa, authz, logs } = setup({ "yatagarasu/allow": () => mode !== "open" }, { opa_fail_mode: mode });
      opa.down(); // connections refused
      expect(await outcome(authz.authorize(input()))).toBe(failed);
      expect(logs.lines).toEqual([{ level: "warn", msg: expect.stringContaining(`opa unavailable; failing ${mode}`), fields: expect.objectContaining({ error: expect.any(String) }) }]);
      expect(opa.requests).toHaveLength(0);
      opa.restore();
      expect(await authz.authorize(input())).toBe(mode !== "open"); // the failure was not cached
    });
  }
  test("a permission asked fail-closed (failClosed: s3:BypassGovernanceRetention) is refused (503) through an outage even with opa_fail_mode open; the request's own action still fails open", async () => {
    const { opa, authz } = setup({ "yatagarasu/allow": () => true }, { opa_fail_mode: "open", opa_cache_ttl_seconds: 0 });
    opa.down();
    expect(await outcome(authz.authorize(input()))).toBe(true);
    expect(await outcome(authz.authorize({ ...input(), action: "s3:BypassGovernanceRetention", failClosed: true }))).toBe("503");
    opa.restore();
    expect(await authz.authorize({ ...input(), action: "s3:BypassGovernanceRetention", failClosed: true })).toBe(true);
  });

  test("an outage is logged once, not once per request; its end is logged with the number of requests it failed", async () => {
    const { opa, authz, logs } = setup({ "yatagarasu/allow": () => true }, { opa_fail_mode: "closed", opa_cache_ttl_seconds: 0 });
    opa.down();
    for (let i = 0; i < 5; i++) expect(await outcome(authz.authorize(input()))).toBe("503");
    expect(logs.lines.filter((l) => l.level === "warn")).toHaveLength(1);
    opa.restore();
    expect(await authz.authorize(input())).toBe(true);
    expect(logs.lines.at(-1)).toMatchObject({ level: "info", msg: "opa available again", fields: { failed_requests: 5, fail_open_requests: 0 } });
    opa.down();
    expect(await outcome(authz.authorize(input()))).toBe("503");
    expect(logs.lines.filter((l) => l.level === "warn")).toHaveLength(2); // a new outage is logged again
  });
});

describe("a configuration error (4xx, redirect, an answer that is no decision) is refused in both modes: 503, logged at error, never allowed", () => {
  for (const mode of ["closed", "open"] as const) {
    for (const status of [400, 401, 403, 404]) {
      test(`HTTP ${status} → 503 with opa_fail_mode ${mode}`, async () => {
        const { opa, authz, logs } = setup({ "yatagarasu/allow": () => true }, { opa_fail_mode: mode, opa_cache_ttl_seconds: 0 });
        opa.failWith({ status, body: { code: "invalid_parameter", message: "bad\u0007 thing" } });
        expect(await outcome(authz.authorize(input()))).toBe("503");
        expect(await outcome(authz.authorize(input()))).toBe("503");
        // once (not once per request), at error, with OPA's code and message (control characters replaced)
        expect(logs.lines).toEqual([
          { level: "error", msg: expect.stringContaining("opa refused the check: a configuration error"), fields: { bucket: "products", key: "shoes/red.jpg", error: `HTTP ${status} (invalid_parameter)`, detail: "bad? thing" } },
        ]);
        opa.restore();
        expect(await authz.authorize(input())).toBe(true);
        expect(logs.lines.at(-1)).toMatchObject({ level: "info", msg: "opa available again", fields: { failed_requests: 2, fail_open_requests: 0 } });
      });
    }
    for (const status of [301, 302, 303, 307, 308]) {
      test(`a ${status} redirect is not followed: 503 with opa_fail_mode ${mode}, and the Location never asked`, async () => {
        // The Location answers {"result": true}: followed, it would allow everything.
        const elsewhere = OpaServer.start({ "yatagarasu/allow": () => true });
        cleanup.push(() => elsewhere.close());
        const { opa, authz, logs } = setup({ "yatagarasu/allow": () => false }, { opa_fail_mode: mode });
        opa.redirectTo(status, `${elsewhere.url}/v1/data/yatagarasu/allow`);
        expect(await outcome(authz.authorize(input()))).toBe("503");
        expect(opa.requests).toHaveLength(1);
        expect(elsewhere.requests).toHaveLength(0);
        expect(logs.lines).toEqual([{ level: "error", msg: expect.stringContaining("opa refused the check"), fields: expect.objectContaining({ error: `HTTP ${status} (a redirect: not followed; point the URL at the service itself)` }) }]);
      });
    }
  }
  for (const mode of ["closed", "open"] as const) {
    test(`a TLS handshake that failed (a certificate refused, an https URL to a server speaking http) is refused (503) with opa_fail_mode ${mode}, never allowed`, async () => {
      // A certificate no CA vouches for: whoever answers on that address is not proven to be OPA.
      const dir = mkdtempSync(join(tmpdir(), "yata-opa-tls-"));
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=untrusted",
        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdout: "ignore", stderr: "ignore" });
      expect(await gen.exited).toBe(0);
      let asked = 0;
      const untrusted = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        tls: { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") },
        fetch: () => (asked++, Response.json({ result: true })),
      });
      cleanup.push(() => untrusted.stop(true));
      const plain = OpaServer.start({ "yatagarasu/allow": () => true });
      cleanup.push(() => plain.close());
      for (const [url, code] of [[`https://127.0.0.1:${untrusted.port}`, "DEPTH_ZERO_SELF_SIGNED_CERT"], [plain.url.replace("http:", "https:"), "EPROTO"]] as const) {
        const logs = logCapture();
        const a = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: url, opa_policy_path: "yatagarasu/allow", opa_timeout_ms: 5000, opa_fail_mode: mode }), { log: logs.log });
        cleanup.push(() => a.close?.());
        expect(await outcome(a.authorize(input()))).toBe("503");
        expect(logs.lines).toEqual([{ level: "error", msg: expect.stringContaining("opa refused the check: a configuration error"), fields: expect.objectContaining({ error: expect.stringContaining(code) }) }]);
      }
      expect([asked, plain.requests.length]).toEqual([0, 0]);
      // an expired certificate (or one naming another host) likewise
      for (const code of ["CERT_HAS_EXPIRED", "ERR_TLS_CERT_ALTNAME_INVALID"]) {
        const a = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: "https://127.0.0.1:1", opa_policy_path: "p", opa_fail_mode: mode }), {
          fetch: (async () => Promise.reject(Object.assign(new Error("tls"), { code }))) as unknown as typeof fetch,
        });
        expect([code, await outcome(a.authorize(input()))]).toEqual([code, "503"]);
      }
    });
  }
  for (const mode of ["closed", "open"] as const) {
    test(`an answer that is not HTTP (another service on that port: a Redis, an SSH server; an upgrade) is refused (503) with opa_fail_mode ${mode}, never allowed`, async () => {
      // (it was an outage: with fail_mode open, a URL naming the wrong port allowed every request)
      const answers = [
        Buffer.from("SSH-2.0-OpenSSH_9.6\r\n"),
        Buffer.from("-ERR unknown command 'POST'\r\n"),
        Buffer.from("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"),
      ];
      for (const answer of answers) {
        const other = createServer((s) => {
          s.on("error", () => {});
          s.once("data", () => s.end(answer));
        });
        await new Promise<void>((r) => other.listen(0, "127.0.0.1", () => r()));
        cleanup.push(() => other.close());
        const logs = logCapture();
        const a = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: `http://127.0.0.1:${(other.address() as AddressInfo).port}`, opa_policy_path: "p", opa_timeout_ms: 5000, opa_fail_mode: mode }), { log: logs.log });
        cleanup.push(() => a.close?.());
        expect([answer.toString("latin1"), await outcome(a.authorize(input()))]).toEqual([answer.toString("latin1"), "503"]);
        expect(logs.lines).toEqual([{ level: "error", msg: expect.stringContaining("opa refused the check: a configuration error"), fields: expect.objectContaining({ error: expect.stringContaining("not an HTTP/1.1 response") }) }]);
      }
    });
  }
  test("redirect: manual is what is asked of fetch", async () => {
    const { f, calls } = fakeFetch(() => Response.json({ result: true }));
    const a = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: "http://127.0.0.1:1", opa_policy_path: "p" }), { fetch: f });
    expect(await a.authorize(input())).toBe(true);
    expect(calls[0]!.init?.redirect).toBe("manual");
  });
  for (const mode of ["closed", "open"] as const) {
    test(`a 2xx answer that is not JSON, or not an object, is refused (503) with opa_fail_mode ${mode}`, async () => {
      for (const body of ["<html>", "[true]"]) {
        const logs = logCapture();
        const bad = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: "http://127.0.0.1:1", opa_policy_path: "p", opa_fail_mode: mode }), {
          fetch: fakeFetch(() => new Response(body, { status: 200 })).f,
          log: logs.log,
        });
        expect(await outcome(bad.authorize(input()))).toBe("503");
        expect(logs.lines.at(-1)).toMatchObject({ level: "error", fields: { error: body === "<html>" ? "answer is not JSON" : "answer is not a JSON object" } });
      }
    });
  }
  test("an endless answer (no Content-Length) is cut at 1 MiB and is a failure, not read whole", async () => {
    const logs = logCapture();
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        sent += 65536;
        c.enqueue(new Uint8Array(65536).fill(32));
      },
    });
    const bad = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: "http://127.0.0.1:1", opa_policy_path: "p" }), {
      fetch: (async () => new Response(endless, { status: 200 })) as unknown as typeof fetch,
      log: logs.log,
    });
    expect(await outcome(bad.authorize(input()))).toBe("503");
    expect(logs.lines.at(-1)?.fields).toMatchObject({ error: "answer larger than 1048576 bytes" });
    expect(sent).toBeLessThan(2 * 1024 * 1024);
  });
});

describe("onDecision: every call is counted, cache hits included", () => {
  test("allow, deny, fail_open (an outage in open mode: allowed without a decision; it was counted error, as the refused ones), error (refused)", async () => {
    const counted: string[] = [];
    const opa = OpaServer.start({ "yatagarasu/allow": isAdmin });
    const authz = createAuthorizer(AuthorizationSchema.parse({ type: "opa", opa_url: opa.url, opa_policy_path: "yatagarasu/allow", opa_fail_mode: "open", opa_timeout_ms: 5000 }), {
      onDecision: (a, r) => void counted.push(`${a} ${r}`),
    });
    cleanup.push(() => authz.close?.(), () => opa.close());
    await authz.authorize(input());
    await authz.authorize(input()); // cached
    await authz.authorize(input({ claims: { sub: "bob" } }));
    opa.down();
    expect(await authz.authorize(input({ claims: { sub: "carol" } }))).toBe(true); // open
    expect(await outcome(authz.authorize(input({ claims: { sub: "carol" }, action: "s3:BypassGovernanceRetention", failClosed: true })))).toBe("503");
    expect(counted).toEqual(["opa allow", "opa allow", "opa deny", "opa fail_open", "opa error"]);
  });
});
