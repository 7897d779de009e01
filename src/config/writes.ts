/**
 * Cross-field rules of a bucket's write keys (access, auth.write_claims, auth.anonymous_writes):
 * a key that can have no effect is an error, because it reads as a protection that is not there.
 */
import type { PathSegment } from "./path.ts";
import type { BucketConfig } from "./schema.ts";
import { checkRules } from "./validate.ts";

type Issue = { path: PathSegment[]; message: string };

export function bucketWriteIssues(b: BucketConfig, at: (...p: PathSegment[]) => PathSegment[]): Issue[] {
  const issues: Issue[] = [];
  const { write_claims: rules, anonymous_writes: anonymous, enabled } = b.auth;
  checkRules(rules, at("auth", "write_claims"), issues);
  if (rules.length > 0 && !enabled) issues.push({ path: at("auth", "write_claims"), message: "claim rules need auth.enabled: true" });
  if (rules.length > 0 && b.access !== "read-write") issues.push({ path: at("auth", "write_claims"), message: "write rules apply to writes: this bucket is read-only (set access: read-write)" });
  if (anonymous && enabled) issues.push({ path: at("auth", "anonymous_writes"), message: "a bucket with auth.enabled never takes anonymous writes: remove this key" });
  if (anonymous && b.access !== "read-write") issues.push({ path: at("auth", "anonymous_writes"), message: "this bucket is read-only: set access: read-write for writes" });
  return issues;
}

/** The stores a bucket reads: its primary's and its replicas' (storeKey). */
export function storesOf(b: BucketConfig): string[] {
  const s3 = b.s3;
  const out = [storeKey(s3.endpoint, s3.region, s3.bucket)];
  for (const r of s3.replicas ?? []) out.push(storeKey(r.endpoint, r.region, r.bucket));
  return out;
}

/**
 * One store however its endpoint is spelt: the endpoint as the upstream reads it (URL-parsed:
 * the host's case, a default port, dot segments and trailing slashes do not count; nor does the
 * scheme: one host and port serve one store), and AWS S3 as one store per partition whatever the
 * regional endpoint or none (bucket names are global there).
 */
function storeKey(endpoint: string | undefined, region: string, bucket: string): string {
  return JSON.stringify([serviceKey(endpoint, region), bucket]);
}

/** The S3 service an endpoint reaches (storeKey's first part): "aws" for AWS S3 (any region), else host:port/path. */
function serviceKey(endpoint: string | undefined, region: string): string {
  // (no endpoint: AWS S3 in the region's partition, China's apart, as the upstream reaches it)
  if (endpoint === undefined) return region.startsWith("cn-") ? "aws-cn" : "aws";
  const u = URL.parse(endpoint);
  if (u === null) return endpoint; // (refused by validation before it gets here)
  const host = u.hostname.toLowerCase().replace(/\.$/, "");
  if (host.endsWith(".amazonaws.com")) return "aws";
  if (host.endsWith(".amazonaws.com.cn")) return "aws-cn";
  const port = u.port !== "" ? u.port : u.protocol === "https:" ? "443" : "80";
  return `${host}:${port}${u.pathname.replace(/\/+$/, "")}`;
}

/** Whether every store `b` reads (its primary and replicas) is AWS S3 (as serviceKey reads an endpoint, or none). */
export function onAwsS3(b: BucketConfig): boolean {
  const s3 = b.s3;
  // (the service key exactly: another store's is its host, which may begin with "aws" too)
  return [s3, ...(s3.replicas ?? [])].every((r) => {
    const service = serviceKey(r.endpoint, r.region);
    return service === "aws" || service === "aws-cn";
  });
}

/**
 * Whether two buckets' primaries are one S3 service reached with one identity (the endpoint as
 * storeKey reads it, the region, the keys): the destination's credentials then read the source as
 * the source bucket does, and a copy from one to the other is the service's own server-side copy.
 */
export function sameUpstreamAccount(a: BucketConfig, b: BucketConfig): boolean {
  const x = a.s3;
  const y = b.s3;
  return serviceKey(x.endpoint, x.region) === serviceKey(y.endpoint, y.region) && x.region === y.region && x.access_key === y.access_key && x.secret_key === y.secret_key && x.session_token === y.session_token;
}

/** Store → the names of the buckets (those `include` takes) that read it, built once (a config may name thousands of buckets). */
export function bucketsByStore(buckets: readonly BucketConfig[], include: (b: BucketConfig) => boolean): Map<string, string[]> {
  const byStore = new Map<string, string[]>();
  for (const b of buckets) {
    if (!include(b)) continue;
    for (const s of storesOf(b)) {
      const names = byStore.get(s);
      if (names === undefined) byStore.set(s, [b.name]);
      else names.push(b.name);
    }
  }
  return byStore;
}

/** The buckets of `byStore` that read any store `b` reads, each once. */
export function sharingStores(byStore: ReadonlyMap<string, string[]>, b: BucketConfig): string[] {
  const names = new Set<string>();
  for (const s of storesOf(b)) for (const n of byStore.get(s) ?? []) names.add(n);
  return [...names];
}

/**
 * The read-only buckets that read a store a read-write bucket writes (its uploads are served
 * through them too): name → those read-write buckets. `which`: those that leave
 * sandbox_user_content unset (sandboxed: user content all the same), or those that set it false
 * (serving the uploads as stored, script included).
 */
export function userContentReaders(buckets: readonly BucketConfig[], which: "unset" | "opted-out" = "unset"): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const writers = bucketsByStore(buckets, (b) => b.access === "read-write");
  if (writers.size === 0) return out;
  const setting = which === "unset" ? undefined : false;
  for (const b of buckets) {
    if (b.access === "read-write" || b.sandbox_user_content !== setting) continue;
    const by = sharingStores(writers, b);
    if (by.length > 0) out.set(b.name, by);
  }
  return out;
}

/** Whether a bucket's objects are answered sandboxed (BucketRuntime.sandboxed): an explicit sandbox_user_content, else user content. */
export function isSandboxed(b: BucketConfig, readers: ReadonlyMap<string, string[]>): boolean {
  return b.sandbox_user_content ?? (b.access === "read-write" || readers.has(b.name));
}
