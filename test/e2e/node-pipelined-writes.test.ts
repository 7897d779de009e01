/**
 * Pipelined writes on the node engine (plain front and S3 front). node:http hands the listener
 * every pipelined request as soon as it is parsed; the answers went out in order, but the
 * requests ran at the same time: a `PUT` and a `DELETE` of one key written together got 200 then
 * 204 and the object was still there (the DELETE reached the upstream before the PUT), and a
 * `GET` behind a `PUT` read the previous version or a 404. RFC 9112 §9.3.2: pipelined requests
 * may run in parallel only if they are all safe. Requests on one connection now run one after
 * another.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { S3Signer } from "../../src/s3/sigv4.ts";
import type { S3Fixture } from "../fixtures/s3.ts";
import { rawHttp, rawStatuses as statuses } from "../helpers/raw-http.ts";
import { startNodeWriteWorld, type InProcessProxy } from "./harness.ts";
import { startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(60_000);

const ROUNDS = 10;

/** Requests written in ONE write on one connection (the last says Connection: close); everything the server sent until it closed. */
const pipelined = (port: number, requests: string[]) => rawHttp(port, requests.join(""));

/** One raw request: the head's lines, then `body`. */
function req(first: string, headers: Record<string, string>, body = "", last = false): string {
  const all = { host: "x", ...headers, ...(body === "" ? {} : { "content-length": String(Buffer.byteLength(body)) }), ...(last ? { connection: "close" } : {}) };
  return `${first} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${body}`;
}

describe("plain front, engine: node", () => {
  let s3: S3Fixture;
  let px: InProcessProxy;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ s3, px, stop } = await startNodeWriteWorld("AKIDPIPEWRITER01", "pipe-writer-secret-0123456789"));
  });
  afterAll(async () => {
    await stop?.();
  });

  test("a PUT and a DELETE of one key pipelined: the object is gone afterwards (it stayed: the DELETE ran first)", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const key = `k${i}`;
      const raw = await pipelined(px.port, [req(`PUT /rw/${key}`, {}, "x"), req(`DELETE /rw/${key}`, {}, "", true)]);
      expect(statuses(raw)).toEqual([200, 204]);
      expect({ round: i, stored: await s3.exists("rw", key) }).toEqual({ round: i, stored: false });
    }
  });

  test("a PUT and a GET of one key pipelined: the GET reads what the PUT wrote (it read the previous version)", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const key = `v${i}`;
      await s3.put("rw", key, "old");
      const raw = await pipelined(px.port, [req(`PUT /rw/${key}`, {}, `new-${i}`), req(`GET /rw/${key}`, {}, "", true)]);
      expect(statuses(raw)).toEqual([200, 200]);
      const second = raw.slice(raw.indexOf("HTTP/1.1", 1));
      expect({ round: i, body: second.slice(second.indexOf("\r\n\r\n") + 4) }).toEqual({ round: i, body: `new-${i}` });
    }
  });
});

describe("S3 front, s3_api.engine: node", () => {
  let env: UploadEnv;
  beforeAll(async () => {
    env = await startUploadEnv({ engine: "node" });
  });
  afterAll(async () => {
    await env?.stop();
  });

  /** A request signed with WRITER's key (header auth, unsigned payload). */
  function signed(method: string, path: string, body = "", last = false): string {
    const host = `127.0.0.1:${env.port}`;
    const s = new S3Signer(WRITER, "us-east-1").signRequest({ method, host, path, headers: {}, payloadHash: "UNSIGNED-PAYLOAD" });
    return req(`${method} ${s.path}`, { host, ...s.headers }, body, last);
  }

  test("PutObject and DeleteObject of one key pipelined: the object is gone afterwards", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const key = `k${i}`;
      const raw = await pipelined(env.port, [signed("PUT", `/up/${key}`, "x"), signed("DELETE", `/up/${key}`, "", true)]);
      expect(statuses(raw)).toEqual([200, 204]);
      expect({ round: i, stored: await env.s3.exists("up", key) }).toEqual({ round: i, stored: false });
    }
  });

  test("PutObject and GetObject of one key pipelined: the GET reads what the PUT wrote", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const key = `v${i}`;
      await env.s3.put("up", key, "old");
      const raw = await pipelined(env.port, [signed("PUT", `/up/${key}`, `new-${i}`), signed("GET", `/up/${key}`, "", true)]);
      expect(statuses(raw)).toEqual([200, 200]);
      const second = raw.slice(raw.indexOf("HTTP/1.1", 1));
      expect({ round: i, body: second.slice(second.indexOf("\r\n\r\n") + 4) }).toEqual({ round: i, body: `new-${i}` });
    }
  });
});
