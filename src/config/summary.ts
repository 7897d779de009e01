/** The one-screen summary printed by `--check`. Never prints secrets: only whether they are set. */
import { basename, isAbsolute, join } from "node:path";
import { layerItemLimits } from "../cache/config.ts";
import { auditPath } from "../observe/audit.ts";
import type { Config } from "./load.ts";
import { anyRateLimit } from "./rate-limit.ts";
import { workerProcesses } from "./schema.ts";
import { listenerUrl, printableUrl } from "./url.ts";
import { summarizeS3Api } from "./s3-api.ts";

/** A rate limit that is set, as `name=N/s` (with its burst when given); "" when it is not (it said `global=-/s`). */
function rateOf(name: string, r: { requests_per_second: number; burst?: number } | undefined): string {
  return r === undefined ? "" : `${name}=${r.requests_per_second}/s${r.burst === undefined ? "" : ` (burst ${r.burst})`}`;
}

/**
 * A file or folder as the proxy opens it: a relative one resolves against the config file's
 * folder (Config.baseDir), not the folder --check runs in, so it is shown resolved, with what was written.
 */
function shownPath(p: string | undefined, baseDir: string): string {
  if (p === undefined || isAbsolute(p)) return String(p);
  return `${join(baseDir, p)} ("${p}", relative to the config's folder)`;
}

/**
 * A cached bucket's flag, with its own ttl_seconds, max_item_size_mb (as capped by the layers) and
 * stale_if_error_seconds where they differ from the cache section's (the cache line says those
 * defaults; a bucket's own were said nowhere).
 */
function cachedFlag(c: Config, b: Config["buckets"][number]): string {
  const own = b.cache;
  const layerMax = layerItemLimits(c.cache).layerMax;
  const items = own?.max_item_size_mb === undefined ? layerMax : Math.min(own.max_item_size_mb, layerMax);
  const stale = own?.stale_if_error_seconds;
  const parts = [
    own?.ttl_seconds !== undefined && own.ttl_seconds !== c.cache.memory.default_ttl_seconds ? `ttl ${own.ttl_seconds}s` : "",
    items !== layerMax ? `items<=${items} MiB` : "",
    stale !== undefined && stale !== c.cache.stale_if_error_seconds ? `stale-if-error ${stale > 0 ? `${stale}s` : "off"}` : "",
  ].filter(Boolean);
  return parts.length === 0 ? "cached" : `cached (${parts.join(", ")})`;
}

