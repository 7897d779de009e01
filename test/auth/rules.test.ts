import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { claimAt, describeRule, evaluateRule } from "../../src/auth/index.ts";
import type { ClaimRule } from "../../src/config/schema.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const claims = {
  sub: "alice",
  role: "admin",
  level: 5,
  levelStr: "5",
  score: 2.5,
  active: true,
  off: false,
  nothing: null,
  groups: ["eng", "ops", 7, true],
  org: { tier: "gold", seats: 10, deep: { flag: true } },
  "https://example.com/roles": ["reader"],
  "a.b": "literal",
  a: { b: "nested" },
};

const r = (claim: string, operator: ClaimRule["operator"], value?: unknown): ClaimRule => ({ claim, operator, value });
const ok = (rule: ClaimRule) => expect(evaluateRule(rule, claims)).toBe(true);
const no = (rule: ClaimRule) => expect(evaluateRule(rule, claims)).toBe(false);

describe("claimAt", () => {
  test("top level, nested, literal dotted name wins, missing", () => {
    expect(claimAt(claims, "sub")).toBe("alice");
    expect(claimAt(claims, "org.tier")).toBe("gold");
    expect(claimAt(claims, "org.deep.flag")).toBe(true);
    expect(claimAt(claims, "a.b")).toBe("literal");
    expect(claimAt(claims, "https://example.com/roles")).toEqual(["reader"]);
    expect(claimAt(claims, "org.nope")).toBeUndefined();
    expect(claimAt(claims, "sub.length")).toBeUndefined(); // no walking into strings
    expect(claimAt(claims, "groups.0")).toBeUndefined(); // nor into arrays
    expect(claimAt(claims, "org.__proto__")).toBeUndefined();
    expect(claimAt(claims, "constructor")).toBeUndefined();
  });
});

describe("equals", () => {
  test("string / number / bool / nested", () => {
    ok(r("role", "equals", "admin"));
    no(r("role", "equals", "Admin"));
    ok(r("level", "equals", 5));
    no(r("level", "equals", 6));
    ok(r("active", "equals", true));
    no(r("active", "equals", false));
    ok(r("off", "equals", false));
    ok(r("org.tier", "equals", "gold"));
  });
  test("no type coercion: number vs numeric string, bool vs string", () => {
    no(r("level", "equals", "5"));
    no(r("levelStr", "equals", 5));
    no(r("active", "equals", "true"));
  });
  test("array / object / missing / null claims never equal a scalar", () => {
    no(r("groups", "equals", "eng"));
    no(r("org", "equals", "gold"));
    no(r("missing", "equals", "x"));
    no(r("nothing", "equals", false));
  });
});

describe("in", () => {
  test("string / number / bool / nested", () => {
    ok(r("role", "in", ["admin", "editor"]));
    no(r("role", "in", ["editor", "viewer"]));
    ok(r("level", "in", [1, 5]));
    no(r("level", "in", ["5"]));
    ok(r("active", "in", [true]));
    ok(r("org.tier", "in", ["silver", "gold"]));
  });
  test("array / object / missing claims fail", () => {
    no(r("groups", "in", ["eng"]));
    no(r("org", "in", ["gold"]));
    no(r("missing", "in", ["x"]));
  });
});

describe("contains", () => {
  test("substring of a string claim", () => {
    ok(r("role", "contains", "dmi"));
    no(r("role", "contains", "xyz"));
    ok(r("org.tier", "contains", "ol"));
    no(r("role", "contains", 1)); // non-string value against a string claim
    no(r("levelStr", "contains", 5)); // "5" holds the characters of 5, yet a number is not a substring
    expect(evaluateRule(r("team", "contains", true), { team: "true-believers" })).toBe(false);
  });
  test("element of an array claim (strict)", () => {
    ok(r("groups", "contains", "eng"));
    no(r("groups", "contains", "en"));
    ok(r("groups", "contains", 7));
    no(r("groups", "contains", "7"));
    ok(r("groups", "contains", true));
    ok(r("https://example.com/roles", "contains", "reader"));
  });
  test("number / bool / object / missing claims fail", () => {
    no(r("level", "contains", 5));
    no(r("active", "contains", true));
    no(r("org", "contains", "tier"));
    no(r("missing", "contains", "x"));
  });
});

describe("gt / lt / gte / lte", () => {
  test("numbers", () => {
    ok(r("level", "gt", 4));
    no(r("level", "gt", 5));
    ok(r("level", "gte", 5));
    no(r("level", "gte", 6));
    ok(r("level", "lt", 6));
    no(r("level", "lt", 5));
    ok(r("level", "lte", 5));
    no(r("level", "lte", 4));
    ok(r("score", "gt", 2));
    ok(r("org.seats", "gte", 10));
  });
  test("a claim that is not a finite number fails (a JSON number too large for a double is Infinity)", () => {
    const huge = JSON.parse('{"level": 1e999, "low": -1e999}') as Record<string, unknown>;
    for (const op of ["gt", "gte", "lt", "lte"] as const) {
      expect([op, evaluateRule(r("level", op, 5), huge)]).toEqual([op, false]);
      expect([op, evaluateRule(r("low", op, 5), huge)]).toEqual([op, false]);
    }
  });
  test("non-number claims fail (numeric strings included)", () => {
    for (const op of ["gt", "lt", "gte", "lte"] as const) {
      no(r("levelStr", op, 0));
      no(r("active", op, 0));
      no(r("groups", op, 0));
      no(r("org", op, 0));
      no(r("nothing", op, 0));
      no(r("missing", op, 0));
    }
  });
});

describe("exists", () => {
  test("present (any type, null included) / absent", () => {
    for (const c of ["sub", "level", "active", "off", "groups", "org", "org.deep.flag", "nothing"]) {
      ok(r(c, "exists"));
      ok(r(c, "exists", true));
      no(r(c, "exists", false));
    }
    no(r("missing", "exists"));
    no(r("org.missing", "exists", true));
    ok(r("missing", "exists", false));
    ok(r("org.missing", "exists", false));
  });
});

describe("describeRule", () => {
  test("names the claim and the rule, never a claim value", () => {
    expect(describeRule(r("role", "in", ["admin", "editor"]))).toBe("claim 'role' must be in [admin, editor]");
    expect(describeRule(r("org.tier", "equals", "gold"))).toBe("claim 'org.tier' must equal gold");
    expect(describeRule(r("level", "gte", 3))).toBe("claim 'level' must be a number >= 3");
    expect(describeRule(r("email", "exists"))).toBe("claim 'email' is required");
    expect(describeRule(r("banned", "exists", false))).toBe("claim 'banned' must be absent");
    expect(describeRule(r("groups", "contains", "eng"))).toBe("claim 'groups' must contain eng");
  });
});
