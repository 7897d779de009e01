/**
 * A write's answer relays the upstream's ETag, version id and checksums; a field the upstream's
 * Connection header names is hop-by-hop (RFC 9110 §7.6.1), meant for the proxy only, and is not
 * relayed, as on reads (test/http/headers.test.ts). Before, `Connection: close, x-amz-version-id`
 * on a PUT's answer gave the client the version id anyway.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { markOwnedBytes } from "../../../src/http/owned-response.ts";
import type { RequestContext } from "../../../src/proxy/context.ts";
import { emptyAnswer, xmlAnswer } from "../../../src/fronts/s3/relay.ts";
import { cellsPerCall } from "../../helpers/alloc.ts";

setDefaultTimeout(30_000);

const ctx = { id: "REQ1" } as RequestContext;
const upstream = (connection: string) =>
  new Headers({ connection, "x-amz-version-id": "v1", etag: '"e"', "x-amz-checksum-crc32": "AAAAAA==", "content-length": "0" });

const seen = (h: Headers) => ({ version: h.get("x-amz-version-id"), etag: h.get("etag"), crc: h.get("x-amz-checksum-crc32"), connection: h.get("connection") });

describe("a write's answer drops the fields the upstream's Connection header names", () => {
  test("emptyAnswer, from a fetch answer and from the own client's (filtered in place)", () => {
    const fromFetch = emptyAnswer(ctx, new Response(null, { status: 200, headers: upstream("close, X-Amz-Version-Id") }));
    const owned = new Response(null, { status: 200, headers: upstream("x-amz-version-id, etag") });
    markOwnedBytes(owned);
    const fromOwn = emptyAnswer(ctx, owned);
    expect(seen(fromFetch.headers)).toEqual({ version: null, etag: '"e"', crc: "AAAAAA==", connection: null });
    expect(seen(fromOwn.headers)).toEqual({ version: null, etag: null, crc: "AAAAAA==", connection: null });
  });
  test("xmlAnswer (a Copy's or Complete's result)", () => {
    const res = xmlAnswer(ctx, new Response(null, { headers: upstream("keep-alive, x-amz-checksum-crc32") }), "<CopyObjectResult/>");
    expect(seen(res.headers)).toEqual({ version: "v1", etag: '"e"', crc: null, connection: null });
  });
  test("the usual Connection: close or keep-alive changes nothing", () => {
    for (const c of ["close", "keep-alive"]) {
      const owned = new Response(null, { status: 200, headers: upstream(c) });
      markOwnedBytes(owned);
      expect(seen(emptyAnswer(ctx, owned).headers)).toEqual({ version: "v1", etag: '"e"', crc: "AAAAAA==", connection: null });
    }
  });
  test("the own client's answer is filtered in place with no closure, scope or array of its own (1 function, 2 scopes, 1 array per PutObject before)", async () => {
    const owned = () => {
      const res = new Response(null, { status: 200, headers: upstream("keep-alive") });
      markOwnedBytes(res);
      return res;
    };
    const [made, answered] = [await cellsPerCall(owned), await cellsPerCall(() => emptyAnswer(ctx, owned()))];
    const more = (type: string) => (answered[type] ?? 0) - (made[type] ?? 0);
    expect({ functions: more("Function"), scopes: more("JSLexicalEnvironment"), arrays: more("Array") }).toEqual({ functions: 0, scopes: 0, arrays: 0 });
  });
});
