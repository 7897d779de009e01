import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { etagListMatches, evaluateConditions, ifRangeAllows, parseHttpDate, quotedEtag, sameEtag } from "../../src/http/conditional.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ETAG = '"abc123"';
const LM = "Wed, 21 Oct 2015 07:28:00 GMT";
const BEFORE = "Tue, 20 Oct 2015 07:28:00 GMT";
const AFTER = "Thu, 22 Oct 2015 07:28:00 GMT";
const v = { etag: ETAG, lastModified: LM };
const ev = (h: Record<string, string>, method = "GET", val: { etag?: string; lastModified?: string } = v) =>
  evaluateConditions(new Headers(h), val, method);

describe("If-Match (strong comparison) → 412", () => {
  test("matching tag, list, wildcard proceed", () => {
    expect(ev({ "if-match": ETAG })).toBe("proceed");
    expect(ev({ "if-match": `"x", ${ETAG}` })).toBe("proceed");
    expect(ev({ "if-match": "*" })).toBe("proceed");
    expect(ev({ "if-match": " * " })).toBe("proceed");
  });
  test("non-matching or weak tags fail", () => {
    expect(ev({ "if-match": '"other"' })).toBe("precondition-failed");
    expect(ev({ "if-match": `W/${ETAG}` })).toBe("precondition-failed");
    expect(ev({ "if-match": ETAG }, "GET", { etag: `W/${ETAG}` })).toBe("precondition-failed");
    expect(ev({ "if-match": ETAG }, "GET", { lastModified: LM })).toBe("precondition-failed"); // no etag
  });
  test("If-Match wins over If-Unmodified-Since (which is then ignored)", () => {
    expect(ev({ "if-match": ETAG, "if-unmodified-since": BEFORE })).toBe("proceed");
    expect(ev({ "if-match": '"nope"', "if-unmodified-since": AFTER })).toBe("precondition-failed");
  });
  test("412 comes before 304", () => {
    expect(ev({ "if-match": '"nope"', "if-none-match": ETAG })).toBe("precondition-failed");
  });
  test("an empty value is treated as absent", () => {
    expect(ev({ "if-match": "" })).toBe("proceed");
    expect(ev({ "if-match": "  " })).toBe("proceed");
  });
});

describe("If-Unmodified-Since → 412", () => {
  test("modified after the date fails; at or before proceeds", () => {
    expect(ev({ "if-unmodified-since": BEFORE })).toBe("precondition-failed");
    expect(ev({ "if-unmodified-since": LM })).toBe("proceed");
    expect(ev({ "if-unmodified-since": AFTER })).toBe("proceed");
  });
  test("invalid dates and a missing Last-Modified are ignored", () => {
    expect(ev({ "if-unmodified-since": "yesterday" })).toBe("proceed");
    expect(ev({ "if-unmodified-since": "2015-10-20" })).toBe("proceed");
    expect(ev({ "if-unmodified-since": BEFORE }, "GET", { etag: ETAG })).toBe("proceed");
  });
});

describe("If-None-Match (weak comparison) → 304 for GET/HEAD", () => {
  test("matches", () => {
    expect(ev({ "if-none-match": ETAG })).toBe("not-modified");
    expect(ev({ "if-none-match": ETAG }, "HEAD")).toBe("not-modified");
    expect(ev({ "if-none-match": `W/${ETAG}` })).toBe("not-modified");
    expect(ev({ "if-none-match": ETAG }, "GET", { etag: `W/${ETAG}` })).toBe("not-modified");
    expect(ev({ "if-none-match": `"a", "b",${ETAG}` })).toBe("not-modified");
    expect(ev({ "if-none-match": "*" })).toBe("not-modified");
    expect(ev({ "if-none-match": "abc123" })).toBe("not-modified"); // unquoted, as S3 accepts
  });
  test("no match proceeds", () => {
    expect(ev({ "if-none-match": '"abc1234"' })).toBe("proceed");
    expect(ev({ "if-none-match": '"a", "b"' })).toBe("proceed");
    expect(ev({ "if-none-match": '"abc123' })).toBe("proceed"); // unterminated: malformed
    expect(ev({ "if-none-match": ETAG }, "GET", { lastModified: LM })).toBe("proceed"); // no etag
  });
  test("commas inside a quoted tag do not split it", () => {
    expect(ev({ "if-none-match": '"a,b"' }, "GET", { etag: '"a,b"' })).toBe("not-modified");
    expect(ev({ "if-none-match": '"a,b"' }, "GET", { etag: '"a"' })).toBe("proceed");
  });
  test("other methods get 412", () => {
    expect(ev({ "if-none-match": ETAG }, "PUT")).toBe("precondition-failed");
    expect(ev({ "if-none-match": "*" }, "DELETE")).toBe("precondition-failed");
  });
  test("If-None-Match present → If-Modified-Since ignored", () => {
    expect(ev({ "if-none-match": '"other"', "if-modified-since": AFTER })).toBe("proceed");
  });
});

