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
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${hostHeader}\r\n`;
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
    const n = name.length;
    if (n === 4 || n === 14 || n === 17) {
      const lower = name.toLowerCase();
      if (lower === "host" || lower === "content-length" || lower === "transfer-encoding") continue;
    }
    head += `${name}: ${value}\r\n`;
  }
  if (contentLength !== undefined) head += `content-length: ${contentLength}\r\n`;
  else if (method === "PUT" || method === "POST") head += "content-length: 0\r\n";
  // A string is written as UTF-8: a head with bytes above 0x7F goes as its Latin-1 bytes instead.
  return bytes ? Buffer.from(`${head}\r\n`, "latin1") : `${head}\r\n`;
}
