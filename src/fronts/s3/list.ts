/**
 * ListObjects V1 and V2, and ListObjectVersions, on the S3 front: the client's listing parameters (only those, and the
 * x-amz-optional-object-attributes header) go to the
 * upstream through src/s3/operations (signed with the bucket's credentials), and S3's answer comes
 * back as it is, with two changes: `<Name>` says the proxy bucket's name, which is the bucket the
 * client asked for, not the upstream bucket behind it (that one is never revealed), and every
 * `<Owner>` is the requesting identity's (xml.ts maskOwners), never the upstream's principal.
 *
 * Parameters S3 validates itself (max-keys, encoding-type) are checked here first, with S3's codes,
 * so a bad one never costs an upstream request, as is a V2 continuation token (the proxy's own:
 * list-token.ts). An upstream 400 is relayed with its code; anything else is mapped like an object error.
 */
import { ProxyError } from "../../errors.ts";
import { readUpstreamCapped, utf8Text } from "../../http/read-capped.ts";
import { errorFromResponse } from "../../s3/errors.ts";
import { listObjectsV1, listObjectsV1Params, listObjectsV2, listObjectsV2Params, listObjectVersions, listObjectVersionsParams, OPTIONAL_OBJECT_ATTRIBUTES } from "../../s3/operations/index.ts";
import type { RequestContext } from "../../proxy/context.ts";
import { s3Error, S3_ERRORS, type S3ErrorCode } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import { xmlResponse } from "./operations.ts";
import { errorOf, tryParse, upstreamBucketsOf } from "./relay.ts";
import { requestHeaders } from "./writes.ts";
import { controlsAsReferences, el, escapeListingText, escapeXml, isWellFormedResult, markupOnly, maskOwners, quoteListingEtags, rootOf, setFirstElementText } from "./xml.ts";
import { decodeEntities } from "./xml-reader.ts";
import { askResumed, isUrlEncodedForm, laterEntry, nextToken, pastPrefix, readToken, s3UrlDecode, s3UrlEncode, type LastEntry, type ListBinding } from "./list-token.ts";
import { readableEntryFields } from "./list-fields.ts";
import type { BucketUpstream } from "../../s3/upstream.ts";
import type { OperationContext } from "../../s3/operations/common.ts";
import type { ListObjectsV2Params } from "../../s3/operations/list-objects.ts";

/** A listing page is at most 1000 keys of at most 1 KiB each, plus markup: far below this. */
const MAX_LISTING_BYTES = 16 * 1024 * 1024;
/** Digits (leading zeros allowed, as an integer parse reads them; the value is checked below). */
const MAX_KEYS = /^\d{1,64}$/;
/** A negative integer, as S3's integer parse reads it (no more than 10 digits). */
const NEGATIVE = /^-\d{1,10}$/;

function checkParams(q: URLSearchParams, op: "ListObjects" | "ListObjectsV2" | "ListObjectVersions"): void {
  const maxKeys = q.get("max-keys");
  // (an empty one is none: the default page, as MinIO, Ceph RGW and versitygw read it; not sent upstream)
  if (maxKeys !== null && maxKeys !== "" && (!MAX_KEYS.test(maxKeys) || Number(maxKeys) > 2147483647)) {
    // S3 words an integer it read but that is below 0 apart from a value that is no integer (ListObjects V1 and V2)
    if (op !== "ListObjectVersions" && NEGATIVE.test(maxKeys) && Number(maxKeys) < 0 && Number(maxKeys) >= -2147483648) {
      throw s3Fail(s3Error("InvalidArgument", "Argument maxKeys must be an integer between 0 and 2147483647", { ArgumentName: "maxKeys", ArgumentValue: maxKeys }));
    }
    throw s3Fail(s3Error("InvalidArgument", "Provided max-keys not an integer or within integer range", { ArgumentName: "max-keys", ArgumentValue: maxKeys.slice(0, 64) }));
  }
  const encoding = q.get("encoding-type");
  if (encoding !== null && encoding !== "url") {
    throw s3Fail(s3Error("InvalidArgument", "Invalid Encoding Method specified in Request", { ArgumentName: "encoding-type", ArgumentValue: encoding.slice(0, 64) }));
  }
}