describe("If-Modified-Since → 304 (GET/HEAD only, only without If-None-Match)", () => {
  test("not modified since", () => {
    expect(ev({ "if-modified-since": LM })).toBe("not-modified");
    expect(ev({ "if-modified-since": AFTER })).toBe("not-modified");
    expect(ev({ "if-modified-since": AFTER }, "HEAD")).toBe("not-modified");
  });
  test("modified since, other methods, invalid dates, no Last-Modified → proceed", () => {
    expect(ev({ "if-modified-since": BEFORE })).toBe("proceed");
    expect(ev({ "if-modified-since": AFTER }, "POST")).toBe("proceed");
    expect(ev({ "if-modified-since": "not a date" })).toBe("proceed");
    expect(ev({ "if-modified-since": `${AFTER}, ${AFTER}` })).toBe("proceed"); // two members
    expect(ev({ "if-modified-since": AFTER }, "GET", { etag: ETAG })).toBe("proceed");
  });
  test("a date later than now is ignored, as S3 does (200, not 304); the current second is not later", () => {
    const now = Date.parse(LM);
    const at = (h: Record<string, string>, t: number) => evaluateConditions(new Headers(h), v, "GET", t);
    expect(at({ "if-modified-since": AFTER }, now)).toBe("proceed");
    expect(at({ "if-modified-since": "Thursday, 22-Oct-15 07:28:00 GMT" }, now)).toBe("proceed");
    expect(at({ "if-modified-since": LM }, now)).toBe("not-modified");
    expect(at({ "if-modified-since": LM }, now + 999)).toBe("not-modified");
    expect(at({ "if-modified-since": AFTER }, Date.parse(AFTER))).toBe("not-modified");
    // If-Unmodified-Since keeps its meaning: a future date proceeds, a past one fails
    expect(at({ "if-unmodified-since": AFTER }, now)).toBe("proceed");
    expect(at({ "if-unmodified-since": BEFORE }, now)).toBe("precondition-failed");
  });
  test("all three HTTP-date forms", () => {
    expect(ev({ "if-modified-since": "Wednesday, 21-Oct-15 07:28:00 GMT" })).toBe("not-modified");
    expect(ev({ "if-modified-since": "Wed Oct 21 07:28:00 2015" })).toBe("not-modified");
    expect(ev({ "if-modified-since": "Tue Oct 20 07:28:00 2015" })).toBe("proceed");
  });
  test("no conditional headers → proceed", () => {
    expect(ev({})).toBe("proceed");
    expect(ev({}, "GET", {})).toBe("proceed");
  });
});

describe("parseHttpDate", () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37);
  test("IMF-fixdate, RFC 850, asctime", () => {
    expect(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT")).toBe(t);
    expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT")).toBe(t);
    expect(parseHttpDate("Sun Nov  6 08:49:37 1994")).toBe(t);
    expect(parseHttpDate("Sun Nov 16 08:49:37 1994")).toBe(Date.UTC(1994, 10, 16, 8, 49, 37));
  });
  test("years 0000 to 0099 are those years, not 1900 to 1999 (Date.UTC's reading)", () => {
    expect(parseHttpDate("Thu, 01 Jan 0099 00:00:00 GMT")).toBe(Date.parse("0099-01-01T00:00:00Z"));
    expect(parseHttpDate("Sat, 29 Feb 0000 12:00:00 GMT")).toBe(Date.parse("0000-02-29T12:00:00Z"));
    expect(parseHttpDate("Thu Jan  1 00:00:00 0099")).toBe(Date.parse("0099-01-01T00:00:00Z"));
    expect(parseHttpDate("Mon, 01 Jan 0100 00:00:00 GMT")).toBe(Date.parse("0100-01-01T00:00:00Z"));
    expect(parseHttpDate("Fri, 29 Feb 0001 00:00:00 GMT")).toBeNaN();
  });
  test("RFC 850 years more than 50 years ahead are in the past century", () => {
    const yy = (new Date().getUTCFullYear() + 60) % 100;
    const d = parseHttpDate(`Monday, 01-Jan-${String(yy).padStart(2, "0")} 00:00:00 GMT`);
    expect(new Date(d).getUTCFullYear()).toBeLessThan(new Date().getUTCFullYear());
  });
  test("RFC 850 years up to 50 years ahead stay in the future (RFC 9110 §5.6.7)", () => {
    const ahead = new Date().getUTCFullYear() + 10;
    const d = parseHttpDate(`Monday, 01-Jan-${String(ahead % 100).padStart(2, "0")} 00:00:00 GMT`);
    expect(new Date(d).getUTCFullYear()).toBe(ahead);
  });
  test.each([
    "",
    "Sun, 06 Nov 1994 08:49:37 UTC",
    "Sun, 6 Nov 1994 08:49:37 GMT",
    "Sun, 06 Foo 1994 08:49:37 GMT",
    "Sun, 31 Feb 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 24:00:00 GMT",
    "Sun, 06 Nov 1994 08:60:00 GMT",
    "1994-11-06T08:49:37Z",
    "784111777",
  ])("invalid: %p", (s) => {
    expect(parseHttpDate(s)).toBeNaN();
  });
});