/** `verdict`: the headline's word on the config ("OK" only when --check exits 0). */
export function summarize(c: Config, file: string, verdict = "OK"): string {
  const s = c.server;
  const lines: string[] = [];
  lines.push(`config ${file}: ${verdict}`);
  // (the processes the listeners run in: workers, `auto` resolved on this machine)
  const workers = workerProcesses(s.workers);
  lines.push(`listen      ${listenerUrl(s.https?.enabled ? "https" : "http", s.address, s.port)}  engine=${s.engine} workers=${s.workers === "auto" ? `auto (${workers} here)` : s.workers} shutdown_delay=${s.shutdown_delay}s shutdown_timeout=${s.shutdown_timeout}s`);
  lines.push(`limits      max_concurrent=${s.max_concurrent_requests} uri<=${s.security_limits.max_uri_length}B headers<=${s.security_limits.max_header_size}B` +
    (s.rate_limit?.enabled ? ` rate: ${[rateOf("global", s.rate_limit.global), rateOf("per_ip", s.rate_limit.per_ip)].filter(Boolean).join(" ") || "none set"}` : ""));
  lines.push(`metrics     ${c.metrics.enabled ? `${listenerUrl("http", c.metrics.address, c.metrics.port)}/metrics` : "off"}`);
  lines.push(`logging     ${c.logging.level} ${c.logging.format}`);
  if (c.jwt?.enabled) {
    const j = c.jwt;
    const algs = [...new Set([j.algorithm, ...(j.algorithms ?? []), ...j.keys.map((k) => k.algorithm)])].join(",");
    const keys = [j.secret ? "secret" : "", j.rsa_public_key_path ? "rsa-pem" : "", j.ecdsa_public_key_path ? "ec-pem" : "", j.public_key_path ? "pem" : "", j.keys.length ? `${j.keys.length} keys` : "", j.jwks_url ? "jwks" : ""].filter(Boolean).join("+");
    lines.push(`jwt         ${algs} via ${keys}; sources=${j.token_sources.map((t) => t.type + (t.name ? `:${t.name}` : "")).join(",")}; ${j.claims.length} claim rule${j.claims.length === 1 ? "" : "s"}; admin API ${j.admin_claims.length ? "on" : "off"}`);
  } else lines.push("jwt         off");
  lines.push(`cache       ${c.cache.enabled ? cacheLayers(c) : "off"}`);
  const rl = s.rate_limit;
  // (the buckets' limits are shared with enabled: false too: src/limits/limiter.ts)
  if (rl?.backend === "redis" && anyRateLimit(c)) {
    const url = rl.redis_url ?? c.cache.redis?.url;
    // Each process's local share is 1/instances, and 1/workers of that (src/limits/limiter.ts).
    const alone = workers === 1 ? `each of ${rl.instances} process(es) enforces 1/${rl.instances}` : `each of ${rl.instances} instance(s) enforces 1/${rl.instances}, each of its ${workers} workers 1/${rl.instances * workers}`;
    const which = rl.enabled ? "rate limits" : "bucket rate limits (server.rate_limit.enabled: false: no global or per-IP limit)";
    lines.push(`${which} shared in Redis ${url ? printableUrl(url) : "(no URL)"} (timeout ${rl.redis_timeout_ms} ms; alone, ${alone})`);
  } else if (rl?.backend === "redis") {
    // (backend: redis with nothing to share: no limiter, no connection; it said nothing of it)
    lines.push(`rate limits none apply (server.rate_limit.enabled: false, no bucket's s3.rate_limit): backend redis unused${rl.redis_url ? `, no connection to ${printableUrl(rl.redis_url)}` : ""}`);
  }
  lines.push(`tracing     ${c.tracing.enabled && c.tracing.otlp_endpoint ? `OTLP ${printableUrl(c.tracing.otlp_endpoint)} sample=${c.tracing.sample_ratio} service=${c.tracing.service_name}` : "off"}`);
  // With several workers each writes a file of its own (auditPath): name them, or the file named is one nobody writes.
  const perWorker = workers > 1 && c.audit.enabled ? `, one file per worker: ${basename(auditPath(c.audit, { baseDir: c.baseDir, share: workers, worker: 0 }))} … ${basename(auditPath(c.audit, { baseDir: c.baseDir, share: workers, worker: workers - 1 }))}` : "";
  lines.push(`audit       ${c.audit.enabled ? `${shownPath(c.audit.path, c.baseDir)} (rotate at ${c.audit.max_size_mb} MiB, keep ${c.audit.max_files}${perWorker})` : "off"}`);
  lines.push(`buckets     ${c.buckets.length}`);
  for (const b of c.buckets) {
    // Validation refuses credentials in endpoints; printableUrl is the second line of defence.
    const where = b.s3.endpoint ? printableUrl(b.s3.endpoint) : `aws:${b.s3.region}`;
    const flags = [
      b.s3.access_key ? "signed" : "anonymous",
      b.auth.enabled ? `auth${b.auth.claims.length ? `+${b.auth.claims.length} rules` : ""}` : "public",
      b.authorization ? b.authorization.type : "",
      b.access === "read-write" ? `read-write${b.auth.write_claims.length ? `+${b.auth.write_claims.length} write rules` : ""}${b.auth.anonymous_writes ? " (anonymous writes)" : ""}` : "",
      b.listing.enabled ? "listing" : "",
      b.ip_filter.allowlist.length + b.ip_filter.blocklist.length > 0 ? "ip_filter" : "",
      c.cache.enabled && b.cache?.enabled ? cachedFlag(c, b) : "",
      b.s3.circuit_breaker ? "breaker" : "",
      b.s3.rate_limit ? `rate=${b.s3.rate_limit.requests_per_second}/s` : "",
    ].filter(Boolean);
    lines.push(`  ${b.path_prefix.padEnd(20)} → ${b.name} (s3://${b.s3.bucket} @ ${where}) ${flags.join(" ")}`);
    for (const r of b.s3.replicas ?? []) {
      const at = r.endpoint ? printableUrl(r.endpoint) : `aws:${r.region}`;
      lines.push(`  ${"".padEnd(20)}   replica ${r.priority} ${r.name}: s3://${r.bucket} @ ${at} ${r.access_key ? "signed" : "anonymous"}`);
    }
  }
  lines.push(...summarizeS3Api(c.s3_api, !!s.https?.enabled));
  return `${lines.join("\n")}\n`;
}

function cacheLayers(c: Config): string {
  const m = c.cache.memory;
  return c.cache.cache_layers
    .map((layer) => {
      if (layer === "memory") return `memory ${m.max_cache_size_mb} MiB (items<=${m.max_item_size_mb} MiB)`;
      if (layer === "disk") return `disk ${shownPath(c.cache.disk?.path, c.baseDir)} ${c.cache.disk?.max_disk_size_mb} MiB (items<=${c.cache.disk?.max_item_size_mb} MiB${c.cache.disk?.fsync ? ", fsync" : ""})`;
      const r = c.cache.redis;
      return `redis ${r ? printableUrl(r.url) : ""} (items<=${r?.max_item_size_mb} MiB)`;
    })
    .join(" → ") + `, ttl ${m.default_ttl_seconds}s` + (c.cache.stale_if_error_seconds > 0 ? `, stale-if-error ${c.cache.stale_if_error_seconds}s` : "");
}
