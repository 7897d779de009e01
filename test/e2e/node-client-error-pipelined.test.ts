/**
 * A request node:http cannot parse, pipelined behind one still being served (engine: node). node:http's
 * own answer to the parse error (a bare 400) was written at once, in place of the earlier request's:
 * a PUT was stored while its client read 400, a DELETE done while its client read 400, and a GET's
 * object never reached its client. The earlier exchanges are now answered first, then the 400 and
 * the close. A request that is alone on its connection still gets node's 400 (or 431 for a head too
 * large), and a parse error in a request's own body still ends that exchange at once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "node:net";
import type { S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { rawHttp, rawStatuses as statuses } from "../helpers/raw-http.ts";
import { startNodeWriteWorld, type InProcessProxy } from "./harness.ts";

setDefaultTimeout(30_000);

/** `raw` written in one write; everything the server sent until it closed (or 5 s). */
const exchange = (port: number, raw: string) => rawHttp(port, raw, 5000);

describe("engine: node, a malformed request behind a pipelined one", () => {
  let s3: S3Fixture;
  let px: InProcessProxy;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ s3, px, stop } = await startNodeWriteWorld("AKIDCLIENTERR001", "client-error-secret-0123456789"));
  });
  afterAll(async () => {
    await stop?.();
  });

  test("a PUT then garbage: the PUT's 200 comes first, then 400 (it was a bare 400 alone, the object stored)", async () => {
    const raw = await exchange(px.port, "PUT /rw/put1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcJUNK\r\n\r\n");
    expect(await s3.exists("rw", "put1")).toBe(true);
    expect(statuses(raw)).toEqual([200, 400]);
    expect(raw).toContain('"key":"put1"');
  });

  test("a GET then garbage: the object, then 400", async () => {
    await s3.put("rw", "g", "hello");
    const raw = await exchange(px.port, "GET /rw/g HTTP/1.1\r\nHost: x\r\n\r\nJUNK\r\n\r\n");
    expect(statuses(raw)).toEqual([200, 400]);
    expect(raw).toContain("\r\n\r\nhello");
  });

  test("a DELETE with Connection: close, then more bytes: the 204 (it was a bare 400, the object deleted)", async () => {
    await s3.put("rw", "d", "x");
    const raw = await exchange(px.port, "DELETE /rw/d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nX");
    expect(await s3.exists("rw", "d")).toBe(false);
    expect(statuses(raw)).toEqual([204]);
  });

  test("a GET, then a PUT whose chunked body is malformed while it waits its turn: the GET's 200, then 400; the PUT never runs (it was a bare 400 at once, the GET cut)", async () => {
    await s3.put("rw", "g3", "hello again");
    for (const bad of ["ZZ\r\nabc\r\n", "3\r\nabcXX"]) {
      const raw = await exchange(px.port, `GET /rw/g3 HTTP/1.1\r\nHost: x\r\n\r\nPUT /rw/never HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${bad}`);
      expect({ bad, statuses: statuses(raw) }).toEqual({ bad, statuses: [200, 400] });
      expect(raw).toContain("\r\n\r\nhello again");
      expect(await s3.exists("rw", "never")).toBe(false);
    }
  });

  test("a request answered before its body was read (411 for a chunked PUT), whose body then fails to parse: its answer alone, then the close (a second answer, 400, followed it: a client reusing the connection reads it as its next request's)", async () => {
    for (const bad of ["ZZ\r\nabc\r\n", "3\r\nabcXX"]) {
      const raw = await exchange(px.port, `PUT /rw/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${bad}`);
      expect({ bad, statuses: statuses(raw) }).toEqual({ bad, statuses: [411] });
      expect(await s3.exists("rw", "chunked")).toBe(false);
    }
  });

  test("garbage alone: 400; a head over the limit alone: 431", async () => {
    expect(statuses(await exchange(px.port, "JUNK\r\n\r\n"))).toEqual([400]);
    expect(statuses(await exchange(px.port, `GET /rw/g HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(100_000)}\r\n\r\n`))).toEqual([431]);
  });

  test("a GET answered, then a request whose head is bad on the same kept-alive connection: 200, then 400", async () => {
    await s3.put("rw", "g2", "hi");
    const sock = connect(px.port, "127.0.0.1");
    let buf = "";
    sock.on("data", (d) => (buf += d.toString("latin1")));
    const closed = new Promise<void>((r) => sock.on("close", () => r()));
    sock.write("GET /rw/g2 HTTP/1.1\r\nHost: x\r\n\r\n");
    await waitFor(() => buf.includes("\r\n\r\nhi"), { message: "the GET's answer" });
    sock.write("JUNK\r\n\r\n");
    await closed;
    expect(statuses(buf)).toEqual([200, 400]);
  });
});
