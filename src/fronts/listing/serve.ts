/**
 * Phase: answer a folder's index (the plain front's GET/HEAD of a key "" or ending in "/" on a
 * bucket with `listing.enabled`). Runs after admission, authentication and authorization, exactly
 * where an object would be served.
 *
 * Upstream: one ListObjectsV2 with the folder as prefix, "/" as delimiter, encoding-type=url (any
 * key survives the XML) and the client's `?continuation-token=`. The prefix is always the routed
 * key, never the client's query, and parse.ts drops anything outside it: a listing never shows
 * more than the folder the path names. S3's errors map as an object's do (errorFromResponse).
 *
 * Answer: HTML when the client accepts text/html (browsers), JSON otherwise; never cached
 * (Cache-Control: no-store: a listing changes with every upload), and the HTML under a CSP that
 * allows no script at all, in case a key ever slipped through the escaping.
 */
import { readUpstreamCapped, utf8Text } from "../../http/read-capped.ts";
import { ProxyError } from "../../errors.ts";
import type { RequestContext } from "../../proxy/context.ts";
import { errorFromResponse } from "../../s3/errors.ts";
import { listObjectsV2 } from "../../s3/operations/list-objects.ts";
import { askResumed, laterEntry, nextToken, readToken, type LastEntry, type PageAsk } from "../s3/list-token.ts";
import { MAX_LISTING_BYTES, parseListing } from "./parse.ts";
import { encodePath, type RenderInput, renderHtml, renderJson } from "./render.ts";
import { rawQueryPair } from "../../auth/sources.ts";
import { isControlTarget } from "../../control/paths.ts";
import { evaluateConditions } from "../../http/conditional.ts";

/**
 * Longest continuation token taken from a client. S3's grows with the key it resumes after (about
 * 9 characters per 8 bytes of key: ~60 for a short key, over 1,000 for one near S3's 1,024 bytes),
 * and other stores' (base64 of the key, or of a JSON record holding it) grow as fast or faster: a
 * cap of 1,024 refused the next page of a folder whose keys are long. The request target's own
 * limit (server.security_limits.max_uri_length, 8192 by default) bounds it too.
 */
const MAX_TOKEN_LENGTH = 8192;

const HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Whether the Accept header prefers HTML: text/html (or text/*) named with a non-zero q at least as
 * high as JSON's (application/json, application/*, or * / * standing for it). A client that names
 * no HTML type (curl's * / *, fetch's default) gets JSON.
 */
export function wantsHtml(accept: string | null): boolean {
  if (accept === null) return false;
  let html = -1;
  let htmlSpecific = -1; // 2: text/html, 1: text/*
  let json = -1;
  let jsonSpecific = -1; // 2: application/json, 1: application/*, 0: */*
  for (const part of accept.split(",")) {
    const [type = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    const qp = params.find((p) => p.startsWith("q="));
    const q = qp === undefined ? 1 : Number(qp.slice(2));
    if (!Number.isFinite(q)) continue;
    // the most specific range that matches a type decides its q (RFC 9110 §12.5.1)
    const h = type === "text/html" ? 2 : type === "text/*" ? 1 : -1;
    if (h > htmlSpecific) [html, htmlSpecific] = [q, h];
    const j = type === "application/json" ? 2 : type === "application/*" ? 1 : type === "*/*" ? 0 : -1;
    if (j > jsonSpecific) [json, jsonSpecific] = [q, j];
  }
  return html > 0 && html >= json;
}

/** The client's continuation token ("" or absent: the first page). */
function tokenOf(query: string): string | undefined {
  if (query === "") return undefined;
  let token: string | null;
  try {
    token = new URLSearchParams(query.slice(1)).get("continuation-token");
  } catch {
    throw new ProxyError("BadRequest", { detail: "The query string is malformed" });
  }
  if (token === null || token === "") return undefined;
  if (token.length > MAX_TOKEN_LENGTH) throw new ProxyError("BadRequest", { detail: "The continuation token is too long" });
  return token;
}

/**
 * A page's last entry: its last key or its last folder as the store listed them (the next page
 * starts past every key in a folder), the later of the two, as the S3 front's tokens take it
 * (list.ts). A store that lists in an order of its own (UTF-16 code units, where S3 compares UTF-8
 * bytes) takes start-after in that order too: the page's greatest key in S3's order, which it had
 * listed before others, listed those again.
 */
function lastEntry(entries: ReadonlyArray<{ key: string; folder: boolean }>): LastEntry | undefined {
  let key: LastEntry | undefined;
  let folder: LastEntry | undefined;
  for (const e of entries) {
    if (e.folder) folder = { after: e.key, past: true };
    else key = { after: e.key, past: false };
  }
  return folder === undefined ? key : laterEntry(key, folder);
}

async function readListing(res: Response): Promise<string> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readUpstreamCapped(res, MAX_LISTING_BYTES);
  } catch (err) {
    if (err instanceof ProxyError) throw err; // a coding it cannot read
    throw new ProxyError("BadGateway", { detail: "The upstream connection failed while sending the listing", cause: err });
  }
  if (bytes === undefined) throw new ProxyError("BadGateway", { detail: "The upstream listing is too large" });
  const text = utf8Text(bytes);
  if (text === undefined) throw new Error("a listing that is not UTF-8"); // (a listing that cannot be read)
  return text;
}

