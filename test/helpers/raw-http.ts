/** Raw HTTP/1.1 over a socket, for requests fetch would normalise or refuse to send. */
import { connect } from "node:net";

/** Writes `head` (the whole request, as given) and resolves with everything the server sent until it closed. */
export function rawHttp(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1", () => sock.write(head));
    let buf = "";
    sock.on("data", (d) => (buf += d.toString("latin1")));
    sock.on("error", reject);
    sock.on("close", () => resolve(buf));
  });
}

/** The status code of a raw answer (0 when there is none). */
export const rawStatus = (r: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(r)?.[1] ?? 0);
