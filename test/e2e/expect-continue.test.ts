/**
 * `Expect: 100-Continue` spelled with a capital C (aws-sdk-go, so rclone, sends it so; the token is
 * case-insensitive). Bun.serve 1.4.5 sends `100 Continue` only for the lower-case spelling, so such
 * a client, answered early (401 here), correctly never sends its body and reuses the connection,
 * where the listener still waited for Content-Length bytes: the next request was read as that
 * body, and a request hidden inside ITS body was served (an object the client never asked for
 * in the open). The early answer now closes the connection.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { connect } from "node:net";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bucketYaml, startProxy, type ProxyProcess } from "./harness.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: ProxyProcess;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "secret.txt", "TOP-SECRET-CONTENT");
  await s3.put("data", "public.txt", "public");
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0 }\nmetrics: { enabled: true, address: 127.0.0.1, port: 0 }\njwt: { enabled: true, algorithm: HS256, secret: "expect-continue-secret-0123456789abcdef" }\nbuckets:\n` +
      bucketYaml({ name: "priv", prefix: "/priv", bucket: "data", endpoint: s3.endpoint, extra: "    access: read-write\n    auth: { enabled: true }\n" }) +
      bucketYaml({ name: "pub", prefix: "/pub", bucket: "data", endpoint: s3.endpoint }),
  );
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

/**
 * Sends `first`, waits for its answer, then sends `then` on the same connection; everything the
 * server sent, until it closes or goes quiet, or (`enough`) once what followed the first answer
 * holds all the test looks at.
 */
function exchange(first: string, then: string, port = px.port, enough?: (rest: string) => boolean): Promise<{ first: string; rest: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    let buf = "";
    let firstAnswer: string | undefined;
    let quiet: ReturnType<typeof setTimeout> | undefined;
    const done = (closed: boolean) => {
      clearTimeout(quiet);
      sock.destroy();
      resolve({ first: firstAnswer ?? buf, rest: firstAnswer === undefined ? "" : buf.slice(firstAnswer.length), closed });
    };
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      if (firstAnswer === undefined && /\r\n\r\n/.test(buf)) {
        const head = buf.slice(0, buf.indexOf("\r\n\r\n") + 4);
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length >= head.length + len) {
          firstAnswer = buf.slice(0, head.length + len);
          sock.write(then, () => {});
        }
      }
      clearTimeout(quiet);
      if (firstAnswer !== undefined && enough?.(buf.slice(firstAnswer.length))) return done(false);
      quiet = setTimeout(() => done(false), 1500);
    });
    sock.on("close", () => done(true));
    sock.on("error", () => {});
    sock.write(first);
  });
}

test("an early answer to `Expect: 100-Continue` (capital C) closes the connection: the next request is never read as its body, and nothing hidden in that one's body is served", async () => {
  const hidden = "GET /pub/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  const second = `PUT /pub/harmless HTTP/1.1\r\nHost: x\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
  const first = `PUT /priv/x HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: ${second.length - hidden.length}\r\n\r\n`;
  const r = await exchange(first, second);
  expect(r.first).toStartWith("HTTP/1.1 401");
  expect(r.first.toLowerCase()).toContain("connection: close");
  expect(r.rest).not.toContain("TOP-SECRET-CONTENT");
  expect(r.closed).toBe(true);
  expect(s3.requests.some((q) => !q.admin && q.pathname === "/data/secret.txt")).toBe(false);
});