/**
 * An upstream 400 keeps S3's code when it is one this front knows with that status
 * (InvalidArgument, ...), with S3's message and ArgumentName ("The continuation token provided is
 * incorrect", continuation-token) when they name nothing of the upstream (relay.ts errorOf);
 * anything else is InvalidArgument.
 */
async function relayClientError(res: Response, upstreamBucket: readonly string[]): Promise<never> {
  const doc = tryParse(await readUpstreamCapped(res, 65536).catch(() => undefined));
  const code = doc?.name === "Error" ? doc.children.find((c) => c.name === "Code")?.text.trim() : undefined;
  if (code === undefined || !Object.hasOwn(S3_ERRORS, code) || S3_ERRORS[code as S3ErrorCode].status !== 400) throw s3Fail(s3Error("InvalidArgument"));
  throw s3Fail(errorOf(400, doc, upstreamBucket));
}

/** The upstream listing, bounded whether or not it came with a Content-Length. */
async function readListing(res: Response): Promise<string> {
  const bytes = await readUpstreamCapped(res, MAX_LISTING_BYTES);
  if (bytes === undefined) throw s3Fail(s3Error("InternalError", "The upstream listing is too large."));
  const text = utf8Text(bytes);
  if (text === undefined) throw s3Fail(s3Error("InternalError", "The upstream's listing could not be read."));
  return text;
}

export async function listObjects(ctx: RequestContext, op: "ListObjects" | "ListObjectsV2" | "ListObjectVersions", query: ReadonlyArray<readonly [string, string]>): Promise<Response> {
  const bucket = ctx.bucket!;
  const q = new URLSearchParams();
  for (const [k, v] of query) q.append(k, v);
  checkParams(q, op);
  if (op === "ListObjectVersions" && q.has("version-id-marker") && !q.get("key-marker")) {
    throw s3Fail(s3Error("InvalidArgument", "A version-id marker cannot be specified without a key marker.", { ArgumentName: "version-id-marker", ArgumentValue: q.get("version-id-marker")! }));
  }
  const call = { signal: ctx.req.signal, timing: ctx.timing };
  // S3 returns the optional fields (RestoreStatus) only when asked: the header goes upstream, and S3 checks its value.
  const optionalObjectAttributes = requestHeaders(ctx).get(OPTIONAL_OBJECT_ATTRIBUTES) ?? undefined;
  // Listings of the current objects fail over between replicas as object reads do (a V1 marker is a
  // key, valid on any replica; V2's continuation tokens are the proxy's own, valid on every replica:
  // see list-token.ts). Versions stay on the primary: their ids are one store's.
  const v2 = op === "ListObjectsV2" ? pageRequest(ctx, q) : undefined;
  // (a V1 marker, a key-marker without its version id, naming a common prefix: asked past it)
  const markerName = op === "ListObjects" ? "marker" : op === "ListObjectVersions" && !q.get("version-id-marker") ? "key-marker" : undefined;
  const marker = markerName === undefined ? undefined : (q.get(markerName) ?? undefined);
  const asked = markerAsked(marker, q.get("prefix") ?? "", q.get("delimiter") ?? "");
  if (asked !== marker) q.set(markerName!, asked!);
  const res =
    v2 !== undefined ? await bucket.upstream.read(call.signal, call.timing, (u, maxAttempts, replica) => v2.send(u, replica, { ...call, maxAttempts }, optionalObjectAttributes), v2.from?.replica)
    : op === "ListObjectVersions" ? await listObjectVersions(bucket.upstream.primary(), { ...listObjectVersionsParams(q), optionalObjectAttributes }, call)
    : await bucket.upstream.read(call.signal, call.timing, (u, maxAttempts) => listObjectsV1(u, { ...listObjectsV1Params(q), optionalObjectAttributes }, { ...call, maxAttempts }));
  if (res.status === 400) return relayClientError(res, upstreamBucketsOf(bucket.upstream));
  if (res.status !== 200) throw await errorFromResponse(res, "GET");
  let xml = await readListing(res);
  // A 200 that is not the listing asked for (an <Error> document, an empty body: a store that failed
  // behind a 200) is S3's InternalError, never relayed as it is (aws-cli took it for an empty
  // bucket, and its text could name the store's internals).
  // (and the root element is the one the operation answers with: an upstream that ignored
  // ?versions and listed the current objects would read as a bucket with no versions)
  xml = readableListing(xml, op === "ListObjectVersions" ? "ListVersionsResult" : "ListBucketResult", q.get("prefix") ?? "");
  // The first <Name> is ListBucketResult's (ListVersionsResult's) own (keys and owners are escaped text or other elements).
  const named = setFirstElementText(xml, "Name", bucket.name);
  // (a control character in a key or an echoed parameter: S3's reference, never raw)
  const resumable = v2 !== undefined ? v2.answer(named) : op === "ListObjectVersions" ? withResumeMarker(named, "NextKeyMarker", "NextVersionIdMarker") : q.get("delimiter") ? withResumeMarker(named, "NextMarker") : named;
  const answered = asked !== marker ? echoedMarker(resumable, op === "ListObjects" ? "Marker" : "KeyMarker", marker!) : resumable;
  return xmlResponse(ctx, controlsAsReferences(maskOwners(answered, ctx.subject ?? "anonymous")));
}

