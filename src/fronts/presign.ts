/**
 * Presigned URLs for browsers (apps that hold a JWT, not AWS keys):
 *
 *   POST /<prefix>/<key>?presign&method=PUT[&expires=300][&content_type=image/png]
 *   Authorization: Bearer <JWT>
 *   → 200 {"url": "http://s3.example.com:9000/<bucket>/<key>?X-Amz-…", "method": "PUT",
 *          "expires_at": "2026-…Z", "headers": {"content-type": "image/png"}}
 *
 *   POST /<prefix>/<key>?presign&method=POST[&expires=300][&content_type=…][&max_size=10485760]
 *        [&success_action_status=201 | &success_action_redirect=https://app.example.com/done]
 *   → 200 {"url": "http://s3.example.com:9000/<bucket>", "method": "POST", "expires_at": "…",
 *          "fields": {"key": "<key>", "policy": "…", "x-amz-signature": "…", …}}
 *   S3's browser form upload (the S3 front's PostObject): a form or FormData with these fields,
 *   then the file as the last field named `file`. The policy allows exactly this key, sizes
 *   0..max_size (default server.security_limits.max_body_size) and, with content_type, only that Content-Type.
 *
 * The request is the action it presigns (s3:PutObject or s3:GetObject) on the plain front: it
 * passes the bucket's admission, the token's verification, the claim rules (write_claims for a
 * PUT) and the bucket's authorizer (OPA's `method`: the URL's, src/proxy/phases/authorize.ts), so
 * a token that may not write gets no PUT URL. The URL is
 * SigV4 query-signed for the S3 front with STS session credentials minted for that token
 * (src/fronts/s3/sts.ts: the token's claims travel in the session, X-Amz-Security-Token carries
 * it), so the S3 front checks the same user's rights again when the URL is used. Nothing is stored.
 *
 * - expires: 1..s3_api.presign_max_seconds (default that maximum), and never past the token's exp.
 * - content_type (PUT only): signed, so the upload must send exactly that Content-Type; it is
 *   listed in `headers`, the headers the client must send.
 * - meta_<name>=<value> (PUT and POST): the object's x-amz-meta-<name>, signed (PUT: listed in
 *   `headers`; POST: a field the policy fixes). A page cannot add metadata of its own to a URL: an
 *   x-amz-meta-* header the URL does not sign is S3's 403 (HeadersNotSigned), a form field the
 *   policy does not name S3's 403 too.
 * - success_action_status / success_action_redirect (POST): fields the policy fixes, as S3's.
 * - response_content_disposition (GET): signed into the URL (`attachment; filename="a.pdf"`: a
 *   cross-origin <a download> is ignored by browsers, so a download link needs the header).
 * - The URL's origin: s3_api.public_url, else the plain request's host name with the S3
 *   listener's scheme and port. Path-style (/<bucket name>/<key>), which every S3 front request
 *   may use.
 */
import { S3_FRONT_BUCKET_NAME } from "../config/s3-api.ts";
import { queryTokenNames } from "../auth/sources.ts";
import { invalidTokenHeaders, keyRefOf } from "../auth/authenticator.ts";
import { ProxyError } from "../errors.ts";
import type { RequestContext } from "../proxy/context.ts";
import { ALGORITHM, amzDate, canonicalHeaderValue, canonicalQuery, canonicalRequest, credentialScope, deriveSigningKey, signature, stringToSign, UNSIGNED_PAYLOAD, uriEncode } from "../s3/sigv4.ts";
import { bucketFromHost } from "./s3/route.ts";
import { issueSession } from "./s3/sts.ts";
import { uploadLimit, uploadLimitSource } from "./plain-write.ts";
import { MAX_USER_METADATA_BYTES } from "./s3/writes.ts";

export interface PresignParams {
  method: "GET" | "PUT" | "POST";
  /** Seconds (already bounded by presign_max_seconds). */
  expires: number;
  contentType: string | undefined;
  /** POST: the largest file the policy allows. */
  maxSize?: number;
  /** POST: the form's success_action_status (200, 201 or 204) or success_action_redirect, fixed by the policy. */
  successStatus?: string;
  successRedirect?: string;
  /** GET: response-content-disposition, signed into the URL (a download link: `attachment; filename=…`). */
  responseContentDisposition?: string;
  /** PUT and POST: the object's user metadata (x-amz-meta-<name>: value), names lower-case, sorted. */
  metadata?: Array<[string, string]>;
}

