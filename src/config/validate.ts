/**
 * Cross-field validation and normalization, after the zod schema has checked shapes.
 * Returns every issue found (never stops at the first), each with its YAML path.
 */
import { ellipsized } from "../util/text.ts";
import { CONTROL_PATHS } from "../control/paths.ts";
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { createSecureContext, getCiphers } from "node:tls";
import { cidrProblem, parseIp } from "../http/cidr.ts";
import type { Config } from "./load.ts";
import type { PathSegment } from "./path.ts";
import { cacheLayerIssues, type Algorithm, type ClaimRule, type RawConfig } from "./schema.ts";
import { rateLimitIssues } from "./rate-limit.ts";
import { bucketNameProblem, bucketUrlProblem, endpointQueryProblem, headerCredentialProblem, regionProblem } from "./replicas.ts";
import { bindsClash, emptyLabelHostProblem, NO_SCHEME, schemeless, userinfoProblem } from "./url.ts";
import { validateS3Api } from "./s3-api.ts";
import { bucketWriteIssues } from "./writes.ts";

/** The control plane's reserved paths: one list, owned by src/control/paths.ts. */
const RESERVED_PREFIXES = CONTROL_PATHS;

type Issue = { path: PathSegment[]; message: string };

/** "/a//b/" → "/a/b"; "/" stays "/". */
function normalizePrefix(p: string): string {
  const collapsed = p.replace(/\/{2,}/g, "/");
  return collapsed.length > 1 && collapsed.endsWith("/") ? collapsed.slice(0, -1) : collapsed;
}

/** A host name (RFC 1123 labels; `_` too, as container and service names have it). */
const HOST_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** A listener's address that binds, and logs "listening", but that no TCP connection can reach. */
const NO_CLIENT = "is a multicast or broadcast address: no client can connect to a listener there (give an address of this machine, or 0.0.0.0 / :: for all of them)";

/**
 * What is wrong with a listener's address (server.address once its ":port" is taken off,
 * metrics.address, s3_api.address), or undefined: an IPv4 address, an IPv6 address (bracketed or
 * not) or a host name. Anything else (":8080", "127.0.0.1:", a URL, a trailing space) passed
 * --check and failed at start ("baseURI must have a hostname", getaddrinfo ENOTFOUND).
 */
function listenAddressProblem(address: string, field: "server.address" | "metrics.address" | "s3_api.address"): string | undefined {
  const forms = `an IPv4 address (0.0.0.0, 127.0.0.1), an IPv6 address (::, ::1 or [::1]) or a host name${field === "server.address" ? ", optionally followed by :port (0.0.0.0:8080, [::1]:8080)" : " (the port goes in the port key)"}`;
  const shown = JSON.stringify(ellipsized(address, 80));
  if (address !== address.trim()) return `${shown} has spaces around it: write ${forms}`;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(address)) return `${shown} is a URL: write ${forms}`;
  if (address.includes(":") || address.startsWith("[")) {
    const ip = parseIp(address);
    if (ip === null || (address.startsWith("[") && !address.endsWith("]"))) return `${shown} is not a listen address: write ${forms}`;
    // fe80::/10 exists on every interface: without one named, the bind failed at start with a bare "EINVAL: invalid argument, listen".
    if (ip >> 118n === 0x3fan && !address.includes("%")) return `${shown} is a link-local address, which needs its interface: write it with a zone, as fe80::1%eth0`;
    if (ip >> 120n === 0xffn) return `'${address}' ${NO_CLIENT}`;
    return undefined;
  }
  // Four numbers are an IPv4 address, never a host name: one out of range would pass and fail at start.
  if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) {
    if (parseIp(address) === null) return `'${address}' is not an IPv4 address (each part 0-255)`;
    // The resolver (inet_aton) reads a part with a leading zero as octal: "127.0.0.010" was bound to
    // 127.0.0.8 while --check and the start-up log said 127.0.0.010.
    const parts = address.split(".");
    if (parts.some((p) => p.length > 1 && p.startsWith("0"))) {
      const octal = parts.map((p) => (p.length > 1 && p.startsWith("0") ? (/^0[0-7]+$/.test(p) ? parseInt(p, 8) : NaN) : Number(p)));
      const bound = octal.every((n) => n <= 255) ? `it would listen on ${octal.join(".")}` : "it is not that address to the system";
      return `'${address}' has a part written with a leading zero, which the system reads as octal (${bound}): write ${parts.map(Number).join(".")}`;
    }
    // (224.0.0.0/4 multicast, 240.0.0.0/4 reserved and 255.255.255.255 broadcast: Linux binds them)
    if (Number(parts[0]) >= 224) return `'${address}' ${NO_CLIENT}`;
    return undefined;
  }
  // Digits and dots only, in another count (1.2.3.4.5, 10.1): no host name is that (a top-level
  // label is never all digits, RFC 1123), and it passed here to fail at start ("does not resolve").
  if (/^[\d.]+$/.test(address)) return `${shown} is not an IPv4 address (four parts, each 0-255): write ${forms}`;
  // A hexadecimal part (0x7f.1, 0x7f000001): the resolver (inet_aton) reads it as an IPv4 address,
  // not a host name, so "0x7f.1" was bound to 127.0.0.1 while --check and the log said 0x7f.1.
  if (/^(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+)){0,3}\.?$/i.test(address)) return `${shown} is an IPv4 address written with hexadecimal parts, which the system reads as an address, not a host name: write it as four decimal parts (127.0.0.1)`;
  if (!HOST_NAME.test(address)) return `${shown} is not a listen address: write ${forms}`;
  return undefined;
}

/** "[::1]" → "::1" (Bun and node:http take an IPv6 listen address without brackets). */
const unbracket = (a: string) => (a.startsWith("[") && a.endsWith("]") ? a.slice(1, -1) : a);

function isHmac(alg: Algorithm): boolean {
  return alg.startsWith("HS");
}

