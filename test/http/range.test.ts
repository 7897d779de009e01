import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { answersRange, contentRange, parseRange, unsatisfiedRange, upstreamRange, type RangeResult } from "../../src/http/range.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const ok = (start: number, end: number): RangeResult => ({ kind: "ok", start, end });
const NONE: RangeResult = { kind: "none" };
const UNSAT: RangeResult = { kind: "unsatisfiable" };

describe("parseRange: satisfiable single ranges", () => {
  test.each([
    ["bytes=0-0", 0, 0],
    ["bytes=0-99", 0, 99],
    ["bytes=10-19", 10, 19],
    ["bytes=999-999", 999, 999], // last byte
    ["bytes=500-", 500, 999], // open-ended
    ["bytes=0-", 0, 999],
    ["bytes=-1", 999, 999], // suffix: last byte
    ["bytes=-100", 900, 999],
    ["bytes=-1000", 0, 999],
  ])("%s of 1000 bytes", (h, s, e) => {
    expect(parseRange(h, 1000)).toEqual(ok(s, e));
  });

  test("end past the size is clamped", () => {
    expect(parseRange("bytes=10-5000", 1000)).toEqual(ok(10, 999));
    expect(parseRange("bytes=0-1000", 1000)).toEqual(ok(0, 999)); // last-pos equal to the size: one past the last byte
    expect(parseRange("bytes=0-99999999999999999999999", 1000)).toEqual(ok(0, 999));
  });
  test("a suffix longer than the object is the whole object", () => {
    expect(parseRange("bytes=-5000", 1000)).toEqual(ok(0, 999));
  });
  test("the unit is case-insensitive", () => {
    expect(parseRange("Bytes=1-2", 10)).toEqual(ok(1, 2));
    expect(parseRange("BYTES=1-2", 10)).toEqual(ok(1, 2));
    expect(parseRange("bYtEs=1-2", 10)).toEqual(ok(1, 2));
  });
  test("OWS around the field value and the range-spec is tolerated", () => {
    expect(parseRange("  bytes=1-2  ", 10)).toEqual(ok(1, 2));
    expect(parseRange("bytes= 1-2", 10)).toEqual(ok(1, 2));
    expect(parseRange("bytes=\t1-2\t", 10)).toEqual(ok(1, 2));
  });
  test("empty list elements are ignored (RFC 9110 §5.6.1)", () => {
    expect(parseRange("bytes=1-2,", 10)).toEqual(ok(1, 2));
    expect(parseRange("bytes=, 1-2", 10)).toEqual(ok(1, 2));
    expect(parseRange("bytes=,,1-2 , ,", 10)).toEqual(ok(1, 2));
  });
  test("leading zeros are just digits", () => {
    expect(parseRange("bytes=007-010", 100)).toEqual(ok(7, 10));
  });
});

describe("parseRange: unsatisfiable (416)", () => {
  test("first byte at or past the end", () => {
    expect(parseRange("bytes=1000-", 1000)).toEqual(UNSAT);
    expect(parseRange("bytes=1000-2000", 1000)).toEqual(UNSAT);
    expect(parseRange("bytes=99999999999999999999-", 1000)).toEqual(UNSAT);
  });
  test("bytes=-0", () => {
    expect(parseRange("bytes=-0", 1000)).toEqual(UNSAT);
    expect(parseRange("bytes=-000", 1000)).toEqual(UNSAT);
  });
  test("any range of an empty object", () => {
    for (const h of ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-5", "bytes=3-7"]) {
      expect(parseRange(h, 0)).toEqual(UNSAT);
    }
  });
});