/**
 * A truncated page's resume marker as S3 writes it, when a store left it out: the page's last key
 * or common prefix. ListObjectVersions' NextKeyMarker (with NextVersionIdMarker when the page ends
 * on a version): without it the SDKs stopped there. ListObjects' (V1) NextMarker, carried on S3
 * when asked with a delimiter: without it the SDKs resumed after the page's last <Key>, which sorts
 * before its common prefixes (listed again), or, with no key on the page, stopped there, a listing
 * silently short.
 */
export function withResumeMarker(xml: string, name: "NextKeyMarker" | "NextMarker", idName?: "NextVersionIdMarker" | "NextUploadIdMarker"): string {
  if (elementText(xml, "IsTruncated") !== "true") return xml;
  const given = elementText(xml, name);
  if (given !== undefined && (idName === undefined || elementText(xml, idName) !== undefined)) return xml;
  const encoded = elementText(xml, "EncodingType") === "url";
  const last = lastEntry(xml, encoded, idName === "NextUploadIdMarker");
  if (last === undefined) return xml;
  const id = idName !== undefined && last.version !== undefined ? el(idName, last.version) : "";
  // A store's NextKeyMarker without its id, naming the page's last key: that entry's id with it
  // (resumed with the key alone, the key's versions or uploads after the page were skipped).
  if (given !== undefined) return id !== "" && !last.past && decodedKey(given, encoded) === last.after ? (insertBefore(xml, "IsTruncated", id) ?? xml) : xml;
  return insertBefore(xml, "IsTruncated", `<${name}>${listedText(last.after, encoded)}</${name}>${id}`) ?? xml;
}

/**
 * The marker (V1's marker, a key-marker without its version or upload id) a store is asked with:
 * one that names a common prefix of this listing (`prefix`, then up to the first `delimiter`, as
 * S3's NextMarker does when a page ends on one) is asked past every key under it (pastPrefix), as
 * S3 reads it. A store that lists the prefix a marker falls in again (keys after "a/" are under it)
 * repeated it on the next page, and a paginator asked with one entry a page (the prefix alone,
 * NextMarker "a/" again) never ended.
 */
export function markerAsked(marker: string | undefined, prefix: string, delimiter: string): string | undefined {
  if (marker === undefined || delimiter === "" || !marker.startsWith(prefix)) return marker;
  const at = marker.indexOf(delimiter, prefix.length);
  return at >= 0 && at + delimiter.length === marker.length ? pastPrefix(marker) : marker;
}

/** `xml` with its first `name` element (the echoed marker) saying the client's `marker`, as S3 echoes it. */
export function echoedMarker(xml: string, name: "Marker" | "KeyMarker", marker: string): string {
  const text = listedText(marker, elementText(xml, "EncodingType") === "url");
  return xml.replace(elementRe(name), (_m, p: string) => `<${p}${name}>${text}</${p}${name}>`);
}

/**
 * ListParts' NextPartNumberMarker, S3's (the page's last part number), on a truncated page whose
 * store left it out: without it the SDKs' paginators stopped there (or asked the first page again).
 */
