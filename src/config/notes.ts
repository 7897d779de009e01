/**
 * What start-up and --check say about a valid config that is probably not what its operator
 * wants: secrets copied from the demo's config.yaml (published in this repository: anyone can mint
 * tokens or sign as that identity), and an audit file the process cannot write.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { dirname } from "node:path";
import { cidrContains, parseCidr, parseIp } from "../http/cidr.ts";
import type { Config } from "./load.ts";
import { resolveConfigPath, unseenCharacter } from "./validate.ts";
import { userContentReaders } from "./writes.ts";
import { listed } from "../util/text.ts";

/** The demo's published secrets (config.yaml's defaults), and any value still saying "change-me". */
const DEMO_SECRETS = new Set(["demo-jwt-secret-change-me-0123456789abcdef", "demo-sts-session-key-change-me-0123456789", "demo-client-secret-0123456789"]);
const isDemo = (v: string | undefined) => v !== undefined && (DEMO_SECRETS.has(v) || /change-?me/i.test(v));

/**
 * The jwt key files (rsa_public_key_path, ecdsa_public_key_path, public_key_path, keys[].path)
 * that hold a private key. It works (the public key is derived from it), which is why it was
 * taken without a word; but the proxy needs only the public half, and whoever reads the file (a
 * backup, a config repository, a support bundle) can sign tokens this proxy and every service
 * trusting that issuer accepts.
 */
export function privateKeyPemNote(config: Config): string | undefined {
  const j = config.jwt;
  if (!j?.enabled) return undefined;
  const files: Array<[string, string | undefined]> = [
    ["jwt.rsa_public_key_path", j.rsa_public_key_path],
    ["jwt.ecdsa_public_key_path", j.ecdsa_public_key_path],
    ["jwt.public_key_path", j.public_key_path],
    ...j.keys.map((k, i): [string, string | undefined] => [`jwt.keys[${i}].path`, k.path]),
  ];
  const found = files.filter(([, file]) => {
    if (file === undefined) return false;
    try {
      return /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/.test(readFileSync(resolveConfigPath(file, config.baseDir), "latin1"));
    } catch {
      return false; // (an unreadable file is a config error of its own)
    }
  });
  if (found.length === 0) return undefined;
  const named = found.map(([key, file]) => `${key} (${file})`).join(", ");
  return `${named} ${found.length === 1 ? "holds a private key" : "hold private keys"}: tokens are verified with the public key derived from it, but the proxy needs only that, and whoever reads the file can sign tokens it accepts; give the public key instead (openssl pkey -in KEY -pubout -out KEY.pub)`;
}

/** The keys whose value is a published demo secret (never the values), or undefined. */
export function demoSecretsNote(config: Config): string | undefined {
  const found: string[] = [];
  if (config.jwt?.enabled && isDemo(config.jwt.secret)) found.push("jwt.secret");
  const api = config.s3_api;
  if (api?.enabled) {
    if (api.sts?.enabled && isDemo(api.sts.session_key)) found.push("s3_api.sts.session_key");
    for (const [i, c] of (api.credentials ?? []).entries()) if (isDemo(c.secret_access_key)) found.push(`s3_api.credentials[${i}].secret_access_key`);
  }
  if (found.length === 0) return undefined;
  const one = found.length === 1;
  return `${found.join(", ")} ${one ? "is the demo's published value (or says" : "are the demo's published values (or say"} "change-me"): anyone can mint tokens or sign requests with ${one ? "it" : "them"}; set your own secrets before serving anything real`;
}