/**
 * The query pair that authenticated this request, when the bucket needs a token and it came from a
 * query parameter: the index's links carry it (a browser following them sends no header). A
 * token from a header is not copied into links.
 */
function carriedToken(ctx: RequestContext): string | undefined {
  const auth = ctx.rt.auth;
  if (!ctx.bucket!.authRequired || auth === undefined || ctx.query === "") return undefined;
  const query = ctx.query;
  const found = auth.extract(ctx.req.headers, query);
  if (found === null || found.source.type !== "query") return undefined;
  return rawQueryPair(query.slice(1), found.source.name ?? "");
}

/** A client's continuation-token that this listing did not give (another folder's, altered, or an old one past its grace). */
const foreignToken = (cause?: unknown) => new ProxyError("BadRequest", { detail: "The continuation-token is not one this listing gave: start again without it", cause });

export async function serveListing(ctx: RequestContext): Promise<Response> {
  const bucket = ctx.bucket!;
  const prefix = ctx.key;
  const token = tokenOf(ctx.query);
  // The index's continuation tokens are the proxy's own, as the S3 front's (s3/list-token.ts):
  // valid on every replica of the bucket, so a listing failed over between pages goes on where it
  // was (the replica that gave the token is asked with its own while it is healthy, any other with
  // start-after), and no upstream detail shows in the links.
  const binding = { bucket: bucket.name, prefix, delimiter: "/" };
  const read = token === undefined ? undefined : readToken(bucket.cfg, binding, token);
  if (token !== undefined && read === undefined) throw foreignToken();
  const from = read === "raw" ? undefined : read;
  let served = "";
  const res = await bucket.upstream.read(
    ctx.req.signal,
    ctx.timing,
    async (u, maxAttempts, replica) => {
      served = replica ?? "";
      const ask = (page: PageAsk) =>
        listObjectsV2(u, { prefix: prefix === "" ? undefined : prefix, delimiter: "/", maxKeys: bucket.cfg.listing.max_keys, encodingType: "url", ...page }, { signal: ctx.req.signal, timing: ctx.timing, maxAttempts });
      if (from === undefined) return ask({ continuationToken: token });
      return (await askResumed(from, served, ask)).res;
    },
    from?.replica,
  );
  if (res.status !== 200) {
    const err = await errorFromResponse(res, "GET");
    // S3's 400 for a token it did not issue (the prefix is the routed folder, already checked).
    if (token !== undefined && err.code === "BadRequest" && (err.cause as { s3Code?: string } | undefined)?.s3Code === "InvalidArgument") {
      throw foreignToken(err.cause);
    }
    throw err;
  }
  let page;
  try {
    page = parseListing(await readListing(res), prefix);
  } catch (err) {
    if (err instanceof ProxyError) throw err;
    throw new ProxyError("BadGateway", { detail: "The upstream sent a listing that cannot be read", cause: err });
  }
  // (a page holding only the folder's marker object, the prefix itself, ends at that key)
  // (a truncated page with neither a token nor an entry to resume after cannot be gone on from)
  if (page.nextToken !== undefined) {
    const last = lastEntry(page.entries) ?? (page.marker ? { after: prefix, past: false } : undefined);
    page = { ...page, nextToken: page.nextToken === "" && last === undefined ? undefined : nextToken(bucket.cfg, binding, served, page.nextToken, last, from ?? { after: "", past: false }) };
  }
  // A folder with nothing under it and no marker object is no folder: a mistyped path answered 200
  // "This folder is empty." (S3 has no folders; its website endpoint answers such a path 404).
  if (prefix !== "" && token === undefined && page.entries.length === 0 && page.nextToken === undefined && !page.marker) {
    throw new ProxyError("NoSuchKey", { detail: "Nothing is stored under this folder" });
  }
  // An index has no entity-tag and no date, yet a precondition still holds or fails (RFC 9110 §13.2.1
  // applies to every 2xx): If-Match with a tag cannot match (412), If-None-Match: * matches (304);
  // they were ignored, and a client relying on If-Match got the page as if it had matched.
  const cond = evaluateConditions(ctx.req.headers, {}, ctx.method);
  if (cond === "precondition-failed") throw new ProxyError("PreconditionFailed");
  if (cond === "not-modified") return new Response(null, { status: 304, headers: { "cache-control": "no-store", vary: "Accept" } });
  const mount = bucket.cfg.path_prefix === "/" ? "" : bucket.cfg.path_prefix;
  // A longer path_prefix, or the control plane's paths, take some of a bucket's keys: their links
  // would open those. (isControlTarget reads a target as sent: a key `%68ealth` is not /health.)
  const routesHere = (path: string) => !isControlTarget(encodePath(path)) && ctx.rt.router.match(path)?.bucket === bucket;
  const input: RenderInput = { page, mount, bucket: bucket.name, carry: carriedToken(ctx), routesHere };
  const html = wantsHtml(ctx.req.headers.get("accept"));
  const body = new TextEncoder().encode(html ? renderHtml(input) : renderJson(input));
  const headers: Record<string, string> = {
    "content-type": html ? "text/html; charset=utf-8" : "application/json",
    "cache-control": "no-store",
    vary: "Accept",
    "x-content-type-options": "nosniff",
    "content-length": String(body.byteLength),
  };
  if (html) headers["content-security-policy"] = HTML_CSP;
  if (ctx.method === "HEAD") return new Response(null, { status: 200, headers });
  ctx.bytes = body.byteLength;
  return new Response(body, { status: 200, headers });
}