export function withNextPartNumberMarker(xml: string): string {
  if (elementText(xml, "IsTruncated") !== "true" || elementText(xml, "NextPartNumberMarker") !== undefined) return xml;
  let last: string | undefined;
  for (const m of markupOnly(xml).matchAll(elementRe("PartNumber", "g"))) last = m[2]!.trim();
  if (last === undefined || !/^\d{1,10}$/.test(last)) return xml;
  return insertBefore(xml, "IsTruncated", el("NextPartNumberMarker", String(Number(last)))) ?? xml;
}

/** A key, prefix or marker as a listing writes it: url-encoded in an encoding-type=url one, XML-escaped. */
function listedText(s: string, encoded: boolean): string {
  return encoded ? escapeXml(s3UrlEncode(s)) : escapeListingText(s);
}

/**
 * The upstream's listing as it is relayed (its end tags exact, its keys encoded when it says they
 * are and they are not, its bare ETags quoted), once checked: `root` its root element, whole XML,
 * every entry one S3 could give for `prefix` (checkEntries). Linear in the listing's length,
 * hostile ones too.
 */
export function readableListing(xml: string, root: string, prefix: string): string {
  // (and a document that is not XML, cut short or with a DOCTYPE, is not relayed either)
  if (rootOf(xml) !== root || !isWellFormedResult(xml, MAX_LISTING_BYTES)) {
    throw s3Fail(s3Error("InternalError", "The upstream's listing could not be read."));
  }
  xml = exactCloseTags(xml);
  const encoded = elementText(xml, "EncodingType") === "url";
  if (encoded) xml = encodedListing(xml);
  checkEntries(xml, prefix, encoded);
  return quoteListingEtags(xml);
}

const incorrectToken = () => s3Fail(s3Error("InvalidArgument", "The continuation token provided is incorrect", { ArgumentName: "continuation-token" }));

/**
 * One ListObjectsV2 page: the client's continuation token read (refused before any upstream
 * request when it is not this listing's), `send` asking a replica (with the upstream's token on
 * the replica that gave it, start-after elsewhere), `answer` giving the client the proxy's token.
 */
function pageRequest(ctx: RequestContext, q: URLSearchParams) {
  const cfg = ctx.bucket!.cfg;
  const params = listObjectsV2Params(q);
  const binding: ListBinding = { bucket: ctx.bucket!.name, prefix: params.prefix ?? "", delimiter: params.delimiter ?? "" };
  const token = params.continuationToken;
  const read = token === undefined ? undefined : readToken(cfg, binding, token);
  if (token !== undefined && read === undefined) throw incorrectToken();
  const from = read === "raw" ? undefined : read;
  let served = "";
  let resumed = false;
  return {
    from,
    async send(u: BucketUpstream, replica: string | undefined, call: OperationContext, optionalObjectAttributes: string | undefined): Promise<Response> {
      served = replica ?? "";
      resumed = false;
      const ask = (p: Partial<ListObjectsV2Params>) => listObjectsV2(u, { ...params, ...p, optionalObjectAttributes }, call);
      if (from === undefined) return ask({});
      const page = await askResumed(from, served, ask);
      resumed = page.resumed;
      return page.res;
    },
    /** The page as the client gets it: the proxy's tokens, and the client's own start-after echoed. */
    answer(xml: string): string {
      let out = xml;
      const next = elementText(xml, "NextContinuationToken");
      if (next !== undefined) {
        const encoded = elementText(xml, "EncodingType") === "url";
        const last = lastEntry(xml, encoded);
        out = setFirstElementText(out, "NextContinuationToken", nextToken(cfg, binding, served, next, last, from ?? { after: params.startAfter ?? "", past: false }));
      } else if (elementText(xml, "IsTruncated") === "true") {
        // A store that says the page is truncated without a token (S3 always gives one): the
        // proxy's resumes after the page's last entry (start-after), else the paginators end here.
        const last = lastEntry(xml, elementText(xml, "EncodingType") === "url");
        if (last !== undefined) out = insertBefore(out, "IsTruncated", el("NextContinuationToken", nextToken(cfg, binding, served, "", last, last))) ?? out;
      }
      if (token !== undefined) {
        if (resumed) {
          out = removeFirstElement(out, "StartAfter");
          const encoded = elementText(xml, "EncodingType") === "url";
          const echo = el("ContinuationToken", token) + (params.startAfter === undefined ? "" : `<StartAfter>${listedText(params.startAfter, encoded)}</StartAfter>`);
          out = insertBefore(out, "KeyCount", echo) ?? insertBefore(out, "IsTruncated", echo) ?? out;
        } else {
          out = setFirstElementText(out, "ContinuationToken", token);
        }
      }
      return out;
    },
  };
}

