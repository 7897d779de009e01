/**
 * Claim rules (jwt.claims, jwt.admin_claims, a bucket's auth.claims): every rule must hold (AND).
 *
 * Semantics, per operator (the claim is looked up by `claimAt`, so "org.tier" reaches nested claims):
 * - equals:   strict equality (===). The number 5 and the string "5" are NOT equal.
 * - in:       the claim is a scalar equal (===) to one element of the rule's list.
 * - contains: a string claim contains the (string) value as a substring, or an array claim has an
 *             element === the value. Any other claim type fails.
 * - gt/lt/gte/lte: the claim must be a finite number; anything else (numeric string included) fails.
 * - exists:   the claim is present (null counts as present); `value: false` means it must be absent.
 * A missing claim fails every operator except `exists: false`.
 */
import type { ClaimRule } from "../config/schema.ts";

export type Claims = Record<string, unknown>;

/**
 * Reads a claim by name. A claim whose name is literally the whole path wins (claim names such as
 * "https://example.com/roles" contain dots); otherwise the path is split on "." and walked through
 * nested objects (own properties only, so "__proto__" or "constructor" never reach the prototype).
 */
export function claimAt(claims: Claims, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  if (!path.includes(".")) return undefined;
  let cur: unknown = claims;
  for (const seg of path.split(".")) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur) || !Object.hasOwn(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

export function evaluateRule(rule: ClaimRule, claims: Claims): boolean {
  const c = claimAt(claims, rule.claim);
  const v = rule.value;
  switch (rule.operator) {
    case "exists":
      return v === false ? c === undefined : c !== undefined;
    case "equals":
      return c !== undefined && c === v;
    case "in":
      return c !== undefined && (c === null || typeof c !== "object") && Array.isArray(v) && v.some((x) => x === c);
    case "contains":
      if (typeof c === "string") return typeof v === "string" && c.includes(v);
      if (Array.isArray(c)) return c.some((x) => x === v);
      return false;
    case "gt":
      return isNum(c) && isNum(v) && c > v;
    case "lt":
      return isNum(c) && isNum(v) && c < v;
    case "gte":
      return isNum(c) && isNum(v) && c >= v;
    case "lte":
      return isNum(c) && isNum(v) && c <= v;
    default:
      return false;
  }
}

const show = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v));

/** A client-safe sentence for a rule: names the claim and the rule, never the claim's actual value. */
export function describeRule(rule: ClaimRule): string {
  const name = `claim '${rule.claim}'`;
  const v = rule.value;
  switch (rule.operator) {
    case "exists":
      return v === false ? `${name} must be absent` : `${name} is required`;
    case "equals":
      return `${name} must equal ${show(v)}`;
    case "in":
      return `${name} must be in [${Array.isArray(v) ? v.map(show).join(", ") : show(v)}]`;
    case "contains":
      return `${name} must contain ${show(v)}`;
    case "gt":
      return `${name} must be a number > ${show(v)}`;
    case "lt":
      return `${name} must be a number < ${show(v)}`;
    case "gte":
      return `${name} must be a number >= ${show(v)}`;
    case "lte":
      return `${name} must be a number <= ${show(v)}`;
    default:
      return `${name} failed rule ${String(rule.operator)}`;
  }
}

/** The first rule that does not hold, or undefined when all hold. */
export function firstFailedRule(rules: readonly ClaimRule[], claims: Claims): ClaimRule | undefined {
  for (const r of rules) if (!evaluateRule(r, claims)) return r;
  return undefined;
}
