/**
 * A minimal, non-streaming XML reader for the S3 front's small request bodies
 * (CompleteMultipartUpload, DeleteObjects). It reads elements, attributes, text, CDATA, comments
 * and the XML declaration, and nothing else: a DOCTYPE, an entity declaration or any entity other
 * than the five predefined ones and numeric references is an error, so there is no XXE and no
 * entity expansion. Input size, depth, element count and (a client's) entity references are capped
 * before the work is done.
 * Element names are reduced to their local name (`s3:Key` → `Key`), as the S3 schema is unprefixed.
 *
 * A client's document (not `lenient`) is also held to what S3's schemas allow everywhere: no text
 * mixed with elements (`<Key>k<b/>7</Key>` is not the key `k7`, nor stray text inside `<Delete>`),
 * and a prefix only where an `xmlns:` attribute declared it (namespace well-formedness): S3
 * answers MalformedXML to both, and a delete or a complete acting on such a document would act on
 * a guess.
 */

export interface XmlElement {
  /** Local name (namespace prefix removed). */
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Concatenated text and CDATA directly inside this element, entities decoded, untrimmed. */
  text: string;
}

export interface XmlLimits {
  /** Maximum input size in bytes (default 2 MiB: 10,000 Complete parts or 1,000 Delete keys fit). */
  maxBytes?: number;
  /** Maximum number of elements (default 100,000). */
  maxElements?: number;
  /**
   * An upstream's answer, not a client's request: characters XML 1.0 does not allow (raw, or as
   * character references) are kept, and entity and character references are not counted against
   * MAX_ENTITY_REFERENCES. S3 keys may hold any UTF-8 character, U+0001 included, and
   * stores write them into their listings and results as they are (s3rver raw, others as
   * `&#x1;`); refusing the document lost the answer of a write the upstream had made.
   */
  lenient?: boolean;
}

export class XmlError extends Error {
  constructor(
    message: string,
    /** "too-large" lets the caller answer MaxMessageLengthExceeded instead of MalformedXML. */
    readonly reason: "malformed" | "too-large" = "malformed",
  ) {
    super(message);
    this.name = "XmlError";
  }
}

/**
 * The references a client's document may hold (S3's MalformedXML beyond). Well above what S3's
 * documents carry: a CompleteMultipartUpload of 10,000 parts whose ETags are written
 * `&quot;...&quot;` has 20,000; a DeleteObjects of 1,000 keys, 100 escaped characters in each key.
 * Each costs a decode: a 4 MiB body of ~840,000 `&amp;` held the event loop for ~0.2-0.6 s.
 */
export const MAX_ENTITY_REFERENCES = 100_000;

/**
 * XML 1.0 §2.11 on a body's UTF-8 bytes: each CRLF and each lone CR becomes LF (a CR byte is never
 * part of another character). The regex replace on the decoded text it replaces held the event
 * loop 0.4-1 s for a 4 MiB DeleteObjects of CRs, which the S3 front reads whole (a loop: ~10-25 ms);
 * a body without a CR is returned as it is.
 */
function lineEndsAsLf(b: Uint8Array): Uint8Array {
  let i = b.indexOf(13);
  if (i < 0) return b;
  const out = new Uint8Array(b.length);
  out.set(b.subarray(0, i));
  let o = i;
  for (; i < b.length; i++) {
    const c = b[i]!;
    if (c !== 13) out[o++] = c;
    else {
      out[o++] = 10;
      if (b[i + 1] === 10) i++;
    }
  }
  return out.subarray(0, o);
}

/** Maximum element nesting. */
const MAX_DEPTH = 16;

/**
 * Attributes one element may carry (S3's documents carry at most two: xmlns:xsi and xsi:type on
 * a Grantee); a document carries at most as many as its element cap. Each costs a property of
 * its element's attribute record and a prefix check: one start tag of 100,000 attributes (~1 MB)
 * held the event loop ~1 s, and a 4 MiB body's ~330,000 several.
 */
export const MAX_ATTRIBUTES = 32;

const NAME = /[A-Za-z_][A-Za-z0-9._:-]*/y;
const WS = /[ \t\r\n]*/y;
const ATTR_VALUE = /"([^"<]*)"|'([^'<]*)'/y;
// (a Map: looked up by the document's entity names, where a plain object also answered
// `&constructor;`, `&toString;`, ... with Object.prototype's members, decoded as their text)
const PREDEFINED: ReadonlyMap<string, string> = new Map([["amp", "&"], ["lt", "<"], ["gt", ">"], ["quot", '"'], ["apos", "'"]]);
// XML 1.0 Char production: TAB, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF.
const BAD_CHAR = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/**
 * Decodes the predefined entities and numeric character references; anything else is an error.
 * `budget`: the references the document may still hold, taken one per reference (an error past it).
 */