const PREFIXED = "(?:[A-Za-z_][A-Za-z0-9_.-]*:)?";
const texts = new Map<string, RegExp>();

function elementRe(name: string, flags = ""): RegExp {
  let re = texts.get(name + flags);
  if (re === undefined) texts.set(name + flags, (re = new RegExp(`<(${PREFIXED})${name}>([^<]*)<\\/\\1${name}>`, flags)));
  return re;
}

/** The text of the first `name` element, its entities decoded. */
function elementText(xml: string, name: string): string | undefined {
  const m = elementRe(name).exec(xml);
  return m === null ? undefined : decodeEntities(m[2]!, true);
}

function removeFirstElement(xml: string, name: string): string {
  return xml.replace(elementRe(name), "");
}

/** `xml` with `text` (markup) before the first `name` element, prefixed as that one is; undefined when there is none. */
function insertBefore(xml: string, name: string, text: string): string | undefined {
  const m = new RegExp(`<(${PREFIXED})${name}>`).exec(xml);
  if (m === null) return undefined;
  const p = m[1]!;
  return xml.slice(0, m.index) + (p === "" ? text : text.replace(/<(\/?)/g, `<$1${p}`)) + xml.slice(m.index);
}

// (an entry's children in any order: MinIO, Ceph and R2 write Size, ETag or LastModified before
// Key; each with a namespace prefix of its own or none, as XML allows: `<Contents><s3:Key>` under
// xmlns:s3, `<Contents xmlns:x="..."><x:Key>`; S3 writes neither, an entry with attributes was not
// checked at all, one whose children were prefixed otherwise was refused)
const ATTRS = "(?:\\s[^<>]*)?(?<!/)>";
const ENTRIES = new RegExp(`<(${PREFIXED})(Contents|Version|DeleteMarker|CommonPrefixes)${ATTRS}([\\s\\S]*?)<\\/\\1\\2>`, "g");
const CHILDREN = new RegExp(`<(${PREFIXED})(Key|Prefix|Size|LastModified|VersionId)${ATTRS}([^<]*)<\\/\\1\\2>`, "g");
/** ListMultipartUploads' entries, and their keys and upload ids (read as an entry's version). */
const UPLOADS = new RegExp(`<(${PREFIXED})(Upload|CommonPrefixes)${ATTRS}([\\s\\S]*?)<\\/\\1\\2>`, "g");
const UPLOAD_CHILDREN = new RegExp(`<(${PREFIXED})(Key|Prefix|UploadId)${ATTRS}([^<]*)<\\/\\1\\2>`, "g");
/** The fields S3 url-encodes in an encoding-type=url listing. */
const ENCODED_FIELDS = new RegExp(`<(${PREFIXED})(Key|Prefix|Delimiter|Marker|NextMarker|StartAfter|KeyMarker|NextKeyMarker)${ATTRS}([^<]*)<\\/\\1\\2>`, "g");

/** Where group `g` of `m` (the last group before the match's end tag) starts in the text searched. */
function groupStart(m: RegExpExecArray | RegExpMatchArray, g: number): number {
  return m.index! + m[0].length - (m[1]!.length + m[2]!.length + 3) - m[g]!.length;
}

/**
 * An element's text as XML reads it: `raw` is what its tags enclose, in `xml` (the document, whole
 * and checked: isWellFormedResult), with CDATA sections taken as they are, comments and processing
 * instructions dropped, references decoded (leniently: S3 writes a key's characters XML 1.0 does
 * not allow as references, &#x1;). Undefined when an element is inside.
 */
