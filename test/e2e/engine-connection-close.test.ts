/**
 * A request saying `Connection: close` gets its answer with `Connection: close` on both engines
 * (RFC 9112 §9.6: the server SHOULD say so in its final answer) and then the connection closed.
 * Bun.serve closed it but said nothing, where the node engine says it.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { rawHttp, rawStatus } from "../helpers/raw-http.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
const proxies: Record<string, InProcessProxy> = {};

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "closing", public: true }], credentials: [] });
  await s3.put("closing", "a.txt", "body of a");
  for (const engine of ["bun", "node"]) {
    proxies[engine] = await startInProcess(`server: { address: 127.0.0.1, port: 0, engine: ${engine} }\nbuckets:\n` + bucketYaml({ name: "c", prefix: "/c", bucket: "closing", endpoint: s3.endpoint }));
  }
});
afterAll(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  await s3?.stop();
});

/** Sends `request`, waits for its whole answer (Content-Length framed), sends it again on the same connection; both answers. */
function twoOnOneConnection(port: number, request: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const answers: string[] = [];
    let buf = "";
    const sock = connect(port, "127.0.0.1", () => sock.write(request));
    sock.on("error", reject);
    sock.on("close", () => reject(new Error(`closed after ${answers.length} answer(s)`)));
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const size = end + 4 + Number(/\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length < size) return;
      answers.push(buf.slice(0, size));
      buf = buf.slice(size);
      if (answers.length === 2) {
        sock.removeAllListeners("close");
        sock.destroy();
        resolve(answers);
      } else sock.write(request);
    });
  });
}

const headOf = (raw: string): string[] => raw.slice(0, raw.indexOf("\r\n\r\n")).split("\r\n").slice(1).map((l) => l.toLowerCase());

for (const engine of ["bun", "node"]) {
  test(`${engine} engine: an answer to Connection: close says close (proxied, refused, HEAD, /health), and a keep-alive one does not`, async () => {
    const port = Number(new URL(proxies[engine].url("/")).port);
    const cases: Array<[string, string, number]> = [
      ["GET /c/a.txt", "close", 200],
      ["GET /c/a.txt", "Close", 200],
      ["GET /c/a.txt", "foo, close", 200],
      ["HEAD /c/a.txt", "close", 200],
      ["GET /c/missing", "close", 403],
      ["PUT /c/a.txt", "close", 405],
      ["GET /health", "close", 200],
    ];
    for (const [line, connection, status] of cases) {
      // rawHttp resolves when the server closes: the connection was closed after the answer
      const got = await rawHttp(port, `${line} HTTP/1.1\r\nHost: x\r\nConnection: ${connection}\r\n${line.startsWith("PUT") ? "Content-Length: 0\r\n" : ""}\r\n`);
      expect([line, connection, rawStatus(got)]).toEqual([line, connection, status]);
      expect([line, connection, headOf(got).filter((h) => h.startsWith("connection:"))]).toEqual([line, connection, ["connection: close"]]);
      if (line.startsWith("HEAD")) expect(headOf(got).some((h) => h.startsWith("date:"))).toBe(true);
    }
    // kept alive: no close, and the connection stays open for the next request
    const kept = await twoOnOneConnection(port, "GET /c/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(kept.map(rawStatus)).toEqual([200, 200]);
    expect(headOf(kept[0]).filter((h) => h.startsWith("connection:") && h.includes("close"))).toEqual([]);
  });
}

/**
 * A request saying `Connection: close` with `size` bytes of body, all written before the answer is
 * read (as Python's urllib does): the answer's status line, and the socket error met, if any.
 */
function closeWithBody(port: number, request: string, size: number): Promise<{ status: string; error?: string }> {
  return new Promise((resolve) => {
    let answer = "";
    let error: string | undefined;
    const sock = connect(port, "127.0.0.1", () => {
      sock.write(request.replace("\r\n\r\n", `\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n`));
      sock.end(Buffer.alloc(size, 120));
    });
    sock.on("data", (d) => (answer += d.toString("latin1")));
    sock.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? String(e)));
    sock.on("close", () => resolve({ status: answer.slice(0, answer.indexOf("\r\n")), error }));
  });
}

for (const engine of ["bun", "node"]) {
  test(`${engine} engine: an early refusal of a Connection: close request whose body the client sends before reading reaches it (raw socket, Python's urllib); the connection was closed with the body unread, and the client saw a broken pipe instead`, async () => {
    const url = proxies[engine].url("/c/upload.bin");
    const port = Number(new URL(url).port);
    for (const size of [8 << 20, 2 << 20]) {
      expect({ size, ...(await closeWithBody(port, "PUT /c/upload.bin HTTP/1.1\r\nhost: x\r\n\r\n", size)) }).toEqual({ size, status: expect.stringMatching(/^HTTP\/1\.1 40[35] /) });
    }
    const script = `import urllib.request, urllib.error
try:
    urllib.request.urlopen(urllib.request.Request(${JSON.stringify(url)}, data=b"x" * (8 << 20), method="PUT"), timeout=20)
    print("ok")
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print(repr(e))`;
    const py = Bun.spawn(["python3", "-c", script], { stdout: "pipe", stderr: "pipe" });
    const [out] = await Promise.all([new Response(py.stdout).text(), py.exited]);
    expect(out.trim()).toMatch(/^40[35]$/);
  });
}
