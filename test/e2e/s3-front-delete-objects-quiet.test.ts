/**
 * DeleteObjects' <Quiet> is an xsd:boolean in S3's schema, whose forms are true, false, 1 and 0
 * (older SDKs, the C++ one among them, wrote 1). "1" and "0" were refused as MalformedXML and
 * nothing was deleted; they are now read as true and false. Anything else is still MalformedXML.
 * A body of more entity references than any S3 document holds is MalformedXML too, before they are
 * decoded (a 4 MiB body of ~840,000 `&amp;` held the event loop ~0.6 s).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { answerOf, expectRefused, signedDeleteObjects, startUploadEnv, type UploadEnv } from "./s3-front-upload-helpers.ts";

setDefaultTimeout(30_000);

let env: UploadEnv;
beforeAll(async () => {
  env = await startUploadEnv();
});
afterAll(() => env.stop());

const xmlOf = (quiet: string, keys: string[]) => `<Delete><Quiet>${quiet}</Quiet>${keys.map((k) => `<Object><Key>${k}</Key></Object>`).join("")}</Delete>`;

test("<Quiet>1</Quiet>: the keys are deleted and only the errors listed", async () => {
  await env.s3.put("up", "quiet/one.txt", "1");
  const a = await answerOf(await signedDeleteObjects(env, "up", xmlOf("1", ["quiet/one.txt", "quiet/./bad"])));
  expect({ status: a.status, deleted: a.body.includes("<Deleted>"), errors: [...a.body.matchAll(/<Error><Key>([^<]*)<\/Key>/g)].map((m) => m[1]) }).toEqual({ status: 200, deleted: false, errors: ["quiet/./bad"] });
  expect(await env.s3.exists("up", "quiet/one.txt")).toBe(false);
});

test("<Quiet>0</Quiet>: the keys are deleted and listed", async () => {
  await env.s3.put("up", "quiet/zero.txt", "0");
  const a = await answerOf(await signedDeleteObjects(env, "up", xmlOf(" 0 ", ["quiet/zero.txt"])));
  expect({ status: a.status, deleted: /<Deleted><Key>quiet\/zero\.txt<\/Key><\/Deleted>/.test(a.body) }).toEqual({ status: 200, deleted: true });
  expect(await env.s3.exists("up", "quiet/zero.txt")).toBe(false);
});

test("a <Quiet> that is no boolean (yes, 2): MalformedXML, nothing upstream, the key stays", async () => {
  await env.s3.put("up", "quiet/stays.txt", "s");
  for (const q of ["yes", "2", "01"]) await expectRefused(env, signedDeleteObjects(env, "up", xmlOf(q, ["quiet/stays.txt"])), 400, "MalformedXML");
  expect(await env.s3.exists("up", "quiet/stays.txt")).toBe(true);
});

test("a DeleteObjects body of ~840,000 entity references (4 MiB): MalformedXML, nothing upstream; one whose keys hold a few hold the keys as written", async () => {
  await expectRefused(env, signedDeleteObjects(env, "up", xmlOf("true", ["&amp;".repeat(838_000)])), 400, "MalformedXML");
  await env.s3.put("up", "quiet/a&<b>.txt", "e");
  const a = await answerOf(await signedDeleteObjects(env, "up", xmlOf("false", ["quiet/a&amp;&lt;b&gt;.txt"])));
  expect({ status: a.status, deleted: a.body.includes("<Deleted><Key>quiet/a&amp;&lt;b&gt;.txt</Key></Deleted>") }).toEqual({ status: 200, deleted: true });
  expect(await env.s3.exists("up", "quiet/a&<b>.txt")).toBe(false);
});