export function decodeEntities(s: string, lenient = false, budget?: { left: number }): string {
  let at = s.indexOf("&");
  if (at < 0) return s;
  // (counted before decoding: replace() finds every match before its callback runs, so a throw
  // from the callback would come after the work)
  if (budget !== undefined) {
    for (; at >= 0; at = s.indexOf("&", at + 1)) if (--budget.left < 0) throw new XmlError("too many entity references");
  }
  return s.replace(/&([^;&]{0,12});?/g, (whole, body: string) => {
    if (!whole.endsWith(";")) throw new XmlError("unterminated entity reference");
    const named = PREDEFINED.get(body);
    if (named !== undefined) return named;
    const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(body);
    if (m === null) throw new XmlError("entity references other than &amp; &lt; &gt; &quot; &apos; are not allowed");
    const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2], 10);
    if (!isXmlChar(cp) && !(lenient && cp <= 0x10ffff)) throw new XmlError("character reference to a character XML does not allow");
    return String.fromCodePoint(cp);
  });
}

function localName(qname: string): string {
  const colon = qname.lastIndexOf(":");
  return colon < 0 ? qname : qname.slice(colon + 1);
}

/** Parses a small XML document and returns its root element. Throws XmlError on anything else. */
export function parseXml(input: string | Uint8Array, limits: XmlLimits = {}): XmlElement {
  const maxBytes = limits.maxBytes ?? 2 * 1024 * 1024;
  const maxElements = limits.maxElements ?? 100_000;

  let src: string;
  if (typeof input === "string") {
    if (input.length > maxBytes || Buffer.byteLength(input) > maxBytes) throw new XmlError("XML body too large", "too-large");
    src = input;
  } else {
    if (input.byteLength > maxBytes) throw new XmlError("XML body too large", "too-large");
    try {
      src = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(lineEndsAsLf(input));
    } catch {
      throw new XmlError("XML body is not valid UTF-8");
    }
  }
  if (src.charCodeAt(0) === 0xfeff) src = src.slice(1);
  // XML 1.0 §2.11: a literal CRLF or lone CR is read as LF (S3 applies it to keys in request bodies:
  // a DeleteObjects naming "a\r\nb" deletes "a\nb"); `&#13;` still means CR. (A body's bytes
  // were read so above, lineEndsAsLf; a string, a form field, here.)
  if (typeof input === "string" && src.includes("\r")) src = src.replace(/\r\n?/g, "\n");
  const lenient = limits.lenient === true;
  const entities = lenient ? undefined : { left: MAX_ENTITY_REFERENCES };
  if (!lenient && BAD_CHAR.test(src)) throw new XmlError("XML body contains a character XML does not allow");

  let pos = 0;
  let elements = 0;
  let allAttributes = 0;
  const stack: XmlElement[] = [];
  const qnames: string[] = []; // the open elements' names as written, for matching end tags
  let root: XmlElement | undefined;
  // (strict: the namespace prefixes each open element declares, for the prefix check; Sets, not
  // arrays: each name's check searched every declaration, so one start tag of thousands of
  // `xmlns:pN` declarations and as many `pN:a` attributes or child elements was quadratic, a
  // 640 KB DeleteObjects or Complete held the event loop ~14 s and a 2 MB one ~4 minutes)
  const declared: Array<Set<string> | null> = [];
  const isDeclared = (prefix: string, own: Set<string> | null): boolean => {
    if (prefix === "xml" || own?.has(prefix)) return true;
    for (let i = declared.length - 1; i >= 0; i--) if (declared[i]?.has(prefix)) return true;
    return false;
  };
  const checkPrefix = (qname: string, own: Set<string> | null): void => {
    const colon = qname.indexOf(":");
    if (colon < 0) return;
    const prefix = qname.slice(0, colon);
    if (prefix === "xmlns") return;
    if (colon === 0 || colon === qname.length - 1 || qname.indexOf(":", colon + 1) >= 0 || !isDeclared(prefix, own)) fail(`undeclared namespace prefix in <${qname}>`);
  };
  const closeStrict = (node: XmlElement, own: Set<string> | null): void => {
    if (node.children.length > 0 && /[^ \t\n]/.test(node.text)) fail(`text mixed with elements in <${node.name}>`);
    checkPrefix(qnames[qnames.length - 1] ?? "", own);
  };

  const fail = (what: string): never => {
    throw new XmlError(`${what} at offset ${pos}`);
  };
  const skipWs = () => {
    WS.lastIndex = pos;
    WS.exec(src);
    pos = WS.lastIndex;
  };
  const readName = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(src);
    if (m === null) fail("expected a name");
    pos = NAME.lastIndex;
    return m![0];
  };

  if (src.startsWith("<?xml", pos)) {
    const end = src.indexOf("?>", pos);
    if (end < 0) fail("unterminated XML declaration");
    pos = end + 2;
  }

  while (pos < src.length) {
    const lt = src.indexOf("<", pos);
    const textEnd = lt < 0 ? src.length : lt;
    if (textEnd > pos) {
      const raw = src.slice(pos, textEnd);
      if (stack.length === 0) {
        if (/[^ \t\r\n]/.test(raw)) fail("text outside the root element");
      } else {
        if (raw.includes("]]>")) fail("']]>' in text");
        stack[stack.length - 1].text += decodeEntities(raw, lenient, entities);
      }
      pos = textEnd;
      continue;
    }
    // src[pos] === "<"
    if (src.startsWith("<!--", pos)) {
      const end = src.indexOf("-->", pos + 4);
      if (end < 0) fail("unterminated comment");
      pos = end + 3;
    } else if (src.startsWith("<![CDATA[", pos)) {
      if (stack.length === 0) fail("CDATA outside the root element");
      const end = src.indexOf("]]>", pos + 9);
      if (end < 0) fail("unterminated CDATA section");
      stack[stack.length - 1].text += src.slice(pos + 9, end);
      pos = end + 3;
    } else if (src.startsWith("<!", pos)) {
      fail("DOCTYPE and declarations are not allowed");
    } else if (src.startsWith("<?", pos)) {
      fail("processing instructions are not allowed");
    } else if (src.startsWith("</", pos)) {
      pos += 2;
      const name = readName();
      skipWs();
      if (src[pos] !== ">") fail("expected '>'");
      pos++;
      if (qnames[qnames.length - 1] !== name) fail(`mismatched closing tag </${name}>`);
      const open = stack[stack.length - 1];
      if (!lenient) closeStrict(open, declared.pop() ?? null);
      qnames.pop();
      stack.pop();
      if (stack.length === 0) root = open;
    } else {
      if (root !== undefined) fail("more than one root element");
      pos++;
      const qname = readName();
      const node: XmlElement = { name: localName(qname), attrs: Object.create(null), children: [], text: "" };
      if (++elements > maxElements) throw new XmlError("too many XML elements", "too-large");
      let attributes = 0;
      for (;;) {
        const before = pos;
        skipWs();
        if (src[pos] === ">" || src.startsWith("/>", pos)) break;
        if (pos === before) fail("expected whitespace before an attribute");
        if (++attributes > MAX_ATTRIBUTES || ++allAttributes > maxElements) throw new XmlError("too many XML attributes", "too-large");
        const attr = readName();
        skipWs();
        if (src[pos] !== "=") fail("expected '=' after an attribute name");
        pos++;
        skipWs();
        ATTR_VALUE.lastIndex = pos;
        const m = ATTR_VALUE.exec(src);
        if (m === null) fail("expected a quoted attribute value");
        pos = ATTR_VALUE.lastIndex;
        if (Object.hasOwn(node.attrs, attr)) fail(`duplicate attribute ${attr}`);
        node.attrs[attr] = decodeEntities(m![1] ?? m![2], lenient, entities);
      }
      const selfClosing = src[pos] === "/";
      pos += selfClosing ? 2 : 1;
      let own: Set<string> | null = null;
      if (!lenient) {
        for (const a in node.attrs) if (a.startsWith("xmlns:")) (own ??= new Set()).add(a.slice(6));
        for (const a in node.attrs) checkPrefix(a, own);
        if (selfClosing) checkPrefix(qname, own);
      }
      if (stack.length > 0) stack[stack.length - 1].children.push(node);
      if (selfClosing) {
        if (stack.length === 0) root = node;
      } else {
        if (stack.length >= MAX_DEPTH) throw new XmlError("XML nesting too deep", "too-large");
        stack.push(node);
        qnames.push(qname);
        if (!lenient) declared.push(own);
      }
    }
  }
  if (stack.length > 0) throw new XmlError(`unclosed element <${qnames[qnames.length - 1]}>`);
  if (root === undefined) throw new XmlError("no root element");
  return root;
}

/** The first child element named `name`, if any. */
export function child(node: XmlElement, name: string): XmlElement | undefined {
  for (const c of node.children) if (c.name === name) return c;
  return undefined;
}

/** All child elements named `name`, in document order. */
export function childrenNamed(node: XmlElement, name: string): XmlElement[] {
  return node.children.filter((c) => c.name === name);
}

/** The text of the first child named `name` (untrimmed: S3 keys may start or end with spaces). */
export function childText(node: XmlElement, name: string): string | undefined {
  return child(node, name)?.text;
}
