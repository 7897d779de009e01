/** The audit trail's result of a request (src/observe/audit.ts resultOf), from its outcome. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { resultOf } from "../../src/observe/audit.ts";
import type { RequestContext } from "../../src/proxy/context.ts";

setDefaultTimeout(30_000);

const ctx = (o: Partial<Pick<RequestContext, "status" | "errorCode" | "bodyError" | "s3Code">>) => ({ status: 200, errorCode: undefined, bodyError: undefined, s3Code: undefined, ...o }) as RequestContext;

describe("resultOf", () => {
  test("a 2xx without an error: allowed; 401/403: denied; other 4xx/5xx and a broken body: failed", () => {
    expect(resultOf(ctx({}))).toEqual({ result: "allowed" });
    expect(resultOf(ctx({ status: 403, errorCode: "Forbidden" }))).toEqual({ result: "denied", reason: "Forbidden" });
    expect(resultOf(ctx({ status: 500, errorCode: "InternalError" }))).toEqual({ result: "failed", reason: "InternalError" });
    expect(resultOf(ctx({ status: 200, bodyError: "UpstreamBodyIncomplete" }))).toEqual({ result: "failed", reason: "UpstreamBodyIncomplete" });
  });
  test("a failure S3 answers after a 200 head (a kept-alive copy or Complete): denied or failed by its code, never allowed", () => {
    expect(resultOf(ctx({ status: 200, errorCode: "AccessDenied" }))).toEqual({ result: "denied", reason: "AccessDenied" });
    expect(resultOf(ctx({ status: 200, errorCode: "InvalidPart" }))).toEqual({ result: "failed", reason: "InvalidPart" });
  });
  test("a 400 refusing the credentials presented (S3 session token, STS web identity token, a malformed signature): denied; another 400: failed", () => {
    for (const code of ["InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed", "AuthorizationQueryParametersError", "InvalidIdentityToken", "ExpiredTokenException", "IncompleteSignature"]) {
      expect(resultOf(ctx({ status: 400, errorCode: code, s3Code: code }))).toEqual({ result: "denied", reason: code });
    }
    expect(resultOf(ctx({ status: 400, errorCode: "InvalidArgument" }))).toEqual({ result: "failed", reason: "InvalidArgument" });
    // (an upstream's code alone, the proxy's own credentials refused, is not the client's denial)
    expect(resultOf(ctx({ status: 400, errorCode: undefined, s3Code: "ExpiredToken" }))).toEqual({ result: "failed", reason: "ExpiredToken" });
  });
});
