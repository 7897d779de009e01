/**
 * A streaming reader of multipart/form-data (RFC 7578) for S3's browser POST uploads: the fields
 * before the file are read whole (bounded), the file part is handed on chunk by chunk, never held
 * whole. S3 takes the fields up to the one named `file` and ignores whatever follows it.
 *
 * Bytes of a part's body are released only once they cannot be the start of the delimiter
 * ("\r\n--" + boundary): the last delimiter-length bytes are held back until more arrive.
 */
import { releaseChunk } from "../../http/framed-body.ts";

export class FormDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FormDataError";
  }
}

export interface FormPart {
  /** The `name` of its Content-Disposition (as sent; S3 field names are case-insensitive). */
  name: string;
  /** The `filename`, for a file part. */
  filename?: string;
  /** The part's own Content-Type, if any. */
  contentType?: string;
}

/** The longest part head read (Content-Disposition and Content-Type lines). */
const MAX_PART_HEAD = 8 * 1024;
/** RFC 2046: a boundary is 1 to 70 characters of a restricted set. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** The boundary of a multipart/form-data Content-Type, or undefined if it is not one. */
export function formBoundary(contentType: string | null): string | undefined {
  if (contentType === null) return undefined;
  const [type, ...params] = contentType.split(";");
  if (type!.trim().toLowerCase() !== "multipart/form-data") return undefined;
  for (const p of params) {
    const eq = p.indexOf("=");
    if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== "boundary") continue;
    let v = p.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    return BOUNDARY.test(v) ? v : undefined;
  }
  return undefined;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0]!;
  const last = hay.length - needle.length;
  outer: for (let i = hay.indexOf(first, from); i >= 0 && i <= last; i = hay.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const HEAD_END = new Uint8Array([13, 10, 13, 10]);

/** The length of the longest end of `buf` that is a beginning of `d` (shorter than d). */
function heldBack(buf: Uint8Array, d: Uint8Array): number {
  const n = buf.length;
  outer: for (let k = Math.min(d.length - 1, n); k > 0; k--) {
    for (let j = 0; j < k; j++) if (buf[n - k + j] !== d[j]) continue outer;
    return k;
  }
  return 0;
}

/**
 * The parameters of a Content-Disposition: form-data line. Browsers (the HTML form-data encoding,
 * RFC 7578 §4.2) escape nothing with a backslash: they send `"` as %22, a newline as %0A and a
 * backslash as itself, so `filename="C:\dir\file.txt"` is that Windows path, whose last segment
 * S3's `${filename}` takes (S3: "only the text following the last slash (/) or backslash (\) is
 * used"). Other writers (Go's mime/multipart, older curl) escape `"` and `\` with a backslash. So
 * a quoted value ends at the first quote followed by `;` or the end of the line, and is unescaped
 * only when it holds an escaped quote (which a browser never sends); a doubled backslash left
 * as it is changes no `${filename}`, which keeps the text after the last one.
 */
function dispositionParams(value: string): Map<string, string> | undefined {
  const m = /^\s*form-data\s*(;.*)?$/i.exec(value);
  if (m === null) return undefined;
  const out = new Map<string, string>();
  const rest = m[1] ?? "";
  const param = /;\s*([A-Za-z0-9_*-]+)\s*=\s*/y;
  const token = /[^;\s]*/y;
  const closing = /"\s*(?:;|$)/g;
  let at = 0;
  for (;;) {
    param.lastIndex = at;
    const p = param.exec(rest);
    if (p === null) break;
    at = param.lastIndex;
    let v: string;
    if (rest[at] === '"') {
      closing.lastIndex = at + 1;
      const c = closing.exec(rest);
      const end = c === null ? rest.length : c.index;
      const raw = rest.slice(at + 1, end);
      v = raw.includes('\\"') ? raw.replace(/\\(.)/g, "$1") : raw;
      at = c === null ? rest.length : end + 1;
    } else {
      token.lastIndex = at;
      v = token.exec(rest)![0];
      at = token.lastIndex;
    }
    out.set(p[1]!.toLowerCase(), v);
    // (anything between a value and the next ";" is skipped)
    while (at < rest.length && rest[at] !== ";") at++;
  }
  return out;
}

export class FormReader {
  private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };
  private readonly delimiter: Uint8Array;
  private buf: Uint8Array = new Uint8Array(0);
  private ended = false;
  /** Whether chunks are released once used (releaseChunk), and the one `buf` views now. */
  private readonly releasing: boolean;
  private owned: Uint8Array | null = null;
  /** Before the first delimiter; in a part's body; just after a delimiter; after the closing one. */
  private state: "start" | "part" | "between" | "done" = "start";

  /**
   * `opts.releaseChunks`: the body's chunks are this reader's own (ownsBodyChunks), freed as soon
   * as they are used; a chunk body() gives is then valid only until the reader is called again.
   */
  constructor(body: ReadableStream<Uint8Array>, boundary: string, opts: { releaseChunks?: boolean } = {}) {
    this.releasing = opts.releaseChunks === true;
    this.reader = body.getReader() as unknown as FormReader["reader"];
    this.delimiter = new TextEncoder().encode("\r\n--" + boundary);
  }

  /** Reads more of the body into the buffer; false at its end. */
  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const { done, value } = await this.reader.read();
    if (done || value === undefined) {
      this.ended = true;
      return false;
    }
    const previous = this.owned;
    if (this.buf.length === 0) {
      this.buf = value;
    } else {
      const next = new Uint8Array(this.buf.length + value.byteLength);
      next.set(this.buf);
      next.set(value, this.buf.length);
      this.buf = next;
      if (this.releasing) releaseChunk(value);
    }
    this.owned = this.releasing ? this.buf : null;
    // Nothing views the chunk the buffer was cut from any more: what body() gave out of it was
    // used before this read was asked for.
    if (previous !== null) releaseChunk(previous);
    return true;
  }

  /** The next part's head, or undefined after the closing delimiter. */
  async nextPart(): Promise<FormPart | undefined> {
    if (this.state === "part") {
      // skip the rest of the current part
      for await (const _ of this.body()) void _;
    }
    if (this.state === "done") return undefined;
    if (this.state === "start") {
      // The body starts with "--boundary" (a short preamble before "\r\n--boundary" is skipped).
      const opening = this.delimiter.subarray(2);
      for (;;) {
        if (this.buf.length >= opening.length && indexOf(this.buf.subarray(0, opening.length), opening, 0) === 0) {
          this.buf = this.buf.subarray(opening.length);
          break;
        }
        const at = indexOf(this.buf, this.delimiter, 0);
        if (at >= 0) {
          this.buf = this.buf.subarray(at + this.delimiter.length);
          break;
        }
        if (this.buf.length > MAX_PART_HEAD) throw new FormDataError("The body does not start with the boundary");
        if (!(await this.more())) throw new FormDataError("The body ended before the first part");
      }
      this.state = "between";
    }
    // after a delimiter: "--" ends the body, CRLF starts a part
    while (this.buf.length < 2) if (!(await this.more())) throw new FormDataError("The body ended inside a delimiter");
    if (this.buf[0] === 45 && this.buf[1] === 45) {
      this.state = "done";
      return undefined;
    }
    // transport padding (spaces, tabs) may precede the CRLF
    let i = 0;
    for (;;) {
      while (i < this.buf.length && (this.buf[i] === 32 || this.buf[i] === 9)) i++;
      if (i + 2 <= this.buf.length) break;
      if (i > 64) throw new FormDataError("Malformed delimiter");
      if (!(await this.more())) throw new FormDataError("The body ended inside a delimiter");
    }
    if (this.buf[i] !== 13 || this.buf[i + 1] !== 10) throw new FormDataError("Malformed delimiter");
    this.buf = this.buf.subarray(i + 2);
    let end: number;
    for (;;) {
      end = this.buf.length >= 2 && this.buf[0] === 13 && this.buf[1] === 10 ? -2 : indexOf(this.buf, HEAD_END, 0);
      if (end !== -1) break;
      if (this.buf.length > MAX_PART_HEAD) throw new FormDataError("A part's head is too large");
      if (!(await this.more())) throw new FormDataError("The body ended inside a part's head");
    }
    const head = end === -2 ? "" : strictUtf8(this.buf.subarray(0, end), "A part's head is not valid UTF-8");
    this.buf = this.buf.subarray(end === -2 ? 2 : end + 4);
    this.state = "part";
    let part: FormPart | undefined;
    let contentType: string | undefined;
    for (const line of head === "" ? [] : head.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new FormDataError("Malformed part header");
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-disposition") {
        const params = dispositionParams(value);
        const field = params?.get("name");
        if (params === undefined || field === undefined) throw new FormDataError("A part's Content-Disposition is not form-data with a name");
        part = { name: field };
        const filename = params.get("filename");
        if (filename !== undefined) part.filename = filename;
      } else if (name === "content-type") {
        contentType = value;
      }
    }
    if (part === undefined) throw new FormDataError("A part has no Content-Disposition");
    if (contentType !== undefined) part.contentType = contentType;
    return part;
  }

  /** The current part's body, chunk by chunk, up to its delimiter. */
  async *body(): AsyncGenerator<Uint8Array> {
    if (this.state !== "part") return;
    const d = this.delimiter;
    for (;;) {
      const at = indexOf(this.buf, d, 0);
      if (at >= 0) {
        const last = this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at + d.length);
        this.state = "between";
        if (at > 0) yield last;
        return;
      }
      // everything but a possible start of the delimiter can go (usually all of it, so the next
      // chunk is taken as it is, without a copy)
      const safe = this.buf.length - heldBack(this.buf, d);
      if (safe > 0) {
        const out = this.buf.subarray(0, safe);
        this.buf = this.buf.subarray(safe);
        yield out;
      }
      if (!(await this.more())) throw new FormDataError("The body ended inside a part");
    }
  }

  /** The current part's whole value as text, at most `max` bytes (undefined beyond). */
  async text(max: number): Promise<string | undefined> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const c of this.body()) {
      size += c.byteLength;
      if (size > max) return undefined;
      chunks.push(c.slice());
    }
    // Strict: a lenient decode turns every invalid byte into U+FFFD, so two different keys
    // (`\xffA`, `\xc3A`) would become one, and the policy would judge a key nobody sent.
    return strictUtf8(Buffer.concat(chunks), "A form field's value is not valid UTF-8");
  }

  /** Stops reading the body (the rest is left unread). */
  cancel(): void {
    this.reader.cancel().catch(() => {});
  }
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** `bytes` as UTF-8 text; FormDataError(`message`) when they are not valid UTF-8. */
function strictUtf8(bytes: Uint8Array, message: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new FormDataError(message);
  }
}
