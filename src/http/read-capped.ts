/**
 * Reading a small body whole, with a cap: upstream XML answers (listings, Complete/Copy results,
 * errors) and small request bodies (STS forms). One place, so every such read is bounded the same
 * way whether or not the other side sent a Content-Length.
 */
import zlib from "node:zlib";
import { ProxyError } from "../errors.ts";

/**
 * The body of a request or response, if it is at most `max` bytes; undefined when it is longer
 * (declared or seen while reading: the rest is cancelled). Rejects when the body fails.
 */
export async function readCapped(msg: { readonly body: ReadableStream<Uint8Array> | null; readonly headers: Headers }, max: number): Promise<Uint8Array | undefined> {
  const body = msg.body;
  if (body === null) return new Uint8Array(0);
  const declared = msg.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    body.cancel().catch(() => {});
    return undefined;
  }
  const reader = body.getReader();
  // The pieces are copied into one growing buffer as they come (a lone piece is returned as it
  // is): kept a piece each, a body dripped in 1-byte TCP segments held a view and a buffer per
  // byte, ~13 MiB for a 64 KiB STS form.
  let only: Uint8Array | undefined;
  let out: Uint8Array | undefined;
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const next = size + value.byteLength;
    if (next > max) {
      reader.cancel().catch(() => {});
      return undefined;
    }
    if (only === undefined && out === undefined) only = value;
    else {
      if (out === undefined || next > out.byteLength) {
        const grown = new Uint8Array(Math.min(max, 2 * next));
        grown.set(out === undefined ? only! : out.subarray(0, size));
        out = grown;
        only = undefined;
      }
      out.set(value, size);
    }
    size = next;
  }
  return out !== undefined ? out.subarray(0, size) : (only ?? new Uint8Array(0));
}

/**
 * An upstream's small answer (an XML result, an error) read whole with readCapped, then decoded
 * from the Content-Encoding it declares. The proxy sends no Accept-Encoding, which lets the
 * upstream answer in any coding (RFC 9110 §12.5.3): a gzip listing was relayed as garbage.
 * gzip, deflate and br are decoded (the decoded bytes capped at `max` too: undefined beyond);
 * another coding, or bytes that do not decode, reject with a BadGateway (502 on the plain front,
 * S3's 500 InternalError on the S3 front), never a 200 with the coded bytes.
 */
export async function readUpstreamCapped(res: { readonly body: ReadableStream<Uint8Array> | null; readonly headers: Headers }, max: number): Promise<Uint8Array | undefined> {
  const bytes = await readCapped(res, max);
  const coding = res.headers.get("content-encoding");
  if (bytes === undefined || coding === null) return bytes;
  return decodeContent(bytes, coding, max);
}

/** The codings of a Content-Encoding value, in the order they were applied ("identity" left out). */
function codingsOf(value: string): string[] {
  return value.split(",").map((c) => c.trim().toLowerCase()).filter((c) => c !== "" && c !== "identity");
}

/**
 * `bytes` decoded from `contentEncoding` (undefined when the decoded bytes exceed `max`). `partial`:
 * the bytes may be a body's first part only (an error body read up to a cap): what they hold is
 * decoded. Throws a BadGateway for a coding it cannot read or bytes that do not decode.
 */
export function decodeContent(bytes: Uint8Array, contentEncoding: string, max: number, partial = false): Uint8Array | undefined {
  const codings = codingsOf(contentEncoding);
  let out = bytes;
  for (let i = codings.length - 1; i >= 0; i--) {
    if (out.byteLength === 0) return out;
    const c = codings[i]!;
    const opts = { maxOutputLength: max, ...(partial ? { finishFlush: zlib.constants.Z_SYNC_FLUSH } : {}) };
    try {
      if (c === "gzip" || c === "x-gzip") out = zlib.gunzipSync(out, opts);
      else if (c === "deflate") out = inflateEither(out, opts);
      else if (c === "br") out = zlib.brotliDecompressSync(out, { maxOutputLength: max, ...(partial ? { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH } : {}) });
      else throw new ProxyError("BadGateway", { detail: `The upstream answered in a content coding the proxy cannot read (${c.slice(0, 32)})` });
    } catch (err) {
      if (err instanceof ProxyError) throw err;
      if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") return undefined;
      throw new ProxyError("BadGateway", { detail: `The upstream's ${c.slice(0, 32)}-coded answer does not decode`, cause: err });
    }
  }
  return out;
}

/** `deflate` is the zlib format (RFC 9110 §8.4.1.2); some servers send raw deflate: both are read. */
function inflateEither(bytes: Uint8Array, opts: zlib.ZlibOptions): Uint8Array {
  try {
    return zlib.inflateSync(bytes, opts);
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw err;
    return zlib.inflateRawSync(bytes, opts);
  }
}

/** Fatal: bytes that are not UTF-8 are refused, not replaced. A leading BOM (which XML allows) is dropped. */
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * An upstream XML document's bytes as text, or undefined when they are not UTF-8: such a document
 * is not well-formed (XML 1.0 §4.3.3), as parseXml refuses one. Decoded with U+FFFD in place of
 * each bad byte, a listing named keys no store holds (a store that keeps Latin-1 names).
 */
export function utf8Text(bytes: Uint8Array): string | undefined {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}
