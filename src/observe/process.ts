/**
 * Standard process metrics (the names every Prometheus client library uses), collected at scrape
 * time. Across worker processes: RSS, open fds and CPU seconds sum; start time takes the earliest.
 */
import { readdirSync, readFileSync } from "node:fs";
import { outOfDescriptors } from "../errors.ts";
import type { Registry } from "./registry.ts";

/** The soft limit on open file descriptors (RLIMIT_NOFILE), or undefined where /proc is not available. */
function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Number of open file descriptors, or undefined where /proc is not available. Reading the folder
 * takes a descriptor itself: with none left (EMFILE) every one is open, `max` (the series vanished
 * from the scrape just when it reached the limit).
 */
function countOpenFds(max?: number): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch (err) {
    return outOfDescriptors(err) ? max : undefined;
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
  // (read once: Bun raises the soft limit to the hard one before any of this runs)
  const max = fds === undefined ? undefined : maxFds();
  // (the limit is each process's own: with workers, the merged /metrics shows the lowest one, not
  // their sum, which no process could ever open)
  if (max !== undefined) registry.gauge("process_max_fds", "Maximum number of open file descriptors.", [], "min").labels().set(max);
  registry.onCollect(() => {
    // Bun reads it from /proc: with no descriptor left it throws ("Failed to get memory usage"),
    // which left out the CPU time and the open descriptors too. The last value stays.
    try {
      rss.set(process.memoryUsage.rss());
    } catch {}
    const u = process.cpuUsage();
    cpu.value = (u.user + u.system) / 1e6;
    if (fds !== undefined) {
      const n = countOpenFds(max);
      if (n === undefined) fds.clear();
      else fds.labels().set(n);
    }
  });
}
