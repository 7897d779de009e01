/**
 * S3Signer's payload-hash option, checked against AWS's published "PUT Object" example (Signature
 * Calculations for the Authorization Header: Transferring Payload in a Single Chunk), and the
 * default (empty-body) path left exactly as it was.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { EMPTY_SHA256, isSignablePayloadHash, S3Signer, sha256Hex, STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD } from "../../../src/s3/sigv4.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const DOC = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };
const at20130524 = () => new Date(Date.UTC(2013, 4, 24));
const signer = () => new S3Signer(DOC, "us-east-1", "s3", at20130524);

describe("S3Signer payloadHash", () => {
  test("AWS's PUT Object example: hex SHA-256 of 'Welcome to Amazon S3.'", () => {
    const payload = "Welcome to Amazon S3.";
    const hash = sha256Hex(payload);
    expect(hash).toBe("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    const h = signer().sign({
      method: "PUT",
      host: "examplebucket.s3.amazonaws.com",
      path: "/test$file.text",
      headers: { date: "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY" },
      payloadHash: hash,
    });
    expect(h.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, " +
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
    expect(h["x-amz-content-sha256"]).toBe(hash);
  });

  test("without payloadHash nothing changes: the default path signs the empty-body hash", () => {
    const a = signer().sign({ method: "GET", host: "h", path: "/b/k" });
    const b = signer().sign({ method: "GET", host: "h", path: "/b/k", payloadHash: EMPTY_SHA256 });
    expect(a["x-amz-content-sha256"]).toBe(EMPTY_SHA256);
    expect(b).toEqual(a); // the general path with the same hash agrees with the fast path
  });

  test("UNSIGNED-PAYLOAD and STREAMING-UNSIGNED-PAYLOAD-TRAILER are signed as the hash line and sent", () => {
    const s = signer();
    const base = { method: "PUT", host: "h", path: "/b/k" };
    const unsigned = s.sign({ ...base, payloadHash: UNSIGNED_PAYLOAD });
    const trailer = s.sign({ ...base, payloadHash: STREAMING_UNSIGNED_PAYLOAD_TRAILER });
    expect(unsigned["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
    expect(trailer["x-amz-content-sha256"]).toBe("STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    // the hash is part of what is signed
    expect(unsigned.authorization).not.toBe(trailer.authorization);
    expect(unsigned.authorization).not.toBe(s.sign(base).authorization);
  });

  test("anything else is refused (the signed streaming modes need per-chunk signatures)", () => {
    for (const bad of ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "unsigned-payload", "44CE7DD67C959E0D3524FFAC1771DFBBA87D2B6B4B4E99E42034A8B803F8B072", "abc", ""]) {
      expect(isSignablePayloadHash(bad)).toBe(false);
      expect(() => signer().sign({ method: "PUT", host: "h", path: "/k", payloadHash: bad })).toThrow("invalid payload hash");
    }
  });
});
