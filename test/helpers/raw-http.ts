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
