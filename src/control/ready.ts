/**
 * The readiness report (/ready): every bucket's upstream probe and breaker (every replica's, for
 * buckets with s3.replicas), the JWKS, the shared rate limits, draining.
 *
 * A bucket with replicas is ready while at least one replica is healthy (probe ok, breaker not
 * open); a failed replica is then named under `degraded` (still 200), and `serving` names the
 * replica reads go to first.
 */
import type { Cache } from "../cache/index.ts";
import { withheldNames } from "../cache/redis-link.ts";
import { RedisRateLimiter } from "../limits/index.ts";
import { probeId } from "../observe/readiness.ts";
import type { BucketRuntime, Runtime } from "../runtime.ts";

interface UpstreamReport {
  ok: boolean;
  reason?: string;
  note?: string;
  checked_at?: string;
  circuit?: string;
}

export interface ReadinessReport {
  ready: boolean;
  generation: number;
  reasons: string[];
  /** What is failing while the proxy still serves (a replica down, Redis down for the rate limits). */
  degraded?: string[];
  buckets: Record<string, UpstreamReport & { serving?: string; replicas?: Record<string, UpstreamReport & { priority: number }> }>;
  jwks?: { ok: boolean; reason?: string };
  rate_limit?: { backend: "redis"; shared: boolean };
  /** Cache layers that can be unavailable (Redis): skipped while down, never a reason to be unready. */
  cache_layers?: Record<string, { up: boolean; state: string; reason?: string }>;
}

function upstreamReport(rt: Runtime, id: string, circuit: string | undefined): UpstreamReport {
  const st = rt.prober.state(id) ?? { ok: false, reason: "not probed yet" };
  const ok = st.ok && circuit !== "open";
  return { ...st, ok, ...(ok || circuit !== "open" ? undefined : { reason: "circuit breaker open" }), ...(circuit ? { circuit } : undefined) };
}

function replicaBucket(rt: Runtime, b: BucketRuntime, reasons: string[], degraded: string[]): ReadinessReport["buckets"][string] {
  const replicas: Record<string, UpstreamReport & { priority: number }> = {};
  let serving: string | undefined;
  const failed: string[] = [];
  for (const r of b.replicas!) {
    const rep = upstreamReport(rt, probeId(b.name, r.name), r.breakerState);
    replicas[r.name] = { priority: r.priority, ...rep };
    if (rep.ok) serving ??= r.name;
    else failed.push(`replica ${r.name}: ${rep.reason}`);
  }
  if (serving === undefined) reasons.push(`bucket ${b.name}: no healthy replica (${failed.join("; ")})`);
  else for (const f of failed) degraded.push(`bucket ${b.name}: ${f}`);
  return { ok: serving !== undefined, ...(serving ? { serving } : undefined), replicas };
}

export function readinessOf(rt: Runtime, draining: boolean, cache?: Cache): ReadinessReport {
  const reasons: string[] = [];
  const degraded: string[] = [];
  const buckets: ReadinessReport["buckets"] = {};
  if (draining) reasons.push("shutting down");
  for (const b of rt.buckets.values()) {
    if (b.replicas) {
      buckets[b.name] = replicaBucket(rt, b, reasons, degraded);
      continue;
    }
    const circuit = b.upstream.primary().breaker?.state;
    const rep = upstreamReport(rt, b.name, circuit);
    buckets[b.name] = rep;
    if (!rep.ok) reasons.push(`bucket ${b.name}: ${rep.reason}`);
  }
  let jwks: ReadinessReport["jwks"];
  if (rt.auth) {
    jwks = rt.auth.readiness(true); // (a reason fit for anyone who can reach /ready)
    if (!jwks.ok) reasons.push(`jwt: ${jwks.reason ?? "keys not loaded"}`);
  }
  let rateLimit: ReadinessReport["rate_limit"];
  if (rt.limiter instanceof RedisRateLimiter) {
    rateLimit = { backend: "redis", shared: rt.limiter.shared };
    if (!rateLimit.shared) degraded.push("rate limits: Redis unavailable, each process enforces its local share");
  }
  let cacheLayers: ReadinessReport["cache_layers"];
  for (const l of cache?.layers ?? []) {
    const h = l.health?.();
    if (h === undefined) continue;
    const reason = h.reason ? withheldNames(h.reason) : undefined;
    (cacheLayers ??= {})[l.name] = { up: h.up, state: h.state, ...(reason ? { reason } : undefined) };
    if (!h.up) degraded.push(`cache layer ${l.name}: unavailable (${reason ?? h.state}), skipped until it answers`);
  }
  return {
    ready: reasons.length === 0,
    generation: rt.generation,
    reasons,
    ...(degraded.length > 0 ? { degraded } : undefined),
    buckets,
    ...(jwks ? { jwks } : undefined),
    ...(rateLimit ? { rate_limit: rateLimit } : undefined),
    ...(cacheLayers ? { cache_layers: cacheLayers } : undefined),
  };
}