/** Checks a claim rule's value against its operator. Returns a message, or undefined when it fits. */
function claimRuleProblem(rule: ClaimRule): string | undefined {
  const v = rule.value;
  const scalar = (x: unknown) => typeof x === "string" || typeof x === "number" || typeof x === "boolean";
  switch (rule.operator) {
    case "exists":
      return v === undefined || typeof v === "boolean" ? undefined : "operator exists takes no value (or true/false)";
    case "contains":
      // (every string contains "": the rule held for any token whose claim is a string)
      if (v === "") return "operator contains needs a non-empty value (every string contains the empty string: the rule would admit any token whose claim is a string)";
      return scalar(v) ? undefined : "operator contains needs a string, number or boolean value";
    case "equals":
      return scalar(v) ? undefined : "operator equals needs a string, number or boolean value";
    case "in":
      return Array.isArray(v) && v.length > 0 && v.every(scalar) ? undefined : "operator in needs a non-empty list of strings, numbers or booleans";
    case "gt":
    case "lt":
    case "gte":
    case "lte":
      return typeof v === "number" && Number.isFinite(v) ? undefined : `operator ${rule.operator} needs a number value`;
  }
}

export function checkRules(rules: readonly ClaimRule[], path: PathSegment[], issues: Issue[]): void {
  rules.forEach((r, i) => {
    const p = claimRuleProblem(r);
    if (p) issues.push({ path: [...path, i, "value"], message: p });
    // (a claim name is an identifier: one with a pasted invisible character named no claim a
    // token has, and every token was refused as "claim 'role' must equal admin")
    const unseen = unseenCharacterProblem(r.claim);
    if (unseen) issues.push({ path: [...path, i, "claim"], message: unseen });
  });
}

/** The rules every URL-valued key follows: http(s) only, no credentials in the URL. */
/** What a bucket's name must not hold: it is a path segment (/admin/cache/purge/<name>, the S3 front's /<name>/) and a metric label. */
const BUCKET_NAME_BAD = /[/\x00-\x1f\x7f]/;

/**
 * Characters a reader cannot see, or cannot tell from a plain space: controls (Cc), format
 * characters (Cf: zero width space, the byte order mark, soft hyphen, bidi marks), separators
 * (Zs, Zl, Zp: no-break space, the typographic spaces) and the Hangul fillers. A bucket name or
 * path_prefix holding one (pasted from a document or a chat) passed --check, and the bucket then
 * answered only a URL with that character in it: 404 for every request that looked right.
 */
const UNSEEN = /[\p{Cc}\p{Cf}\p{Z}\u115f\u1160\u3164\uffa0]/u;

/** The names of the invisible characters most often met; the others are named by their kind. */
const UNSEEN_NAMES: Readonly<Record<number, string>> = {
  0x09: "character tabulation", 0x0a: "line feed", 0x0d: "carriage return", 0x20: "space", 0x7f: "delete", 0x85: "next line",
  0xa0: "no-break space", 0xad: "soft hyphen", 0x061c: "arabic letter mark", 0x115f: "hangul choseong filler", 0x1160: "hangul jungseong filler",
  0x1680: "ogham space mark", 0x180e: "mongolian vowel separator", 0x2000: "en quad", 0x2001: "em quad", 0x2002: "en space", 0x2003: "em space",
  0x2004: "three-per-em space", 0x2005: "four-per-em space", 0x2006: "six-per-em space", 0x2007: "figure space", 0x2008: "punctuation space",
  0x2009: "thin space", 0x200a: "hair space", 0x200b: "zero width space", 0x200c: "zero width non-joiner", 0x200d: "zero width joiner",
  0x200e: "left-to-right mark", 0x200f: "right-to-left mark", 0x2028: "line separator", 0x2029: "paragraph separator",
  0x202a: "left-to-right embedding", 0x202b: "right-to-left embedding", 0x202c: "pop directional formatting", 0x202d: "left-to-right override",
  0x202e: "right-to-left override", 0x202f: "narrow no-break space", 0x205f: "medium mathematical space", 0x2060: "word joiner",
  0x2061: "function application", 0x2062: "invisible times", 0x2063: "invisible separator", 0x2064: "invisible plus",
  0x2066: "left-to-right isolate", 0x2067: "right-to-left isolate", 0x2068: "first strong isolate", 0x2069: "pop directional isolate",
  0x3000: "ideographic space", 0x3164: "hangul filler", 0xfeff: "zero width no-break space, the byte order mark", 0xffa0: "halfwidth hangul filler",
};

function unseenName(c: string, cp: number): string {
  const known = UNSEEN_NAMES[cp];
  if (known !== undefined) return known;
  if (/\p{Cc}/u.test(c)) return "a control character";
  if (/\p{Cf}/u.test(c)) return "an invisible format character";
  return "a space character";
}

/**
 * What is wrong with a bucket name or path_prefix that holds a character no one can see (see
 * UNSEEN), or undefined: the character's code point, its name and its position (1-based, in
 * characters). A space between other characters is seen, and stays allowed ("has space"); one at
 * the start or the end is not.
 */
export function unseenCharacterProblem(value: string): string | undefined {
  const found = unseenCharacter(value);
  return found === undefined ? undefined : `contains ${found}: a character that cannot be seen in the config, most likely pasted by mistake; remove it`;
}

/** The first character of `value` that cannot be seen (see unseenCharacterProblem), as "U+200B (zero width space) at position 5", or undefined. */
export function unseenCharacter(value: string): string | undefined {
  if (!UNSEEN.test(value)) return undefined;
  const chars = [...value];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (!UNSEEN.test(c)) continue;
    const cp = c.codePointAt(0)!;
    if (cp === 0x20 && i > 0 && i < chars.length - 1) continue;
    const where = cp !== 0x20 ? `at position ${i + 1}` : i === 0 ? "at the start (position 1)" : `at the end (position ${i + 1})`;
    return `U+${cp.toString(16).toUpperCase().padStart(4, "0")} (${unseenName(c, cp)}) ${where}`;
  }
  return undefined;
}

/**
 * The first character of a line of the file that cannot be seen or looks like a space without
 * being one (tabs and spaces aside), as "U+00A0 (no-break space) at column 3", or undefined. YAML
 * reads a no-break space as text: indentation copied from a web page or a chat then made a YAML
 * error, or a key no one could tell from the right one.
 */
export function unseenOnLine(line: string): string | undefined {
  const chars = [...line.replace(/\r?\n$/, "")];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    const cp = c.codePointAt(0)!;
    if (cp === 0x20 || cp === 0x09 || !UNSEEN.test(c)) continue;
    return `U+${cp.toString(16).toUpperCase().padStart(4, "0")} (${unseenName(c, cp)}) at column ${i + 1}`;
  }
  return undefined;
}

