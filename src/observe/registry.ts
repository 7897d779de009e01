/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format 0.0.4. No dependencies.
 *
 * Children (one per label-value combination) live in a Map under the joined label values; hot
 * paths should hold on to the child object (`family.labels(...)`) instead of looking it up per
 * call. Rendering goes through `snapshot()` — a JSON-able copy of every value — so the output of
 * several processes can be merged (`mergeSnapshots`) and rendered with the same code.
 */

export type MetricType = "counter" | "gauge" | "histogram";
/** How a gauge combines across processes (counters and histograms always sum). */
export type MergeMode = "sum" | "max" | "min";

export interface ScalarSeries { labels: string[]; value: number }
export interface HistogramSeries { labels: string[]; counts: number[]; sum: number; count: number }
export interface FamilySnapshot {
  name: string;
  help: string;
  type: MetricType;
  labelNames: string[];
  merge: MergeMode;
  /** Histogram upper bounds, ascending, without +Inf. */
  bounds?: number[];
  series: (ScalarSeries | HistogramSeries)[];
}
export type Snapshot = FamilySnapshot[];

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SEP = "\u0001";

export class CounterChild {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
}

export class HistogramChild {
  /** Non-cumulative counts per bound; the last slot is the +Inf overflow. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    if (v !== v) return; // NaN would poison the sum
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

type Child = CounterChild | GaugeChild | HistogramChild;

export abstract class Family<C extends Child> {
  protected readonly children = new Map<string, { labels: string[]; child: C }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    readonly labelNames: readonly string[],
    readonly merge: MergeMode,
  ) {
    if (!NAME_RE.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l.startsWith("__") || (type === "histogram" && l === "le")) {
        throw new Error(`invalid label name ${l} on ${name}`);
      }
    }
  }
  protected abstract create(): C;

  /** The child for these label values (created on first use). Keep the result on hot paths. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    }
    const key = values.join(SEP);
    const hit = this.children.get(key);
    if (hit !== undefined) return hit.child;
    const child = this.create();
    this.children.set(key, { labels: values.slice(), child });
    return child;
  }

  /** Drops one series. */
  remove(...values: string[]): void {
    this.children.delete(values.join(SEP));
  }

  /** Drops every series whose value for `labelName` fails `keep`. */
  retain(labelName: string, keep: (value: string) => boolean): void {
    const i = this.labelNames.indexOf(labelName);
    if (i < 0) return;
    for (const [key, e] of this.children) if (!keep(e.labels[i])) this.children.delete(key);
  }

  clear(): void {
    this.children.clear();
  }

  snapshot(): FamilySnapshot {
    const series: FamilySnapshot["series"] = [];
    for (const { labels, child } of this.children.values()) {
      if (child instanceof HistogramChild) {
        series.push({ labels: labels.slice(), counts: Array.from(child.counts), sum: child.sum, count: child.count });
      } else {
        series.push({ labels: labels.slice(), value: child.value });
      }
    }
    const snap: FamilySnapshot = { name: this.name, help: this.help, type: this.type, labelNames: [...this.labelNames], merge: this.merge, series };
    if (this instanceof Histogram) snap.bounds = [...this.bounds];
    return snap;
  }
}

export class Counter extends Family<CounterChild> {
  protected create(): CounterChild {
    return new CounterChild();
  }
}

export class Gauge extends Family<GaugeChild> {
  protected create(): GaugeChild {
    return new GaugeChild();
  }
}

class Histogram extends Family<HistogramChild> {
  constructor(name: string, help: string, labelNames: readonly string[], readonly bounds: readonly number[]) {
    super(name, help, "histogram", labelNames, "sum");
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new Error(`${name}: bucket bounds must increase`);
    }
  }
  protected create(): HistogramChild {
    return new HistogramChild(this.bounds);
  }
}

