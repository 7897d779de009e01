/**
 * A store on a raw socket, for answers no HTTP server library would send (a body cut short, one
 * that stalls, none at all): each request is read whole (its head, then its Content-Length body;
 * with `headOnly`, its head alone), the readiness probe's HEAD is answered as S3 answers it, and
 * every other request gets `answer(head)`: written, then the connection closed (`end`; "reset":
 * with a TCP reset, which is how a close-delimited body cut short shows) or left open and silent;
 * or "stop-reading": nothing is answered, and nothing more read.
 */
import { createServer, type AddressInfo, type Socket } from "node:net";

export interface RawStore {
  port: number;
  /** "METHOD /path" of every request other than a HEAD, in arrival order. */
  seen: string[];
  close(): void;
}

export type RawAnswer = { bytes: string; end: boolean | "reset" } | "stop-reading";

export async function startRawStore(answer: (head: string) => RawAnswer, opts: { headOnly?: boolean } = {}): Promise<RawStore> {
  const sockets = new Set<Socket>();
  const seen: string[] = [];
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => sockets.delete(sock));
    let buf = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.subarray(0, end).toString("latin1");
      const length = opts.headOnly === true ? 0 : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      buf = Buffer.alloc(0);
      if (head.startsWith("HEAD ")) return void sock.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      seen.push(head.split(" ", 2).join(" "));
      const a = answer(head);
      if (a === "stop-reading") sock.pause();
      else if (a.end === "reset") sock.write(a.bytes, () => sock.resetAndDestroy());
      else if (a.end) sock.end(a.bytes);
      else sock.write(a.bytes);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