function checkUrl(url: string | undefined, path: PathSegment[], instead: string, issues: Issue[]): void {
  if (url === undefined) return;
  if (!/^https?:\/\//i.test(url)) issues.push({ path, message: `must be an http:// or https:// URL${schemeless(url) ? `: ${NO_SCHEME}` : ""}` });
  // "http://host:" parses (the scheme's default port), but says a port was meant and left out
  else if (/^https?:\/\/[^/?#]*:(?:[/?#]|$)/i.test(url) && !/^https?:\/\/\[[^\]]*\](?:[/?#]|$)/i.test(url)) issues.push({ path, message: "has a ':' with no port after it: give the port, or leave out the ':'" });
  const problem = userinfoProblem(url, instead) ?? emptyLabelHostProblem(url);
  if (problem) issues.push({ path, message: problem });
}

/** "-----BEGIN " in base64: how every base64-encoded PEM file starts. */
const BASE64_PEM = "LS0tLS1CRUdJTi";

/**
 * A path-valued key given the PEM text itself (pasted, or a `${VAR}` holding the key rather than
 * its file's path): it names no file, and echoing it in "cannot read <value>" would print a
 * private key in --check's output, the start-up error and the reload's error log line. Said
 * without the value; undefined for anything that looks like a path. So is the PEM in base64 on
 * one line (a Kubernetes Secret's `data` value, `base64 -w0 key.pem` in a variable), which
 * starts with BASE64_PEM.
 */
function pemTextInPath(value: string): string | undefined {
  const base64 = value.startsWith(BASE64_PEM);
  if (!base64 && !/-----BEGIN |[\r\n]/.test(value)) return undefined;
  if (!base64 && !value.includes("-----BEGIN ")) return "contains a line break (the newline of a secret file?): give the file's path alone (the value is not shown)";
  const text = base64 ? Buffer.from(value, "base64").toString("latin1") : value;
  const what = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text) ? "a private key's PEM text" : "PEM text";
  return base64
    ? `holds ${what} in base64, not a file path: write the decoded PEM to a file and give its path (the value is not shown)`
    : `holds ${what}, not a file path: write the PEM to a file and give its path (the value is not shown)`;
}

/** The most a key or certificate file may hold (a PEM chain is a few KiB). */
const MAX_PEM_BYTES = 1024 * 1024;

/**
 * A key or certificate file's bytes, after checking that it is a regular file of sane size: a FIFO
 * blocked the open forever (on the main thread at start, where no signal then got through), and a
 * device such as /dev/zero was read until memory ran out. Throws with `code` set (ENOTREG, EFBIG).
 */
function readKeyFile(full: string): Buffer {
  const st = statSync(full);
  if (st.isDirectory()) throw Object.assign(new Error("EISDIR"), { code: "EISDIR" });
  if (!st.isFile()) throw Object.assign(new Error("ENOTREG"), { code: "ENOTREG" });
  if (st.size > MAX_PEM_BYTES) throw Object.assign(new Error("EFBIG"), { code: "EFBIG" });
  return readFileSync(full);
}

/** A readKeyFile failure in words. */
function keyFileProblem(code: string | undefined): string {
  if (code === "ENOENT") return "file not found";
  if (code === "EISDIR") return "it is a folder";
  if (code === "ENOTREG") return "not a regular file (a FIFO, a device or a socket)";
  if (code === "EFBIG") return "larger than 1 MiB: not a PEM file";
  // (certbot's privkey.pem is root's, mode 0600: the usual failure of a proxy run as its own user)
  if (code === "EACCES" || code === "EPERM") return `permission denied: the proxy's user (uid ${process.getuid?.() ?? "?"}) may not read it`;
  return code ?? "unreadable";
}

/** The key of a readable, usable PEM public key file, else undefined (the problem is in `issues`). */
function checkPem(file: string, baseDir: string | undefined, path: PathSegment[], issues: Issue[], alg?: Algorithm): KeyObject | undefined {
  const full = isAbsolute(file) || !baseDir ? file : join(baseDir, file);
  let pem: string;
  try {
    pem = readKeyFile(full).toString("utf8");
  } catch (err) {
    const code = (err as { code?: string }).code;
    issues.push({ path, message: pemTextInPath(file) ?? `cannot read PEM file ${file}${full !== file ? ` (${full})` : ""}: ${keyFileProblem(code)}` });
    return undefined;
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    issues.push({ path, message: `${file} is not a valid PEM public key (SPKI "PUBLIC KEY" or an X.509 certificate)` });
    return undefined;
  }
  // jose refuses an RSA key under 2048 bits each time it verifies (a TypeError), so such a key
  // loads, then every token is refused as "signature verification failed". (JWKS keys: skipped, logged.)
  const bits = key.asymmetricKeyType === "rsa" ? key.asymmetricKeyDetails?.modulusLength : undefined;
  if (bits !== undefined && bits < 2048) {
    issues.push({ path, message: `${file} is a ${bits}-bit RSA key: RS*/PS* tokens need a key of at least 2048 bits (a shorter one is refused at every verification, so every token would be refused)` });
    return undefined;
  }
  // A jwt.keys entry names its one algorithm: a key that cannot verify it stopped the start with
  // a bare "Invalid key type" or "Named curve mismatch" (exit 3) after --check had said OK.
  if (alg !== undefined && !pemFits(key, alg)) {
    issues.push({ path, message: `${file} holds ${describeKey(key)} key, which cannot verify ${alg} (${expectedKey(alg)} goes with ${alg})` });
    return undefined;
  }
  return key;
}

/** The single-key PEM files, by the algorithms keys.ts reads each one for. */
const LEGACY_PEMS = [
  { name: "rsa_public_key_path", serves: (alg: Algorithm) => alg.startsWith("RS") || alg.startsWith("PS") },
  { name: "ecdsa_public_key_path", serves: (alg: Algorithm) => alg.startsWith("ES") },
  { name: "public_key_path", serves: (_alg: Algorithm) => true },
] as const;

/**
 * Each asymmetric algorithm of jwt.algorithm / jwt.algorithms that no jwks_url and no jwt.keys
 * entry serves needs a single-key PEM file that can verify it: with none (an EC key in
 * rsa_public_key_path beside algorithm RS256, or algorithm ES256 beside rsa_public_key_path alone)
 * --check said OK and every token was then refused, 401 "no key for the token's algorithm".
 */
function checkLegacyKeysFit(jwt: NonNullable<RawConfig["jwt"]>, loaded: ReadonlyMap<string, KeyObject | undefined>, issues: Issue[]): void {
  if (jwt.jwks_url) return;
  const algs: Array<[Algorithm, PathSegment[]]> = [[jwt.algorithm, ["jwt", "algorithm"]], ...(jwt.algorithms ?? []).map((a, i): [Algorithm, PathSegment[]] => [a, ["jwt", "algorithms", i]])];
  const seen = new Set<Algorithm>();
  for (const [alg, path] of algs) {
    if (isHmac(alg) || seen.has(alg) || jwt.keys.some((k) => k.algorithm === alg)) continue;
    seen.add(alg);
    const files = LEGACY_PEMS.filter((l) => jwt[l.name] && l.serves(alg));
    if (files.length === 0) {
      const others = LEGACY_PEMS.filter((l) => jwt[l.name]).map((l) => l.name);
      const names = LEGACY_PEMS.filter((l) => l.serves(alg)).map((l) => l.name);
      const unread = others.length === 0 ? "" : ` (${others.join(" and ")} ${others.length === 1 ? "is" : "are"} not read for ${alg})`;
      issues.push({ path, message: `algorithm ${alg} needs a key source: set jwks_url, ${names.join(", ")} or a jwt.keys entry of ${alg} with a path${unread}` });
      continue;
    }
    // (a file that cannot be read or used is refused on its own line already)
    if (files.some((f) => loaded.get(f.name) === undefined)) continue;
    if (files.some((f) => pemFits(loaded.get(f.name)!, alg))) continue;
    const held = files.map((f) => `${f.name} (${jwt[f.name]}) holds ${describeKey(loaded.get(f.name)!)} key`).join("; ");
    issues.push({ path, message: `no key can verify ${alg}: ${held} (${expectedKey(alg)} goes with ${alg}), so every ${alg} token would be refused` });
  }
}

const EC_CURVES: Record<string, string> = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521", secp256k1: "secp256k1" };

/** Whether a PEM public key can verify tokens of one asymmetric algorithm (as jose's importSPKI takes it). */
function pemFits(key: KeyObject, alg: Algorithm): boolean {
  if (alg.startsWith("RS") || alg.startsWith("PS")) return key.asymmetricKeyType === "rsa";
  if (alg === "ES256") return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1";
  if (alg === "ES384") return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "secp384r1";
  if (alg === "EdDSA") return key.asymmetricKeyType === "ed25519";
  return true;
}

function describeKey(key: KeyObject): string {
  if (key.asymmetricKeyType === "rsa") return "an RSA";
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return `an EC ${curve ? (EC_CURVES[curve] ?? curve) : ""}`.trimEnd();
  }
  if (key.asymmetricKeyType === "ed25519") return "an Ed25519";
  return `a ${key.asymmetricKeyType ?? "different"}`;
}

function expectedKey(alg: Algorithm): string {
  if (alg.startsWith("RS") || alg.startsWith("PS")) return "an RSA key";
  if (alg === "ES256") return "an EC P-256 key";
  if (alg === "ES384") return "an EC P-384 key";
  return "an Ed25519 key";
}

/**
 * server.https: both files readable, the certificate a PEM X.509 certificate, the key a PEM private
 * key (unencrypted: there is no passphrase setting), and the key the certificate's. Checked here
 * so that --check and a reload say which file is wrong, instead of the listener failing at start
 * with a bare OpenSSL code (PEM routines: NO_START_LINE, KEY_VALUES_MISMATCH).
 */
function checkTlsPair(https: { cert_path: string; key_path: string }, baseDir: string | undefined, issues: Issue[], material?: { cert: string; key: string }): KeyObject | undefined {
  const read = (k: "cert_path" | "key_path"): Buffer | undefined => {
    try {
      const pem = material ? Buffer.from(k === "cert_path" ? material.cert : material.key) : readKeyFile(resolveConfigPath(https[k], baseDir));
      // A byte order mark (a Windows editor's "UTF-8 with BOM"): the listener finds no PEM start
      // line, and the parsers here skipped to the file's next block (a chain's intermediate: "not
      // the private key of the certificate") or called the key damaged.
      if (pem[0] !== 0xef || pem[1] !== 0xbb || pem[2] !== 0xbf) return pem;
      issues.push({ path: ["server", "https", k], message: `${https[k]} starts with a byte order mark (UTF-8 with BOM): save it without one` });
      return undefined;
    } catch (err) {
      const code = (err as { code?: string }).code;
      const full = resolveConfigPath(https[k], baseDir);
      issues.push({ path: ["server", "https", k], message: pemTextInPath(https[k]) ?? `cannot read ${https[k]}${full !== https[k] ? ` (${full})` : ""}: ${keyFileProblem(code)}` });
      return undefined;
    }
  };
  const certPem = read("cert_path");
  const keyPem = read("key_path");
  let cert: X509Certificate | undefined;
  let key: KeyObject | undefined;
  let chainCerts: Array<X509Certificate | undefined> = [];
  if (certPem !== undefined) {
    try {
      // X509Certificate reads DER too; the listener takes PEM only (a bare NO_START_LINE at start).
      if (!certPem.includes("-----BEGIN CERTIFICATE-----")) throw new Error("not PEM");
      cert = new X509Certificate(certPem);
    } catch {
      const hint = certPem.includes("PRIVATE KEY-----") ? " (it holds a private key: are cert_path and key_path swapped?)" : "";
      // (a PEM certificate that does not parse is cut or damaged, as a later one of the chain is said to be below)
      const damaged = hint === "" && certPem.includes("-----BEGIN CERTIFICATE-----");
      issues.push({
        path: ["server", "https", "cert_path"],
        message: damaged ? `${https.cert_path}: certificate 1 of the chain is cut or damaged (a file read while it was being written?)` : `${https.cert_path} is not a PEM certificate ("BEGIN CERTIFICATE")${hint}`,
      });
    }
    // The listener loads every certificate of the file (the chain after the server's), and refuses
    // them all for one cut or damaged (BAD_END_LINE: a file read while it was being written);
    // X509Certificate above read the first one only.
    const chain = (cert === undefined ? [] : certPem.toString("latin1").split("-----BEGIN CERTIFICATE-----").slice(2)).map((block) => {
      const end = block.indexOf("-----END CERTIFICATE-----");
      try {
        return end < 0 ? undefined : new X509Certificate(`-----BEGIN CERTIFICATE-----${block.slice(0, end)}-----END CERTIFICATE-----\n`);
      } catch {
        return undefined;
      }
    });
    const damaged = chain.indexOf(undefined);
    if (damaged >= 0)
      issues.push({ path: ["server", "https", "cert_path"], message: `${https.cert_path}: certificate ${damaged + 2} of the chain is cut or damaged (a file read while it was being written?)` });
    chainCerts = chain;
  }
  if (keyPem !== undefined) {
    try {
      key = createPrivateKey(keyPem);
    } catch {
      const text = keyPem.toString("latin1");
      const hint = text.includes("BEGIN CERTIFICATE") ? " (it holds a certificate: are cert_path and key_path swapped?)" : text.includes("ENCRYPTED") ? " (it is encrypted: give an unencrypted key)" : "";
      // A PEM private key that does not parse is of a type this runtime does not take (RSA-PSS, secp256k1, ...).
      const unsupported = hint === "" && /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/.test(text);
      issues.push({
        path: ["server", "https", "key_path"],
        message: unsupported
          ? `${https.key_path} holds a PEM private key that cannot be used: damaged, or of a type not supported (use an RSA, ECDSA P-256/P-384/P-521 or Ed25519 key)`
          : `${https.key_path} is not a PEM private key ("BEGIN PRIVATE KEY")${hint}`,
      });
    }
  }
  if (cert !== undefined && key !== undefined && !cert.checkPrivateKey(key)) {
    // (the chain written first, `cat chain.pem cert.pem`: the listener serves the file's first certificate)
    const server = chainCerts.findIndex((c) => c?.checkPrivateKey(key!) === true);
    const hint = server >= 0 ? ` (it is the key of certificate ${server + 2} in the file: the server's certificate comes first, then its chain)` : "";
    issues.push({ path: ["server", "https", "key_path"], message: `${https.key_path} is not the private key of the certificate in ${https.cert_path}${hint}` });
  }
  // OpenSSL's default security level refuses an RSA key under 1024 bits at every handshake: the
  // listener would start and no client could connect.
  const bits = key?.asymmetricKeyType === "rsa" ? key.asymmetricKeyDetails?.modulusLength : undefined;
  if (bits !== undefined && bits < 1024) {
    issues.push({ path: ["server", "https", "key_path"], message: `${https.key_path} is a ${bits}-bit RSA key: TLS refuses it at every handshake (use RSA 2048 or more, or ECDSA)` });
  }
  // Key types the listener cannot load (it fails to start with UNSUPPORTED_ALGORITHM): DSA, and
  // curves other than P-256, P-384 and P-521.
  const curve = key?.asymmetricKeyType === "ec" ? key.asymmetricKeyDetails?.namedCurve : undefined;
  if (key?.asymmetricKeyType === "dsa" || (curve !== undefined && !["prime256v1", "secp384r1", "secp521r1"].includes(curve))) {
    issues.push({ path: ["server", "https", "key_path"], message: `${https.key_path} is a ${curve ?? "DSA"} key the listener cannot use (use an RSA, ECDSA P-256/P-384/P-521 or Ed25519 key)` });
  }
  return key;
}

/**
 * A server.https.ciphers list of suite names only (no aliases such as HIGH or ECDHE+AESGCM) none
 * of which the certificate's key can serve: ECDSA suites take an EC or Ed25519 key, the others an
 * RSA key (PSK ones none). The listener started, every TLS 1.2 handshake failed (`alert handshake
 * failure`), TLS 1.3 ones succeeded.
 */
function ciphersKeyProblem(tls12: string[], key: KeyObject | undefined): string | undefined {
  const type = key?.asymmetricKeyType;
  const known = new Set(getCiphers());
  const names = tls12.map((n) => n.toLowerCase());
  if (type === undefined || !names.every((n) => known.has(n))) return undefined;
  const ecdsa = type === "ec" || type === "ed25519";
  if (names.some((n) => !n.includes("psk") && n.includes("-ecdsa-") === ecdsa)) return undefined;
  const kind = type === "rsa" ? "RSA" : type === "ec" ? "ECDSA" : type === "ed25519" ? "Ed25519" : type;
  return `names no TLS 1.2 suite the certificate's ${kind} key can serve (${ecdsa ? "ECDHE-ECDSA-… suites take an ECDSA or Ed25519 key" : "ECDHE-RSA-… and RSA suites take an RSA key"}): every TLS 1.2 handshake would fail; add ${ecdsa ? "ECDHE-ECDSA-AES128-GCM-SHA256" : "ECDHE-RSA-AES128-GCM-SHA256"}, or leave it out for the default`;
}

/** Resolves a path from the config relative to the config file's folder. */
export function resolveConfigPath(file: string, baseDir: string | undefined): string {
  return isAbsolute(file) || !baseDir ? file : join(baseDir, file);
}

/** The shortest HMAC secret accepted for HS256/384/512. */
const MIN_HMAC_SECRET_BYTES = 32;

function validateJwt(cfg: RawConfig, baseDir: string | undefined, issues: Issue[]): void {
  const jwt = cfg.jwt;
  const authBuckets = cfg.buckets.map((b, i) => ({ b, i })).filter(({ b }) => b.auth.enabled);
  if (!jwt || !jwt.enabled) {
    const missing = jwt
      ? "auth is enabled but the top-level `jwt:` section has `enabled: false`: set `jwt.enabled: true` (its default)"
      : "auth is enabled but there is no top-level `jwt:` section to check tokens with: add one (`jwt: { secret: \"${JWT_SECRET}\", algorithm: HS256 }`, or with `jwks_url` or a public key file; see the configuration reference)";
    for (const { i } of authBuckets) issues.push({ path: ["buckets", i, "auth", "enabled"], message: `${missing}, or set this bucket's \`auth.enabled: false\` to serve it without a token` });
    return;
  }
  if (jwt.secret === "") issues.push({ path: ["jwt", "secret"], message: "must not be empty: write the HMAC secret tokens are signed with (at least 32 bytes, such as \"${JWT_SECRET}\"), or remove the key when tokens are checked with a public key or jwks_url" });
  const algs = new Set<Algorithm>([jwt.algorithm, ...(jwt.algorithms ?? []), ...jwt.keys.map((k) => k.algorithm)]);
  for (const alg of [jwt.algorithm, ...(jwt.algorithms ?? [])]) {
    if (isHmac(alg) && jwt.secret === undefined && !jwt.keys.some((k) => k.algorithm === alg && k.secret))
      issues.push({ path: ["jwt", "secret"], message: `algorithm ${alg} needs a key source: set jwt.secret (or a jwt.keys entry with a secret)` });
  }
  const loaded = new Map<string, KeyObject | undefined>();
  for (const { name } of LEGACY_PEMS) {
    const file = jwt[name];
    if (file) loaded.set(name, checkPem(file, baseDir, ["jwt", name], issues));
  }
  // (also with no asymmetric key source at all: each such algorithm named at its own line, with the files that can verify it)
  checkLegacyKeysFit(jwt, loaded, issues);
  const ids = new Set<string>();
  jwt.keys.forEach((k, i) => {
    if (ids.has(k.id)) issues.push({ path: ["jwt", "keys", i, "id"], message: `duplicate key id '${k.id}'` });
    ids.add(k.id);
    if (isHmac(k.algorithm)) {
      if (!k.secret) issues.push({ path: ["jwt", "keys", i, "secret"], message: `key ${k.id} uses ${k.algorithm} and needs a secret` });
      if (k.path) issues.push({ path: ["jwt", "keys", i, "path"], message: `key ${k.id} uses ${k.algorithm}: give a secret, not a path` });
    } else {
      if (!k.path) issues.push({ path: ["jwt", "keys", i, "path"], message: `key ${k.id} uses ${k.algorithm} and needs a PEM path` });
      else checkPem(k.path, baseDir, ["jwt", "keys", i, "path"], issues, k.algorithm);
      if (k.secret) issues.push({ path: ["jwt", "keys", i, "secret"], message: `key ${k.id} uses ${k.algorithm}: give a PEM path, not a secret` });
    }
  });
  if (jwt.secret && ![...algs].some(isHmac)) issues.push({ path: ["jwt", "secret"], message: `a secret is set but no HS* algorithm is configured (${[...algs].join(", ")}): list HS256 (or HS384, HS512) in jwt.algorithms, or remove the secret` });
  // (its keys are read for the asymmetric algorithms only: with HS* alone every key was skipped,
  // the JWKS never counted as loaded, /ready stayed 503 and every reload was refused for it)
  if (jwt.jwks_url && [...algs].every(isHmac)) {
    issues.push({ path: ["jwt", "jwks_url"], message: `a jwks_url is set but no algorithm its keys could verify is configured (${[...algs].join(", ")}): JWKS keys serve RS*, PS*, ES* or EdDSA; list those in jwt.algorithms (or remove jwks_url)` });
  }
  // RFC 7518 §3.2: an HMAC key at least as long as the hash (the original project asked for 32
  // characters too). Also what catches a placeholder left unexpanded ("$JWT_SECRET").
  const short = (secret: string) => Buffer.byteLength(secret) < MIN_HMAC_SECRET_BYTES;
  if (jwt.secret && short(jwt.secret)) issues.push({ path: ["jwt", "secret"], message: `an HMAC secret must be at least ${MIN_HMAC_SECRET_BYTES} bytes (RFC 7518 §3.2); this one is ${Buffer.byteLength(jwt.secret)}` });
  jwt.keys.forEach((k, i) => {
    if (isHmac(k.algorithm) && k.secret && short(k.secret)) issues.push({ path: ["jwt", "keys", i, "secret"], message: `an HMAC secret must be at least ${MIN_HMAC_SECRET_BYTES} bytes (RFC 7518 §3.2); this one is ${Buffer.byteLength(k.secret)}` });
  });
  // A PEM key or certificate as an HMAC secret: with the issuer's public key (public by nature,
  // often on its JWKS URL) anyone could sign HS* tokens that verify, the RS/HS confusion that JWT
  // libraries refuse (jsonwebtoken 9: "secretOrPublicKey must be a symmetric key").
  const pemSecret = (secret: string | undefined) => secret !== undefined && /-----BEGIN [A-Z0-9 ]*(PUBLIC KEY|CERTIFICATE|PRIVATE KEY)-----/.test(secret);
  const pemMessage = "holds a PEM key or certificate, not an HMAC secret: anyone with the public key could sign HS* tokens with it; a public key goes in a file named by rsa_public_key_path, ecdsa_public_key_path, public_key_path or a jwt.keys entry's path (the value is not shown)";
  if (pemSecret(jwt.secret)) issues.push({ path: ["jwt", "secret"], message: pemMessage });
  jwt.keys.forEach((k, i) => {
    if (pemSecret(k.secret)) issues.push({ path: ["jwt", "keys", i, "secret"], message: pemMessage });
  });
  if (jwt.token_sources.length === 0) issues.push({ path: ["jwt", "token_sources"], message: "JWT is enabled but no token source is listed: list at least one, or leave token_sources out for the default (Authorization: Bearer)" });
  jwt.token_sources.forEach((s, i) => {
    if ((s.type === "header" || s.type === "query") && !s.name) issues.push({ path: ["jwt", "token_sources", i, "name"], message: s.type === "header" ? "token source header needs a name: the header the token is read from (`{ type: header, name: X-Auth-Token }`)" : "token source query needs a name: the query parameter the token is read from (`{ type: query, name: token }`)" });
    if (s.type === "bearer" && s.name) issues.push({ path: ["jwt", "token_sources", i, "name"], message: "token source bearer always reads Authorization; remove name" });
    // (a space, ':', a non-ASCII letter or a control character: no client can send such a header,
    // so every request to a bucket with auth would be 401)
    if (s.type === "header" && s.name && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(s.name)) issues.push({ path: ["jwt", "token_sources", i, "name"], message: "is not a header name HTTP can carry (letters, digits and !#$%&'*+-.^_`|~ only)" });
    if (s.type !== "header" && s.prefix !== undefined) issues.push({ path: ["jwt", "token_sources", i, "prefix"], message: `prefix only applies to token sources of type header: remove it (${s.type === "bearer" ? "bearer already takes what follows `Bearer `" : "a query parameter's value is the token itself"})` });
  });
  checkRules(jwt.claims, ["jwt", "claims"], issues);
  checkRules(jwt.admin_claims, ["jwt", "admin_claims"], issues);
  // Identifiers compared as they are with what every token carries: a pasted invisible character
  // refused every token ("iss does not match the configured issuer"), or read no query parameter.
  const unseenAt = (value: string | undefined, path: PathSegment[]) => {
    const unseen = value === undefined ? undefined : unseenCharacterProblem(value);
    if (unseen) issues.push({ path, message: unseen });
  };
  unseenAt(jwt.issuer, ["jwt", "issuer"]);
  if (typeof jwt.audience === "string") unseenAt(jwt.audience, ["jwt", "audience"]);
  else jwt.audience?.forEach((a, i) => unseenAt(a, ["jwt", "audience", i]));
  jwt.token_sources.forEach((t, i) => {
    if (t.type === "query") unseenAt(t.name, ["jwt", "token_sources", i, "name"]);
  });
}

export function validateConfig(cfg: RawConfig, opts: { baseDir?: string; tls?: { cert: string; key: string } } = {}): { config: Config; issues: Array<{ path: PathSegment[]; message: string }> } {
  const issues: Issue[] = [];
  for (const i of cacheLayerIssues(cfg.cache)) issues.push({ path: ["cache", ...i.path], message: i.message });
  const { host, port } = validateListeners(cfg, opts, issues);

  // A bucket's `cache.enabled: true` is in force unless the top-level cache is switched off in
  // writing (the original let the bucket's setting win; an unwritten top-level `enabled` used to
  // leave such a bucket uncached without a word). An explicit `cache.enabled: false` stays the
  // switch for every bucket: --check and the start-up log say which buckets it turns off.
  cfg.cache.enabled ??= cfg.buckets.some((b) => b.cache?.enabled === true);

  const names = new Map<string, number>();
  const prefixes = new Map<string, number>();
  cfg.buckets.forEach((b, i) => validateBucket(b, i, names, prefixes, issues));
  // Checked even when jwt is disabled: the URL is in the config either way.
  checkUrl(cfg.jwt?.jwks_url, ["jwt", "jwks_url"], "a JWKS is public key material and needs no credentials", issues);
  validateJwt(cfg, opts.baseDir, issues);
  validateS3Api(cfg, { host, port: port ?? 8080 }, issues);
  issues.push(...rateLimitIssues(cfg));

  const config = { ...cfg, server: { ...cfg.server, address: host, port: port ?? 8080 }, baseDir: opts.baseDir ?? process.cwd() } as Config;
  return { config, issues };
}

/**
 * The listeners' addresses, ports and TLS (server, metrics, s3_api); the proxy listener's host
 * and port as it binds them (server.address may be "host:port"; unbracketed).
 */
function validateListeners(cfg: RawConfig, opts: { baseDir?: string; tls?: { cert: string; key: string } }, issues: Issue[]): { host: string; port: number | undefined } {
  // server.address may be "host:port" (the original README's form).
  let host = cfg.server.address;
  let port = cfg.server.port;
  // (a link-local address's zone too: [fe80::1%eth0]:8080 is the bracketed form of fe80::1%eth0)
  const m = /^(\[[0-9a-fA-F:.]+(?:%[^\]]+)?\]|[^:\[\]]+):(\d+)$/.exec(host);
  if (m) {
    if (cfg.server.port !== undefined) issues.push({ path: ["server", "port"], message: `the port is given twice: in server.address (${m[2]}) and in server.port` });
    host = m[1].replace(/^\[|\]$/g, "");
    port = Number(m[2]);
    if (port > 65535) issues.push({ path: ["server", "address"], message: `port must be at most 65535, got ${port}` });
  }
  {
    const problem = listenAddressProblem(m ? host : cfg.server.address, "server.address");
    if (problem !== undefined) issues.push({ path: ["server", "address"], message: problem });
    host = unbracket(host);
  }
  if (cfg.metrics.enabled) {
    const problem = listenAddressProblem(cfg.metrics.address, "metrics.address");
    if (problem !== undefined) issues.push({ path: ["metrics", "address"], message: problem });
    cfg.metrics.address = unbracket(cfg.metrics.address);
  }
  if (cfg.s3_api?.enabled) {
    const problem = listenAddressProblem(cfg.s3_api.address, "s3_api.address");
    if (problem !== undefined) issues.push({ path: ["s3_api", "address"], message: problem });
    cfg.s3_api.address = unbracket(cfg.s3_api.address);
  }
  cfg.server.trusted_proxies.forEach((c, i) => {
    const problem = cidrProblem(c);
    if (problem !== undefined) issues.push({ path: ["server", "trusted_proxies", i], message: problem });
  });
  if (cfg.server.https?.enabled && cfg.server.engine === "node")
    issues.push({ path: ["server", "https"], message: "server.engine: node does not serve TLS; use engine: bun with https, or terminate TLS in front of the proxy" });
  // The S3 listener serves the same TLS: on node it would serve plain HTTP (STS session keys and
  // tokens in clear) while --check and presigned URLs said https.
  if (cfg.server.https?.enabled && cfg.s3_api?.enabled && (cfg.s3_api.engine ?? cfg.server.engine) === "node")
    issues.push(
      cfg.s3_api.engine === "node"
        ? { path: ["s3_api", "engine"], message: "node does not serve TLS, and server.https is on: use engine: bun for the S3 listener, or terminate TLS in front of the proxy" }
        : { path: ["s3_api"], message: "the S3 listener takes server.engine (node), which does not serve TLS, and server.https is on: set s3_api.engine: bun, or terminate TLS in front of the proxy" },
    );
  const tlsKey = cfg.server.https?.enabled ? checkTlsPair(cfg.server.https, opts.baseDir, issues, opts.tls) : undefined;
  if (cfg.server.https?.enabled && cfg.server.https.ciphers !== undefined) {
    // node:tls sets the TLS 1.3 names (TLS_*) of a list aside and takes the rest for TLS 1.2; the
    // listener hands the whole list to TLS 1.2's: with TLS 1.3 names only it did not start (a bare
    // NO_CIPHER_MATCH) after --check had passed it. (Names are separated by ":" and, as the TLS
    // library reads a list, by ";", "," or spaces too.)
    const tls12 = cfg.server.https.ciphers.split(/[:;, ]+/).filter((name) => name !== "" && !name.startsWith("TLS_"));
    let known = tls12.length > 0;
    try {
      if (known) createSecureContext({ ciphers: tls12.join(":") });
    } catch {
      known = false;
    }
    const mismatch = known ? ciphersKeyProblem(tls12, tlsKey) : undefined;
    if (mismatch !== undefined) issues.push({ path: ["server", "https", "ciphers"], message: mismatch });
    if (!known)
      issues.push({
        path: ["server", "https", "ciphers"],
        message: `names no cipher suite TLS 1.2 knows (OpenSSL syntax, e.g. ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256; leave it out for the default)${tls12.length === 0 ? ": TLS 1.3's suites (TLS_…) are not chosen here, TLS 1.3 offers its own" : ""}`,
      });
  }
  // (a wildcard address takes the port on the addresses it covers: 0.0.0.0:8080 and 127.0.0.1:8080 clash at bind, as the S3 API's check says)
  if (cfg.metrics.enabled && cfg.metrics.port !== 0 && cfg.metrics.port === (port ?? 8080) && bindsClash(cfg.metrics.address, host))
    issues.push({ path: ["metrics", "port"], message: "the metrics listener must not use the proxy's own address and port" });
  return { host, port };
}

