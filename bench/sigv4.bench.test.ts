import { expect, test, setDefaultTimeout } from "bun:test";

// Figures, not assertions on time; on a loaded machine a measurement can take longer than bun's 5 s default.
setDefaultTimeout(120_000);
import { S3Signer, uriEncode, type SignableRequest } from "../src/s3/sigv4.ts";
import { measure as measureOps } from "./measure.ts";

/** ns per op of `fn` (bench/measure.ts: the fastest of its rounds). */
const measure = (fn: () => unknown, iterations = 200_000, warmup = 20_000): number => measureOps(fn, iterations, warmup);

const report = (label: string, ns: number) =>
  console.log(`${label}: ${ns >= 1000 ? (ns / 1000).toFixed(2) + " µs" : ns.toFixed(0) + " ns"}/op`);

const creds = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };
const get: SignableRequest = { method: "GET", host: "s3.eu-west-1.amazonaws.com", path: "/my-bucket/photos/2024/01/IMG_0001.jpg" };

test("sigv4 sign GET (real clock)", () => {
  const signer = new S3Signer(creds, "eu-west-1");
  const ns = measure(() => signer.sign(get));
  report("sigv4 sign GET", ns);
  expect(ns).toBeLessThan(50_000);
});

test("sigv4 sign GET with range header + session token", () => {
  const signer = new S3Signer({ ...creds, sessionToken: "FwoGZXIvYXdzEJr//////////wEaDH+token==" }, "eu-west-1");
  const req: SignableRequest = { ...get, path: "/my-bucket/photos/2024/01/IMG 0001 (copy).jpg", headers: { range: "bytes=0-1023" } };
  const ns = measure(() => signer.sign(req));
  report("sigv4 sign GET +range +token +encoded key", ns);
  expect(ns).toBeLessThan(50_000);
});

test("uriEncode of a 60-char key", () => {
  const plain = "my-bucket/photos/2024/01/holiday/IMG_0001_final_version2.jpg";
  const spaced = "my-bucket/photos/2024/01/holiday/IMG 0001 (final) ver+22.jpg";
  expect(plain.length).toBe(60);
  expect(spaced.length).toBe(60);
  const nsPlain = measure(() => uriEncode(plain, false));
  const nsSpaced = measure(() => uriEncode(spaced, false));
  report("uriEncode 60-char key, nothing to encode", nsPlain);
  report("uriEncode 60-char key, 6 chars to encode", nsSpaced);
  expect(nsPlain).toBeLessThan(50_000);
  expect(nsSpaced).toBeLessThan(50_000);
});
