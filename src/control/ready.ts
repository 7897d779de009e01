/** The readiness report (/ready): every bucket's upstream probe and breaker, the JWKS, draining. */
import type { Runtime } from "../runtime.ts";

export interface ReadinessReport {
  ready: boolean;
  generation: number;
  reasons: string[];
  buckets: Record<string, { ok: boolean; reason?: string; note?: string; checked_at?: string; circuit?: string }>;
  jwks?: { ok: boolean; reason?: string };
}

export function readinessOf(rt: Runtime, draining: boolean): ReadinessReport {
  const reasons: string[] = [];
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
  return { ready: reasons.length === 0, generation: rt.generation, reasons, buckets, ...(jwks ? { jwks } : undefined) };
}