/**
 * One bucket's own settings: its name, path_prefix, S3 connection, auth, authorization and
 * ip_filter (`names`, `prefixes`: the buckets' before it, by index, for the duplicate checks).
 */
function validateBucket(b: RawConfig["buckets"][number], i: number, names: Map<string, number>, prefixes: Map<string, number>, issues: Issue[]): void {
  const at = (...p: PathSegment[]) => ["buckets", i, ...p];
  if (names.has(b.name)) issues.push({ path: at("name"), message: `duplicate bucket name '${b.name}' (also buckets[${names.get(b.name)}])` });
  names.set(b.name, i);
  // A name is a metric label, an access-log field and a path segment (/admin/cache/purge/<name>,
  // the S3 front's /<name>/): a "/" made the purge path ambiguous, and "_health" is a label the
  // proxy's own endpoints use.
  const unseenInName = unseenCharacterProblem(b.name);
  if (unseenInName) issues.push({ path: at("name"), message: unseenInName });
  else if (b.name.startsWith("_")) issues.push({ path: at("name"), message: "must not start with '_' (reserved for the proxy's own endpoints in metrics and logs)" });
  else if (BUCKET_NAME_BAD.test(b.name)) issues.push({ path: at("name"), message: "must not contain '/' or control characters (it is a path segment of the admin API and a metric label)" });
  else if (b.name === "." || b.name === "..") issues.push({ path: at("name"), message: "must not be '.' or '..' (a dot segment: the admin API's purge path and the S3 front can never name it)" });
  const regionIssue = regionProblem(b.s3.region);
  if (regionIssue) issues.push({ path: at("s3", "region"), message: regionIssue });
  const endpointIssue = endpointQueryProblem(b.s3.endpoint) ?? bucketUrlProblem(b.s3.endpoint, b.s3.bucket);
  if (endpointIssue) issues.push({ path: at("s3", "endpoint"), message: endpointIssue });

  const unseenInPrefix = unseenCharacterProblem(b.path_prefix);
  const prefix = normalizePrefix(b.path_prefix);
  if (prefixes.has(prefix)) issues.push({ path: at("path_prefix"), message: `duplicate path_prefix '${prefix}' (also buckets[${prefixes.get(prefix)}])` });
  prefixes.set(prefix, i);
  for (const r of RESERVED_PREFIXES)
    if (prefix === r || prefix.startsWith(`${r}/`)) issues.push({ path: at("path_prefix"), message: `'${prefix}' collides with the proxy's own ${r} endpoint` });
  if (unseenInPrefix) issues.push({ path: at("path_prefix"), message: unseenInPrefix });
  else if (/[?#%\\\x00-\x1f\x7f]/.test(prefix) || prefix.split("/").some((s) => s === "." || s === ".."))
    issues.push({ path: at("path_prefix"), message: "must be a plain path (no ?, #, %, backslash, control characters, . or .. segments)" });
  b.path_prefix = prefix;

  const s3 = b.s3;
  if (!!s3.access_key !== !!s3.secret_key)
    issues.push({ path: at("s3", s3.access_key ? "secret_key" : "access_key"), message: "access_key and secret_key must be given together (or neither, for anonymous access)" });
  if (s3.session_token && !s3.access_key) issues.push({ path: at("s3", "session_token"), message: "a session_token needs access_key and secret_key" });
  for (const k of ["access_key", "session_token"] as const) {
    const p = headerCredentialProblem(k, s3[k]);
    if (p) issues.push({ path: at("s3", k), message: p });
  }
  checkUrl(s3.endpoint, at("s3", "endpoint"), "S3 credentials go in access_key and secret_key", issues);
  if (s3.retry && s3.retry.max_backoff_ms < s3.retry.initial_backoff_ms)
    issues.push({ path: at("s3", "retry", "max_backoff_ms"), message: `must be at least initial_backoff_ms (${s3.retry.initial_backoff_ms}), got ${s3.retry.max_backoff_ms}` });
  const nameProblem = bucketNameProblem(s3.bucket);
  if (nameProblem) issues.push({ path: at("s3", "bucket"), message: nameProblem });

  checkRules(b.auth.claims, at("auth", "claims"), issues);
  if (b.auth.claims.length > 0 && !b.auth.enabled) issues.push({ path: at("auth", "claims"), message: "claim rules need auth.enabled: true" });
  issues.push(...bucketWriteIssues(b, at));
  const az = b.authorization;
  checkUrl(az?.opa_url, at("authorization", "opa_url"), "credentials in the URL are not supported", issues);
  checkUrl(az?.openfga_endpoint, at("authorization", "openfga_endpoint"), "put the OpenFGA token in openfga_api_token", issues);
  if (az?.type === "opa") {
    if (!az.opa_url) issues.push({ path: at("authorization", "opa_url"), message: "required for type opa: the OPA server's URL (`opa_url: http://127.0.0.1:8181`)" });
    if (!az.opa_policy_path) issues.push({ path: at("authorization", "opa_policy_path"), message: "required for type opa: the policy rule asked, as a path (`opa_policy_path: yatagarasu/allow`)" });
  }
  if (az?.type === "openfga") {
    const tokenProblem = headerCredentialProblem("openfga_api_token", az.openfga_api_token, "OpenFGA");
    if (tokenProblem) issues.push({ path: at("authorization", "openfga_api_token"), message: tokenProblem });
    if (!az.openfga_endpoint) issues.push({ path: at("authorization", "openfga_endpoint"), message: "required for type openfga: the OpenFGA server's URL (`openfga_endpoint: http://127.0.0.1:8080`)" });
    if (!az.openfga_store_id) issues.push({ path: at("authorization", "openfga_store_id"), message: "required for type openfga: the id of the store its checks are asked in (`openfga_store_id: 01H…`)" });
    if (!b.auth.enabled) issues.push({ path: at("authorization"), message: "openfga needs an authenticated user: set auth.enabled: true" });
  }
  for (const list of ["allowlist", "blocklist"] as const)
    b.ip_filter[list].forEach((c, j) => {
      const problem = cidrProblem(c);
      if (problem !== undefined) issues.push({ path: at("ip_filter", list, j), message: problem });
    });
}