describe("parseRange: ignored (full 200, like S3)", () => {
  test.each([
    ["no header", null],
    ["empty", ""],
    ["just the unit", "bytes"],
    ["no range-set", "bytes="],
    ["only commas", "bytes=,,"],
    ["dash alone", "bytes=-"],
    ["letters", "bytes=a-b"],
    ["negative start", "bytes=--5"],
    ["no dash", "bytes=5"],
    ["decimal", "bytes=1.5-2"],
    ["hex", "bytes=0x10-0x20"],
    ["plus sign", "bytes=+1-2"],
    ["space inside the spec", "bytes=0 -1"],
    ["space before =", "bytes =0-1"],
    ["last < first", "bytes=5-3"],
    ["other unit", "items=0-1"],
    ["unit prefix", "bytesx=0-1"],
    ["no unit", "=0-1"],
    ["another separator instead of =", "bytes:0-1"],
    ["a space instead of =", "bytes 0-1"],
    ["multi-range", "bytes=0-1,5-6"],
    ["multi-range with suffix", "bytes=0-1, -5"],
    ["multi-range, one invalid", "bytes=0-1,x"],
    ["two equals", "bytes=0-1=2"],
    ["junk after the spec", "bytes=0-1 x"],
    ["ranges without a comma", "bytes=0-1 2-3"],
    ["digits after a space", "bytes=0- 1"],
  ])("%s", (_label, h) => {
    expect(parseRange(h, 1000)).toEqual(NONE);
  });
  test("an invalid spec is ignored even when the object is empty", () => {
    expect(parseRange("bytes=5-3", 0)).toEqual(NONE);
    expect(parseRange("bytes=0-1,2-3", 0)).toEqual(NONE);
  });
  test("last < first past 2^53, where both round to one number, is still invalid (and nothing is sent upstream)", () => {
    for (const h of ["bytes=9007199254740993-9007199254740992", "bytes=100000000000000000001-100000000000000000000", " bytes= 18014398509481985-18014398509481984 ,"]) {
      expect([h, parseRange(h, 1000)]).toEqual([h, NONE]);
      expect([h, upstreamRange(h)]).toEqual([h, undefined]);
    }
    // (equal, or in order, they stay a range: unsatisfiable here)
    expect(parseRange("bytes=9007199254740993-9007199254740993", 1000)).toEqual(UNSAT);
    expect(parseRange("bytes=9007199254740992-9007199254740993", 1000)).toEqual(UNSAT);
    expect(parseRange("bytes=0009007199254740993-9007199254740993", 1000)).toEqual(UNSAT);
  });
});

describe("Content-Range values", () => {
  test("206", () => {
    expect(contentRange(0, 99, 1000)).toBe("bytes 0-99/1000");
    expect(contentRange(999, 999, 1000)).toBe("bytes 999-999/1000");
  });
  test("416", () => {
    expect(unsatisfiedRange(1000)).toBe("bytes */1000");
    expect(unsatisfiedRange(0)).toBe("bytes */0");
  });
});

describe("upstreamRange: the Range sent upstream is the one parseRange reads (the answer does not depend on the cache)", () => {
  test("one range, written as S3 reads it", () => {
    expect(upstreamRange("bytes=1-2")).toBe("bytes=1-2");
    expect(upstreamRange("bytes=1-2,")).toBe("bytes=1-2"); // an empty list element (RFC 9110 §5.6.1)
    expect(upstreamRange("bytes=,1-2")).toBe("bytes=1-2");
    expect(upstreamRange("bytes=1-2, ")).toBe("bytes=1-2");
    expect(upstreamRange(" BYTES=5-")).toBe("bytes=5-");
    expect(upstreamRange("bytes=-7")).toBe("bytes=-7");
    expect(upstreamRange("bytes=-0")).toBe("bytes=-0"); // unsatisfiable: S3's 416
    expect(upstreamRange("bytes=99999999999999999999-")).toBe("bytes=99999999999999999999-");
  });
  test("what parseRange ignores is not sent (the whole object)", () => {
    for (const h of ["bytes = 1-2", "bytes=1 - 2", "bytes=1-2,3-4", "bytes=2-1", "bytes=-", "items=1-2", "bytes=", "bytes=a-b"]) {
      expect([h, upstreamRange(h)]).toEqual([h, undefined]);
      expect([h, parseRange(h, 100).kind]).toEqual([h, "none"]);
    }
  });
});

describe("answersRange: a malformed or foreign Content-Range is not the asked range", () => {
  test("last-byte-pos before first-byte-pos (RFC 9110 §14.4: invalid)", () => {
    expect(answersRange("bytes=5-", "bytes 5-3/*")).toBe(false);
    expect(answersRange("bytes=5-", "bytes 5-3/1000")).toBe(false);
  });
  test("unknown size: the first byte must still be the one asked for", () => {
    expect(answersRange("bytes=5-", "bytes 0-9/*")).toBe(false);
    expect(answersRange("bytes=5-9", "bytes 6-9/*")).toBe(false);
  });
  test("trailing junk after the complete length", () => {
    expect(answersRange("bytes=0-9", "bytes 0-9/1000x")).toBe(false);
    expect(answersRange("bytes=0-9", "bytes 0-9/1000, bytes 0-9/1000")).toBe(false);
  });
});
