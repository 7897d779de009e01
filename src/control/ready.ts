/** The readiness report (/ready): every bucket's upstream probe and breaker, the JWKS, draining. */
import type { Cache } from "../cache/index.ts";
import type { Runtime } from "../runtime.ts";

export interface ReadinessReport {
  ready: boolean;
  generation: number;
  reasons: string[];
  buckets: Record<string, { ok: boolean; reason?: string; note?: string; checked_at?: string; circuit?: string }>;
  jwks?: { ok: boolean; reason?: string };
  /** What is failing while the proxy still serves (a Redis cache layer down). */
  degraded?: string[];
  /** Cache layers that can be unavailable (Redis): skipped while down, never a reason to be unready. */
  cache_layers?: Record<string, { up: boolean; state: string; reason?: string }>;
}

export function readinessOf(rt: Runtime, draining: boolean, cache?: Cache): ReadinessReport {
  const reasons: string[] = [];
  const degraded: string[] = [];
  const buckets: ReadinessReport["buckets"] = {};
  if (draining) reasons.push("shutting down");
  for (const b of rt.buckets.values()) {
    const st = rt.prober.state(b.name) ?? { ok: false, reason: "not probed yet" };
    const circuit = b.upstream.breaker?.state;
    const ok = st.ok && circuit !== "open";
    buckets[b.name] = { ...st, ok, ...(circuit ? { circuit } : undefined) };
    if (!ok) reasons.push(`bucket ${b.name}: ${circuit === "open" ? "circuit breaker open" : st.reason}`);
  }
  let jwks: ReadinessReport["jwks"];
  if (rt.auth) {
    jwks = rt.auth.readiness();
    if (!jwks.ok) reasons.push(`jwt: ${jwks.reason ?? "keys not loaded"}`);
  }
  let cacheLayers: ReadinessReport["cache_layers"];
  for (const l of cache?.layers ?? []) {
    const h = l.health?.();
    if (h === undefined) continue;
    (cacheLayers ??= {})[l.name] = { up: h.up, state: h.state, ...(h.reason ? { reason: h.reason } : undefined) };
    if (!h.up) degraded.push(`cache layer ${l.name}: unavailable (${h.reason ?? h.state}), skipped until it answers`);
  }
  return {
    ready: reasons.length === 0,
    generation: rt.generation,
    reasons,
    ...(degraded.length > 0 ? { degraded } : undefined),
    buckets,
    ...(jwks ? { jwks } : undefined),
    ...(cacheLayers ? { cache_layers: cacheLayers } : undefined),
  };
}
