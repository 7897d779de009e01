/**
 * Cross-field rules of a bucket's write keys (access, auth.write_claims, auth.anonymous_writes):
 * a key that can have no effect is an error, because it reads as a protection that is not there.
 */
import type { PathSegment } from "./path.ts";
import type { BucketConfig } from "./schema.ts";
import { claimRuleProblem } from "./validate.ts";

type Issue = { path: PathSegment[]; message: string };

export function bucketWriteIssues(b: BucketConfig, at: (...p: PathSegment[]) => PathSegment[]): Issue[] {
  const issues: Issue[] = [];
  const { write_claims: rules, anonymous_writes: anonymous, enabled } = b.auth;
  rules.forEach((r, i) => {
    const p = claimRuleProblem(r);
    if (p) issues.push({ path: at("auth", "write_claims", i, "value"), message: p });
  });
  if (rules.length > 0 && !enabled) issues.push({ path: at("auth", "write_claims"), message: "claim rules need auth.enabled: true" });
  if (rules.length > 0 && b.access !== "read-write") issues.push({ path: at("auth", "write_claims"), message: "write rules apply to writes: this bucket is read-only (set access: read-write)" });
  if (anonymous && enabled) issues.push({ path: at("auth", "anonymous_writes"), message: "a bucket with auth.enabled never takes anonymous writes: remove this key" });
  if (anonymous && b.access !== "read-write") issues.push({ path: at("auth", "anonymous_writes"), message: "this bucket is read-only: set access: read-write for writes" });
  return issues;
}
