/**
 * Standard process metrics (the names every Prometheus client library uses), collected at scrape
 * time. Across worker processes: RSS, open fds and CPU seconds sum; start time takes the earliest.
 */
import { readdirSync } from "node:fs";
import type { Registry } from "./registry.ts";

/** Number of open file descriptors, or undefined where /proc is not available. */
export function countOpenFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}

export function registerProcessMetrics(registry: Registry): void {
  const rss = registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.").labels();
  const cpu = registry.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.").labels();
  const start = registry
    .gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", [], "min")
    .labels();
  start.set(Math.round(performance.timeOrigin) / 1000);
  // Without /proc the family is not registered at all rather than reporting a fake value.
  const fds =
    countOpenFds() === undefined ? undefined : registry.gauge("process_open_fds", "Number of open file descriptors.");
  registry.onCollect(() => {
    rss.set(process.memoryUsage.rss());
    const u = process.cpuUsage();
    cpu.value = (u.user + u.system) / 1e6;
    if (fds !== undefined) {
      const n = countOpenFds();
      if (n === undefined) fds.clear();
      else fds.labels().set(n);
    }
  });
}
