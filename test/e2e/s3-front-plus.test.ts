/**
 * A raw "+" in an S3 request target. S3 reads it as a space and accepts a signature over either
 * reading: a space signed as %20 (what clients that serialize with URLSearchParams send: aws4fetch's
 * presigned URLs, @aws-lite/s3's keys, the Java SDK v1's query) or a literal "+" signed as %2B. The
 * proxy read it only as a literal plus, so every such client got 403 SignatureDoesNotMatch. Now the
 * reading that was signed is the one served; an anonymous request keeps the literal reading
 * (README), and a signature over neither reading is still refused.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { S3Signer } from "../../src/s3/sigv4.ts";
import { answerOf, startUploadEnv, WRITER, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv({});
});
afterAll(async () => {
  await env?.stop();
});

/** Signs `signedPath` / `signedQuery` (decoded) but sends `wirePath` + `wireQuery` as written. */
function send(method: string, signed: { path: string; query?: Array<[string, string]> }, wire: string, body?: string): Promise<Response> {
  const signer = new S3Signer(WRITER, "us-east-1");
  const s = signer.signRequest({ method, host: `127.0.0.1:${env.port}`, path: signed.path, query: signed.query, payloadHash: body === undefined ? undefined : "UNSIGNED-PAYLOAD" });
  return fetch(env.endpoint + wire, { method, headers: s.headers, body });
}

test("a key sent with raw '+' and signed with the spaces they stand for (%20) is the key with spaces: PUT, GET and a listing whose prefix uses '+' too", async () => {
  const put = await send("PUT", { path: "/up/plus/a b c.txt" }, "/up/plus/a+b+c.txt", "spaced");
  expect(put.status).toBe(200);
  expect(new TextDecoder().decode(await env.s3.read("up", "plus/a b c.txt"))).toBe("spaced");
  expect(await env.s3.exists("up", "plus/a+b+c.txt")).toBe(false);
  const get = await send("GET", { path: "/up/plus/a b c.txt" }, "/up/plus/a+b+c.txt");
  expect([get.status, await get.text()]).toEqual([200, "spaced"]);
  const list = await send("GET", { path: "/up", query: [["list-type", "2"], ["prefix", "plus/a b"]] }, "/up?list-type=2&prefix=plus%2Fa+b");
  const xml = await list.text();
  expect(list.status).toBe(200);
  expect(xml).toContain("<Key>plus/a b c.txt</Key>");
  expect(xml).toContain("<Prefix>plus/a b</Prefix>");
});

test("a raw '+' signed as a literal plus (%2B) is still a plus; a signature over neither reading is refused", async () => {
  const put = await send("PUT", { path: "/up/plus/c++.txt" }, "/up/plus/c++.txt", "literal");
  expect(put.status).toBe(200);
  expect(new TextDecoder().decode(await env.s3.read("up", "plus/c++.txt"))).toBe("literal");
  const wrong = await answerOf(await send("GET", { path: "/up/plus/c--.txt" }, "/up/plus/c++.txt"));
  expect([wrong.status, wrong.code]).toEqual([403, "SignatureDoesNotMatch"]);
});
