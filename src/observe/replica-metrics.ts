/**
 * Metrics of buckets with s3.replicas (src/s3/replicas.ts):
 *
 *   yatagarasu_s3_replica_requests_total{bucket,replica,result}   one per replica asked in a read:
 *       result = success (an HTTP answer below 500), failure (5xx, timeout, unreachable, after the
 *       replica's own retries) or skipped (its circuit breaker was open, or its half-open trial
 *       slots were taken)
 *   yatagarasu_s3_failovers_total{bucket,from,to}                 a read moved on from a replica it asked (which failed
 *       it) to the next one it asked; a skipped replica is neither from nor to
 *   yatagarasu_s3_replica_circuit_breaker_state{bucket,replica}   0 closed, 1 open, 2 half-open
 *
 * Cardinality is bounded by the config: buckets × their replicas (at most 8) × 3 results, as
 * configured during the process's life; failover pairs at most replicas². Single-endpoint buckets
 * have no series here (their traffic is in yatagarasu_s3_requests_total, which also counts every
 * replica's attempts under the bucket's name). `configure` (each runtime build) drops the breaker
 * gauge of replicas no longer configured (their counters stay) and creates zero-valued series for
 * new replicas.
 */
import type { CounterChild, Counter, Gauge, GaugeChild, Registry } from "./registry.ts";

/** The hot-path handles of one replica (looked up once, when the runtime is built). */
export interface ReplicaSeries {
  success: CounterChild;
  failure: CounterChild;
  skipped: CounterChild;
  breaker: GaugeChild;
  /** Failovers from this replica, by the replica moved to. */
  failoverTo: Map<string, CounterChild>;
}

export class ReplicaMetrics {
  private readonly requests: Counter;
  private readonly failovers: Counter;
  private readonly breakers: Gauge;

  constructor(r: Registry) {
    this.requests = r.counter("yatagarasu_s3_replica_requests_total", "Reads asked of each replica of a bucket with s3.replicas, by result (success: an answer below 500; failure: 5xx, timeout or unreachable after the replica's retries; skipped: circuit breaker open).", ["bucket", "replica", "result"]);
    this.failovers = r.counter("yatagarasu_s3_failovers_total", "Reads that moved on from a replica they asked (which failed them) to the next one they asked within the same request; a skipped replica is neither from nor to.", ["bucket", "from", "to"]);
    this.breakers = r.gauge("yatagarasu_s3_replica_circuit_breaker_state", "Circuit breaker state per replica: 0 closed, 1 open, 2 half-open.", ["bucket", "replica"], "max");
  }

  /** Declares the replica sets of a new config generation; returns the series per bucket and replica. */
  configure(sets: ReadonlyMap<string, readonly string[]>): Map<string, Map<string, ReplicaSeries>> {
    const keep = (bucket: string, replica: string) => sets.get(bucket)?.includes(replica) === true;
    // A replica (or bucket) no longer configured keeps its counters, as a removed bucket keeps its
    // own (metrics.ts): with server.workers > 1 a dead child's counts stay in the merged output, so
    // dropping them here took the merged series back to that share alone (a reset to Prometheus).
    // Its breaker gauge goes (nobody's breaker). retain() looks at one label; the pairs need two,
    // so unknown pairs go through remove().
    this.breakers.retain("bucket", (b) => sets.has(b));
    for (const s of this.breakers.snapshot().series) if (!keep(s.labels[0], s.labels[1])) this.breakers.remove(...s.labels);
    const out = new Map<string, Map<string, ReplicaSeries>>();
    for (const [bucket, names] of sets) {
      const m = new Map<string, ReplicaSeries>();
      for (const name of names) {
        m.set(name, {
          success: this.requests.labels(bucket, name, "success"),
          failure: this.requests.labels(bucket, name, "failure"),
          skipped: this.requests.labels(bucket, name, "skipped"),
          breaker: this.breakers.labels(bucket, name),
          failoverTo: new Map(names.filter((n) => n !== name).map((to) => [to, this.failovers.labels(bucket, name, to)])),
        });
      }
      out.set(bucket, m);
    }
    return out;
  }
}
