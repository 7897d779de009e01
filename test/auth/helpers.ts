import { expect } from "bun:test";
import { ProxyError, type ErrorCode } from "../../src/errors.ts";

/**
 * Awaits a rejection and checks it is a ProxyError with `code`, whose detail matches `detail`, and
 * that neither the message, the detail, the headers nor the response body contain the token.
 */
export async function expectProxyError(p: Promise<unknown>, code: ErrorCode, detail: RegExp | string | undefined, token?: string): Promise<ProxyError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ProxyError);
  const pe = err as ProxyError;
  expect(pe.code).toBe(code);
  if (detail !== undefined) expect(pe.detail ?? "").toMatch(detail);
  if (token) {
    const body = await pe.toResponse("req-1").text();
    for (const s of [pe.message, pe.detail ?? "", JSON.stringify(pe.headers ?? {}), body]) {
      expect(s).not.toContain(token);
      // nor any of its three parts (a signature or payload alone is still sensitive)
      for (const part of token.split(".")) if (part.length > 8) expect(s).not.toContain(part);
    }
    expect(body).not.toContain("    at "); // no stack
  }
  return pe;
}
