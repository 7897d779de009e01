/**
 * Per-layer metrics, read from the cache at scrape time (nothing on the request path):
 *
 *   yatagarasu_cache_layer_up{layer}             1 serving, 0 skipped (Redis down); min over workers
 *   yatagarasu_cache_layer_hits_total{layer}     HITs served from the layer
 *   yatagarasu_cache_layer_errors_total{layer}   failed operations (Redis timeouts and errors, disk I/O)
 *   yatagarasu_cache_layer_bytes{layer}          bytes held (memory, disk; Redis reports its own)
 *   yatagarasu_cache_layer_items{layer}          objects held (memory, disk)
 *   yatagarasu_cache_layer_evictions_total{layer} objects evicted to make room (memory, disk)
 *
 * The layer label takes the configured layer names only (memory, disk, redis).
 */
import type { Registry } from "../observe/registry.ts";
import type { Cache } from "./cache.ts";

export function registerCacheMetrics(registry: Registry, cache: Cache): void {
  const up = registry.gauge("yatagarasu_cache_layer_up", "Whether a cache layer is serving (1) or skipped because it is unavailable (0).", ["layer"], "min");
  const hits = registry.counter("yatagarasu_cache_layer_hits_total", "Cache hits served from each layer.", ["layer"]);
  const errors = registry.counter("yatagarasu_cache_layer_errors_total", "Failed cache layer operations (timeouts, connection and I/O errors).", ["layer"]);
  const bytes = registry.gauge("yatagarasu_cache_layer_bytes", "Bytes held by each cache layer (not reported for Redis).", ["layer"]);
  const items = registry.gauge("yatagarasu_cache_layer_items", "Objects held by each cache layer (not reported for Redis).", ["layer"]);
  const evictions = registry.counter("yatagarasu_cache_layer_evictions_total", "Objects evicted from each cache layer to make room (not reported for Redis: it evicts by its own policy).", ["layer"]);
  registry.onCollect(() => {
    for (const [name, l] of Object.entries(cache.stats().layers)) {
      up.labels(name).set(l.health === undefined || l.health.up ? 1 : 0);
      hits.labels(name).value = l.hits;
      errors.labels(name).value = l.errors;
      if (name !== "redis") {
        bytes.labels(name).set(l.bytes);
        items.labels(name).set(l.items);
        evictions.labels(name).value = l.evictions;
      }
    }
  });
}
