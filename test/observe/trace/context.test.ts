/** W3C Trace Context parsing, ids and sampling. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, parseTracestate, remoteParent } from "../../../src/observe/trace/context.ts";
import { RatioSampler } from "../../../src/observe/trace/sampler.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

// The example from the W3C Trace Context recommendation.
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const VALID = `00-${TRACE}-${PARENT}-01`;

describe("traceparent", () => {
  test("the W3C example parses; the sampled flag is bit 0 of the flags", () => {
    expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE, spanId: PARENT, sampled: true });
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.sampled).toBe(false);
    // Other flag bits are not "sampled".
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-02`)?.sampled).toBe(false);
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-03`)?.sampled).toBe(true);
  });

  test("a later version is read as version 00; extra fields must follow a dash", () => {
    expect(parseTraceparent(`01-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, spanId: PARENT, sampled: true });
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-the-future-holds`)?.traceId).toBe(TRACE);
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01x`)).toBeUndefined();
  });

  const invalid: Record<string, string | null> = {
    absent: null,
    empty: "",
    "version ff": `ff-${TRACE}-${PARENT}-01`,
    "upper-case hex": `00-${TRACE.toUpperCase()}-${PARENT}-01`,
    "upper-case version": `0A-${TRACE}-${PARENT}-01`,
    "all-zero trace id": `00-${"0".repeat(32)}-${PARENT}-01`,
    "all-zero parent id": `00-${TRACE}-${"0".repeat(16)}-01`,
    "short trace id": `00-${TRACE.slice(1)}-${PARENT}-01`,
    "long parent id": `00-${TRACE}-${PARENT}0-01`,
    "version 00 with extra fields": `${VALID}-extra`,
    "trailing space": `${VALID} `,
    "non-hex flags": `00-${TRACE}-${PARENT}-0g`,
    "wrong separator": `00_${TRACE}-${PARENT}-01`,
    "two headers joined": `${VALID}, 00-${TRACE}-${"1".repeat(16)}-01`,
    garbage: "x".repeat(55),
  };
  for (const [name, value] of Object.entries(invalid)) {
    test(`invalid: ${name}`, () => expect(parseTraceparent(value)).toBeUndefined());
  }

  test("format round-trips", () => {
    expect(formatTraceparent(TRACE, PARENT, true)).toBe(VALID);
    expect(parseTraceparent(formatTraceparent(TRACE, PARENT, false))).toEqual({ traceId: TRACE, spanId: PARENT, sampled: false });
  });
});

describe("tracestate", () => {
  test("valid lists are kept (white space around members and empty members dropped)", () => {
    expect(parseTracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")).toBe("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    expect(parseTracestate(" rojo=1 ,\t, congo=2")).toBe("rojo=1,congo=2");
    expect(parseTracestate("tenant@vendor=x,a-b_c*d/e=value with spaces")).toBe("tenant@vendor=x,a-b_c*d/e=value with spaces");
  });

  const invalid: Record<string, string> = {
    "duplicate key": "a=1,a=2",
    "upper-case key": "Rojo=1",
    "no value": "rojo",
    "empty value": "rojo=",
    "value with a comma inside a member": "rojo=a=b",
    "control character in a value": "rojo=a\u0001b",
    "non-ASCII value": "rojo=caf\u00e9",
    "33 members": Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(","),
    "33 members, each short": Array.from({ length: 33 }, (_, i) => `k${i}=${"v".repeat(20)}`).join(","),
    "only commas": ",,",
  };
  for (const [name, value] of Object.entries(invalid)) {
    test(`invalid: ${name}`, () => expect(parseTracestate(value)).toBeUndefined());
  }

  test("a valid state longer than 512 characters is truncated as W3C asks: members over 128 characters first, then from the end", () => {
    const big = `big=${"b".repeat(200)}`;
    const small = (i: number) => `k${i}=${"v".repeat(80)}`; // 83 characters
    // one large member among small ones: only it goes
    const withBig = [small(0), big, small(1), small(2), small(3)];
    expect(withBig.join(",").length).toBeGreaterThan(512);
    expect(parseTracestate(withBig.join(","))).toBe([small(0), small(1), small(2), small(3)].join(","));
    // small members only: from the end, until it fits
    const many = Array.from({ length: 10 }, (_, i) => small(i));
    expect(parseTracestate(many.join(","))).toBe(many.slice(0, 6).join(",")); // 6 × 83 + 5 = 503; 7 would be 587
    // the two large members of a 517-character state: the last goes, the first stays
    expect(parseTracestate(`a=${"v".repeat(256)},b=${"v".repeat(256)}`)).toBe(`a=${"v".repeat(256)}`);
    // exactly 512 is kept whole
    const exact = `${"a".repeat(250)}=${"v".repeat(256)},b=vv`;
    expect(exact.length).toBe(512);
    expect(parseTracestate(exact)).toBe(exact);
    // a member alone longer than 512: nothing is left
    expect(parseTracestate(`${"a".repeat(256)}=${"v".repeat(256)}`)).toBeUndefined();
  });

  test("a valid traceparent with an invalid tracestate keeps the traceparent only; an invalid traceparent drops both", () => {
    expect(remoteParent(new Headers({ traceparent: VALID, tracestate: "Bad=1" }))).toEqual({ traceId: TRACE, spanId: PARENT, sampled: true, traceState: undefined });
    expect(remoteParent(new Headers({ traceparent: VALID, tracestate: "rojo=1" }))?.traceState).toBe("rojo=1");
    expect(remoteParent(new Headers({ traceparent: VALID.toUpperCase(), tracestate: "rojo=1" }))).toBeUndefined();
  });
});

describe("ids", () => {
  test("lower-case hex of the right length, never all zero, not repeated", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      expect(t).toMatch(/^[0-9a-f]{32}$/);
      expect(s).toMatch(/^[0-9a-f]{16}$/);
      expect(t).not.toBe("0".repeat(32));
      seen.add(t);
      seen.add(s);
    }
    expect(seen.size).toBe(4000);
  });
});

describe("sampler", () => {
  test("a remote parent's flag wins over the ratio", () => {
    expect(new RatioSampler(0).sample(TRACE, true)).toBe(true);
    expect(new RatioSampler(1).sample(TRACE, false)).toBe(false);
  });

  test("ratio 0 and 1 are never and always; a ratio samples about that share, the same way for the same id", () => {
    const ids = Array.from({ length: 20_000 }, () => newTraceId());
    expect(ids.every((id) => new RatioSampler(1).sample(id, undefined))).toBe(true);
    expect(ids.some((id) => new RatioSampler(0).sample(id, undefined))).toBe(false);
    const quarter = new RatioSampler(0.25);
    const share = ids.filter((id) => quarter.sampleNew(id)).length / ids.length;
    expect(share).toBeGreaterThan(0.23);
    expect(share).toBeLessThan(0.27);
    // Deterministic in the id: another sampler with the same ratio agrees on every id.
    const again = new RatioSampler(0.25);
    expect(ids.every((id) => again.sampleNew(id) === quarter.sampleNew(id))).toBe(true);
  });

  test("a ratio outside 0..1 is refused", () => {
    expect(() => new RatioSampler(1.5)).toThrow(RangeError);
    expect(() => new RatioSampler(Number.NaN)).toThrow(RangeError);
  });
});
