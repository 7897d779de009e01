/**
 * Serializing the request head. Pure: it returns the head or the reason it refuses to build one.
 * Request headers may carry credentials: a refusal names the header, never its value.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** CR, LF or NUL would end the line early: header injection. */
export const BAD_VALUE = /[\0\r\n]/;
/** Path: origin-form, no whitespace or control characters. */
const BAD_PATH = /[\0-\x20\x7f]/;

/**
 * `METHOD path HTTP/1.1`, Host, then the caller's headers. The pool owns Host and the framing
 * headers (no body is ever sent), so the caller's Host, Content-Length and Transfer-Encoding are
 * dropped. Returns an Error (not thrown: the caller turns it into a rejection) on bad input.
 */
export function buildRequestHead(method: string, path: string, hostHeader: string, headers: Record<string, string>): string | Error {
  if (method !== "GET" && method !== "HEAD") return new Error("only GET and HEAD are supported");
  if (path.charCodeAt(0) !== 47 || BAD_PATH.test(path)) return new Error("invalid request target");
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${hostHeader}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (!TOKEN.test(name)) return new Error("invalid request header name");
    if (typeof value !== "string" || BAD_VALUE.test(value)) return new Error(`invalid value for request header ${name}`);
    const n = name.length;
    if (n === 4 || n === 14 || n === 17) {
      const lower = name.toLowerCase();
      if (lower === "host" || lower === "content-length" || lower === "transfer-encoding") continue;
    }
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}