function textOf(raw: string): string | undefined {
  if (raw.indexOf("<") < 0) return decodeEntities(raw, true);
  let out = "";
  for (let i = 0; ; ) {
    const lt = raw.indexOf("<", i);
    if ((lt < 0 ? raw.length : lt) > i) out += decodeEntities(raw.slice(i, lt < 0 ? raw.length : lt), true);
    if (lt < 0) return out;
    const [open, close] = raw.startsWith("<![CDATA[", lt) ? ["<![CDATA[", "]]>"] : raw.startsWith("<!--", lt) ? ["<!--", "-->"] : raw.startsWith("<?", lt) ? ["<?", "?>"] : ["", ""];
    const end = open === "" ? -1 : raw.indexOf(close, lt + open.length);
    if (end < 0) return undefined;
    if (open === "<![CDATA[") out += raw.slice(lt + open.length, end);
    i = end + close.length;
  }
}

interface Entry {
  kind: string;
  /** Its Key (a common prefix's Prefix), Size and LastModified as XML reads them; undefined when absent. */
  key?: string;
  size?: string;
  modified?: string;
  /** A Version's or DeleteMarker's VersionId. */
  version?: string;
}

/**
 * The listing's entries, in document order (the first of each child). The searches run in
 * markupOnly's copy (a `<` in a CDATA section or comment is no tag), the texts are read from `xml`
 * at the same offsets.
 */
function entriesOf(xml: string, entries = ENTRIES, children = CHILDREN): Entry[] {
  const markup = markupOnly(xml);
  const out: Entry[] = [];
  entries.lastIndex = 0;
  for (let m = entries.exec(markup); m !== null; m = entries.exec(markup)) {
    const from = groupStart(m, 3);
    const body = m[3]!;
    const e: Entry = { kind: m[2]! };
    const keyName = e.kind === "CommonPrefixes" ? "Prefix" : "Key";
    children.lastIndex = 0;
    for (let c = children.exec(body); c !== null; c = children.exec(body)) {
      const name = c[2] === keyName ? "key" : c[2] === "Size" ? "size" : c[2] === "LastModified" ? "modified" : c[2] === "VersionId" || c[2] === "UploadId" ? "version" : undefined;
      if (name === undefined || e[name] !== undefined) continue;
      const at = from + groupStart(c, 3);
      e[name] = textOf(xml.slice(at, at + c[3]!.length)) ?? "\0";
    }
    out.push(e);
  }
  return out;
}

/**
 * A listing that echoes encoding-type=url, with its keys url-encoded by the proxy when the store did
 * not encode them: when a key (an entry's Key, a common prefix's Prefix) holds what no url-encoding
 * leaves (a space, a control or non-ASCII character, a "%" that starts no escape of UTF-8), every
 * field S3 encodes is encoded, so a client that decodes them (every AWS SDK does, since
 * EncodingType says so) reads the keys stored ("100% sure.txt" was the whole listing's
 * InternalError, "a+b" read as "a b"). Keys without such a character are read as encoded (a "+" or
 * "%41" is ambiguous), and then only an echoed field (the Prefix, Delimiter or markers) that holds
 * one is encoded, alone: stores that encode the keys but echo the Prefix or NextMarker as sent
 * (Ozone, Supabase) had their keys encoded twice (or the listing refused: "run books/" asked).
 */
function encodedListing(xml: string): string {
  const markup = markupOnly(xml);
  // (the entries' spans, in order: a field inside one is a key, one outside them an echoed field)
  const entries: Array<[number, number]> = [];
  ENTRIES.lastIndex = 0;
  for (let m = ENTRIES.exec(markup); m !== null; m = ENTRIES.exec(markup)) entries.push([m.index, m.index + m[0].length]);
  let entry = 0;
  const fields = [...markup.matchAll(ENCODED_FIELDS)].map((m) => {
    const at = groupStart(m, 3);
    while (entry < entries.length && entries[entry]![1] <= at) entry++;
    const key = entry < entries.length && entries[entry]![0] < at;
    return { at, end: at + m[3]!.length, key, text: textOf(xml.slice(at, at + m[3]!.length)) ?? "" };
  });
  const keysEncoded = fields.every((f) => !f.key || isUrlEncodedForm(f.text));
  const encode = fields.filter((f) => !keysEncoded || !isUrlEncodedForm(f.text));
  if (encode.length === 0) return xml;
  let out = "";
  let last = 0;
  for (const f of encode) {
    // (a lone surrogate, &#xD800;, is no key: the listing cannot be read, as on the plain front)
    if (!f.text.isWellFormed()) throw new ProxyError("BadGateway", { detail: "The upstream sent a listing that cannot be read" });
    out += xml.slice(last, f.at) + escapeXml(s3UrlEncode(f.text));
    last = f.end;
  }
  return out + xml.slice(last);
}

