/**
 * The response-head parser: a pure function from received bytes to a status, headers and the
 * body's framing (RFC 9112 §6.3), or "incomplete", or a protocol error.
 *
 * Strict on purpose: whatever could be read two ways (by us and by a cache or client behind us)
 * is an error, never a guess. Smuggling shapes are decided here:
 * - Transfer-Encoding with Content-Length: decoded as chunked (TE wins), the Content-Length field
 *   dropped from the headers, the socket never reused;
 * - Content-Length values that differ (in one field or across fields): error;
 * - a transfer coding other than exactly `chunked`: error (we could not decode it, and passing
 *   encoded bytes on as the object would corrupt it);
 * - obs-fold, bare CR or LF, NUL or other control characters in a field value: error.
 */

/** How the body is delimited. */
import { quotedEtag, relayedHttpDate } from "../../http/conditional.ts";

export type Framing = "none" | "length" | "chunked" | "close";

export interface ResponseHead {
  status: number;
  statusText: string;
  headers: Headers;
  framing: Framing;
  /** Body length for framing "length"; -1 otherwise. */
  contentLength: number;
  /** The socket may carry another request once this body has been read completely. */
  keepAlive: boolean;
}

export type HeadParse =
  /** No end of head yet: call again with more bytes, scanning from `scanFrom`. */
  | { kind: "incomplete"; scanFrom: number }
  | { kind: "error"; message: string }
  /** A 1xx interim response (not 101): skip `end` bytes, the final head follows. */
  | { kind: "interim"; status: number; end: number }
  /** The final head; the body starts at `end`. */
  | { kind: "head"; head: ResponseHead; end: number };

export const MAX_HEAD = 64 * 1024;

/** Whether a 4-character field name is ETag, in any case (no lower-cased copy). */
function isEtagName(name: string): boolean {
  return (name.charCodeAt(0) | 32) === 101 && (name.charCodeAt(1) | 32) === 116 && (name.charCodeAt(2) | 32) === 97 && (name.charCodeAt(3) | 32) === 103;
}

