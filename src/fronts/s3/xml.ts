/**
 * S3 XML output for the S3 front: a safe escaper and the small fixed documents the front answers
 * itself (ListBuckets, GetBucketLocation). Error bodies live in errors.ts; reading request bodies
 * in xml-reader.ts.
 */

import { quotedEtag } from "../../http/conditional.ts";
import { decodeEntities } from "./xml-reader.ts";

export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";
export const XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };
// Characters XML 1.0 cannot carry at all (C0 controls except TAB/LF/CR, lone surrogates, U+FFFE/F).
// S3 keys may contain them; they are written as numeric references only where XML 1.0 allows
// (TAB/LF/CR), and the rest become U+FFFD, so a hostile key can never make the document invalid.
const SPECIAL = /[&<>"'\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]/;
const SPECIAL_G = /[&<>"'\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]/g;
const SURROGATE_PAIR = /[\ud800-\udbff][\udc00-\udfff]/;

/**
 * Escapes text for element content and attribute values. TAB/LF/CR become character references
 * (so they survive attribute normalization and the reader's round trip); characters XML 1.0
 * forbids become U+FFFD. Valid surrogate pairs (emoji) pass through untouched.
 */
export function escapeXml(text: string): string {
  if (!SPECIAL.test(text)) return text;
  let out = "";
  let last = 0;
  SPECIAL_G.lastIndex = 0;
  for (let m = SPECIAL_G.exec(text); m !== null; m = SPECIAL_G.exec(text)) {
    const i = m.index;
    const ch = m[0];
    const code = ch.charCodeAt(0);
    if (code >= 0xd800 && code <= 0xdbff && SURROGATE_PAIR.test(text.slice(i, i + 2))) {
      SPECIAL_G.lastIndex = i + 2; // a valid pair: keep both halves
      continue;
    }
    out += text.slice(last, i);
    const named = ESCAPES[ch];
    if (named !== undefined) out += named;
    else if (code === 0x09 || code === 0x0a || code === 0x0d) out += "&#" + code + ";";
    else out += "\ufffd";
    last = i + 1;
  }
  return out + text.slice(last);
}

/** The C0 controls XML 1.0 cannot carry (all but TAB, LF and CR). */
const FORBIDDEN_C0 = /[\x00-\x08\x0b\x0c\x0e-\x1f]/;
const FORBIDDEN_C0_G = /[\x00-\x08\x0b\x0c\x0e-\x1f]/g;
const FORBIDDEN_C0_SPLIT = /([\x00-\x08\x0b\x0c\x0e-\x1f])/;
const asReference = (c: string): string => "&#x" + c.charCodeAt(0).toString(16) + ";";

/**
 * A relayed listing with the C0 controls it holds raw (a key, or a parameter the store echoes: a
 * Marker, StartAfter, Prefix, Delimiter or KeyMarker holding one) written as S3 writes them in
 * its listings: numeric references (`&#x1;`). XML 1.0 allows neither form; S3's is the one the
 * readers of its listings take (lenient ones decode it, XML 1.1 ones too), a raw control no
 * parser does. `encoding-type=url` avoids both (they are url-encoded: %01).
 */
export function controlsAsReferences(xml: string): string {
  return FORBIDDEN_C0.test(xml) ? xml.replace(FORBIDDEN_C0_G, asReference) : xml;
}

/** escapeXml for a listing parameter the front echoes itself: its C0 controls as S3's references (controlsAsReferences), not U+FFFD. */
export function escapeListingText(text: string): string {
  if (!FORBIDDEN_C0.test(text)) return escapeXml(text);
  return text.split(FORBIDDEN_C0_SPLIT).map((piece, i) => (i % 2 === 1 ? asReference(piece) : escapeXml(piece))).join("");
}

/**
 * `<name>text</name>` for an error's client-given text (Key, Resource): its C0 controls as S3
 * writes them, numeric references (`&#x1;`, escapeListingText), as the listings do. (The front's
 * success results that name a key, Initiate/CompleteMultipartUploadResult and PostResponse, write
 * them as U+FFFD with el(): a strict XML 1.0 reader, botocore, Go SDK v1, a browser's DOMParser,
 * refuses the whole result over a reference, where an error body it cannot read still gives the
 * client its status.)
 */
export function keyEl(name: string, text: string): string {
  return "<" + name + ">" + escapeListingText(text) + "</" + name + ">";
}

/** `<name>escaped text</name>` */
export function el(name: string, text: string): string {
  return "<" + name + ">" + escapeXml(text) + "</" + name + ">";
}

/** S3's timestamp form in XML bodies: 2006-02-03T16:45:09.000Z (UTC, milliseconds). */
function s3Timestamp(ms: number): string {
  return new Date(ms).toISOString();
}

export interface BucketEntry {
  name: string;
  /** Creation time (ms since epoch). The proxy has none of its own; a fixed config epoch is fine. */
  creationDate: number;
  /** Region reported per bucket (S3 includes BucketRegion since 2024); omitted when undefined. */
  region?: string;
}

export interface ListBucketsOptions {
  owner?: { id: string; displayName?: string };
  /** Echoed when the request filtered by prefix. */
  prefix?: string;
  /** Set when more buckets follow (max-buckets paging). */
  continuationToken?: string;
}

/** ListAllMyBucketsResult, the ListBuckets answer (GET / on the service endpoint). */
export function renderListBuckets(buckets: readonly BucketEntry[], opts: ListBucketsOptions = {}): string {
  let xml = XML_DECL + '<ListAllMyBucketsResult xmlns="' + S3_XMLNS + '">';
  if (opts.owner) {
    xml += "<Owner>" + el("ID", opts.owner.id);
    if (opts.owner.displayName !== undefined) xml += el("DisplayName", opts.owner.displayName);
    xml += "</Owner>";
  }
  xml += "<Buckets>";
  for (const b of buckets) {
    xml += "<Bucket>" + el("Name", b.name) + el("CreationDate", s3Timestamp(b.creationDate));
    if (b.region !== undefined) xml += el("BucketRegion", b.region);
    xml += "</Bucket>";
  }
  xml += "</Buckets>";
  if (opts.continuationToken !== undefined) xml += el("ContinuationToken", opts.continuationToken);
  if (opts.prefix !== undefined) xml += el("Prefix", opts.prefix);
  return xml + "</ListAllMyBucketsResult>";
}

/** GetBucketLocation: S3 answers an empty LocationConstraint for us-east-1 (legacy). */
export function renderLocationConstraint(region: string): string {
  if (region === "" || region === "us-east-1") return XML_DECL + '<LocationConstraint xmlns="' + S3_XMLNS + '"/>';
  return XML_DECL + '<LocationConstraint xmlns="' + S3_XMLNS + '">' + escapeXml(region) + "</LocationConstraint>";
}

/** The owner the S3 front reports for an identity (ListBuckets, and every Owner / Initiator of a listing). */
export function ownerOf(identity: string): { id: string; displayName: string } {
  return { id: Bun.CryptoHasher.hash("sha256", identity, "hex") as string, displayName: identity };
}

/**
 * An element's name as an upstream may write it in the relayed XML: with a namespace prefix or
 * not (`<s3:Name>` under `xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"` is S3's `<Name>`).
 * Group 1 is the prefix with its colon ("" for none).
 */
const PREFIX = "((?:[A-Za-z_][A-Za-z0-9_.-]*:)?)";

// (an empty `<Owner />` is left alone: read as an opening tag, it swallowed every entry up to the next </Owner>)
const OWNER_OPEN = new RegExp(`<${PREFIX}(Owner|Initiator)(\\s[^<>]*)?(?<!\\/)>`, "g");
const CLOSE_REST = /\s*>/y;
const MAYBE_OWNER = /[<:](?:Owner|Initiator)[\s>]/;

/**
 * `xml` with the `<` in its comments, CDATA sections and processing instructions made spaces (the
 * same length), for the searches of a relayed listing's elements (its entries, list.ts; its
 * owners, maskOwners), which run from an opening tag to its closing one: from each `<Contents>` in
 * a comment, never closed, the search ran to the end of the document (quadratic: 680 KB of
 * `<!--<Contents>-->` held the event loop ~10 s, a 16 MiB listing for hours). S3 writes none of
 * them: such a listing (the common case) is searched as it is.
 */
export function markupOnly(xml: string): string {
  if (xml.indexOf("<!") < 0 && xml.indexOf("<?", 1) < 0) return xml;
  return xml.replace(/<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<\?[\s\S]*?\?>/g, (m) => m.replaceAll("<", " "));
}

/**
 * A relayed listing's Owner and Initiator elements (ListObjects with fetch-owner, ListObjectVersions,
 * ListParts, ListMultipartUploads) name the upstream's principal: its canonical id, or the bucket's
 * own access key id. They are replaced by the requesting identity's, as ListBuckets reports it,
 * namespace-prefixed or not as the upstream wrote them.
 */
export function maskOwners(xml: string, identity: string): string {
  if (!MAYBE_OWNER.test(xml)) return xml;
  const o = ownerOf(identity);
  // A scan, not one lazy regular expression over the document: with many opening tags and no
  // closing one (an upstream's broken or hostile 200), each opening tag's search ran to the end of
  // the document (quadratic: 512 KB held the event loop ~11 s). A closing tag that is not found
  // after one opening tag is not found after any later one.
  // (and in markupOnly's copy: opening tags in comments, each with a prefix of its own, were
  // searched to the end one by one)
  const scan = markupOnly(xml);
  let out = "";
  let last = 0;
  const unclosed = new Set<string>();
  OWNER_OPEN.lastIndex = 0;
  for (let m = OWNER_OPEN.exec(scan); m !== null; m = OWNER_OPEN.exec(scan)) {
    const [open, p, name, attrs] = m as unknown as [string, string, string, string | undefined];
    const close = "</" + p + name;
    if (unclosed.has(close)) continue;
    let end = -1;
    for (let c = scan.indexOf(close, m.index + open.length); c >= 0; c = scan.indexOf(close, c + close.length)) {
      CLOSE_REST.lastIndex = c + close.length;
      if (CLOSE_REST.exec(scan) !== null) {
        end = CLOSE_REST.lastIndex;
        break;
      }
    }
    if (end < 0) {
      unclosed.add(close);
      continue;
    }
    out += xml.slice(last, m.index) + `<${p}${name}${attrs ?? ""}>` + el(p + "ID", o.id) + el(p + "DisplayName", o.displayName) + `</${p}${name}>`;
    last = end;
    OWNER_OPEN.lastIndex = end;
  }
  return last === 0 ? xml : out + xml.slice(last);
}

/**
 * An <ETag> whose text starts with no quote (`"`, `&quot;`, `&#34;`, `&#x22;`): bare, as some
 * S3-compatible stores write a listing's ETags.
 */
const BARE_ETAG = new RegExp(`<${PREFIX}ETag(?:\\s[^<>]*)?(?<!\\/)>(?!"|&quot;|&#34;|&#x22;)([^<]*)<\\/\\1ETag>`, "g");
/**
 * Where an <ETag> may start with no quote, anywhere in the listing: an open tag's `ETag>` (after
 * `<` or a prefix's `:`) followed by anything but a quote or the next tag. It can also match what
 * BARE_ETAG then skips (a prefixed end tag followed by a space, an element in a comment), never
 * miss one BARE_ETAG quotes. Its first characters are literal, so it is one quick search of a
 * quoted listing (~60 µs for 1,000 keys, ~2% of the relay's own work).
 */
const ANY_BARE_ETAG = /[<:]ETag(?:\s[^<>]*)?>(?![<"]|&quot;|&#34;|&#x22;)/;

/**
 * A relayed listing (ListObjects V1 and V2, ListObjectVersions, ListParts) with every bare <ETag>
 * quoted as S3 writes it (`<ETag>&quot;abc&quot;</ETag>`): a store that writes them bare
 * (`<ETag>abc</ETag>`) gave clients bare ETags from a listing where HEAD, GET, Copy and Complete
 * give them quoted (quotedEtag), so a client comparing the two (a sync tool) saw every object
 * changed. A listing with none (one search, ANY_BARE_ETAG) comes back as it is; only then are they
 * all looked at. Until 2026-12-07 only the first <ETag> was looked at, and a listing whose first
 * ETag was quoted and later ones bare (objects written before and after a store's change, a
 * gateway merging two stores) passed the later ones bare.
 */
export function quoteListingEtags(xml: string): string {
  // (in the text as it is: markupOnly's own search of the listing for `<!` costs more than this one)
  if (!ANY_BARE_ETAG.test(xml)) return xml;
  const scan = markupOnly(xml);
  let out = "";
  let last = 0;
  BARE_ETAG.lastIndex = 0;
  for (let m = BARE_ETAG.exec(scan); m !== null; m = BARE_ETAG.exec(scan)) {
    const at = m.index + m[0].length - m[1]!.length - 7 - m[2]!.length; // (the end tag is `</` + prefix + `ETag>`)
    const raw = xml.slice(at, at + m[2]!.length);
    if (raw.indexOf("<") >= 0) continue; // (a CDATA section: left as written)
    const text = decodeEntities(raw, true);
    const quoted = quotedEtag(text);
    if (quoted === text) continue;
    out += xml.slice(last, at) + escapeXml(quoted);
    last = at + raw.length;
  }
  return last === 0 ? xml : out + xml.slice(last);
}

const firstElements = new Map<string, RegExp>();

/**
 * `xml` with the text of its first `name` element (prefixed or not) set to `text`: a relayed
 * listing's own `<Name>` or `<Bucket>` (the first one is the result's, before any entry).
 */
export function setFirstElementText(xml: string, name: string, text: string): string {
  let re = firstElements.get(name);
  if (re === undefined) firstElements.set(name, (re = new RegExp(`<${PREFIX}${name}>[^<]*<\\/\\1${name}>`)));
  return xml.replace(re, (_m, p: string) => el(p + name, text));
}

/**
 * Whether an upstream's result document, which the front relays as text (a listing, ListParts), is
 * XML at all: whole (one root element, every element closed, nothing but comments or processing
 * instructions after it), with no DOCTYPE or entity declaration and no entity other than XML's
 * five and character references, at most `maxBytes` long and 32 deep. A store that failed behind
 * a 200 (a document cut mid-element, so the owner masking found no <Owner>...</Owner> and relayed
 * the store's principal) or a hostile one (an XXE or entity-expansion DOCTYPE) must not reach
 * clients as a 200. A scan, no tree: a 1000-key page costs ~0.5 ms, where building the element
 * tree (parseXml) cost ~5 ms, and 50 ms of blocked event loop for a 10,000-key page.
 */
export function isWellFormedResult(xml: string, maxBytes: number): boolean {
  const n = xml.length;
  if (n > maxBytes) return false;
  const open: string[] = [];
  let closedRoot = false;
  let i = 0;
  while (i < n) {
    const lt = xml.indexOf("<", i);
    const end = lt < 0 ? n : lt;
    // Text: only whitespace outside the root element; inside it, references that are XML's own.
    if (end > i && (open.length === 0 ? !isSpace(xml, i, end) : !referencesOk(xml, i, end) || rawCdataEnd(xml, i, end))) return false;
    if (lt < 0) break;
    const c = xml.charCodeAt(lt + 1);
    if (c === 0x21 /* ! */) {
      if (xml.startsWith("<!--", lt)) {
        const e = xml.indexOf("-->", lt + 4);
        if (e < 0) return false;
        i = e + 3;
      } else if (open.length > 0 && xml.startsWith("<![CDATA[", lt)) {
        const e = xml.indexOf("]]>", lt + 9);
        if (e < 0) return false;
        i = e + 3;
      } else return false; // a DOCTYPE, an ENTITY declaration, anything else
      continue;
    }
    if (c === 0x3f /* ? */) {
      const e = xml.indexOf("?>", lt + 2);
      if (e < 0) return false;
      i = e + 2;
      continue;
    }
    const gt = tagEnd(xml, lt + 1);
    if (gt < 0) return false;
    if (c === 0x2f /* / */) {
      const name = open.pop();
      if (name === undefined || !xml.startsWith(name, lt + 2) || !isSpace(xml, lt + 2 + name.length, gt)) return false;
      if (open.length === 0) closedRoot = true;
    } else {
      if (closedRoot) return false; // a second root
      let k = lt + 1;
      while (k < gt && !isNameEnd(xml.charCodeAt(k))) k++;
      if (k === lt + 1 || !isNameStart(c)) return false;
      if (xml.charCodeAt(gt - 1) === 0x2f /* / */) {
        if (open.length === 0) closedRoot = true;
      } else {
        open.push(xml.slice(lt + 1, k));
        if (open.length > 32) return false;
      }
    }
    i = gt + 1;
  }
  return closedRoot && open.length === 0;
}

const isSpaceCode = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
function isSpace(s: string, from: number, to: number): boolean {
  for (let k = from; k < to; k++) if (!isSpaceCode(s.charCodeAt(k))) return false;
  return true;
}
const isNameEnd = (c: number) => isSpaceCode(c) || c === 0x2f || c === 0x3e;
/** A name does not start with a digit, "-", "." or a delimiter. */
const isNameStart = (c: number) => !(isNameEnd(c) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x3c || c === 0x3d || c === 0x22 || c === 0x27);

/** The ">" that ends the tag starting at `from` (quotes respected; a "<" in it is not XML), or -1. */
function tagEnd(s: string, from: number): number {
  let quote = 0;
  let refFrom = -1;
  for (let k = from; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (quote !== 0) {
      if (c === quote) {
        if (refFrom >= 0 && !referencesOk(s, refFrom, k)) return -1;
        quote = 0;
        refFrom = -1;
      } else if (c === 0x3c) return -1;
      continue;
    }
    if (c === 0x22 || c === 0x27) {
      quote = c;
      refFrom = k + 1;
    } else if (c === 0x3e) return k;
    else if (c === 0x3c) return -1;
  }
  return -1;
}

/** Every "&" in s[from, to) starts one of XML's five entities or a character reference. */
const REFERENCE = /&(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});/y;
function referencesOk(s: string, from: number, to: number): boolean {
  // (a loop bounded by `to`: indexOf would look past it, to the end of the page, once per text)
  for (let a = from; a < to; a++) {
    if (s.charCodeAt(a) !== 0x26) continue;
    REFERENCE.lastIndex = a;
    if (!REFERENCE.test(s) || REFERENCE.lastIndex > to) return false;
  }
  return true;
}

/** A "]]>" in character data is not XML. */
function rawCdataEnd(s: string, from: number, to: number): boolean {
  for (let k = from; k + 2 < to; k++) if (s.charCodeAt(k) === 0x5d && s.charCodeAt(k + 1) === 0x5d && s.charCodeAt(k + 2) === 0x3e) return true;
  return false;
}

/**
 * The local name of a document's root element (after the prolog: an XML declaration, processing
 * instructions, comments, a DOCTYPE and whitespace; `s3:ListBucketResult` is ListBucketResult), or
 * undefined.
 */
export function rootOf(xml: string): string | undefined {
  // A scan, not one regular expression: with lazy `[\s\S]*?` items in a repeated group, a prolog of
  // n items followed by no root could be split 2^(n-1) ways and the engine tried them all (an
  // upstream's 26 KB 200 answer of 26 `<?...?>` held the event loop for ~45 s). Each item ends at
  // its first closing delimiter, as XML reads it.
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    SPACES.lastIndex = i;
    SPACES.exec(xml);
    i = SPACES.lastIndex;
    let end: number;
    if (xml.startsWith("<?", i)) {
      end = xml.indexOf("?>", i + 2);
      if (end < 0) return undefined;
      i = end + 2;
    } else if (xml.startsWith("<!--", i)) {
      end = xml.indexOf("-->", i + 4);
      if (end < 0) return undefined;
      i = end + 3;
    } else if (xml.startsWith("<!DOCTYPE", i)) {
      DOCTYPE_HEAD.lastIndex = i + 9;
      if (DOCTYPE_HEAD.exec(xml) === null) return undefined;
      i = DOCTYPE_HEAD.lastIndex;
      if (xml.charCodeAt(i - 1) === 0x5b) {
        // the internal subset ends at the first "]" followed by optional spaces and ">"
        for (end = xml.indexOf("]", i); ; end = xml.indexOf("]", end + 1)) {
          if (end < 0) return undefined;
          SUBSET_END.lastIndex = end;
          if (SUBSET_END.exec(xml) !== null) break;
        }
        i = SUBSET_END.lastIndex;
      }
    } else break;
  }
  ROOT_NAME.lastIndex = i;
  return ROOT_NAME.exec(xml)?.[1];
}
const SPACES = /\s*/y;
/** The rest of a DOCTYPE up to its ">" (consumed) or the "[" of its internal subset (consumed). */
const DOCTYPE_HEAD = /[^>[]*[>[]/y;
const SUBSET_END = /\]\s*>/y;
const ROOT_NAME = /<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]/y;
