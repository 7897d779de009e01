import { ASCII_TEXT, Scratch } from "../byte-view.ts";
import { isAsciiHeaderValue, wireValue } from "../sigv4.ts";

/**
 * Serializing the request head. Pure: it returns the head or the reason it refuses to build one.
 * Request headers may carry credentials: a refusal names the header, never its value.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** CR, LF or NUL would end the line early: header injection. */
export const BAD_VALUE = /[\0\r\n]/;

/** Path: origin-form, no whitespace or control characters. */
const BAD_PATH = /[\0-\x20\x7f]/;

/** Methods the client sends. A body goes only with PUT and POST (the S3 operations that have one). */
export type Http1Method = "GET" | "HEAD" | "PUT" | "POST" | "DELETE";

const METHODS = new Set<string>(["GET", "HEAD", "PUT", "POST", "DELETE"]);

/** Where a head is written: buildRequestHead is synchronous (see Scratch). */
const scratch = new Scratch(1024);
const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const SP = 0x20;

/**
 * `METHOD path HTTP/1.1`, Host, then the caller's headers, then `content-length` when
 * `contentLength` is given (a request body follows; PUT/POST always get one, 0 without a body,
 * because S3 answers 411 to a PUT without it). The pool owns Host and the framing headers, so
 * the caller's Host, Content-Length and Transfer-Encoding are dropped: a body is only ever sent
 * with an exact Content-Length, never chunked. Returns an Error (not thrown: the caller turns it
 * into a rejection) on bad input. A head whose header values hold bytes above 0x7F is returned as
 * those bytes (see wireValue).
 */
export function buildRequestHead(method: string, path: string, hostHeader: string, headers: Record<string, string>, contentLength?: number): string | Uint8Array | Error {
  if (!METHODS.has(method)) return new Error("unsupported request method");
  if (contentLength !== undefined && !(Number.isSafeInteger(contentLength) && contentLength >= 0)) return new Error("invalid request content length");
  if (path.charCodeAt(0) !== 47 || BAD_PATH.test(path)) return new Error("invalid request target");
  // (written piece by piece into the scratch, then taken as one string: no string per piece; the
  // target and Host, ASCII as the pool's callers give them, are written as UTF-8 otherwise)
  const utf8 = !ASCII_TEXT.test(path) || !ASCII_TEXT.test(hostHeader);
  let n = scratch.put(method, 0);
  n = scratch.put(" ", n);
  n = scratch.put(path, n, utf8);
  n = scratch.put(" HTTP/1.1\r\nhost: ", n);
  n = scratch.put(hostHeader, n, utf8);
  n = scratch.put2(CR, LF, n);
  let bytes = false;
  for (const name in headers) {
    let value = headers[name];
    if (!TOKEN.test(name)) return new Error("invalid request header name");
    if (typeof value !== "string") return new Error(`invalid value for request header ${name}`);
    if (!isAsciiHeaderValue(value)) {
      if (BAD_VALUE.test(value)) return new Error(`invalid value for request header ${name}`);
      // Bytes above 0x7F: a value the listener received goes upstream byte for byte, so
      // `x-amz-meta-*: café` sent as UTF-8 is stored as those bytes, as S3 stores it.
      value = wireValue(value);
      bytes = true;
    }
    const len = name.length;
    if (len === 4 || len === 14 || len === 17) {
      const lower = name.toLowerCase();
      if (lower === "host" || lower === "content-length" || lower === "transfer-encoding") continue;
    }
    n = scratch.put(name, n);
    n = scratch.put2(COLON, SP, n);
    n = scratch.put(value, n); // (one byte per character: ASCII, or wireValue's bytes)
    n = scratch.put2(CR, LF, n);
  }
  if (contentLength !== undefined) n = scratch.put(`content-length: ${contentLength}\r\n`, n);
  else if (method === "PUT" || method === "POST") n = scratch.put("content-length: 0\r\n", n);
  n = scratch.put2(CR, LF, n);
  // A head with bytes above 0x7F goes as those bytes (a string is written as UTF-8).
  return bytes ? Buffer.from(scratch.buf.subarray(0, n)) : scratch.text(n, utf8);
}