/** A 13-character field name is Last-Modified (told from Cache-Control, Accept-Ranges, Content-Range by its l, -, m and d). */
function isLastModifiedName(name: string): boolean {
  return (name.charCodeAt(0) | 32) === 108 && name.charCodeAt(4) === 45 && (name.charCodeAt(5) | 32) === 109 && (name.charCodeAt(12) | 32) === 100;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** In a received head: a CR not followed by LF, an LF not preceded by CR, or NUL. */
const BAD_HEAD_CHARS = /\r(?!\n)|(?<!\r)\n|\0/;
/** Control characters other than HTAB, in a field value (CR and LF are line ends by now). */
const BAD_VALUE_CHARS = /[\x00-\x08\x0a-\x1f\x7f]/;
/** The status line at the start of a head: `HTTP/1.x NNN`, then its end or a space and the reason phrase (any text). */
const STATUS_LINE = /^HTTP\/1\.[01] [1-5][0-9]{2}(?: |\r|$)/;
const DIGITS = /^[0-9]+$/;

const error = (message: string): HeadParse => ({ kind: "error", message });

/** Trim optional whitespace (SP / HTAB only, not other Unicode spaces). */
function trimOws(s: string, from: number, to = s.length): string {
  let a = from;
  let b = to;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return s.slice(a, b);
}

/** True when a comma-separated header value contains `token` (case-insensitive). */
function hasToken(value: string, token: string): boolean {
  const parts = value.toLowerCase().split(",");
  for (let i = 0; i < parts.length; i++) if (parts[i].trim() === token) return true;
  return false;
}

/** Whether an LF at or after `from` is not preceded by a CR (only an incomplete head is scanned so). */
function bareLf(buf: Buffer, from: number): boolean {
  for (let i = buf.indexOf(10, from); i >= 0; i = buf.indexOf(10, i + 1)) {
    if (i === 0 || buf[i - 1] !== 13) return true;
  }
  return false;
}

/**
 * Parses the response head at the start of `buf`.
 * @param isHead the request was HEAD: the response has no body whatever its headers say.
 * @param scanFrom where to resume looking for the blank line (from an earlier "incomplete").
 */
export function parseResponseHead(buf: Buffer, isHead: boolean, scanFrom = 0): HeadParse {
  const idx = buf.indexOf(CRLFCRLF, scanFrom);
  if (idx < 0) {
    if (buf.length > MAX_HEAD) return error("upstream response head too large");
    // A bare LF makes the head an error whatever follows (BAD_HEAD_CHARS below); a head whose
    // lines all end in bare LF would never show the CRLFCRLF awaited, and waited for s3.timeout
    // (a 504 counted as a timeout): it is the same error now, at once. (RFC 9112 §2.2 lets a
    // recipient take bare LF; this parser does not, so no head is read two ways.)
    if (bareLf(buf, scanFrom)) return error("invalid characters in upstream response head");
    return { kind: "incomplete", scanFrom: Math.max(0, buf.length - 3) };
  }
  const end = idx + 4;
  if (end > MAX_HEAD) return error("upstream response head too large");
  const text = buf.toString("latin1", 0, idx);
  if (BAD_HEAD_CHARS.test(text)) return error("invalid characters in upstream response head");
  // (read in place: no array of lines, no string per line, no match array per head)
  if (!STATUS_LINE.test(text)) return error("malformed upstream status line");
  const status = (text.charCodeAt(9) - 48) * 100 + (text.charCodeAt(10) - 48) * 10 + (text.charCodeAt(11) - 48);
  if (status === 101) return error("unexpected upstream status 101");
  const http10 = text.charCodeAt(7) === 48; // "HTTP/1.0"
  let lineEnd = text.indexOf("\r\n");
  const statusText = text.slice(13, lineEnd < 0 ? text.length : lineEnd);
  const headers = new Headers();
  let contentLength = -1;
  let lengthRepeated = false;
  let te: string | null = null;
  let connection: string | null = null;
  while (lineEnd >= 0) {
    const start = lineEnd + 2;
    lineEnd = text.indexOf("\r\n", start);
    const stop = lineEnd < 0 ? text.length : lineEnd;
    const c0 = text.charCodeAt(start);
    if (c0 === 32 || c0 === 9) return error("obsolete line folding in upstream response");
    const colon = text.indexOf(":", start);
    if (colon <= start || colon >= stop) return error("malformed upstream response header");
    const name = text.slice(start, colon);
    if (!TOKEN.test(name)) return error("malformed upstream response header");
    let value = trimOws(text, colon + 1, stop);
    if (BAD_VALUE_CHARS.test(value)) return error("invalid characters in upstream response header");
    const n = name.length;
    // (an ETag some S3-compatible stores send bare, quoted as S3 sends it: quotedEtag; the name told
    // by its characters, not toLowerCase, which made a string for every `Date` field)
    if (n === 4 && value.charCodeAt(0) !== 34 && isEtagName(name)) value = quotedEtag(value);
    // (a Last-Modified that is no HTTP-date is dropped, an obsolete one written as IMF-fixdate: relayedHttpDate)
    else if (n === 13 && isLastModifiedName(name)) {
      const date = relayedHttpDate(value);
      if (date === undefined) continue;
      value = date;
    } else if (n === 14 || n === 17 || n === 10) {
      const lower = name.toLowerCase();
      if (lower === "content-length") {
        // (each comma-separated part, read in place: one value, no array)
        for (let from = 0; from <= value.length; ) {
          const comma = value.indexOf(",", from);
          const to = comma < 0 ? value.length : comma;
          const p = trimOws(value, from, to);
          from = to + 1;
          if (!DIGITS.test(p) || p.length > 15) return error("invalid upstream Content-Length");
          const v = +p;
          if (contentLength !== -1) {
            if (contentLength !== v) return error("conflicting upstream Content-Length values");
            lengthRepeated = true;
          }
          contentLength = v;
        }
      } else if (lower === "transfer-encoding") {
        te = te === null ? value : `${te}, ${value}`;
      } else if (lower === "connection") {
        connection = connection === null ? value : `${connection}, ${value}`;
      }
    }
    try {
      headers.append(name, value);
    } catch {
      return error("malformed upstream response header");
    }
  }
  if (status < 200) return { kind: "interim", status, end };
  // Repeated equal values (`5, 5`, or the field twice) are one length (RFC 9110 §8.6): passed on
  // as the joined list, the node engine announced `Content-Length: 5, 5` (which Go clients and
  // others refuse) and the bun engine answered a HEAD with `Content-Length: 0`.
  if (lengthRepeated) headers.set("content-length", String(contentLength));

  let keepAlive = true;
  if (connection !== null) {
    if (hasToken(connection, "close")) keepAlive = false;
    else if (http10 && !hasToken(connection, "keep-alive")) keepAlive = false;
  } else if (http10) {
    keepAlive = false;
  }
  let framing: Framing;
  let length = -1;
  if (isHead || status === 304) {
    framing = "none";
  } else if (status === 204) {
    // 204 has no content, and its sender MUST NOT send Content-Length or Transfer-Encoding (RFC
    // 9110 §8.6, RFC 9112 §6.1): one that announces a body may send it, late, where the next
    // answer on the socket would start (a GET then read `hello` as its status line). Reused only
    // without one (`Content-Length: 0`, which stores send with a DeleteObject's 204, included).
    framing = "none";
    if (contentLength > 0 || te !== null) keepAlive = false;
  } else if (status === 205) {
    // 205 has no content; reuse the socket only when that is explicit.
    framing = "none";
    if (contentLength !== 0 || te !== null) keepAlive = false;
  } else if (te !== null) {
    if (te.trim().toLowerCase() !== "chunked") return error("unsupported upstream Transfer-Encoding");
    framing = "chunked";
    // TE with CL (the request-smuggling shape) or TE on HTTP/1.0: decode, but never reuse.
    if (contentLength !== -1 || http10) keepAlive = false;
    // The body is the decoded chunks, whatever length the Content-Length field claims: the field
    // is dropped (RFC 9112 §6.3: TE overrides it, and a recipient forwarding the message MUST
    // remove it), or a proxy answering with it would frame a body of another length by it.
    if (contentLength !== -1) headers.delete("content-length");
  } else if (contentLength !== -1) {
    framing = "length";
    length = contentLength;
  } else {
    framing = "close";
    keepAlive = false;
  }
  return { kind: "head", head: { status, statusText, headers, framing, contentLength: length, keepAlive }, end };
}