test("the same for a GET or HEAD announcing a body, and for an Expect list holding 100-continue (`100-continue, x`): the answer closes the connection, nothing hidden is served", async () => {
  // The guard skipped GET and HEAD, and knew only the exact token: the client's withheld body
  // made the next request a body again, and the request hidden in that one's body was served.
  const hidden = "GET /pub/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  const second = `POST /pub/harmless HTTP/1.1\r\nHost: x\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
  const cases = [
    ["GET", "/pub/public.txt", "100-Continue"],
    ["HEAD", "/pub/public.txt", "100-Continue"],
    ["GET", "/pub/public.txt", "100-continue, x"],
    ["PUT", "/priv/x", "100-continue, x"],
    ["PUT", "/priv/x", "x, 100-continue"],
    ["PUT", "/priv/x", "100-continue;q=1"],
  ] as const;
  for (const [method, path, value] of cases) {
    const before = s3.requests.filter((q) => !q.admin && q.pathname === "/data/secret.txt").length;
    const first = `${method} ${path} HTTP/1.1\r\nHost: x\r\nExpect: ${value}\r\nContent-Length: ${second.length - hidden.length}\r\n\r\n`;
    const r = await exchange(first, second);
    const label = `${method} Expect: ${value}`;
    expect(`${label}: ${r.first.toLowerCase().includes("connection: close")} ${r.rest.includes("TOP-SECRET-CONTENT")} ${r.closed}`).toBe(`${label}: true false true`);
    expect(s3.requests.filter((q) => !q.admin && q.pathname === "/data/secret.txt").length).toBe(before);
  }
});

test("the metrics listener too: an early answer to a POST /metrics with `Expect: 100-Continue` closes the connection; a hidden GET /metrics is never answered", async () => {
  const hidden = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  const second = `POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
  const first = `POST /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: ${second.length - hidden.length}\r\n\r\n`;
  const r = await exchange(first, second, px.metricsPort!);
  expect(r.first).toStartWith("HTTP/1.1 405");
  expect(r.first.toLowerCase()).toContain("connection: close");
  expect(r.rest).not.toContain("# TYPE");
  expect(r.closed).toBe(true);
});

test("a request announcing no body keeps its connection whatever its Expect (nothing can be withheld)", async () => {
  for (const [method, extra] of [["GET", ""], ["GET", "Content-Length: 0\r\n"]] as const) {
    const r = await exchange(`${method} /pub/public.txt HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n${extra}\r\n`, "GET /pub/public.txt HTTP/1.1\r\nHost: x\r\n\r\n", px.port, (rest) => rest.includes("HTTP/1.1 200"));
    expect(`${method} ${extra.trim()}: ${r.first.split("\r\n")[0]} ${r.first.toLowerCase().includes("connection: close")}`).toBe(`${method} ${extra.trim()}: HTTP/1.1 200 OK false`);
    expect(r.rest).toContain("HTTP/1.1 200");
  }
});

test("with the lower-case spelling (Bun answers 100 itself) the connection stays open for the next request", async () => {
  const first = `PUT /priv/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n`;
  const r = await exchange(first, "abc", px.port, (rest) => rest.includes("\r\n\r\n"));
  expect(r.first).toStartWith("HTTP/1.1 100");
  expect(r.rest).toStartWith("HTTP/1.1 401"); // (the body was read as the upload's: the next answer is the PUT's)
});

test("node engine: a refused upload whose client sends the whole body before reading (as aws-cli and boto3 do) gets its answer, and the connection serves the next request (the body was left unread: the client stalled until the idle timeout, then saw a reset)", async () => {
  await using node = await startProxy(
    `server: { address: 127.0.0.1, port: 0, engine: node, security_limits: { max_body_size: 1048576 } }\nbuckets:\n` +
      bucketYaml({ name: "anon", prefix: "/anon", bucket: "data", endpoint: s3.endpoint, extra: "    access: read-write\n    auth: { anonymous_writes: true }\n" }) +
      bucketYaml({ name: "pub", prefix: "/pub", bucket: "data", endpoint: s3.endpoint }),
  );
  const size = 20 * 1024 * 1024;
  const answers = await new Promise<string>((resolve, reject) => {
    const sock = connect(node.port, "127.0.0.1");
    let buf = "";
    sock.on("error", reject);
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      if (/HTTP\/1\.1 200[\s\S]*TOP-SECRET-CONTENT/.test(buf)) {
        sock.destroy();
        resolve(buf);
      }
    });
    sock.write(`PUT /anon/big.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
    // the whole body first (written in full only if the server reads it), then the next request
    sock.write(Buffer.alloc(size, 0x47), () => sock.write("GET /pub/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"));
  });
  expect(answers).toStartWith("HTTP/1.1 413");
  expect(answers).toContain("TOP-SECRET-CONTENT");
});