/** The plain-front context of a presign request (set by the route phase). */
export type PresignContext = RequestContext & { presign?: PresignParams };

/** s3_api.presign_max_seconds when unset. */
const DEFAULT_MAX_SECONDS = 900;

const bad = (detail: string) => new ProxyError("BadRequest", { detail });
/** Printable ASCII without separators that could end the header: what a Content-Type may be. */
const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;

/**
 * The presign parameters of `?presign&…` (route time, before authentication: only the config is
 * read). 501 when this proxy cannot issue presigned URLs, 400 for a bad parameter.
 */
export function parsePresign(ctx: RequestContext): PresignParams {
  const api = ctx.rt.s3Api;
  if (api === undefined || api.sts === undefined) {
    throw new ProxyError("NotImplemented", { detail: "Presigned URLs need the S3 API with STS sessions (s3_api.enabled and s3_api.sts)" });
  }
  if (!S3_FRONT_BUCKET_NAME.test(ctx.bucketName)) throw new ProxyError("NotImplemented", { detail: "This bucket's name cannot be addressed on the S3 API" });
  if (ctx.key === "") throw bad("A presigned URL names an object: the path has no object key");
  const q = new URLSearchParams(ctx.query);
  // (a repeated parameter was read as its first value: `method=PUT&method=GET` made a PUT URL)
  for (const name of PARAMETERS) if (q.getAll(name).length > 1) throw bad(`${name} is given more than once`);
  // (an unknown one was ignored: `content-type=image/png` or `expires_in=60` gave a URL without
  // the constraint its caller asked for, any Content-Type or the longest expiry)
  // (the caller's token may be a query parameter too: jwt.token_sources of type query)
  const tokenNames = queryTokenNames(ctx.rt.config.jwt?.token_sources ?? []);
  for (const name of q.keys()) if (name !== "presign" && !PARAMETERS.includes(name) && !tokenNames.includes(name) && !name.startsWith(META)) throw bad(`Unknown parameter ${JSON.stringify(name.slice(0, 64))}: a presign request takes ${PARAMETERS.join(", ")} and ${META}<name>`);
  const method = q.get("method")?.toUpperCase();
  // (a page that POSTs its parameters as a JSON or form body, {"method":"PUT"}, was told "method
  // must be PUT, POST or GET", as if its PUT were refused: the body is not read)
  if (method === undefined) throw bad("method is required in the query string: ?presign&method=PUT, POST or GET (a presign request's parameters are read from the query only, never from its body)");
  // Parameters sent as a body with `method` in the query (a page's fetch or axios.post(url,
  // {content_type, expires})) were ignored without a word: a URL without the Content-Type condition
  // and with the longest expiry. A body that can hold a parameter is refused; none, or axios's
  // empty `{}`, is fine (a header read: the body itself is never read).
  const headers = ctx.req.headers;
  const length = headers.get("content-length");
  if ((length !== null && length.trim() !== "" && !/^\s*[0-2]\s*$/.test(length)) || headers.has("transfer-encoding")) {
    throw bad("A presign request's parameters are read from the query string only, never from its body: send them there (?presign&method=PUT&expires=300&content_type=...) and no body");
  }
  if (method !== "GET" && method !== "PUT" && method !== "POST") throw bad("method must be PUT, POST or GET");
  const max = ctx.rt.config.s3_api!.presign_max_seconds ?? DEFAULT_MAX_SECONDS;
  const e = q.get("expires");
  let expires = max;
  if (e !== null) {
    if (!/^\d{1,16}$/.test(e) || Number(e) < 1 || Number(e) > max) throw bad(`expires must be a whole number of seconds from 1 to ${max}`);
    expires = Number(e);
  }
  const contentType = q.get("content_type") ?? undefined;
  if (contentType !== undefined) {
    if (method === "GET") throw bad("content_type applies to PUT and POST only");
    if (!CONTENT_TYPE.test(contentType)) throw bad("content_type must be 1-255 printable ASCII characters");
  }
  const out: PresignParams = { method, expires, contentType };
  const size = q.get("max_size");
  if (size !== null) {
    if (method !== "POST") throw bad("max_size applies to POST only");
    // (one bound, the one that holds: a size over 5 GiB was told "at most 5368709120", and one
    // under it "at most" max_body_size, two limits for one parameter)
    const limit = uploadLimit(ctx);
    if (!/^\d{1,16}$/.test(size) || Number(size) > limit) throw bad(`max_size must be a whole number of bytes from 0 to ${limit} (${uploadLimitSource(ctx)})`);
  }
  if (method === "POST" && size !== null) out.maxSize = Number(size);
  const status = q.get("success_action_status");
  const redirect = q.get("success_action_redirect");
  if (status !== null || redirect !== null) {
    if (method !== "POST") throw bad("success_action_status and success_action_redirect apply to POST only");
    if (status !== null && redirect !== null) throw bad("give success_action_status or success_action_redirect, not both");
    if (status !== null) {
      if (status !== "200" && status !== "201" && status !== "204") throw bad("success_action_status must be 200, 201 or 204");
      out.successStatus = status;
    }
    if (redirect !== null) {
      if (!REDIRECT.test(redirect) || !URL.canParse(redirect)) throw bad("success_action_redirect must be an http(s) URL of at most 1024 printable ASCII characters");
      out.successRedirect = redirect;
    }
  }
  const disposition = q.get("response_content_disposition");
  if (disposition !== null) {
    if (method !== "GET") throw bad("response_content_disposition applies to GET only");
    if (!CONTENT_TYPE.test(disposition)) throw bad("response_content_disposition must be 1-255 printable ASCII characters (a non-ASCII file name goes in filename*=UTF-8''…, percent-encoded)");
    out.responseContentDisposition = disposition;
  }
  const metadata = presignMetadata(q, method);
  if (metadata !== undefined) out.metadata = metadata;
  return out;
}

