/**
 * x-amz-content-sha256 values named like Object.prototype's members: the mode table was a plain
 * object, so a signed `x-amz-content-sha256: constructor` (toString, __proto__, ...) was taken for a
 * payload mode and the body stored unverified (200). S3 refuses them: 400 InvalidArgument.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { payloadMode } from "../../../src/fronts/s3/verify.ts";

setDefaultTimeout(30_000);

test("x-amz-content-sha256: constructor, toString, __proto__, hasOwnProperty are InvalidArgument", () => {
  for (const value of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
    const mode = payloadMode(value);
    expect([value, typeof mode === "object" ? mode.code : mode]).toEqual([value, "InvalidArgument"]);
  }
  expect(payloadMode("UNSIGNED-PAYLOAD")).toBe("unsigned");
  expect(payloadMode("STREAMING-UNSIGNED-PAYLOAD-TRAILER")).toBe("streaming-unsigned-trailer");
});
