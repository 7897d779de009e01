/** Raw HTTP/1.1 over a socket, for requests fetch would normalise or refuse to send. */
import { connect } from "node:net";

/** Writes `head` (the whole request or requests, as given, in one write) and resolves with everything the server sent until it closed (or, given `timeoutMs`, until then). */
export function rawHttp(port: number, head: string, timeoutMs?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () => sock.write(head));
    let buf = "";
    const t = timeoutMs === undefined ? undefined : setTimeout(() => sock.destroy(), timeoutMs);
    sock.on("data", (d) => (buf += d.toString("latin1")));
    sock.on("error", reject);
    sock.on("close", () => {
      clearTimeout(t);
      resolve(buf);
    });
  });
}

/** The status code of a raw answer (0 when there is none). */
export const rawStatus = (r: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(r)?.[1] ?? 0);

/** The status codes of every answer in a raw byte stream (pipelined answers), in order. */
export const rawStatuses = (raw: string): number[] => [...raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

/** Writes `head` and resolves with every byte the server sent until the connection closed, and how it closed (an error's code, or "end"; "timeout" when still open after `timeoutMs`). */
export function rawExchange(port: number, head: string, timeoutMs = 10_000): Promise<{ bytes: Buffer; closed: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = "end";
    const sock = connect(port, "127.0.0.1", () => sock.write(head));
    const t = setTimeout(() => {
      closed = "timeout";
      sock.destroy();
    }, timeoutMs);
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", (e: NodeJS.ErrnoException) => (closed = e.code ?? e.message));
    sock.on("close", () => {
      clearTimeout(t);
      resolve({ bytes: Buffer.concat(chunks), closed });
    });
  });
}

/** The payload bytes a chunked body (what follows the head) carries, and whether its last chunk arrived. */
export function chunkedPayload(body: string): { bytes: number; complete: boolean } {
  let at = 0;
  let bytes = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    if (eol < 0) return { bytes, complete: false };
    const size = parseInt(body.slice(at, eol), 16);
    if (size === 0) return { bytes, complete: true };
    const got = Math.min(size, body.length - eol - 2);
    bytes += got;
    if (got < size) return { bytes, complete: false };
    at = eol + 2 + size + 2;
  }
}