/** The prefix of a presign request's metadata parameters: meta_<name>=<value> is x-amz-meta-<name>. */
const META = "meta_";
/** A metadata name (after x-amz-meta-): letters, digits, '-', '_' and '.', as header names carry them through proxies. */
const META_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
/** A metadata value: printable ASCII, no white space at either end (a browser trims it from a header value). */
const META_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** The meta_<name> parameters as sorted [name, value] pairs (undefined when there are none); 400 for a bad one. */
function presignMetadata(q: URLSearchParams, method: "GET" | "PUT" | "POST"): Array<[string, string]> | undefined {
  const out: Array<[string, string]> = [];
  // (a Set, and the size checked as each one is added: this runs before the token is checked, and
  // a request line of thousands of meta_<name> parameters, each name compared with every one
  // before it, held the event loop ~0.2 s per anonymous request)
  const names = new Set<string>();
  let bytes = 0;
  for (const [param, value] of q) {
    if (!param.startsWith(META)) continue;
    if (method === "GET") throw bad(`${META}<name> applies to PUT and POST only`);
    const name = param.slice(META.length).toLowerCase();
    const shown = JSON.stringify(param.slice(0, 64));
    if (!META_NAME.test(name)) throw bad(`${shown}: a metadata name (after ${META}) is 1-128 letters, digits, '-', '_' or '.', starting with a letter or digit`);
    if (names.has(name)) throw bad(`${shown} is given more than once`);
    if (!META_VALUE.test(value)) throw bad(`${shown}: a metadata value is printable ASCII without white space at either end (percent-encode other characters)`);
    bytes += name.length + value.length;
    // S3's 2 KiB of user metadata (names and values), which the upload would be refused for (MetadataTooLarge)
    if (bytes > MAX_USER_METADATA_BYTES) throw bad(`The metadata takes more than ${MAX_USER_METADATA_BYTES} bytes (names and values) with ${shown}; S3 takes at most ${MAX_USER_METADATA_BYTES}`);
    names.add(name);
    out.push([name, value]);
  }
  return out.length === 0 ? undefined : out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The parameters parsePresign reads: each may be given once. */
const PARAMETERS = ["method", "expires", "content_type", "max_size", "success_action_status", "success_action_redirect", "response_content_disposition"];

/** An http(s) URL a form upload may be redirected to (printable ASCII, S3's length bound). */
const REDIRECT = /^https?:\/\/[\x21-\x7e]{1,1016}$/;

/** The scheme://host[:port] browsers reach the S3 listener at. */
export function publicOrigin(ctx: RequestContext): string {
  const cfg = ctx.rt.config;
  const s3 = cfg.s3_api!;
  if (s3.public_url !== undefined) return new URL(s3.public_url).origin;
  if (s3.port === 0) throw new ProxyError("NotImplemented", { detail: "Set s3_api.public_url: the S3 API listens on a port chosen at start" });
  const host = ctx.req.headers.get("host") ?? "";
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.exec(host);
  const scheme = cfg.server.https?.enabled ? "https" : "http";
  // (the pattern lets through names that URLs refuse, `999.1.1.1` or `[:::]`: they threw, a 500)
  const url = m === null ? null : URL.parse(`${scheme}://${m[1]}:${s3.port}`);
  if (url === null) throw bad("The Host header does not name a host (or set s3_api.public_url)");
  return url.origin;
}

/** What a presigned URL or POST policy names and is signed with. */
export interface PresignBase {
  /** scheme://host[:port] */
  origin: string;
  bucket: string;
  key: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** X-Amz-Security-Token (always, for our sessions; absent only to replay AWS's example). */
  sessionToken?: string;
  /** ms since the epoch; the X-Amz-Date (whole seconds). */
  now: number;
  contentType?: string;
  /** The origin names the bucket (`<bucket>.<s3_api.domain>`): the URL's path is the key alone. */
  virtualHosted?: boolean;
  /** x-amz-meta-<name>: value pairs, names lower-case and sorted: signed headers (PUT), fields the policy fixes (POST). */
  metadata?: Array<[string, string]>;
}

export interface PresignInput extends PresignBase {
  method: "GET" | "PUT";
  expires: number;
  /** Signed into the query (GET). */
  responseContentDisposition?: string;
}

/** A SigV4 query-signed URL (UNSIGNED-PAYLOAD; host and any content-type signed). Pure. */
export function presignUrl(i: PresignInput): string {
  const host = new URL(i.origin).host;
  const date = amzDate(new Date(i.now));
  const scope = credentialScope(date.slice(0, 8), i.region, "s3");
  // "" bucket: virtual-hosted style (the origin names the bucket), as in AWS's example
  const path = (i.bucket === "" || i.virtualHosted === true ? "" : "/" + uriEncode(i.bucket, true)) + "/" + uriEncode(i.key, false);
  let block = "";
  let signed = "host";
  if (i.contentType !== undefined) {
    block = "content-type:" + canonicalHeaderValue(i.contentType) + "\n";
    signed = "content-type;host";
  }
  block += "host:" + host + "\n";
  // (x-amz-meta-* sort after host; the pairs come sorted by name)
  for (const [name, value] of i.metadata ?? []) {
    block += "x-amz-meta-" + name + ":" + canonicalHeaderValue(value) + "\n";
    signed += ";x-amz-meta-" + name;
  }
  const params: Array<[string, string]> = [
    ["X-Amz-Algorithm", ALGORITHM],
    ["X-Amz-Credential", `${i.accessKeyId}/${scope}`],
    ["X-Amz-Date", date],
    ["X-Amz-Expires", String(i.expires)],
    ["X-Amz-SignedHeaders", signed],
  ];
  if (i.sessionToken !== undefined) params.push(["X-Amz-Security-Token", i.sessionToken]);
  if (i.responseContentDisposition !== undefined) params.push(["response-content-disposition", i.responseContentDisposition]);
  const query = canonicalQuery(params);
  const creq = canonicalRequest(i.method, path, query, block, signed, UNSIGNED_PAYLOAD);
  const sig = signature(deriveSigningKey(i.secretAccessKey, date.slice(0, 8), i.region, "s3"), stringToSign(date, scope, creq));
  return `${i.origin}${path}?${query}&X-Amz-Signature=${sig}`;
}

export interface PresignPostInput extends PresignBase {
  /** ms since the epoch: the policy's expiration. */
  expiresAt: number;
  maxSize: number;
  successStatus?: string;
  successRedirect?: string;
}

/** An S3 POST policy for exactly one key and its signed form fields (browser form uploads). Pure. */
export function presignPost(i: PresignPostInput): { url: string; fields: Record<string, string> } {
  const date = amzDate(new Date(i.now));
  const fields: Record<string, string> = {
    key: i.key,
    "x-amz-algorithm": ALGORITHM,
    "x-amz-credential": `${i.accessKeyId}/${credentialScope(date.slice(0, 8), i.region, "s3")}`,
    "x-amz-date": date,
  };
  if (i.sessionToken !== undefined) fields["x-amz-security-token"] = i.sessionToken;
  if (i.contentType !== undefined) fields["Content-Type"] = i.contentType;
  if (i.successStatus !== undefined) fields.success_action_status = i.successStatus;
  if (i.successRedirect !== undefined) fields.success_action_redirect = i.successRedirect;
  for (const [name, value] of i.metadata ?? []) fields["x-amz-meta-" + name] = value;
  const conditions: unknown[] = [{ bucket: i.bucket }, ...Object.entries(fields).map(([k, v]) => ({ [k]: v })), ["content-length-range", 0, i.maxSize]];
  const policy = Buffer.from(JSON.stringify({ expiration: new Date(i.expiresAt).toISOString(), conditions })).toString("base64");
  fields.policy = policy;
  const key = deriveSigningKey(i.secretAccessKey, date.slice(0, 8), i.region, "s3");
  fields["x-amz-signature"] = new Bun.CryptoHasher("sha256", key).update(policy).digest("hex");
  return { url: i.virtualHosted === true ? `${i.origin}/` : `${i.origin}/${uriEncode(i.bucket, true)}`, fields };
}

/** Phase part: the URL for an authenticated, authorized presign request. */
export function servePresign(ctx: RequestContext): Response {
  const p = (ctx as PresignContext).presign!;
  const api = ctx.rt.s3Api!;
  const claims = ctx.claims ?? {};
  const sub = claims.sub;
  if (typeof sub !== "string" || sub === "") throw bad("The token has no sub claim: a presigned URL is issued for a user");
  const now = Date.now();
  // Never past the token's own expiry: the URL must not outlive the credential it stands for.
  let until = now + p.expires * 1000;
  if (typeof claims.exp === "number" && Number.isFinite(claims.exp)) until = Math.min(until, claims.exp * 1000);
  const seconds = Math.floor((until - Math.floor(now / 1000) * 1000) / 1000);
  if (seconds < 1) {
    const detail = "The token expires too soon to presign a URL";
    throw new ProxyError("InvalidToken", { detail, headers: invalidTokenHeaders(detail) });
  }
  const signedAt = Math.floor(now / 1000) * 1000;
  // A PUT URL is an upload through this front: its body is held to this front's limit (max_body_size), not the S3 front's 5 GiB.
  const maxBodyBytes = p.method === "PUT" ? uploadLimit(ctx) : undefined;
  const session = issueSession({ sessionKey: api.sts!.sessionKey, subject: sub, claims, expiresAt: signedAt + seconds * 1000, now, keyRef: keyRefOf(claims), maxBodyBytes });
  if (session.kind !== "ok") throw bad(`A session cannot be made for this token: ${session.message}`);
  ctx.session = session.sessionId;
  const expiresAtMs = signedAt + seconds * 1000;
  const answer = (url: string, method: string, rest: Record<string, unknown>): Response => {
    const body = JSON.stringify({ url, method, expires_at: new Date(expiresAtMs).toISOString(), ...rest });
    ctx.bytes = Buffer.byteLength(body);
    return new Response(body, { status: 200, headers: { "content-type": "application/json", "cache-control": "no-store" } });
  };
  const origin = publicOrigin(ctx);
  // A host the S3 API reads as virtual-hosted (`<bucket>.<s3_api.domain>`, e.g. the plain front
  // reached at such a name): a path-style URL there would name key `<bucket>/<key>` of that bucket
  // (a presigned PUT stored the upload under another key). Its own bucket: virtual-hosted; another: refused.
  const hostBucket = bucketFromHost(new URL(origin).host, api.domain);
  if (hostBucket !== undefined && hostBucket !== ctx.bucketName) throw bad(`The S3 API reads the host ${new URL(origin).hostname} as bucket ${hostBucket}: reach this front at another name, or set s3_api.public_url`);
  const base: PresignBase = {
    origin,
    virtualHosted: hostBucket !== undefined,
    bucket: ctx.bucketName,
    key: ctx.key,
    region: api.region,
    accessKeyId: session.accessKeyId,
    secretAccessKey: session.secretAccessKey,
    sessionToken: session.sessionToken,
    now: signedAt,
    contentType: p.contentType,
    metadata: p.metadata,
  };
  if (p.method === "POST") {
    // (a form upload is one through this front too: held to max_body_size by default, as a PUT URL;
    // a larger max_size is refused by parsePresign)
    const post = presignPost({ ...base, expiresAt: expiresAtMs, maxSize: p.maxSize ?? uploadLimit(ctx), successStatus: p.successStatus, successRedirect: p.successRedirect });
    return answer(post.url, "POST", { fields: post.fields });
  }
  const url = presignUrl({ ...base, method: p.method, expires: seconds, responseContentDisposition: p.responseContentDisposition });
  const headers: Record<string, string> = {};
  if (p.contentType !== undefined) headers["content-type"] = p.contentType;
  for (const [name, value] of p.metadata ?? []) headers["x-amz-meta-" + name] = value;
  return answer(url, p.method, { headers });
}
