/**
 * The relayed If-Range (fetchIfRange): the Range goes upstream without If-Range, and the upstream's
 * 206 is kept only when its validators match If-Range. A date matches only when the answer's Date
 * is at least one second after its Last-Modified (RFC 9110 §8.8.2.2, §13.1.5): else the object may
 * have changed twice within that second, both versions under one Last-Modified.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { fetchIfRange } from "../../../src/proxy/phases/object.ts";

setDefaultTimeout(30_000);

const ETAG = '"0123456789abcdef"';
const LM = "Wed, 21 Oct 2015 07:28:00 GMT";
const BODY = "0123456789";

/** An upstream answering a Range with a 206, without one with the whole object, dated `date`. */
function upstream(date: string | undefined, etag = ETAG) {
  const asked: Array<Record<string, string>> = [];
  const fetch = async (headers: Record<string, string>) => {
    asked.push({ ...headers });
    const h: Record<string, string> = { etag, "last-modified": LM };
    if (date !== undefined) h.date = date;
    if (headers.range === undefined) return new Response(BODY, { status: 200, headers: h });
    return new Response(BODY.slice(0, 2), { status: 206, headers: { ...h, "content-range": `bytes 0-1/${BODY.length}` } });
  };
  return { fetch, asked };
}

describe("fetchIfRange with a date", () => {
  test.each([
    ["Wed, 21 Oct 2015 07:28:00 GMT", 200], // the same second: weak
    [undefined, 200], // no Date: weak
    ["Wed, 21 Oct 2015 07:28:01 GMT", 206],
    ["Thu, 22 Oct 2015 07:28:00 GMT", 206],
  ] as const)("Date %p → %p", async (date, status) => {
    const up = upstream(date);
    const res = await fetchIfRange(up.fetch, { range: "bytes=0-1", "if-range": LM }, LM);
    expect(res.status).toBe(status);
    expect(await res.text()).toBe(status === 206 ? "01" : BODY);
    // (If-Range itself never goes upstream)
    expect(up.asked.every((h) => h["if-range"] === undefined)).toBe(true);
  });

  test("an entity-tag needs no Date; a weak one never matches, nor does a weak current ETag", async () => {
    expect((await fetchIfRange(upstream(LM).fetch, { range: "bytes=0-1" }, ETAG)).status).toBe(206);
    const weak = upstream(LM);
    expect((await fetchIfRange(weak.fetch, { range: "bytes=0-1" }, `W/${ETAG}`)).status).toBe(200);
    expect(weak.asked).toEqual([{}]); // (asked for the whole object at once)
    expect((await fetchIfRange(upstream(LM, `W/${ETAG}`).fetch, { range: "bytes=0-1" }, ETAG)).status).toBe(200);
  });
});
