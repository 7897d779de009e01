/** What start-up and --check warn about in a valid config: the demo's published secrets, an audit file this user cannot write. */
import { expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.ts";
import { auditPathNote, authorizerTimeoutNote, demoSecretsNote, nestedPrefixNote, presignPortNote, rateLimitMemoryNote, readOnlyWriteGrantNote, s3ApiNoIdentityNote, shortBucketNameNote, tlsChainNote, tlsValidityNote, tlsWeakKeyNote, renewalNameNote, renewalRefusal, trustedProxiesNote, uppercaseVirtualHostNote, userContentNote, userContentUnsandboxedNote } from "../../src/config/notes.ts";
import { isSandboxed, userContentReaders } from "../../src/config/writes.ts";

setDefaultTimeout(30_000);

const B = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`;

test("the demo's published secrets (or a 'change-me' one) are named by key, never by value; real ones are not", () => {
  const demo = parseConfig(readFileSync(join(import.meta.dir, "../../config.yaml"), "utf8"), { env: {} });
  const note = demoSecretsNote(demo)!;
  expect(note).toStartWith("jwt.secret, s3_api.sts.session_key, s3_api.credentials[0].secret_access_key are the demo's published values");
  expect(note).not.toContain("0123456789");
  const one = parseConfig(`jwt: { enabled: true, algorithm: HS256, secret: "my-secret-change-me-please-0123456789" }\n${B}`, { env: {} });
  expect(demoSecretsNote(one)).toStartWith("jwt.secret is the demo's published value (or says");
  const real = parseConfig(`jwt: { enabled: true, algorithm: HS256, secret: "k2J8s9dPq0xVb3nT6yWz1rLm4cF7hG5a" }\n${B}`, { env: {} });
  expect(demoSecretsNote(real)).toBeUndefined();
});

test("an audit file under a folder this user cannot write is named; one it can create is not", () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-notes-"));
  try {
    const ok = parseConfig(`audit: { enabled: true, path: "${join(dir, "audit.log")}" }\n${B}`, { env: {} });
    expect(auditPathNote(ok)).toBeUndefined();
    // A folder missing at start is not created (the first write failed with ENOENT, and --check said nothing).
    const missing = parseConfig(`audit: { enabled: true, path: "${join(dir, "sub/deeper/audit.log")}" }\n${B}`, { env: {} });
    expect(auditPathNote(missing)).toBe(
      `audit.path ${join(dir, "sub/deeper/audit.log")}: the folder ${join(dir, "sub/deeper")} does not exist, and the proxy does not create it: create it (writable by this user), or point audit.path elsewhere; until then audit events would be queued, then dropped`,
    );
    // (a folder that is a file: what even root cannot create under)
    const bad = parseConfig(`audit: { enabled: true, path: "${join(dir, "file/audit.log")}" }\n${B}`, { env: {} });
    writeFileSync(join(dir, "file"), "x");
    expect(auditPathNote(bad)).toBe(`audit.path ${join(dir, "file/audit.log")}: ${join(dir, "file")} is not a folder: audit events would be queued, then dropped`);
    // a FIFO: opening it waited for a reader (and held the drain); --check said nothing
    expect(Bun.spawnSync(["mkfifo", join(dir, "audit.fifo")]).exitCode).toBe(0);
    const fifo = parseConfig(`audit: { enabled: true, path: "${join(dir, "audit.fifo")}" }\n${B}`, { env: {} });
    expect(auditPathNote(fifo)).toStartWith(`audit.path ${join(dir, "audit.fifo")} is a FIFO`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});


test("an authorizer timeout not below server.request_timeout is named (the request would fail first); a shorter one is not", () => {
  const cfg = (t: number, timeout = 1) =>
    parseConfig(`server: { request_timeout: ${timeout} }\nbuckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n    authorization: { type: opa, opa_url: "http://127.0.0.1:8181", opa_policy_path: p/allow, opa_timeout_ms: ${t} }\n`, { env: {} });
  expect(authorizerTimeoutNote(cfg(5000))).toBe("the authorizer timeout of b (opa_timeout_ms 5000) is not below server.request_timeout (1 s): a request whose check takes that long fails at request_timeout first (504, S3: 503); lower the authorizer's timeout");
  expect(authorizerTimeoutNote(cfg(500))).toBeUndefined();
  expect(authorizerTimeoutNote(parseConfig(B, { env: {} }))).toBeUndefined();
});

test("a listener certificate outside its validity period is named (expired: a renewal that did not happen; not yet valid); a valid one is not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-notes-tls-"));
  try {
    const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=t", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdout: "ignore", stderr: "ignore" });
    expect(await gen.exited).toBe(0);
    const cfg = parseConfig(`server: { https: { enabled: true, cert_path: "${join(dir, "cert.pem")}", key_path: "${join(dir, "key.pem")}" } }\n${B}`, { env: {} });
    expect(tlsValidityNote(cfg)).toBeUndefined();
    expect(tlsValidityNote(cfg, Date.now() + 3 * 86_400_000)).toContain("expired on");
    expect(tlsValidityNote(cfg, Date.now() - 86_400_000)).toContain("is not valid before");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A 1024-bit RSA certificate passed --check in silence, and curl, Python, boto3 and aws-cli refused it.
test("a listener certificate with an RSA key under 2048 bits is named; 2048 bits and ECDSA are not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-notes-weak-"));
  try {
    const make = async (name: string, newkey: string[]) => {
      const gen = Bun.spawn(["openssl", "req", "-x509", ...newkey, "-nodes", "-days", "2", "-subj", "/CN=t", "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`)], { stdout: "ignore", stderr: "ignore" });
      expect(await gen.exited).toBe(0);
      return parseConfig(`server: { https: { enabled: true, cert_path: "${join(dir, `${name}.pem`)}", key_path: "${join(dir, `${name}.key`)}" } }\n${B}`, { env: {} });
    };
    expect(tlsWeakKeyNote(await make("rsa1024", ["-newkey", "rsa:1024"]))).toContain("has a 1024-bit RSA key");
    expect(tlsWeakKeyNote(await make("rsa2048", ["-newkey", "rsa:2048"]))).toBeUndefined();
    expect(tlsWeakKeyNote(await make("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]))).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// certbot's cert.pem given for fullchain.pem passed in silence: browsers fetched the intermediate
// and worked, curl, aws-cli and the SDKs refused the listener ("unable to get local issuer certificate").
test("a listener certificate of a public-style CA (it names its issuer's URL) without its issuer's certificate in the file is named; with the chain, or of a private CA, it is not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-notes-chain-"));
  try {
    const run = async (args: string[]) => expect(await Bun.spawn(["openssl", ...args], { stdout: "ignore", stderr: "ignore" }).exited).toBe(0);
    const f = (n: string) => join(dir, n);
    await run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=Int", "-addext", "basicConstraints=critical,CA:TRUE", "-keyout", f("ca.key"), "-out", f("ca.pem")]);
    await run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost", "-keyout", f("key.pem"), "-out", f("leaf.csr")]);
    writeFileSync(f("aia.ext"), "authorityInfoAccess=caIssuers;URI:http://ca.example/int.der\n");
    writeFileSync(f("plain.ext"), "subjectAltName=DNS:localhost\n");
    for (const kind of ["aia", "plain"]) await run(["x509", "-req", "-in", f("leaf.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", f(`${kind}.ext`), "-out", f(`${kind}.pem`)]);
    writeFileSync(f("full.pem"), readFileSync(f("aia.pem"), "utf8") + readFileSync(f("ca.pem"), "utf8"));
    const cfg = (cert: string, key = "key.pem") => parseConfig(`server: { https: { enabled: true, cert_path: "${f(cert)}", key_path: "${f(key)}" } }\n${B}`, { env: {} });
    expect(tlsChainNote(cfg("aia.pem"))).toBe(`the certificate in server.https.cert_path (${f("aia.pem")}) comes without its issuer's certificate (CN=Int): the listener sends no chain, and clients that do not hold that certificate (curl, aws-cli, the SDKs) refuse it; put the chain after the certificate in the file (certbot: fullchain.pem, not cert.pem)`);
    expect(tlsChainNote(cfg("full.pem"))).toBeUndefined();
    expect(tlsChainNote(cfg("plain.pem"))).toBeUndefined();
    expect(tlsChainNote(cfg("ca.pem", "ca.key"))).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A reload swapped an expired certificate (an old pair copied back) in for a valid one with an info
// line: every client refused the listener from then on.
test("a renewed certificate outside its validity period is not served in place of a valid one; one that is valid, or no worse, is", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-notes-renew-"));
  try {
    const make = async (name: string, days: number) => {
      const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", String(days), "-subj", "/CN=t", "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`)], { stdout: "ignore", stderr: "ignore" });
      expect(await gen.exited).toBe(0);
      return readFileSync(join(dir, `${name}.pem`), "utf8");
    };
    const short = await make("short", 1); // valid for a day
    const long = await make("long", 30);
    const day = 86_400_000;
    // in three days `short` has expired while `long` is valid: `short` is refused in place of `long`
    expect(renewalRefusal(short, long, Date.now() + 3 * day)).toContain("the renewed certificate expired on");
    // a day before both begin: the renewal is not valid yet, and neither is the served one (no worse)
    expect(renewalRefusal(short, long, Date.now() - day)).toBeUndefined();
    // valid renewals pass; an expired one in place of an expired one too (nothing better to keep)
    expect(renewalRefusal(long, short, Date.now())).toBeUndefined();
    expect(renewalRefusal(short, short, Date.now() + 3 * day)).toBeUndefined();
    expect(renewalRefusal("not a certificate", long)).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a renewed certificate for none of the served one's names is refused while the served one is valid; one that drops some names is served with a note naming them", async () => {
  const dir = mkdtempSync(join(tmpdir(), "yata-notes-san-"));
  try {
    const make = async (name: string, san: string) => {
      const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", `/CN=${name}`, "-addext", `subjectAltName=${san}`, "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.pem`)], { stdout: "ignore", stderr: "ignore" });
      expect(await gen.exited).toBe(0);
      return readFileSync(join(dir, `${name}.pem`), "utf8");
    };
    const served = await make("served", "DNS:s3.example.com,DNS:*.s3.example.com,IP:10.0.0.1");
    const same = await make("same", "DNS:*.s3.example.com,DNS:s3.example.com,IP:10.0.0.1,DNS:new.example.com");
    const fewer = await make("fewer", "DNS:s3.example.com");
    const wider = await make("wider", "DNS:*.example.com,DNS:*.s3.example.com,IP:10.0.0.1");
    const other = await make("other", "DNS:shop.example.org");
    expect(renewalRefusal(same, served)).toBeUndefined();
    expect(renewalNameNote(same, served)).toBeUndefined();
    expect(renewalRefusal(fewer, served)).toBeUndefined();
    expect(renewalNameNote(fewer, served)).toBe("the renewed certificate no longer covers *.s3.example.com, 10.0.0.1 (the served one did): clients that reach the listener by those names refuse it");
    expect(renewalRefusal(wider, served)).toBeUndefined();
    expect(renewalNameNote(wider, served)).toBeUndefined();
    expect(renewalRefusal(other, served)).toBe("the renewed certificate is for shop.example.org, none of the names the served one is for (s3.example.com, *.s3.example.com, 10.0.0.1)");
    // (the served one expired: any renewal is no worse)
    expect(renewalRefusal(other, served, Date.now() + 3 * 86_400_000)).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("user content: read-write buckets, and read-only ones reading a store a read-write bucket writes (its primary or a replica), are sandboxed unless sandbox_user_content says otherwise; the note names the read-only ones", () => {
  const b = (name: string, bucket: string, extra = "", endpoint = "http://127.0.0.1:9000") => `  - name: ${name}\n    path_prefix: /${name}\n    s3: { bucket: ${bucket}, endpoint: "${endpoint}" }\n${extra}`;
  const cfg = parseConfig(
    "buckets:\n" +
      b("uploads", "shared", "    access: read-write\n") +
      b("site", "shared") + // read-only view of the uploads' store
      b("trusted", "shared", "    sandbox_user_content: false\n") +
      b("elsewhere", "shared", "", "http://127.0.0.1:9001") + // same S3 bucket name, another store
      b("plain", "own") +
      b("strict", "own2", "    sandbox_user_content: true\n") +
      // its second replica is the uploads' store
      `  - name: mirror\n    path_prefix: /mirror\n    s3:\n      replicas:\n        - { name: a, bucket: own3, endpoint: "http://127.0.0.1:9000" }\n        - { name: b, bucket: shared, endpoint: "http://127.0.0.1:9000" }\n` +
      b("optout", "shared", "    access: read-write\n    sandbox_user_content: false\n"),
    { env: {} },
  );
  const readers = userContentReaders(cfg.buckets);
  expect(Object.fromEntries(readers)).toEqual({ site: ["uploads", "optout"], mirror: ["uploads", "optout"] });
  const sandboxed = Object.fromEntries(cfg.buckets.map((x) => [x.name, isSandboxed(x, readers)]));
  expect(sandboxed).toEqual({ uploads: true, site: true, trusted: false, elsewhere: false, plain: false, strict: true, mirror: true, optout: false });
  expect(userContentNote(cfg)).toBe(
    "read-only buckets site (reads the store of uploads, optout), mirror (reads the store of uploads, optout) serve what users upload: objects are answered with Content-Security-Policy: sandbox and X-Content-Type-Options: nosniff, as on the read-write bucket; set sandbox_user_content: false on one to serve trusted active content as stored",
  );
  expect(userContentNote(parseConfig(B, { env: {} }))).toBeUndefined();
  // a read-only bucket opting out on the uploads' store is warned about (the read-write one opting out is the operator's own choice)
  expect(userContentUnsandboxedNote(cfg)).toBe(
    "sandbox_user_content: false on trusted (reads the store of uploads, optout): what users upload there is served through it as stored, so an uploaded HTML or SVG page runs its script in the proxy's origin; remove the key unless every writer is trusted",
  );
  expect(userContentUnsandboxedNote(parseConfig(B, { env: {} }))).toBeUndefined();
  // one store however its endpoint is spelt (a trailing slash, the host's case, a dot segment), and AWS S3 one store whatever the regional endpoint
  const spelt = parseConfig(
    "buckets:\n" +
      b("up", "shared", "    access: read-write\n") +
      b("slash", "shared", "", "http://127.0.0.1:9000/") +
      b("upper", "shared", "", "HTTP://127.0.0.1:9000/.") +
      b("otherport", "shared", "", "http://127.0.0.1:9001/") +
      "  - name: awsup\n    path_prefix: /awsup\n    access: read-write\n    s3: { bucket: global, region: eu-west-1 }\n" +
      b("awsview", "global", "", "https://s3.eu-west-1.amazonaws.com") +
      b("awsother", "global", "", "https://s3.amazonaws.com/"),
    { env: {} },
  );
  expect([...userContentReaders(spelt.buckets).keys()]).toEqual(["slash", "upper", "awsview", "awsother"]);
});

// trusted_proxies: [0.0.0.0/0] passed --check and start without a word, and then any client's own
// X-Forwarded-For was believed: ip_filter's allowlist let in whoever named an allowed address.
test("a trusted_proxies range that holds every address (/0) is named: any client could then pick its address for ip_filter and the per-IP limits", () => {
  const cfg = (tp: string) => parseConfig(`server: { trusted_proxies: ${tp} }\n${B}`, { env: {} });
  const note = trustedProxiesNote(cfg(`["10.0.0.0/8", "0.0.0.0/0"]`))!;
  expect(note).toBe(
    "server.trusted_proxies[1] (0.0.0.0/0) trusts every client address: any client can then name its own address in X-Forwarded-For, and ip_filter, the per-IP limits, the access log's and audit trail's client_ip and OPA's client_ip take it; list only your load balancers' addresses",
  );
  expect(trustedProxiesNote(cfg(`["::/0"]`))).toStartWith("server.trusted_proxies[0] (::/0) trusts every client address");
  // every IPv4 address written as an IPv6 range (the IPv4-mapped /96, or a wider one holding it) trusts every IPv4 client alike
  for (const all of ["::ffff:0:0/96", "::ffff:0.0.0.0/96", "::/80"]) expect(trustedProxiesNote(cfg(`["${all}"]`))).toStartWith(`server.trusted_proxies[0] (${all}) trusts every client address`);
  expect([trustedProxiesNote(cfg(`["10.0.0.0/8", "192.168.0.1"]`)), trustedProxiesNote(cfg(`["::ffff:10.0.0.0/104", "2001:db8::/32", "0.0.0.0/1"]`)), trustedProxiesNote(cfg(`[]`))]).toEqual([undefined, undefined, undefined]);
});

// s3_api.credentials granting write/delete on a read-only bucket passed --check (which listed the
// grant as given) and start without a word; every PutObject or DeleteObject then got a bare AccessDenied.
test("a write or delete grant on a read-only bucket is named; grants on read-write buckets and read grants are not", () => {
  const cfg = (access: string, perms: string) =>
    parseConfig(
      `s3_api:\n  enabled: true\n  credentials:\n    - { access_key_id: AKIATESTNOTE1, secret_access_key: test-secret-0123456789, identity: app1, buckets: { b: ${perms} } }\n` +
        `buckets:\n  - name: b\n    path_prefix: /b\n${access}    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`,
      { env: {} },
    );
  expect(readOnlyWriteGrantNote(cfg("", "[read, write, delete]"))).toBe(
    "s3_api.credentials grant writes on read-only buckets: app1 on b (write+delete); these requests are refused (AccessDenied) since the bucket is read-only: set the bucket's access: read-write, or drop the grant",
  );
  expect(readOnlyWriteGrantNote(cfg("    access: read-only\n", "[delete]"))).toContain("app1 on b (delete)");
  expect(readOnlyWriteGrantNote(cfg("    access: read-write\n    auth: { anonymous_writes: true }\n", "[read, write, delete]"))).toBeUndefined();
  expect(readOnlyWriteGrantNote(cfg("", "[read, list]"))).toBeUndefined();
});

// A bucket whose name has uppercase letters is reached path-style only once s3_api.domain is set
// (the host is read in lowercase, as S3 reads it): said at --check and start-up.
test("buckets with uppercase letters in their name are named when s3_api.domain is set", () => {
  const cfg = (domain: string, name: string) =>
    parseConfig(`s3_api:\n  enabled: true\n${domain}buckets:\n  - name: ${name}\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`, { env: {} });
  expect(uppercaseVirtualHostNote(cfg("  domain: s3.example.com\n", "MyBucket"))).toBe(
    "bucket names with uppercase letters (MyBucket): the S3 API reads a host name in lowercase (as S3 does), so these buckets are reached path-style only, not as <bucket>.s3.example.com",
  );
  expect([uppercaseVirtualHostNote(cfg("", "MyBucket")), uppercaseVirtualHostNote(cfg("  domain: s3.example.com\n", "mybucket"))]).toEqual([undefined, undefined]);
});

// S3 bucket names are 3 to 63 characters (a legacy us-east-1 name up to 255, never under 3): a 2-character
// upstream bucket or S3-front bucket name was accepted without a word, and AWS S3 has no such bucket.
test("bucket names under 3 characters are named: an upstream bucket, a replica's, and a bucket's name when s3_api is on", () => {
  const cfg = (s3api: string, name: string, s3: string) =>
    parseConfig(`${s3api}buckets:\n  - name: ${name}\n    path_prefix: /b\n    s3: ${s3}\n  - { name: other, path_prefix: /o, s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" } }\n`, { env: {} });
  const up = `{ bucket: up, endpoint: "http://127.0.0.1:9000" }`;
  const replicas = `{ replicas: [{ name: r1, bucket: rep, endpoint: "http://127.0.0.1:9000" }, { name: r2, bucket: r2, endpoint: "http://127.0.0.1:9001", priority: 2 }] }`;
  expect(shortBucketNameNote(cfg("s3_api: { enabled: true }\n", "ab", up))).toBe(
    "bucket names under 3 characters (buckets[0].name (the S3 API's bucket name), buckets[0].s3.bucket): S3 bucket names are 3 to 63 characters, so AWS S3 and most S3 stores have no such bucket, and S3 clients that check names (the AWS SDK for Java, minio-go) refuse it before sending: rename them to 3 or more characters",
  );
  expect(shortBucketNameNote(cfg("", "ab", replicas))).toContain("(buckets[0].s3.replicas[1].bucket)");
  expect(shortBucketNameNote(cfg("", "ab", `{ bucket: bkt, endpoint: "http://127.0.0.1:9000" }`))).toBeUndefined();
  expect(shortBucketNameNote(cfg("s3_api: { enabled: true }\n", "abc", `{ bucket: bkt, endpoint: "http://127.0.0.1:9000" }`))).toBeUndefined();
});

// s3_api.port: 0 with STS (presigned URLs) and no public_url: every presign request is answered
// 501 (the URL would name a port nobody knows in advance), and --check said nothing.
test("s3_api.port: 0 with presigned URLs possible and no public_url is named; a fixed port or a public_url is not", () => {
  const cfg = (extra: string) =>
    parseConfig(`jwt: { enabled: true, algorithm: HS256, secret: "k2J8s9dPq0xVb3nT6yWz1rLm4cF7hG5a" }\ns3_api:\n  enabled: true\n${extra}  sts: { enabled: true, session_key: "k2J8s9dPq0xVb3nT6yWz1rLm4cF7hG5aQ" }\n${B}`, { env: {} });
  expect(presignPortNote(cfg("  port: 0\n"))).toStartWith("s3_api.port is 0 (a port chosen at start) and s3_api.public_url is not set:");
  expect(presignPortNote(cfg("  port: 0\n  public_url: https://s3.example.com\n"))).toBeUndefined();
  expect(presignPortNote(cfg("  port: 9000\n"))).toBeUndefined();
  expect(presignPortNote(parseConfig(`s3_api: { enabled: true, port: 0 }\n${B}`, { env: {} }))).toBeUndefined();
});

// s3_api on with neither credentials nor STS: every signed request is InvalidAccessKeyId, and
// --check said "OK ... 0 credentials" with no word.
test("s3_api with no credentials and sts off is named; a credential or sts is enough", () => {
  const jwt = `jwt: { enabled: true, algorithm: HS256, secret: "k2J8s9dPq0xVb3nT6yWz1rLm4cF7hG5a" }\n`;
  expect(s3ApiNoIdentityNote(parseConfig(`s3_api: { enabled: true }\n${B}`, { env: {} }))).toStartWith("s3_api is enabled with no s3_api.credentials and sts off:");
  expect(s3ApiNoIdentityNote(parseConfig(`s3_api:\n  enabled: true\n  credentials:\n    - { access_key_id: AKIAEXAMPLE1, secret_access_key: "s3cr3t-s3cr3t-s3cr3t-s3cr3t", identity: app, buckets: { b: [read] } }\n${B}`, { env: {} }))).toBeUndefined();
  expect(s3ApiNoIdentityNote(parseConfig(`${jwt}s3_api: { enabled: true, sts: { enabled: true, session_key: "k2J8s9dPq0xVb3nT6yWz1rLm4cF7hG5aQ" } }\n${B}`, { env: {} }))).toBeUndefined();
  expect(s3ApiNoIdentityNote(parseConfig(B, { env: {} }))).toBeUndefined();
});

test("rate_limit.instances beside the memory backend is named: read only with backend redis, it left each replica the whole rate (nothing said so)", () => {
  const rl = (body: string) => rateLimitMemoryNote(parseConfig(`server:\n  rate_limit: { global: { requests_per_second: 10 }${body} }\n${B}`, { env: {} }));
  expect(rl(", instances: 3")).toBe(
    "server.rate_limit.instances (3) is only used with backend: redis: with backend memory each process enforces the whole of every rate (split over its own workers only), so N replicas let N times it through; set backend: redis to hold the limits across replicas, or remove it",
  );
  expect(rl(", instances: 3, redis_timeout_ms: 20")).toStartWith("server.rate_limit.instances (3) and redis_timeout_ms (20) are only used with backend: redis");
  expect(rl("")).toBeUndefined();
  expect(rl(", instances: 3, enabled: false")).toBeUndefined();
  // enabled: false turns off the global and per-IP limits only: a bucket's own limit is still enforced per process
  const limited = `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000", rate_limit: { requests_per_second: 10 } }\n`;
  expect(rateLimitMemoryNote(parseConfig(`server:\n  rate_limit: { enabled: false, instances: 3 }\n${limited}`, { env: {} }))).toStartWith("server.rate_limit.instances (3) is only used with backend: redis");
  expect(rl(`, instances: 3, backend: redis, redis_url: "redis://127.0.0.1:6379"`)).toBeUndefined();
});

test("a note naming many buckets lists the first 10 and how many more, not all on one line", () => {
  const buckets = Array.from({ length: 40 }, (_, i) => `  - name: B${i}\n    path_prefix: /p${i}\n    s3: { bucket: bkt, endpoint: "http://127.0.0.1:9000" }\n`).join("");
  const note = uppercaseVirtualHostNote(parseConfig(`s3_api: { enabled: true, domain: s3.example.com }\nbuckets:\n${buckets}`, { env: {} }))!;
  expect(note).toStartWith("bucket names with uppercase letters (B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, … and 30 more): ");
  expect(note).not.toContain("B10");
});

// A bucket's path_prefix inside another's (/assets/reports inside /assets): the longest prefix wins,
// so the outer bucket's keys under reports/ cannot be reached through the plain front, and --check
// said nothing. A note (it can be meant), naming both buckets and the folder; a `/` catch-all is not named.
test("a path_prefix nested in another bucket's is named with both buckets and the outer's unreachable folder", () => {
  const cfg = (...prefixes: string[]) =>
    parseConfig(`buckets:\n${prefixes.map((p, i) => `  - name: b${i}\n    path_prefix: ${p}\n    s3: { bucket: bkt${i}, endpoint: "http://127.0.0.1:9000" }\n`).join("")}`, { env: {} });
  expect(nestedPrefixNote(cfg("/assets", "/assets/reports"))).toBe(
    "path_prefix nested in another bucket's: /assets/reports (bucket b1) inside /assets (bucket b0): b0's keys under reports/ cannot be reached through the plain front (the longest prefix wins); give the buckets separate prefixes unless that is meant",
  );
  // the nearest holder is named: /a/b/c inside /a/b, /a/b inside /a; a skipped level is part of the folder
  expect(nestedPrefixNote(cfg("/a", "/a/b/", "/a/b/c", "/x", "/x/y/z"))).toContain(": /a/b (bucket b1) inside /a (bucket b0): b0's keys under b/, /a/b/c (bucket b2) inside /a/b (bucket b1): b1's keys under c/, /x/y/z (bucket b4) inside /x (bucket b3): b3's keys under y/z/ cannot");
  expect([nestedPrefixNote(cfg("/assets", "/assetsX", "/reports")), nestedPrefixNote(cfg("/", "/assets"))]).toEqual([undefined, undefined]);
});
