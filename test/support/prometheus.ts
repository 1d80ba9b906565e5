import parsePrometheusTextFormat from 'parse-prometheus-text-format';

/** One metric family as parse-prometheus-text-format reads it (counters and gauges: value and labels). */
export interface MetricFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string> }[];
}

/** A scrape of /metrics: the raw text and its families, parsed by a Prometheus text-format parser. */
export interface Scrape {
  text: string;
  families: MetricFamily[];
  /** The samples of a counter or gauge whose labels include `labels`. */
  samples(name: string, labels?: Record<string, string>): { value: number; labels: Record<string, string> }[];
  /** Their sum (0 when there are none). */
  total(name: string, labels?: Record<string, string>): number;
  /**
   * A histogram's `_count` for some labels, from the text: the parser (1.1.1) keeps a labelled histogram's
   * buckets but drops its labels, `_sum` and `_count`.
   */
  histogramCount(name: string, labels: Record<string, string>): number;
  /** Every label value of every sample, with where it was seen. */
  labelValues(): { where: string; value: string }[];
}

export async function scrape(url: string): Promise<Scrape> {
  const response = await fetch(`${url}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  const text = await response.text();
  const families = parsePrometheusTextFormat(text) as MetricFamily[];
  const samples = (name: string, labels: Record<string, string> = {}) => {
    const family = families.find((candidate) => candidate.name === name);
    if (!family) throw new Error(`no metric ${name} in the scrape`);
    return family.metrics
      .filter((metric) => Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value))
      .map((metric) => ({ value: Number(metric.value), labels: metric.labels ?? {} }));
  };
  return {
    text,
    families,
    samples,
    total: (name, labels) => samples(name, labels).reduce((sum, sample) => sum + sample.value, 0),
    histogramCount(name, labels) {
      const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
      const line = text
        .split('\n')
        .find(
          (candidate) =>
            candidate.startsWith(`${name}_count{`) && wanted.every((label) => candidate.includes(label)),
        );
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    },
    labelValues: () =>
      families.flatMap((family) =>
        family.metrics.flatMap((metric) =>
          Object.entries(metric.labels ?? {}).map(([key, value]) => ({
            where: `${family.name}{${key}}`,
            value,
          })),
        ),
      ),
  };
}
