/**
 * The PromQL of deploy/grafana/yatagarasu.json, as Prometheus would receive it from Grafana, and
 * the metric selectors inside an expression.
 */

/** What Grafana substitutes: "All" for the template variables, a rate window for $__rate_interval. */
const VARIABLES: Record<string, string> = { instance: ".*", bucket: ".*", __rate_interval: "15s" };

export interface PanelQuery {
  panel: string;
  expr: string;
}

interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

export function substitute(expr: string): string {
  return expr.replace(/\$(\w+)|\$\{(\w+)\}/g, (m, a: string | undefined, b: string | undefined) => {
    const v = VARIABLES[(a ?? b)!];
    if (v === undefined) throw new Error(`unknown dashboard variable ${m} in ${expr}`);
    return v;
  });
}

export function dashboardQueries(dash: { panels: Panel[] }): PanelQuery[] {
  const out: PanelQuery[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title, expr: substitute(t.expr) });
      if (p.panels) walk(p.panels);
    }
  };
  walk(dash.panels);
  return out;
}

/** Metric names as written in an expression (histogram series keep their _bucket suffix). */
export function metricNamesOf(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b((?:yatagarasu|process)_[a-zA-Z0-9_]+)/g)].map((m) => m[1]))];
}

/** Each `metric{matchers}` (or bare metric) of an expression, without its range; also the scrape's own `up{…}`. */
export function selectorsOf(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b((?:yatagarasu|process)_[a-zA-Z0-9_]+|up(?=\{))(\{[^}]*\})?/g)].map((m) => m[1] + (m[2] ?? "")))];
}
