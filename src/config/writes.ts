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

/** The stores a bucket reads: its primary's and its replicas' (endpoint, S3 bucket). */
export function storesOf(b: BucketConfig): string[] {
  const s3 = b.s3;
  const out = [JSON.stringify([s3.endpoint ?? "", s3.bucket])];
  for (const r of s3.replicas ?? []) out.push(JSON.stringify([r.endpoint ?? "", r.bucket]));
  return out;
}

/**
 * The read-only buckets whose objects are user content all the same: they read a store a
 * read-write bucket writes (its uploads are served through them too), and leave
 * sandbox_user_content unset. Name → the read-write buckets whose store they read.
 */
export function userContentReaders(buckets: readonly BucketConfig[]): Map<string, string[]> {
  const writers = new Map<string, string[]>();
  for (const b of buckets) {
    if (b.access !== "read-write") continue;
    for (const s of storesOf(b)) writers.set(s, [...(writers.get(s) ?? []), b.name]);
  }
  const out = new Map<string, string[]>();
  if (writers.size === 0) return out;
  for (const b of buckets) {
    if (b.access === "read-write" || b.sandbox_user_content !== undefined) continue;
    const by = new Set<string>();
    for (const s of storesOf(b)) for (const w of writers.get(s) ?? []) by.add(w);
    if (by.size > 0) out.set(b.name, [...by]);
  }
  return out;
}

/** Whether a bucket's objects are answered sandboxed (BucketRuntime.sandboxed): an explicit sandbox_user_content, else user content. */
export function isSandboxed(b: BucketConfig, readers: ReadonlyMap<string, string[]>): boolean {
  return b.sandbox_user_content ?? (b.access === "read-write" || readers.has(b.name));
}
