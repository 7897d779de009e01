/**
 * Query parameters named like Object.prototype's members (`constructor`, `toString`, ...) on a
 * GetObject/HeadObject: the response-* override table was a plain object, so `?constructor=1` was
 * read as an override naming a function. Signed, the answer was 500 InternalError ("Invalid header
 * name", an unexpected error in the log); anonymous, 400 InvalidRequest for response-* overrides
 * the request never sent. They are parameters S3 ignores: the object, as without them.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { APP, startS3FrontEnv, type S3FrontEnv } from "./s3-front-helpers.ts";

setDefaultTimeout(30_000);

let env: S3FrontEnv;
beforeAll(async () => {
  env = await startS3FrontEnv();
  await env.s3.put("data", "hello.txt", "hello");
});
afterAll(() => env?.stop());

const NAMES = ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf"];

test("signed GetObject and HeadObject with ?constructor=1 and the like: the object", async () => {
  const host = `127.0.0.1:${env.port}`;
  for (const name of NAMES) {
    for (const method of ["GET", "HEAD"]) {
      const sr = new S3Signer(APP, "us-east-1").signRequest({ method, host, path: "/data/hello.txt", query: [[name, "1"]] });
      const res = await fetch(`${env.endpoint}${sr.path}?${sr.query}`, { method, headers: sr.headers });
      expect([name, method, res.status]).toEqual([name, method, 200]);
      if (method === "GET") expect(await res.text()).toBe("hello");
    }
  }
});

test("anonymous GetObject with ?constructor=1: the object, not InvalidRequest", async () => {
  for (const name of NAMES) {
    const res = await fetch(`${env.endpoint}/data/hello.txt?${name}=1`);
    expect([name, res.status]).toEqual([name, 200]);
    expect(await res.text()).toBe("hello");
  }
});