describe("If-Range", () => {
  test("absent → range allowed", () => expect(ifRangeAllows(null, v)).toBe(true));
  test("strong etag match only", () => {
    expect(ifRangeAllows(ETAG, v)).toBe(true);
    expect(ifRangeAllows('"other"', v)).toBe(false);
    expect(ifRangeAllows(`W/${ETAG}`, v)).toBe(false);
    expect(ifRangeAllows(ETAG, { etag: `W/${ETAG}` })).toBe(false);
  });
  test("one validator only: a list or * never matches", () => {
    expect(ifRangeAllows(`${ETAG}, "other"`, v)).toBe(false);
    expect(ifRangeAllows(`${ETAG} "other"`, v)).toBe(false);
    expect(ifRangeAllows(`${ETAG},`, v)).toBe(false);
    expect(ifRangeAllows("*", v)).toBe(false);
    expect(ifRangeAllows(` ${ETAG} `, v)).toBe(true);
  });
  test("date must equal Last-Modified exactly", () => {
    const dated = { ...v, date: parseHttpDate(AFTER) };
    expect(ifRangeAllows(LM, dated)).toBe(true);
    expect(ifRangeAllows(AFTER, dated)).toBe(false);
    expect(ifRangeAllows(BEFORE, dated)).toBe(false);
    expect(ifRangeAllows("garbage", dated)).toBe(false);
    expect(ifRangeAllows(LM, { etag: ETAG, date: parseHttpDate(AFTER) })).toBe(false);
  });
  test("a date is a validator only when Date is at least one second after Last-Modified (RFC 9110 §8.8.2.2, §13.1.5)", () => {
    const lm = parseHttpDate(LM);
    // the same second: the object may have changed twice within it, both versions one Last-Modified
    expect(ifRangeAllows(LM, { ...v, date: lm })).toBe(false);
    expect(ifRangeAllows(LM, { ...v, date: lm + 999 })).toBe(false);
    expect(ifRangeAllows(LM, { ...v, date: lm + 1000 })).toBe(true);
    // no Date known (an answer without one): weak, never a match
    expect(ifRangeAllows(LM, v)).toBe(false);
    expect(ifRangeAllows(LM, { ...v, date: NaN })).toBe(false);
    // (an entity-tag needs no Date)
    expect(ifRangeAllows(ETAG, { ...v, date: lm })).toBe(true);
  });
  test("etagListMatches helper", () => {
    expect(etagListMatches("*", undefined, true)).toBe(true);
    expect(etagListMatches('"a"', undefined, false)).toBe(false);
  });
});

describe("an upstream ETag without quotes", () => {
  test("quotedEtag quotes a bare one (a weak one too) and leaves what cannot be one entity-tag as sent", () => {
    expect(["abc123", '"abc123"', "W/abc", 'W/"abc"', "", "a b", 'a"b', "d41d8cd98f00b204e9800998ecf8427e-3"].map(quotedEtag)).toEqual([
      '"abc123"', '"abc123"', 'W/"abc"', 'W/"abc"', "", "a b", 'a"b', '"d41d8cd98f00b204e9800998ecf8427e-3"',
    ]);
  });
  test("sameEtag compares the quoted and bare forms alike, strongly", () => {
    expect([sameEtag("abc", '"abc"'), sameEtag(' "abc" ', "abc"), sameEtag("abc", '"abd"'), sameEtag('W/"abc"', '"abc"')]).toEqual([true, true, false, false]);
  });
});