/** Why the audit file cannot be written by this user (its folder missing, not a folder or not writable), or undefined. */
export function auditPathNote(config: Config): string | undefined {
  const a = config.audit;
  if (!a?.enabled || a.path === undefined) return undefined;
  const file = resolveConfigPath(a.path, config.baseDir);
  try {
    if (existsSync(file)) {
      // (opening a FIFO waits for a reader: without one, audit events are queued, then dropped)
      if (statSync(file).isFIFO()) return `audit.path ${file} is a FIFO: without a reader the audit trail cannot write it, and audit events would be queued, then dropped; use a regular file`;
      accessSync(file, constants.W_OK);
    } else {
      let dir = dirname(file);
      while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
      if (!statSync(dir).isDirectory()) return `audit.path ${file}: ${dir} is not a folder: audit events would be queued, then dropped`;
      // The audit trail opens its file in the folder, never creates the folder (README: "a failure until it appears").
      if (dir !== dirname(file)) return `audit.path ${file}: the folder ${dirname(file)} does not exist, and the proxy does not create it: create it (writable by this user), or point audit.path elsewhere; until then audit events would be queued, then dropped`;
      accessSync(dir, constants.W_OK);
    }
    return undefined;
  } catch (err) {
    const code = (err as { code?: string }).code;
    return `audit.path ${file}: started as this user, the proxy could not write it (${code === "EACCES" ? "permission denied" : (code ?? "unwritable")}): audit events would be queued, then dropped`;
  }
}

/**
 * Buckets whose authorizer may take longer than the whole request may (server.request_timeout):
 * such a request fails at request_timeout (504 / 503 SlowDown) while its check is still pending,
 * so the authorizer's longer budget is never used. Undefined when none.
 */
export function authorizerTimeoutNote(config: Config): string | undefined {
  const limitMs = config.server.request_timeout * 1000;
  const slow: string[] = [];
  for (const b of config.buckets) {
    const a = b.authorization;
    if (a === undefined) continue;
    const ms = a.type === "opa" ? a.opa_timeout_ms : a.openfga_timeout_ms;
    if (ms >= limitMs) slow.push(`${b.name} (${a.type}_timeout_ms ${ms})`);
  }
  if (slow.length === 0) return undefined;
  return `the authorizer timeout of ${slow.join(", ")} is not below server.request_timeout (${config.server.request_timeout} s): a request whose check takes that long fails at request_timeout first (504, S3: 503); lower the authorizer's timeout`;
}

/** The listener certificate of an enabled server.https, read once per config (the notes below all look at it), or undefined. */
const certs = new WeakMap<Config, X509Certificate | null>();
function listenerCert(config: Config): X509Certificate | undefined {
  const https = config.server.https;
  if (!https?.enabled) return undefined;
  let cert = certs.get(config);
  if (cert === undefined) {
    try {
      cert = new X509Certificate(readFileSync(resolveConfigPath(https.cert_path, config.baseDir)));
    } catch {
      cert = null;
    }
    certs.set(config, cert);
  }
  return cert ?? undefined;
}

/**
 * The listener's certificate (server.https) outside its validity period, often a renewal that
 * did not happen: every client refuses it. Undefined when it is valid now, or unreadable (that is
 * an error of its own).
 */
export function tlsValidityNote(config: Config, now = Date.now()): string | undefined {
  const https = config.server.https;
  const cert = listenerCert(config);
  if (https === undefined || cert === undefined) return undefined;
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (now > to) return `the certificate in server.https.cert_path (${https.cert_path}) expired on ${new Date(to).toISOString()}: clients refuse it; renew it (replaced in place, the new pair is served from the next reload)`;
  if (now < from) return `the certificate in server.https.cert_path (${https.cert_path}) is not valid before ${new Date(from).toISOString()}: clients refuse it until then`;
  return undefined;
}

/**
 * A listener certificate with an RSA key of 1024 to 2047 bits (under 1024 is refused outright,
 * validate.ts): Node and Bun accept it, but OpenSSL's default security level on current
 * distributions (curl, Python, boto3, aws-cli) refuses it, "EE certificate key too weak".
 */
export function tlsWeakKeyNote(config: Config): string | undefined {
  const https = config.server.https;
  const key = listenerCert(config)?.publicKey;
  if (https === undefined || key === undefined) return undefined;
  const bits = key.asymmetricKeyType === "rsa" ? key.asymmetricKeyDetails?.modulusLength : undefined;
  if (bits === undefined || bits >= 2048) return undefined;
  return `the certificate in server.https.cert_path (${https.cert_path}) has a ${bits}-bit RSA key: most clients (OpenSSL's default security level: curl, Python, boto3, aws-cli) refuse it as too weak; use RSA 2048 or more, or ECDSA`;
}