export class Registry {
  private readonly families = new Map<string, Family<Child>>();
  private readonly collectors: (() => void)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, "counter", labelNames, "sum"));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = [], merge: MergeMode = "sum"): Gauge {
    return this.add(new Gauge(name, help, "gauge", labelNames, merge));
  }
  histogram(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, bounds));
  }

  /** Runs before every snapshot/render, e.g. to set callback-based gauges. Errors are ignored. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  snapshot(): Snapshot {
    for (const fn of this.collectors) {
      try {
        fn();
      } catch {
        // A broken collector must not break the whole scrape.
      }
    }
    return Array.from(this.families.values(), (f) => f.snapshot());
  }

  render(): string {
    return renderSnapshot(this.snapshot());
  }

  private add<F extends Family<Child>>(f: F): F {
    if (this.families.has(f.name)) throw new Error(`metric ${f.name} registered twice`);
    this.families.set(f.name, f);
    return f;
  }
}

/**
 * Combines the snapshots of several processes: counters and histograms sum per series; gauges
 * use their family's merge mode (sum, max or min). A family whose type, labels or histogram
 * bounds differ from the first occurrence (mixed versions) is taken from the first process only.
 */
export function mergeSnapshots(snapshots: readonly Snapshot[]): Snapshot {
  const out = new Map<string, { fam: FamilySnapshot; sig: string; series: Map<string, ScalarSeries | HistogramSeries> }>();
  for (const snap of snapshots) {
    for (const f of snap) {
      const sig = `${f.type}|${f.labelNames.join(",")}|${(f.bounds ?? []).join(",")}`;
      let m = out.get(f.name);
      if (m === undefined) {
        m = { fam: { ...f, series: [] }, sig, series: new Map() };
        out.set(f.name, m);
      } else if (m.sig !== sig) continue;
      const mode = f.type === "gauge" ? m.fam.merge : "sum";
      for (const s of f.series) {
        const key = s.labels.join(SEP);
        const prev = m.series.get(key);
        if (prev === undefined) {
          m.series.set(key, "counts" in s ? { ...s, labels: [...s.labels], counts: [...s.counts] } : { ...s, labels: [...s.labels] });
        } else if ("counts" in prev && "counts" in s) {
          for (let i = 0; i < prev.counts.length; i++) prev.counts[i] += s.counts[i] ?? 0;
          prev.sum += s.sum;
          prev.count += s.count;
        } else if (!("counts" in prev) && !("counts" in s)) {
          prev.value = mode === "max" ? Math.max(prev.value, s.value) : mode === "min" ? Math.min(prev.value, s.value) : prev.value + s.value;
        }
      }
    }
  }
  return Array.from(out.values(), (m) => ({ ...m.fam, series: Array.from(m.series.values()) }));
}

// ------------------------------------------------------------------ exposition format 0.0.4

function formatValue(v: number): string {
  if (Number.isFinite(v)) return String(v);
  return v !== v ? "NaN" : v > 0 ? "+Inf" : "-Inf";
}

const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeLabel = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function labelText(names: readonly string[], values: readonly string[], le?: string): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) parts.push(`${names[i]}="${escapeLabel(values[i] ?? "")}"`);
  if (le !== undefined) parts.push(`le="${le}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** Text exposition of a snapshot: HELP and TYPE for every family, histograms cumulative. */
export function renderSnapshot(snap: Snapshot): string {
  const out: string[] = [];
  for (const f of snap) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    const bounds = f.bounds ?? [];
    for (const s of f.series) {
      if ("counts" in s) {
        let cumulative = 0;
        for (let i = 0; i <= bounds.length; i++) {
          cumulative += s.counts[i] ?? 0;
          const le = i < bounds.length ? formatValue(bounds[i]) : "+Inf";
          out.push(`${f.name}_bucket${labelText(f.labelNames, s.labels, le)} ${formatValue(cumulative)}`);
        }
        const lt = labelText(f.labelNames, s.labels);
        out.push(`${f.name}_sum${lt} ${formatValue(s.sum)}`, `${f.name}_count${lt} ${formatValue(s.count)}`);
      } else {
        out.push(`${f.name}${labelText(f.labelNames, s.labels)} ${formatValue(s.value)}`);
      }
    }
  }
  return out.length === 0 ? "" : out.join("\n") + "\n";
}
