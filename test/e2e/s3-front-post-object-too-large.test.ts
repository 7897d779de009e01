/**
 * A browser form upload (PostObject) whose file is larger than its policy's content-length-range
 * (or S3's 5 GiB): reading stops as soon as the file passes the bound, S3's 400 EntityTooLarge
 * answers at once (MaxSizeAllowed the bound; no ProposedSize: the file's size is not known while
 * its end is unread, and the form's Content-Length does not say it) with `Connection: close`, and the
 * connection is closed, so the rest of the body is never read; nothing goes upstream. The form was
 * read to its end (up to 5 GiB) before the answer.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "node:net";
import { presignPost } from "../../src/fronts/presign.ts";
import { answerOf, bytesOf, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers on a loaded machine need more.
setDefaultTimeout(60_000);

const MiB = 1024 * 1024;

interface Exchange {
  head: string;
  body: string;
  /** The server closed the connection (after its answer). */
  closed: boolean;
}

/**
 * A form POST declaring `declaredFile` bytes of file, of which only `sent` are written: the answer,
 * and whether the server then closed the connection (waited for up to 10 s after the answer).
 */
function partialForm(port: number, fields: Record<string, string>, declaredFile: number, sent: number, after?: string): Promise<Exchange> {
  const boundary = "----yatagarasu-form-boundary";
  let pre = "";
  for (const [k, v] of Object.entries(fields)) pre += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  pre += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  // (`after`: what follows the file instead of the closing delimiter and its CRLF)
  const post = after?.replaceAll("BOUNDARY", boundary) ?? `\r\n--${boundary}--\r\n`;
  const length = Buffer.byteLength(pre) + declaredFile + post.length;
  const head = [`POST /up HTTP/1.1`, `host: 127.0.0.1:${port}`, `content-type: multipart/form-data; boundary=${boundary}`, `content-length: ${length}`].join("\r\n") + "\r\n\r\n";
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let answer: { head: string; body: string } | undefined;
    const timer = setTimeout(() => {
      sock.destroy();
      if (answer === undefined) reject(new Error("no answer within 10 s"));
      else resolve({ ...answer, closed: false });
    }, 10_000);
    sock.on("connect", () => {
      sock.write(head + pre);
      sock.write(bytesOf(sent, 7));
    });
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (answer !== undefined || end < 0) return;
      const h = buf.subarray(0, end).toString("latin1");
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(h)?.[1] ?? 0);
      if (buf.length - end - 4 < len) return;
      answer = { head: h, body: buf.subarray(end + 4, end + 4 + len).toString("utf8") };
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(timer);
      if (answer === undefined) reject(new Error("closed without an answer"));
      else resolve({ ...answer, closed: true });
    });
  });
}

describe.each(["bun", "node"] as const)("engine %s", (engine) => {
  let env: UploadEnv;
  beforeAll(async () => {
    env = await startUploadEnv({ engine });
  });
  afterAll(() => env.stop());

  const fieldsFor = (key: string, maxSize: number) => {
    const now = Math.floor(Date.now() / 1000) * 1000;
    return presignPost({ origin: env.endpoint, bucket: "up", key, region: "us-east-1", accessKeyId: WRITER.accessKeyId, secretAccessKey: WRITER.secretAccessKey, now, expiresAt: now + 300_000, maxSize }).fields;
  };

  test("a file past content-length-range: EntityTooLarge (the bound) at once, Connection: close, the rest unread, nothing upstream", async () => {
    env.mark();
    // (100 MiB declared, 1 MiB sent: an answer at all means the rest was not waited for)
    const x = await partialForm(env.port, fieldsFor("big/over.bin", 1000), 100 * MiB, 1 * MiB);
    const a = await answerOf(new Response(x.body, { status: Number(/^HTTP\/1\.1 (\d+)/.exec(x.head)?.[1]) }));
    expect({ status: a.status, code: a.code, max: /<MaxSizeAllowed>(\d+)</.exec(x.body)?.[1] }).toEqual({ status: 400, code: "EntityTooLarge", max: "1000" });
    expect(x.head).toMatch(/\r\nconnection: close/i);
    expect(x.closed).toBe(true);
    expect(env.upstreamCalls()).toEqual([]);
    expect(await env.s3.exists("up", "big/over.bin")).toBe(false);
  });

  test("the file's size is unknown when reading stops (no final CRLF, fields after the file, or the usual end alike): no ProposedSize, never a wrong one", async () => {
    // (it was the Content-Length less the usual closing delimiter: 2 bytes short without the final
    // CRLF, the trailing fields counted as file; S3 ignores fields after the file)
    const endings = ["\r\n--BOUNDARY--", `\r\n--BOUNDARY\r\nContent-Disposition: form-data; name="late"\r\n\r\n${"x".repeat(5000)}\r\n--BOUNDARY--\r\n`, undefined];
    for (const after of endings) {
      const x = await partialForm(env.port, fieldsFor("big/ending.bin", 1000), 10 * MiB, 256 * 1024, after);
      const proposed = /<ProposedSize>(\d+)</.exec(x.body)?.[1];
      expect(proposed === undefined || proposed === String(10 * MiB) ? "none or the file's size" : proposed).toBe("none or the file's size");
      expect({ status: /^HTTP\/1\.1 (\d+)/.exec(x.head)?.[1], code: /<Code>(\w+)</.exec(x.body)?.[1], proposed: /<ProposedSize>(\d+)</.exec(x.body)?.[1] ?? "none", max: /<MaxSizeAllowed>(\d+)</.exec(x.body)?.[1] }).toEqual({ status: "400", code: "EntityTooLarge", proposed: "none", max: "1000" });
    }
  });

  test("a form declaring more than S3's largest POST: EntityTooLarge from its length, Connection: close, the body unread", async () => {
    env.mark();
    const x = await partialForm(env.port, fieldsFor("big/huge.bin", 5 * 1024 ** 3), 6 * 1024 ** 3, 64 * 1024);
    expect({ status: /^HTTP\/1\.1 (\d+)/.exec(x.head)?.[1], code: /<Code>(\w+)</.exec(x.body)?.[1], closed: x.closed }).toEqual({ status: "400", code: "EntityTooLarge", closed: true });
    expect(x.head).toMatch(/\r\nconnection: close/i);
    expect(env.upstreamCalls()).toEqual([]);
  });
});