/**
 * A listener certificate issued by a CA whose certificate the file does not hold (certbot's
 * cert.pem for fullchain.pem): the listener sends the file's certificates only, so clients that do
 * not already hold the intermediate (curl, aws-cli, the SDKs) refuse it ("unable to get local
 * issuer certificate") while a browser may fetch it and work. Undefined when self-issued, when
 * the file holds its issuer, or when the certificate does not say where its issuer's is published.
 */
export function tlsChainNote(config: Config): string | undefined {
  const https = config.server.https;
  const cert = listenerCert(config);
  // Only a certificate that names where its issuer's certificate is published (AIA "CA Issuers",
  // as public CAs' do): one of a private CA (mkcert, an internal root) is often issued by a root
  // every client holds, and would be named at every start.
  if (https === undefined || cert === undefined || cert.issuer === cert.subject || !/CA Issuers/i.test(cert.infoAccess ?? "")) return undefined;
  let chain: X509Certificate[];
  try {
    const text = readFileSync(resolveConfigPath(https.cert_path, config.baseDir), "latin1");
    chain = (text.match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g) ?? []).slice(1).map((pem) => new X509Certificate(pem));
  } catch {
    return undefined;
  }
  if (chain.some((c) => cert.checkIssued(c))) return undefined;
  const issuer = cert.issuer.replace(/\n/g, ", ");
  return `the certificate in server.https.cert_path (${https.cert_path}) comes without its issuer's certificate (${issuer}): the listener sends no chain, and clients that do not hold that certificate (curl, aws-cli, the SDKs) refuse it; put the chain after the certificate in the file (certbot: fullchain.pem, not cert.pem)`;
}

/**
 * Why a renewed listener certificate (`next`, PEM) is not served in place of the one served: it is
 * outside its validity period (expired: an old pair copied back; not yet valid) while the served
 * one is within it, so every client would refuse the renewal. A reload swapped it in with an info
 * line. Undefined when it is valid, or when the served one is no better (or either does not parse).
 */
export function renewalRefusal(next: string, served: string, now = Date.now()): string | undefined {
  const n = certificateOf(next);
  const s = certificateOf(served);
  if (n === undefined || s === undefined) return undefined;
  const period = (c: X509Certificate): [number, number] => [Date.parse(c.validFrom), Date.parse(c.validTo)];
  const within = (p: [number, number]) => now >= p[0] && now <= p[1];
  if (!within(period(s))) return undefined;
  const np = period(n);
  if (!within(np)) return now > np[1] ? `the renewed certificate expired on ${new Date(np[1]).toISOString()}` : `the renewed certificate is not valid before ${new Date(np[0]).toISOString()}`;
  // Another site's certificate (a wrong file, a cert-manager secret of another Certificate): it
  // names none of the names the served one does, so every client that reached the listener by
  // one of them would refuse it. (Some names dropped: renewalNameNote, served with a warning.)
  const names = certificateNames(s);
  if (names.length > 0 && !names.some((name) => coversName(n, name))) return `the renewed certificate is for ${listed(certificateNames(n)) || "no name"}, none of the names the served one is for (${listed(names)})`;
  return undefined;
}

/**
 * A renewed certificate that no longer covers some of the names the served one does (a SAN
 * dropped from a renewal's request): served, since dropping a name may be meant, with this warning
 * naming what clients reaching the listener by those names will refuse.
 */
export function renewalNameNote(next: string, served: string): string | undefined {
  const n = certificateOf(next);
  const s = certificateOf(served);
  if (n === undefined || s === undefined) return undefined;
  const dropped = certificateNames(s).filter((name) => !coversName(n, name));
  return dropped.length === 0 ? undefined : `the renewed certificate no longer covers ${listed(dropped)} (the served one did): clients that reach the listener by ${dropped.length === 1 ? "that name" : "those names"} refuse it`;
}