/**
 * `xml` with its end tags written without the white space XML allows before their `>`
 * (`</Contents >`): the entry scans (ENTRIES, CHILDREN, ENCODED_FIELDS) look for an exact end
 * tag, and each opening tag of a listing whose end tags all had a space was searched to the end
 * of the document: a 680 KB listing held the event loop ~9 s (quadratic). No S3 writes such a tag.
 * Only tags are rewritten: the tags are found in markupOnly's copy (the same offsets), so a key
 * whose CDATA text holds `</x >` is relayed as stored (it was `</x>`).
 */
function exactCloseTags(xml: string): string {
  if (!/<\/[^<>\s]+\s/.test(xml)) return xml;
  let out = "";
  let last = 0;
  for (const m of markupOnly(xml).matchAll(/<\/([^<>\s]+)\s+>/g)) {
    out += `${xml.slice(last, m.index)}</${m[1]}>`;
    last = m.index + m[0].length;
  }
  return out + xml.slice(last);
}

/**
 * Every entry of the upstream's listing is one S3 could give for it: its key (a common prefix's
 * too) starts with the prefix asked for, its Size is a whole number of bytes, its LastModified an
 * ISO 8601 time. A listing that breaks this (a store's bug: a Size of -5, a LastModified of
 * "junk", keys outside the prefix, which an identity granted a prefix may not list) was relayed as
 * it came; it is the upstream's InternalError now, as a listing that cannot be read, rather than
 * edited (its KeyCount and token would no longer say what it holds).
 */
function checkEntries(xml: string, prefix: string, encoded: boolean): void {
  const bad = () => new ProxyError("BadGateway", { detail: "The upstream sent a listing that cannot be read" });
  for (const e of entriesOf(xml)) {
    if (e.key === undefined) throw bad();
    if (prefix !== "" && !decodedKey(e.key, encoded).startsWith(prefix)) throw bad();
    if (!readableEntryFields(e.size, e.modified)) throw bad();
  }
}

/** A listed key or prefix (as XML reads it) as the client named it (%-escapes in an encoding-type=url listing decoded). */
function decodedKey(s: string, encoded: boolean): string {
  // A broken escape in an encoded key (%ZZ, a cut UTF-8 sequence) cannot be left by encodedListing:
  // were it, it is the upstream's fault, as on the plain front, not the proxy's own InternalError.
  if (!encoded) return s;
  try {
    return s3UrlDecode(s);
  } catch (err) {
    throw new ProxyError("BadGateway", { detail: "The upstream sent a listing that cannot be read", cause: err });
  }
}

/**
 * The page's last entry: its last key (a version listing's: with its VersionId; `uploads`, a
 * ListMultipartUploads page: its last upload's key with its UploadId), or its last common prefix.
 */
export function lastEntry(xml: string, encoded: boolean, uploads = false): (LastEntry & { version?: string }) | undefined {
  let key: { key: string; version: string | undefined } | undefined;
  let prefix: string | undefined;
  for (const e of uploads ? entriesOf(xml, UPLOADS, UPLOAD_CHILDREN) : entriesOf(xml)) {
    if (e.kind === "CommonPrefixes") prefix = e.key ?? prefix;
    else if (e.key !== undefined) key = { key: e.key, version: e.version };
  }
  const k = key === undefined ? undefined : { after: decodedKey(key.key, encoded), past: false, version: key.version };
  return prefix === undefined ? k : laterEntry(k, { after: decodedKey(prefix, encoded), past: true });
}
