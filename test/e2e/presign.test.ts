/**
 * POST /<prefix>/<key>?presign on the plain front: a JWT buys a presigned URL on the S3 listener,
 * signed with STS session credentials minted for that token. The URL is used with plain fetch (no
 * AWS library), as a browser would.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { presignUrl } from "../../src/fronts/presign.ts";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { OpaServer } from "../fixtures/opa.ts";
import { bearer, bucket, rawRequest, startWriteEnv, STS_KEY, token, WRITER, type WriteEnv } from "./plain-write-env.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const T = 20_000;

let s3: S3Fixture;
let env: WriteEnv;
// a policy written on input.method: reads (GET) only
const opa = OpaServer.start({ "yatagarasu/allow": (input: { method: string }) => input.method === "GET" });
const CUTOFF = Math.floor(Date.now() / 1000) - 3600;

const buckets = (ep: string) =>
  bucket("rw", "/rw", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n") +
  bucket("ro", "/ro", "ro", ep, "    auth: { enabled: true }\n") +
  bucket("ruled", "/ruled", "rw", ep, "    access: read-write\n    auth: { enabled: true, write_claims: [{ claim: role, operator: equals, value: editor }] }\n") +
  bucket("team", "/team", "rw", ep, "    auth: { enabled: true, claims: [{ claim: team, operator: equals, value: a }] }\n") +
  bucket("under_score", "/under", "rw", ep, "") +
  // a revocation cut-off: tokens issued before it are refused
  bucket("recent", "/recent", "rw", ep, `    auth: { enabled: true, claims: [{ claim: iat, operator: gte, value: ${CUTOFF} }] }\n`) +
  bucket("bad!name", "/badname", "rw", ep, "    auth: { enabled: true }\n") +
  bucket("opa", "/opa", "rw", ep, `    access: read-write\n    auth: { enabled: true }\n    authorization: { type: opa, opa_url: "${opa.url}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 5000 }\n`);

interface Presigned {
  url: string;
  method: string;
  expires_at: string;
  headers: Record<string, string>;
}

async function presign(path: string, query: string, headers: Record<string, string> = bearer()): Promise<Response> {
  return fetch(env.url(`${path}?presign&${query}`), { method: "POST", headers });
}

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
  env = await startWriteEnv({ buckets, s3Api: true, s3Extra: "  presign_max_seconds: 600\n" }, s3);
});

afterAll(async () => {
  await env?.stop();
  await s3?.stop();
  opa.close();
});

describe("claim rules on the token's timing claims (iat, exp)", () => {
  test("a URL minted for a token that passes an iat rule works; one issued before the cut-off gets no URL; an STS session carries iat too", async () => {
    await s3.put("rw", "fresh.txt", "fresh");
    const res = await presign("/recent/fresh.txt", "method=GET&expires=60");
    expect(res.status).toBe(200);
    const p = (await res.json()) as Presigned;
    const got = await fetch(p.url);
    expect([got.status, await got.text()]).toEqual([200, "fresh"]);
    const old = await presign("/recent/fresh.txt", "method=GET&expires=60", { authorization: `Bearer ${token({ iat: CUTOFF - 10 })}` });
    expect(old.status).toBe(403);
    // STS: the session re-checks the bucket's rules on every request, against the token's claims
    const form = new URLSearchParams({ Action: "AssumeRoleWithWebIdentity", Version: "2011-06-15", RoleArn: "arn:aws:iam::123456789012:role/r", RoleSessionName: "s1", WebIdentityToken: token() });
    const sts = await (await fetch(`${env.s3Endpoint}/`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form.toString() })).text();
    const creds = {
      accessKeyId: /<AccessKeyId>([^<]+)</.exec(sts)![1]!,
      secretAccessKey: /<SecretAccessKey>([^<]+)</.exec(sts)![1]!,
      sessionToken: /<SessionToken>([^<]+)</.exec(sts)![1]!,
    };
    const host = `127.0.0.1:${env.s3Port}`;
    const headers = new S3Signer(creds, "us-east-1").sign({ method: "GET", host, path: "/recent/fresh.txt" });
    const viaSession = await fetch(`${env.s3Endpoint}/recent/fresh.txt`, { headers });
    expect([viaSession.status, await viaSession.text()]).toEqual([200, "fresh"]);
  });
});

describe("presigned GET", () => {
  test("a token buys a GET URL on the S3 listener that reads the object byte-exact, with no other credential", async () => {
    const body = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
    await s3.put("rw", "docs/report 1+1=2.bin", body);
    const before = Date.now();
    const res = await presign("/rw/docs/report%201+1=2.bin", "method=GET&expires=120");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const p = (await res.json()) as Presigned;
    expect(p.method).toBe("GET");
    expect(p.headers).toEqual({});
    const u = new URL(p.url);
    // derived origin: the plain request's host name, the S3 listener's port
    expect(u.origin).toBe(env.s3Endpoint!);
    expect(u.pathname).toBe("/rw/docs/report%201%2B1%3D2.bin");
    expect(u.searchParams.get("X-Amz-Expires")).toBe("120");
    expect(u.searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    expect(u.searchParams.get("X-Amz-Credential")).toMatch(/^ASIA[A-Z2-7]{16}\/\d{8}\/us-east-1\/s3\/aws4_request$/);
    expect(u.searchParams.get("X-Amz-Security-Token")).toStartWith("YGS2.");
    const expiresAt = Date.parse(p.expires_at);
    expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 119_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 120_000);
    const got = await fetch(p.url);
    expect(got.status).toBe(200);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(body);
  }, T);

  test("response_content_disposition is signed into the URL (a download link); changing it breaks the signature", async () => {
    await s3.put("rw", "docs/dl.pdf", "pdf bytes");
    const disposition = `attachment; filename="report.pdf"; filename*=UTF-8''r%C3%A9port.pdf`;
    const p = (await (await presign("/rw/docs/dl.pdf", `method=GET&response_content_disposition=${encodeURIComponent(disposition)}`)).json()) as Presigned;
    const got = await fetch(p.url);
    expect(got.status).toBe(200);
    expect(got.headers.get("content-disposition")).toBe(disposition);
    expect(await got.text()).toBe("pdf bytes");
    const u = new URL(p.url);
    u.searchParams.set("response-content-disposition", "inline");
    expect((await fetch(u)).status).toBe(403);
  }, T);

  test("the URL is bound to its key and method: another key or PUT is SignatureDoesNotMatch", async () => {
    await s3.put("rw", "bound.txt", "bound");
    await s3.put("rw", "other.txt", "other");
    const p = (await (await presign("/rw/bound.txt", "method=GET")).json()) as Presigned;
    const other = await fetch(p.url.replace("/rw/bound.txt", "/rw/other.txt"));
    expect(other.status).toBe(403);
    expect(await other.text()).toContain("<Code>SignatureDoesNotMatch</Code>");
    const put = await fetch(p.url, { method: "PUT", body: "x" });
    expect(put.status).toBe(403);
    expect(new TextDecoder().decode(await s3.read("rw", "bound.txt"))).toBe("bound");
  }, T);

  test("default expiry is s3_api.presign_max_seconds; more is 400; never past the token's exp", async () => {
    await s3.put("rw", "exp.txt", "e");
    const p = (await (await presign("/rw/exp.txt", "method=GET")).json()) as Presigned;
    expect(new URL(p.url).searchParams.get("X-Amz-Expires")).toBe("600");
    const tooLong = await presign("/rw/exp.txt", "method=GET&expires=601");
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { message: string }).message).toBe("expires must be a whole number of seconds from 1 to 600");
    // (a number too long for the old pattern was told "at least 1")
    const huge = await presign("/rw/exp.txt", "method=GET&expires=99999999");
    expect([huge.status, ((await huge.json()) as { message: string }).message]).toEqual([400, "expires must be a whole number of seconds from 1 to 600"]);
    const soon = Math.floor(Date.now() / 1000) + 30;
    const capped = (await (await presign("/rw/exp.txt", "method=GET&expires=600", bearer({ exp: soon }))).json()) as Presigned;
    expect(Date.parse(capped.expires_at)).toBeLessThanOrEqual(soon * 1000);
    expect(Number(new URL(capped.url).searchParams.get("X-Amz-Expires"))).toBeLessThanOrEqual(30);
    expect((await fetch(capped.url)).status).toBe(200);
  }, T);

  test("an expired URL is refused by the S3 listener (AccessDenied: Request has expired)", async () => {
    await s3.put("rw", "short.txt", "s");
    const p = (await (await presign("/rw/short.txt", "method=GET&expires=1")).json()) as Presigned;
    const deadline = Date.parse(p.expires_at);
    // polled: the answer turns from 200 to 403 once the second has passed
    let res: Response;
    for (;;) {
      res = await fetch(p.url);
      if (res.status !== 200 || Date.now() > deadline + 5000) break;
      await res.arrayBuffer();
      await Bun.sleep(100);
    }
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("Request has expired");
  }, T);

  test("a session carries the token's claims: the S3 listener applies the bucket's claim rules to it", async () => {
    await s3.put("rw", "team.txt", "team a");
    const refused = await presign("/team/team.txt", "method=GET", bearer({ team: "b" }));
    expect(refused.status).toBe(403);
    const p = (await (await presign("/team/team.txt", "method=GET", bearer({ team: "a" }))).json()) as Presigned;
    expect(await (await fetch(p.url)).text()).toBe("team a");
  }, T);
});

describe("presigned PUT", () => {
  test("a token that may write buys a PUT URL; the upload through the S3 listener is stored byte-exact", async () => {
    const body = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7 + 3) & 0xff);
    const p = (await (await presign("/rw/up/file.bin", "method=PUT&expires=300")).json()) as Presigned;
    expect(p.method).toBe("PUT");
    const res = await fetch(p.url, { method: "PUT", body });
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBe(`"${new Bun.CryptoHasher("md5").update(body).digest("hex")}"`);
    expect(await s3.read("rw", "up/file.bin")).toEqual(body);
  }, T);

  // A PUT URL the plain front minted let its holder upload up to the S3 front's 5 GiB, past the
  // plain front's server.security_limits.max_body_size (10 MiB here, the default) that the same
  // token's PUT there is held to.
  test("a PUT URL carries the plain front's max_body_size: a larger body is S3's EntityTooLarge, unstored", async () => {
    const limit = 10 * 1024 * 1024;
    const p = (await (await presign("/rw/up/big.bin", "method=PUT&expires=300")).json()) as Presigned;
    const res = await fetch(p.url, { method: "PUT", body: new Uint8Array(limit + 1) });
    const xml = await res.text();
    expect(res.status).toBe(400);
    expect(xml).toContain("<Code>EntityTooLarge</Code>");
    expect(xml).toContain(`<MaxSizeAllowed>${limit}</MaxSizeAllowed>`);
    expect(await s3.exists("rw", "up/big.bin")).toBe(false);
    const ok = await fetch(p.url, { method: "PUT", body: new Uint8Array(limit) });
    expect(ok.status).toBe(200);
    expect(await s3.exists("rw", "up/big.bin")).toBe(true);
  }, T);

  test("content_type is signed: the upload must send exactly it", async () => {
    const p = (await (await presign("/rw/up/typed.txt", "method=PUT&content_type=text/plain")).json()) as Presigned;
    expect(p.headers).toEqual({ "content-type": "text/plain" });
    expect(new URL(p.url).searchParams.get("X-Amz-SignedHeaders")).toBe("content-type;host");
    const wrong = await fetch(p.url, { method: "PUT", body: "x", headers: { "content-type": "text/html" } });
    expect(wrong.status).toBe(403);
    expect(await s3.exists("rw", "up/typed.txt")).toBe(false);
    const ok = await fetch(p.url, { method: "PUT", body: "typed", headers: p.headers });
    expect(ok.status).toBe(200);
    const back = await fetch(env.url("/rw/up/typed.txt"), { headers: bearer() });
    expect(back.headers.get("content-type")).toBe("text/plain");
  }, T);

  // A page could not give its upload metadata: an x-amz-meta-* header the URL does not sign is
  // S3's 403 HeadersNotSigned, and the presign request took no parameter for one.
  test("meta_<name> is signed as x-amz-meta-<name> and listed in headers: the upload sends it and it is stored; another value or none is refused", async () => {
    const res = await presign("/rw/up/meta.txt", "method=PUT&content_type=text/plain&meta_Author=alice&meta_project-id=p%201");
    expect(res.status).toBe(200);
    const p = (await res.json()) as Presigned;
    expect(p.headers).toEqual({ "content-type": "text/plain", "x-amz-meta-author": "alice", "x-amz-meta-project-id": "p 1" });
    expect(new URL(p.url).searchParams.get("X-Amz-SignedHeaders")).toBe("content-type;host;x-amz-meta-author;x-amz-meta-project-id");
    for (const headers of [{ "content-type": "text/plain" }, { ...p.headers, "x-amz-meta-author": "mallory" }] as Record<string, string>[]) {
      expect((await fetch(p.url, { method: "PUT", body: "x", headers })).status).toBe(403);
    }
    expect(await s3.exists("rw", "up/meta.txt")).toBe(false);
    expect((await fetch(p.url, { method: "PUT", body: "with metadata", headers: p.headers })).status).toBe(200);
    const back = await fetch(env.url("/rw/up/meta.txt"), { headers: bearer() });
    expect([back.headers.get("x-amz-meta-author"), back.headers.get("x-amz-meta-project-id"), await back.text()]).toEqual(["alice", "p 1", "with metadata"]);
    const refused = async (query: string) => ((await (await presign("/rw/up/meta.txt", query)).json()) as { message: string }).message;
    expect(await refused("method=GET&meta_a=1")).toBe("meta_<name> applies to PUT and POST only");
    expect(await refused("method=PUT&meta_a%20b=1")).toBe(`"meta_a b": a metadata name (after meta_) is 1-128 letters, digits, '-', '_' or '.', starting with a letter or digit`);
    expect(await refused("method=PUT&meta_a=1&meta_A=2")).toBe(`"meta_A" is given more than once`);
    expect(await refused("method=PUT&meta_a=%C3%A9")).toBe(`"meta_a": a metadata value is printable ASCII without white space at either end (percent-encode other characters)`);
    expect(await refused(`method=PUT&meta_a=${"v".repeat(2048)}`)).toBe(`The metadata takes more than 2048 bytes (names and values) with "meta_a"; S3 takes at most 2048`);
    // Read before the token is checked: many parameters are refused at the one that passes 2 KiB,
    // those after it never compared (each name was compared with every one before it: ~0.2 s of
    // the event loop per anonymous request with max_uri_length at 64 KiB); the last one, a name
    // given twice, is never reached
    const many = Array.from({ length: 740 }, (_, i) => `meta_${i.toString(36)}=v`).join("&") + "&meta_0=v";
    const crowd = await presign("/rw/up/meta.txt", `method=PUT&${many}`, {});
    expect([crowd.status, ((await crowd.json()) as { message: string }).message]).toEqual([400, `The metadata takes more than 2048 bytes (names and values) with "meta_ja"; S3 takes at most 2048`]);
  }, T);

  test("no PUT URL for a token the write rules refuse, nor on a read-only bucket; GET URLs still", async () => {
    const reader = bearer({ role: "reader" });
    const refused = await presign("/ruled/x.txt", "method=PUT", reader);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { message: string }).message).toBe("Writes need: claim 'role' must equal editor");
    expect((await presign("/ruled/x.txt", "method=GET", reader)).status).toBe(200);
    expect((await presign("/ruled/x.txt", "method=PUT", bearer({ role: "editor" }))).status).toBe(200);
    const ro = await presign("/ro/x.txt", "method=PUT");
    expect(ro.status).toBe(403);
    expect(((await ro.json()) as { message: string }).message).toBe("This bucket is read-only");
  }, T);
});

describe("presigned POST (S3's browser form upload)", () => {
  interface PostPolicy {
    url: string;
    method: string;
    expires_at: string;
    fields: Record<string, string>;
  }
  const post = (p: PostPolicy, file: Uint8Array | string, extra: Record<string, string> = {}) => {
    const form = new FormData();
    for (const [k, v] of Object.entries({ ...p.fields, ...extra })) form.append(k, v);
    form.append("file", new Blob([file]), "f.bin");
    return fetch(p.url, { method: "POST", body: form });
  };

  test("a token that may write buys a policy for exactly its key, size and Content-Type; the form upload is stored byte-exact", async () => {
    const res = await presign("/rw/forms/one.txt", "method=POST&expires=120&content_type=text/plain&max_size=100");
    expect(res.status).toBe(200);
    const p = (await res.json()) as PostPolicy;
    expect(p.method).toBe("POST");
    expect(new URL(p.url).pathname).toBe("/rw");
    const policy = JSON.parse(Buffer.from(p.fields.policy!, "base64").toString()) as { expiration: string; conditions: unknown[] };
    expect(policy.expiration).toBe(p.expires_at);
    expect(policy.conditions).toContainEqual({ key: "forms/one.txt" });
    expect(policy.conditions).toContainEqual(["content-length-range", 0, 100]);
    expect(p.fields["x-amz-security-token"]).toBeString();
    expect((await post(p, "posted")).status).toBe(204);
    expect(new TextDecoder().decode(await s3.read("rw", "forms/one.txt"))).toBe("posted");
    const back = await fetch(env.url("/rw/forms/one.txt"), { headers: bearer() });
    expect(back.headers.get("content-type")).toBe("text/plain");
    // the same policy: not another key, not a bigger file, not another Content-Type
    expect((await post(p, "x", { key: "forms/two.txt" })).status).toBe(403);
    expect((await post(p, "x".repeat(101))).status).toBe(400);
    expect((await post(p, "x", { "Content-Type": "text/html" })).status).toBe(403);
    expect(await s3.exists("rw", "forms/two.txt")).toBe(false);
  }, T);

  test("meta_<name> is a field the policy fixes: the form upload stores it; another value is refused", async () => {
    const p = (await (await presign("/rw/forms/meta.txt", "method=POST&meta_author=bob")).json()) as PostPolicy;
    expect(p.fields["x-amz-meta-author"]).toBe("bob");
    expect((await post(p, "x", { "x-amz-meta-author": "mallory" })).status).toBe(403);
    expect((await post(p, "form with metadata")).status).toBe(204);
    const back = await fetch(env.url("/rw/forms/meta.txt"), { headers: bearer() });
    expect([back.headers.get("x-amz-meta-author"), await back.text()]).toEqual(["bob", "form with metadata"]);
  }, T);

  test("a POST policy is held to the plain front's max_body_size (10 MiB here) by default, and max_size may not exceed it (it was 5 GiB)", async () => {
    const res = await presign("/rw/forms/big.bin", "method=POST&expires=120");
    expect(res.status).toBe(200);
    const p = (await res.json()) as PostPolicy;
    const policy = JSON.parse(Buffer.from(p.fields.policy!, "base64").toString()) as { conditions: unknown[] };
    expect(policy.conditions).toContainEqual(["content-length-range", 0, 10 * 1024 * 1024]);
    const over = await presign("/rw/forms/big.bin", `method=POST&max_size=${10 * 1024 * 1024 + 1}`);
    expect(over.status).toBe(400);
    const bound = `max_size must be a whole number of bytes from 0 to ${10 * 1024 * 1024} (server.security_limits.max_body_size)`;
    expect(((await over.json()) as { message: string }).message).toBe(bound);
    // past S3's 5 GiB too: the same bound, the one that holds (it was "at most 5368709120", then
    // at 5368709120 "at most 10485760")
    for (const size of [5 * 1024 ** 3, 5 * 1024 ** 3 + 1, -1]) {
      expect(((await (await presign("/rw/forms/big.bin", `method=POST&max_size=${size}`)).json()) as { message: string }).message).toBe(bound);
    }
  }, T);

  test("a PUT over max_body_size on a proxy that runs the S3 API front is told to go there as a multipart upload", async () => {
    const r = await rawRequest(env.port, `PUT /rw/forms/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nContent-Length: ${10 * 1024 * 1024 + 1}\r\n\r\n`, "abc");
    expect([r.status, r.text.includes(`"This proxy accepts uploads of at most ${10 * 1024 * 1024} bytes (server.security_limits.max_body_size); larger files go through the S3 API front as multipart uploads"`)]).toEqual([413, true]);
  }, T);

  test("with max_body_size above 5 GiB, max_size's bound is S3's 5 GiB and the message names it, not max_body_size (which it was said to be)", async () => {
    await using big = await startWriteEnv({ buckets, s3Api: true, server: `  security_limits: { max_body_size: ${6 * 1024 ** 3} }\n` }, s3);
    const over = await fetch(big.url(`/rw/forms/big.bin?presign&method=POST&max_size=${5 * 1024 ** 3 + 1}`), { method: "POST", headers: bearer() });
    expect([over.status, ((await over.json()) as { message: string }).message]).toEqual([400, `max_size must be a whole number of bytes from 0 to ${5 * 1024 ** 3} (5 GiB, S3's largest single upload)`]);
  }, T);

  test("success_action_status / success_action_redirect: fixed by the policy, honoured by the upload, nothing else allowed", async () => {
    const created = (await (await presign("/rw/forms/st.txt", "method=POST&success_action_status=201")).json()) as PostPolicy;
    expect(created.fields.success_action_status).toBe("201");
    const res = await post(created, "made");
    expect(res.status).toBe(201);
    expect(await res.text()).toContain("<Key>forms/st.txt</Key>");
    // another status than the policy's: refused
    expect((await post(created, "x", { success_action_status: "200" })).status).toBe(403);
    const target = "https://app.example.com/done?x=1";
    const redirected = (await (await presign("/rw/forms/rd.txt", `method=POST&success_action_redirect=${encodeURIComponent(target)}`)).json()) as PostPolicy;
    const form = new FormData();
    for (const [k, v] of Object.entries(redirected.fields)) form.append(k, v);
    form.append("file", new Blob(["r"]), "f.bin");
    const moved = await fetch(redirected.url, { method: "POST", body: form, redirect: "manual" });
    expect(moved.status).toBe(303);
    expect(moved.headers.get("location")).toStartWith(`${target}&bucket=rw&key=forms%2Frd.txt`);
    expect(await s3.exists("rw", "forms/rd.txt")).toBe(true);
  }, T);

  test("no policy for a token the write rules refuse, nor on a read-only bucket", async () => {
    expect((await presign("/ruled/x.txt", "method=POST", bearer({ role: "reader" }))).status).toBe(403);
    expect((await presign("/ro/x.txt", "method=POST")).status).toBe(403);
  }, T);
});

describe("the bucket's authorizer", () => {
  // (OPA was sent the presign call's own method, POST, whatever the URL was for: a policy on
  // input.method refused every GET URL, and one allowing POST would have granted PUT URLs)
  test("OPA's input.method is the presigned URL's method (what it will be used for), with its action; the URL's use is asked the same", async () => {
    await s3.put("rw", "opa.txt", "via opa");
    const from = opa.requests.length;
    const got = await presign("/opa/opa.txt", "method=GET");
    expect(got.status).toBe(200);
    expect([(await presign("/opa/opa.txt", "method=PUT")).status, (await presign("/opa/opa.txt", "method=POST")).status]).toEqual([403, 403]);
    const used = await fetch(((await got.json()) as Presigned).url);
    expect([used.status, await used.text()]).toEqual([200, "via opa"]);
    const asked = opa.requests.slice(from).map((r) => (r.body as { input: { method: string; action: string; path: string } }).input);
    expect(asked.map((i) => `${i.method} ${i.action} ${i.path}`)).toEqual(["GET s3:GetObject /opa/opa.txt", "PUT s3:PutObject /opa/opa.txt", "POST s3:PutObject /opa/opa.txt", "GET s3:GetObject /opa/opa.txt"]);
  }, T);
});

describe("presign requests that are refused", () => {
  test("no token, a bad token, or a token without sub", async () => {
    expect((await presign("/rw/a.txt", "method=GET", {})).status).toBe(401);
    expect((await presign("/rw/a.txt", "method=GET", { authorization: `Bearer ${token({}, "not-the-secret-0123456789abcdefghijkl")}` })).status).toBe(401);
    const noSub = await presign("/rw/a.txt", "method=GET", bearer({ sub: undefined }));
    expect(noSub.status).toBe(400);
    expect(((await noSub.json()) as { message: string }).message).toContain("sub");
    // a bucket without auth still needs a token: the URL is that token's user's
    expect((await presign("/under/a.txt", "method=GET", {})).status).toBe(401);
    expect((await presign("/under/a.txt", "method=GET")).status).toBe(200);
  }, T);

  test("bad parameters are 400 with a clear message", async () => {
    const msg = async (r: Response) => ((await r.json()) as { message: string }).message;
    expect(await msg(await presign("/rw/a.txt", ""))).toStartWith("method is required in the query string: ?presign&method=PUT, POST or GET");
    // parameters sent as a body, as a page's fetch or axios.post(url, {...}) sends them: the message says where they go
    const inBody = await fetch(env.url("/rw/a.txt?presign"), { method: "POST", headers: { ...bearer(), "content-type": "application/json" }, body: JSON.stringify({ method: "PUT" }) });
    expect([inBody.status, await msg(inBody)]).toEqual([400, "method is required in the query string: ?presign&method=PUT, POST or GET (a presign request's parameters are read from the query only, never from its body)"]);
    // ... and with method in the query, the body's parameters were ignored: a URL without the
    // Content-Type condition and with the longest expiry. Refused; axios's empty `{}` is fine.
    const bodyToo = await fetch(env.url("/rw/a.txt?presign&method=PUT"), { method: "POST", headers: { ...bearer(), "content-type": "application/json" }, body: JSON.stringify({ content_type: "image/png", expires: 60 }) });
    expect([bodyToo.status, await msg(bodyToo)]).toEqual([400, "A presign request's parameters are read from the query string only, never from its body: send them there (?presign&method=PUT&expires=300&content_type=...) and no body"]);
    const form = await fetch(env.url("/rw/a.txt?presign&method=PUT"), { method: "POST", headers: bearer(), body: new URLSearchParams({ expires: "60" }) });
    expect(form.status).toBe(400);
    const emptyObject = await fetch(env.url("/rw/a.txt?presign&method=PUT"), { method: "POST", headers: { ...bearer(), "content-type": "application/json" }, body: "{}" });
    expect(emptyObject.status).toBe(200);
    expect(await msg(await presign("/rw/a.txt", "method=DELETE"))).toBe("method must be PUT, POST or GET");
    expect(await msg(await presign("/rw/a.txt", "method=PUT&method=GET"))).toBe("method is given more than once");
    expect(await msg(await presign("/rw/a.txt", "method=GET&expires=60&expires=600"))).toBe("expires is given more than once");
    expect(await msg(await presign("/rw/a.txt", "method=GET&expires=0"))).toBe("expires must be a whole number of seconds from 1 to 600");
    expect(await msg(await presign("/rw/a.txt", "method=GET&expires=1.5"))).toBe("expires must be a whole number of seconds from 1 to 600");
    expect(await msg(await presign("/rw/a.txt", "method=GET&content_type=text/plain"))).toBe("content_type applies to PUT and POST only");
    expect(await msg(await presign("/rw/a.txt", "method=PUT&max_size=10"))).toBe("max_size applies to POST only");
    expect(await msg(await presign("/rw/a.txt", "method=PUT&content_type=%0Abad"))).toBe("content_type must be 1-255 printable ASCII characters");
    expect(await msg(await presign("/rw/a.txt", "method=POST&success_action_status=302"))).toBe("success_action_status must be 200, 201 or 204");
    expect(await msg(await presign("/rw/a.txt", "method=PUT&success_action_status=201"))).toBe("success_action_status and success_action_redirect apply to POST only");
    expect(await msg(await presign("/rw/a.txt", "method=POST&success_action_redirect=javascript:alert(1)"))).toBe("success_action_redirect must be an http(s) URL of at most 1024 printable ASCII characters");
    expect(await msg(await presign("/rw/a.txt", "method=POST&success_action_status=201&success_action_redirect=https://a.example/"))).toBe("give success_action_status or success_action_redirect, not both");
    expect(await msg(await presign("/rw/a.txt", "method=PUT&response_content_disposition=attachment"))).toBe("response_content_disposition applies to GET only");
    expect(await msg(await presign("/rw/a.txt", "method=GET&response_content_disposition=%0Abad"))).toStartWith("response_content_disposition must be 1-255 printable ASCII characters");
    expect(await msg(await presign("/rw/", "method=GET"))).toBe("A presigned URL names an object: the path has no object key");
    // an unknown parameter is refused, never ignored: the URL would lack the constraint asked for
    const unknown = await presign("/rw/a.txt", "method=PUT&content-type=image/png");
    expect(unknown.status).toBe(400);
    expect(await msg(unknown)).toBe('Unknown parameter "content-type": a presign request takes method, expires, content_type, max_size, success_action_status, success_action_redirect, response_content_disposition and meta_<name>');
    expect(await msg(await presign("/rw/a.txt", "method=GET&expires_in=60"))).toStartWith('Unknown parameter "expires_in"');
    const named = await presign("/badname/a.txt", "method=GET");
    expect(named.status).toBe(501);
  }, T);

  test("a Host that reads as a host name but that URLs refuse (an IPv4 address past 255, an IPv6 literal of colons alone) is 400 naming the Host, never a 500", async () => {
    for (const host of ["999.1.1.1", "1.2.3.4.5", "[:::]"]) {
      const res = await presign("/rw/a.txt", "method=GET", { ...bearer(), host });
      expect({ host, status: res.status, body: (await res.json()) as { message: string } }).toMatchObject({ host, status: 400, body: { message: "The Host header does not name a host (or set s3_api.public_url)" } });
    }
  }, T);

  test("a POST without ?presign is 405; to a path no bucket maps, 404 as for every method (it was 405)", async () => {
    const res = await fetch(env.url("/rw/a.txt?presigned"), { method: "POST", headers: bearer() });
    expect(res.status).toBe(405);
    for (const method of ["POST", "PUT", "DELETE", "GET"]) {
      const unmapped = await fetch(env.url("/nosuch/x"), { method, headers: bearer() });
      expect(`${method} ${unmapped.status}`).toBe(`${method} 404`);
    }
  }, T);
});

describe("configuration", () => {
  test("without the S3 API, or without STS: 501 NotImplemented naming what is missing", async () => {
    await using plain = await startWriteEnv({ buckets }, s3);
    const res = await fetch(plain.url("/rw/a.txt?presign&method=GET"), { method: "POST", headers: bearer() });
    expect(res.status).toBe(501);
    expect(((await res.json()) as { message: string }).message).toBe("Presigned URLs need the S3 API with STS sessions (s3_api.enabled and s3_api.sts)");
    await using noSts = await startWriteEnv({ buckets, s3Api: true, sts: false }, s3);
    expect((await fetch(noSts.url("/rw/a.txt?presign&method=GET"), { method: "POST", headers: bearer() })).status).toBe(501);
  }, T);

  test("the plain front reached at a name the S3 API reads as virtual-hosted (<bucket>.<s3_api.domain>): a virtual-hosted URL for that bucket (a path-style one named another key: a PUT stored its upload under <bucket>/<key>); another bucket's name is refused", async () => {
    await using vh = await startWriteEnv({ buckets, s3Api: true, s3Extra: "  domain: s3.local.test\n" }, s3);
    const port = new URL(vh.s3Endpoint!).port;
    const ask = (path: string, host: string) => fetch(vh.url(`${path}?presign&method=PUT`), { method: "POST", headers: { ...bearer(), host } });
    const p = (await (await ask("/rw/vh/up.txt", "rw.s3.local.test")).json()) as Presigned;
    expect(p.url).toStartWith(`http://rw.s3.local.test:${port}/vh/up.txt?`);
    // used as a browser at that name would (the name resolved here by hand)
    const u = new URL(p.url);
    const put = await fetch(`http://127.0.0.1:${port}${u.pathname}${u.search}`, { method: "PUT", body: "uploaded", headers: { host: u.host } });
    expect(put.status).toBe(200);
    expect(new TextDecoder().decode(await s3.read("rw", "vh/up.txt"))).toBe("uploaded");
    const other = await ask("/rw/vh/up.txt", "ro.s3.local.test");
    expect(other.status).toBe(400);
    expect(((await other.json()) as { message: string }).message).toContain("reads the host ro.s3.local.test as bucket ro");
  }, T);

  test("s3_api.public_url names the URL's origin (what browsers reach, e.g. behind a load balancer)", async () => {
    await using pub = await startWriteEnv({ buckets, s3Api: true, s3Extra: '  public_url: "https://s3.example.com"\n' }, s3);
    const p = (await (await fetch(pub.url("/rw/a.txt?presign&method=GET"), { method: "POST", headers: bearer() })).json()) as Presigned;
    expect(p.url).toStartWith("https://s3.example.com/rw/a.txt?");
  }, T);
});

describe("presignUrl", () => {
  test("reproduces AWS's published presigned GET example (GET /test.txt on examplebucket, 86400 s, 2013-05-24)", () => {
    // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
    const url = presignUrl({
      method: "GET",
      origin: "https://examplebucket.s3.amazonaws.com",
      bucket: "",
      key: "test.txt",
      region: "us-east-1",
      accessKeyId: "AKIAIOSFODNN7EXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      now: Date.UTC(2013, 4, 24),
      expires: 86400,
    });
    expect(url).toBe(
      "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
    );
  });

  test("with a session token, the URL carries X-Amz-Security-Token and the S3 listener's verifier accepts it (a bad one is refused)", async () => {
    await s3.put("rw", "direct.txt", "direct");
    const key = STS_KEY;
    const { issueSession } = await import("../../src/fronts/s3/sts.ts");
    const now = Date.now();
    const session = issueSession({ sessionKey: key, subject: "alice", claims: { sub: "alice" }, expiresAt: now + 60_000, now });
    if (session.kind !== "ok") throw new Error(session.message);
    const base = { method: "GET" as const, origin: env.s3Endpoint!, bucket: "rw", key: "direct.txt", region: "us-east-1", accessKeyId: session.accessKeyId, now: Math.floor(now / 1000) * 1000, expires: 60 };
    const good = presignUrl({ ...base, secretAccessKey: session.secretAccessKey, sessionToken: session.sessionToken });
    expect(await (await fetch(good)).text()).toBe("direct");
    const forged = presignUrl({ ...base, secretAccessKey: "x".repeat(40), sessionToken: session.sessionToken });
    expect((await fetch(forged)).status).toBe(403);
  }, T);
});

describe("a token in a query parameter (jwt.token_sources type query)", () => {
  test("is not an unknown presign parameter: the URL is issued", async () => {
    await using q = await startWriteEnv({ buckets, s3Api: true, jwtExtra: "token_sources: [{ type: bearer }, { type: query, name: access_token }]" }, s3);
    const res = await fetch(q.url(`/rw/a.txt?presign&method=GET&expires=60&access_token=${token()}`), { method: "POST" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Presigned).method).toBe("GET");
  });
});