function certificateOf(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** The names a certificate is for: its subjectAltName's DNS names and IP addresses, else its subject's CN (as clients read it). */
function certificateNames(c: X509Certificate): string[] {
  const alt = c.subjectAltName;
  if (alt) {
    const names: string[] = [];
    for (const entry of alt.split(/,\s*/)) {
      const m = /^(DNS|IP Address):(.+)$/.exec(entry);
      if (m !== null) names.push(m[2]);
    }
    return names;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(c.subject)?.[1];
  return cn === undefined ? [] : [cn];
}

/** Whether `c` is valid for `name` (a wildcard name: for a name it matches). */
function coversName(c: X509Certificate, name: string): boolean {
  if (parseIp(name) !== null) return c.checkIP(name) !== undefined;
  return c.checkHost(name.startsWith("*.") ? `yatagarasu-probe${name.slice(1)}` : name) !== undefined;
}

/**
 * Read-only buckets answered sandboxed because they read a store a read-write bucket writes (its
 * users' uploads are served through them too): said once, since a site of trusted active content
 * there stops running its script until the bucket sets sandbox_user_content: false.
 */
export function userContentNote(config: Config): string | undefined {
  const readers = userContentReaders(config.buckets);
  if (readers.size === 0) return undefined;
  const list = readersList(readers);
  return `read-only bucket${readers.size === 1 ? "" : "s"} ${list} serve${readers.size === 1 ? "s" : ""} what users upload: objects are answered with Content-Security-Policy: sandbox and X-Content-Type-Options: nosniff, as on the read-write bucket; set sandbox_user_content: false on ${readers.size === 1 ? "it" : "one"} to serve trusted active content as stored`;
}

/** Read-only buckets that set sandbox_user_content: false on a store a read-write bucket writes: its users' pages run script in the proxy's origin through them. */
export function userContentUnsandboxedNote(config: Config): string | undefined {
  const readers = userContentReaders(config.buckets, "opted-out");
  if (readers.size === 0) return undefined;
  const list = readersList(readers);
  return `sandbox_user_content: false on ${list}: what users upload there is served through ${readers.size === 1 ? "it" : "them"} as stored, so an uploaded HTML or SVG page runs its script in the proxy's origin; remove the key unless every writer is trusted`;
}

const readersList = (readers: ReadonlyMap<string, string[]>) => listed([...readers].map(([name, by]) => `${name} (reads the store of ${listed(by)})`));

const FIRST_V4 = parseIp("0.0.0.0")!;
const LAST_V4 = parseIp("255.255.255.255")!;

/**
 * A server.trusted_proxies range that holds every address (a /0), or every IPv4 address (an IPv6
 * range holding ::ffff:0:0/96, which IPv4 clients are matched in: `::ffff:0:0/96`, `::/80`; told
 * by its two ends, since only a /0 was, and those trusted every IPv4 client without a word): every
 * client is then a trusted proxy, so any client's own X-Forwarded-For names its address
 * (ip_filter, per-IP limits, logs, OPA input). Valid (a proxy reachable only through its load
 * balancers), but said. Undefined when none.
 */
export function trustedProxiesNote(config: Config): string | undefined {
  const i = config.server.trusted_proxies.findIndex((c) => {
    const range = parseCidr(c.trim());
    return range !== null && cidrContains(range, FIRST_V4) && cidrContains(range, LAST_V4);
  });
  if (i < 0) return undefined;
  return `server.trusted_proxies[${i}] (${config.server.trusted_proxies[i]}) trusts every client address: any client can then name its own address in X-Forwarded-For, and ip_filter, the per-IP limits, the access log's and audit trail's client_ip and OPA's client_ip take it; list only your load balancers' addresses`;
}

/**
 * S3 credentials granted `write` or `delete` on a read-only bucket (`access` not read-write): the
 * grant is listed by --check as given, yet every write or delete through it is refused with a bare
 * AccessDenied (a read-only bucket refuses writes on both fronts), so the operator learns nothing
 * from the config check. Undefined when none.
 */
export function readOnlyWriteGrantNote(config: Config): string | undefined {
  const api = config.s3_api;
  if (!api?.enabled) return undefined;
  const readOnly = new Set(config.buckets.filter((b) => b.access !== "read-write").map((b) => b.name));
  const found: string[] = [];
  for (const c of api.credentials ?? []) {
    for (const [bucket, perms] of Object.entries(c.buckets)) {
      const w = [...new Set(perms)].filter((p) => p === "write" || p === "delete");
      if (w.length > 0 && readOnly.has(bucket)) found.push(`${c.identity} on ${bucket} (${w.join("+")})`);
    }
  }
  if (found.length === 0) return undefined;
  return `s3_api.credentials grant writes on read-only buckets: ${listed(found)}; these requests are refused (AccessDenied) since the bucket is read-only: set the bucket's access: read-write, or drop the grant`;
}

/**
 * Buckets whose name has uppercase letters while s3_api.domain is set: a host name is read in
 * lowercase (as S3 reads it), so they are reached path-style only, as legacy S3 names are; said
 * so that a virtual-hosted client's NoSuchBucket is no surprise. Undefined when none.
 */
export function uppercaseVirtualHostNote(config: Config): string | undefined {
  if (!config.s3_api?.enabled || config.s3_api.domain === undefined) return undefined;
  const found = config.buckets.filter((b) => /[A-Z]/.test(b.name)).map((b) => b.name);
  if (found.length === 0) return undefined;
  return `bucket names with uppercase letters (${listed(found)}): the S3 API reads a host name in lowercase (as S3 does), so these buckets are reached path-style only, not as <bucket>.${config.s3_api.domain}`;
}

/**
 * s3_api.port: 0 (a port chosen at start) with presigned URLs possible (s3_api.sts) and no
 * s3_api.public_url: a presigned URL names the S3 listener's port, which nobody knows before the
 * start, so every presign request (POST ?presign on the plain front) is answered 501. It loaded
 * and --check passed without a word. Undefined otherwise.
 */
export function presignPortNote(config: Config): string | undefined {
  const api = config.s3_api;
  if (!api?.enabled || !api.sts?.enabled || api.port !== 0 || api.public_url !== undefined) return undefined;
  return "s3_api.port is 0 (a port chosen at start) and s3_api.public_url is not set: a presigned URL (POST /<prefix>/<key>?presign) names the S3 API's port, which is not known in advance, so every presign request is answered 501; set s3_api.public_url (where clients reach the S3 API) or a fixed s3_api.port";
}

/**
 * s3_api on with no credentials and STS off: no identity exists, so every signed S3 request (what
 * aws-cli, boto3, rclone and the SDKs send) is answered 403 InvalidAccessKeyId, and only unsigned
 * requests for buckets without auth are served. --check said "0 credentials" and nothing more.
 */
export function s3ApiNoIdentityNote(config: Config): string | undefined {
  const api = config.s3_api;
  if (!api?.enabled || api.credentials.length > 0 || api.sts?.enabled) return undefined;
  return "s3_api is enabled with no s3_api.credentials and sts off: no access key exists, so every signed S3 request (aws-cli, boto3, rclone, the SDKs) is answered 403 InvalidAccessKeyId and only unsigned requests to buckets without auth are served; add an s3_api.credentials entry or enable s3_api.sts";
}

/**
 * Bucket names under 3 characters: S3's rule is 3 to 63 (255 for a legacy us-east-1 name, still at
 * least 3), so AWS S3 and most S3 stores have no such bucket, and SDKs that check names before
 * sending (the AWS SDK for Java, minio-go) refuse one. An upstream bucket (some stores, s3rver, accept
 * them) and, with s3_api on, a bucket's name as S3 clients address it. Named by path. Undefined when none.
 */
export function shortBucketNameNote(config: Config): string | undefined {
  const found: string[] = [];
  const short = (name: string) => [...name].length < 3;
  config.buckets.forEach((b, i) => {
    if (config.s3_api?.enabled && short(b.name)) found.push(`buckets[${i}].name (the S3 API's bucket name)`);
    if (b.s3.replicas) b.s3.replicas.forEach((r, j) => short(r.bucket) && found.push(`buckets[${i}].s3.replicas[${j}].bucket`));
    else if (short(b.s3.bucket)) found.push(`buckets[${i}].s3.bucket`);
  });
  if (found.length === 0) return undefined;
  return `bucket names under 3 characters (${listed(found)}): S3 bucket names are 3 to 63 characters, so AWS S3 and most S3 stores have no such bucket, and S3 clients that check names (the AWS SDK for Java, minio-go) refuse it before sending: rename them to 3 or more characters`;
}

/**
 * Claim-rule values holding a character no one can see (a zero width space, a bidi control, a
 * no-break space; see unseenCharacter): valid (an issuer's values may hold a zero width joiner or
 * non-joiner, as Persian names do), but one pasted by mistake makes the rule match no token, and
 * every token is refused with a message that looks right ("claim 'role' must equal admin").
 * Claim names are refused for it (validate.ts checkRules); values are warned about. Undefined when none.
 */
export function unseenClaimValueNote(config: Config): string | undefined {
  const found: string[] = [];
  const scan = (rules: ReadonlyArray<{ value?: unknown }>, at: string) =>
    rules.forEach((r, i) => {
      const values = Array.isArray(r.value) ? r.value.map((v, j) => [v, `${at}[${i}].value[${j}]`] as const) : [[r.value, `${at}[${i}].value`] as const];
      for (const [v, path] of values) {
        const unseen = typeof v === "string" ? unseenCharacter(v) : undefined;
        if (unseen) found.push(`${path} (${unseen})`);
      }
    });
  if (config.jwt?.enabled) {
    scan(config.jwt.claims, "jwt.claims");
    scan(config.jwt.admin_claims, "jwt.admin_claims");
  }
  config.buckets.forEach((b, i) => {
    scan(b.auth.claims, `buckets[${i}].auth.claims`);
    scan(b.auth.write_claims, `buckets[${i}].auth.write_claims`);
  });
  if (found.length === 0) return undefined;
  return `claim-rule values holding a character that cannot be seen: ${listed(found)}; a token matches only if its claim holds the same character: remove it unless the issuer's values really do`;
}

/**
 * `server.rate_limit.instances` (or `redis_timeout_ms`) beside the memory backend: read only with
 * `backend: redis` (each process's local share while Redis is away), so `instances: 3` written to
 * hold a total across three replicas lets each enforce the whole rate, three times it in all, and
 * nothing said so (redis_url and redis_key_prefix there are refused; these load, as they always
 * did). Only values other than the defaults can be told from the parsed config. Undefined when none.
 */
export function rateLimitMemoryNote(config: Config): string | undefined {
  const rl = config.server.rate_limit;
  // (enabled: false turns off the global and per-IP limits only: buckets' own limits are enforced still, as buildLimiter does)
  if (rl === undefined || rl.backend === "redis" || !(rl.enabled || config.buckets.some((b) => b.s3.rate_limit !== undefined))) return undefined;
  const unused = [rl.instances !== 1 ? `instances (${rl.instances})` : "", rl.redis_timeout_ms !== 50 ? `redis_timeout_ms (${rl.redis_timeout_ms})` : ""].filter(Boolean);
  if (unused.length === 0) return undefined;
  return `server.rate_limit.${unused.join(" and ")} ${unused.length === 1 ? "is" : "are"} only used with backend: redis: with backend memory each process enforces the whole of every rate (split over its own workers only), so N replicas let N times it through; set backend: redis to hold the limits across replicas, or remove ${unused.length === 1 ? "it" : "them"}`;
}

/**
 * A bucket whose path_prefix lies inside another bucket's (`/assets/reports` inside `/assets`):
 * the longest prefix wins (documented), so the outer bucket's keys under that folder
 * (`reports/...`) cannot be reached through the plain front, and --check said nothing. It can be
 * meant (a folder served from another store), so a note, not a refusal; each inner prefix is paired
 * with the nearest one holding it. A `/` bucket (the catch-all) is left out: it is meant to hold
 * what no other prefix does. Undefined when none.
 */
export function nestedPrefixNote(config: Config): string | undefined {
  const byPrefix = new Map(config.buckets.map((b) => [b.path_prefix, b.name] as const));
  const found: string[] = [];
  for (const b of config.buckets) {
    for (let at = b.path_prefix.lastIndexOf("/"); at > 0; at = b.path_prefix.lastIndexOf("/", at - 1)) {
      const outer = b.path_prefix.slice(0, at);
      const name = byPrefix.get(outer);
      if (name === undefined) continue;
      found.push(`${b.path_prefix} (bucket ${b.name}) inside ${outer} (bucket ${name}): ${name}'s keys under ${b.path_prefix.slice(at + 1)}/`);
      break;
    }
  }
  if (found.length === 0) return undefined;
  return `path_prefix nested in another bucket's: ${listed(found)} cannot be reached through the plain front (the longest prefix wins); give the buckets separate prefixes unless that is meant`;
}
