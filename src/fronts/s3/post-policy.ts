/**
 * S3's POST policy (browser-based uploads with AWS Signature Version 4), as pure functions.
 *
 * The form carries `policy`: base64 of a JSON document {expiration, conditions}, and
 * `x-amz-signature`: HMAC-SHA256 of that base64 text with the SigV4 signing key of the form's
 * `x-amz-credential` (access key / date / region / s3 / aws4_request). The policy must not have
 * expired, every condition must hold, and every form field must be named by a condition, except
 * `x-amz-signature`, `file`, `policy` and `x-ignore-*`, as S3 checks it. Conditions:
 *   {"<field>": "value"} and ["eq", "$<field>", "value"]  exact match ("bucket" is the bucket);
 *   ["starts-with", "$<field>", "prefix"]                 ("" allows any value; each item of a Content-Type list);
 *   ["content-length-range", min, max]                    the file's size, checked as it streams.
 * Field names are case-insensitive.
 */
import { s3Error, type S3Error } from "./errors.ts";

export interface PostPolicy {
  /** ms since the epoch. */
  expiration: number;
  /** The file's allowed size, from content-length-range (else 0..Infinity). */
  minLength: number;
  maxLength: number;
}

/** Fields that no condition has to name. */
const EXEMPT = new Set(["x-amz-signature", "file", "policy"]);
/** The most a policy document may be, decoded. */
const MAX_POLICY_BYTES = 20 * 1024;

const denied = (why: string): S3Error => s3Error("AccessDenied", `Invalid according to Policy: ${why}`);
const invalidPolicy = (why: string): S3Error => s3Error("InvalidPolicyDocument", `Invalid Policy: ${why}`);

/**
 * starts-with: a Content-Type with commas is a list, each item of which must start with the prefix
 * (as S3 documents; taken as one string, `image/png,text/html` passed an `image/` condition, and a
 * browser reads such a header's last type). Every other field is one string, commas or not.
 */
function startsWith(name: string, value: string, prefix: string): boolean {
  if (name !== "content-type" || !value.includes(",")) return value.startsWith(prefix);
  return value.split(",").every((item) => item.replace(/^[ \t]+|[ \t]+$/g, "").startsWith(prefix));
}

/**
 * Checks the policy (base64 text) against the form's fields (lower-case names; `bucket` is the
 * bucket the form was posted to) at `now`. The policy, or S3's error.
 */
export function checkPostPolicy(policyBase64: string, fields: ReadonlyMap<string, string>, now: number): PostPolicy | S3Error {
  if (!/^[A-Za-z0-9+/=\s]+$/.test(policyBase64) || policyBase64.length > (MAX_POLICY_BYTES * 4) / 3 + 4) return invalidPolicy("Invalid Base64 Encoding.");
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(policyBase64, "base64").toString("utf8"));
  } catch {
    return invalidPolicy("Invalid JSON.");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return invalidPolicy("Invalid JSON.");
  const { expiration, conditions } = doc as { expiration?: unknown; conditions?: unknown };
  if (typeof expiration !== "string") return invalidPolicy("Policy missing expiration.");
  // One without an offset is UTC, as every S3 time is (Python's utcnow().isoformat() writes none):
  // Date.parse would read it in the server's local time zone, expiring it hours early or late.
  const exp = Date.parse(/(?:Z|[+-]\d{2}:?\d{2})$/i.test(expiration) ? expiration : expiration + "Z");
  if (!/^\d{4}-\d{2}-\d{2}T/.test(expiration) || Number.isNaN(exp)) return invalidPolicy("Invalid 'expiration' value: '" + expiration.slice(0, 64) + "'");
  if (!Array.isArray(conditions)) return invalidPolicy("Policy missing conditions.");
  // The expiration is the instant the policy stops being valid: at it, it has expired.
  if (now >= exp) return denied("Policy expired.");

  const named = new Set<string>();
  const policy: PostPolicy = { expiration: exp, minLength: 0, maxLength: Number.POSITIVE_INFINITY };
  const value = (name: string) => fields.get(name) ?? "";
  for (const c of conditions) {
    if (Array.isArray(c)) {
      const op = typeof c[0] === "string" ? c[0].toLowerCase() : "";
      if (op === "content-length-range") {
        const [min, max] = [c[1], c[2]].map((v) => (typeof v === "string" && /^\d{1,13}$/.test(v) ? Number(v) : v));
        if (c.length !== 3 || typeof min !== "number" || typeof max !== "number" || !Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 0 || min > max) {
          return invalidPolicy("Invalid content-length-range condition.");
        }
        policy.minLength = Math.max(policy.minLength, min);
        policy.maxLength = Math.min(policy.maxLength, max);
        continue;
      }
      if ((op !== "eq" && op !== "starts-with") || c.length !== 3 || typeof c[1] !== "string" || typeof c[2] !== "string" || !c[1].startsWith("$")) {
        return invalidPolicy(`Invalid condition: ${JSON.stringify(c).slice(0, 128)}`);
      }
      const name = c[1].slice(1).toLowerCase();
      named.add(name);
      const ok = op === "eq" ? value(name) === c[2] : startsWith(name, value(name), c[2]);
      if (!ok) return denied(`Policy Condition failed: ${JSON.stringify(c).slice(0, 256)}`);
    } else if (typeof c === "object" && c !== null) {
      const entries = Object.entries(c as Record<string, unknown>);
      if (entries.length !== 1 || typeof entries[0]![1] !== "string") return invalidPolicy(`Invalid condition: ${JSON.stringify(c).slice(0, 128)}`);
      const [k, v] = entries[0]! as [string, string];
      const name = k.toLowerCase();
      named.add(name);
      if (value(name) !== v) return denied(`Policy Condition failed: ${JSON.stringify(["eq", "$" + name, v]).slice(0, 256)}`);
    } else {
      return invalidPolicy("Invalid condition.");
    }
  }
  for (const name of fields.keys()) {
    if (name === "bucket" || EXEMPT.has(name) || name.startsWith("x-ignore-") || named.has(name)) continue;
    return denied(`Extra input fields: ${name.slice(0, 128)}`);
  }
  return policy;
}
