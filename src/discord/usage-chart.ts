/**
 * The PNG chart `/usage` attaches: spend per day of the period, fast model and smart model stacked.
 *
 * Why this route: Vega lays the chart out (scales, nice ticks, axes, legend) and writes SVG in plain
 * JavaScript; resvg, compiled to WebAssembly (@resvg/resvg-wasm), turns the SVG into PNG; the Inter font
 * comes as a TTF inside an npm package, because the wasm build sees no system fonts and CI machines may have
 * none. Nothing here is a native per-platform binary or runs an install script, so `npm ci` from the lock
 * works on any machine (native canvases such as @napi-rs/canvas ship per-libc optional packages that npm 11
 * leaves out of the lock). A chart is about 25 ms of synchronous work on the event loop, rare enough for a
 * slash command not to need a worker; the one-time cost (loading Vega, compiling the wasm, reading the fonts:
 * about a second) is paid by the first chart and cached, so a command should defer its reply before rendering.
 * (Vega itself rather than Vega-Lite: Vega-Lite's newest releases require Node 22.)
 *
 * Long periods ("all") stay legible by grouping: at most MAX_BARS bars, so a period longer than that is
 * drawn per week (ISO weeks, from Monday, UTC), and one too long even for that per month.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Resvg } from '@resvg/resvg-wasm';
import type * as Vega from 'vega';

export interface DailySpend {
  /** A UTC calendar day, YYYY-MM-DD. */
  day: string;
  fastMicros: number;
  smartMicros: number;
}

export interface SpendChartInput {
  title: string;
  /**
   * Spend per day, in any order. Days missing between the first and the last are drawn as zero, so the
   * caller passes the period's first and last days (zero or not) to span the whole period.
   */
  days: readonly DailySpend[];
  fastLabel: string;
  smartLabel: string;
}

export const CHART_WIDTH = 800;
export const CHART_HEIGHT = 400;

/** The most bars drawn by day or week: a quarter by day (92 days) fits; longer periods go by week, then month. */
export const MAX_BARS = 93;
/** The most labels on the x axis, so that they never overlap. */
const MAX_X_LABELS = 10;
/** The bars' colours (Vega's default blue and orange): fast at the bottom of each bar, smart on top. */
export const CHART_COLOURS = { fast: '#4c78a8', smart: '#f58518' } as const;
const FONT_FAMILY = 'Inter';
/** The y axis of a period with no spend at all, which would otherwise have no height: $0 to $0.01. */
const EMPTY_AXIS_MAX_USD = 0.01;
const MICROS_PER_USD = 1_000_000;
const MS_PER_DAY = 86_400_000;

export type Bucket = 'day' | 'week' | 'month';

const X_LABEL_FORMAT: Record<Bucket, string> = { day: '%b %-d', week: '%b %-d %Y', month: '%b %Y' };
const X_AXIS_TITLE: Record<Bucket, string> = {
  day: 'Day (UTC)',
  week: 'Week from (UTC)',
  month: 'Month (UTC)',
};

export interface BarSpend {
  /** The first day of the bar's day, week or month, YYYY-MM-DD. */
  start: string;
  fastMicros: number;
  smartMicros: number;
}

/** Renders the chart as PNG bytes, CHART_WIDTH × CHART_HEIGHT, white background. */
export async function renderSpendChart(input: SpendChartInput): Promise<Buffer> {
  const { vega, fonts, Resvg } = await loadRenderer();
  const view = new vega.View(vega.parse(chartSpec(input)), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const resvg = new Resvg(svg, {
      // Vega writes font-family: sans-serif; the wasm build knows only the fonts given here.
      font: { fontBuffers: fonts, defaultFontFamily: FONT_FAMILY, sansSerifFamily: FONT_FAMILY },
    });
    try {
      const image = resvg.render();
      try {
        return Buffer.from(image.asPng());
      } finally {
        image.free();
      }
    } finally {
      resvg.free();
    }
  } finally {
    view.finalize();
  }
}

/**
 * Groups the days into bars, filling the days missing in between with zero: by day when that makes at most
 * MAX_BARS bars, else by week when that does, else by calendar month (MAX_BARS months is almost 8 years).
 */
export function toBars(days: readonly DailySpend[]): { bucket: Bucket; bars: BarSpend[] } {
  const spendByDay = new Map<number, { fastMicros: number; smartMicros: number }>();
  for (const { day, fastMicros, smartMicros } of days) {
    const index = dayIndex(day);
    const spend = spendByDay.get(index) ?? { fastMicros: 0, smartMicros: 0 };
    spend.fastMicros += fastMicros;
    spend.smartMicros += smartMicros;
    spendByDay.set(index, spend);
  }
  if (spendByDay.size === 0) return { bucket: 'day', bars: [] };

  const first = Math.min(...spendByDay.keys());
  const last = Math.max(...spendByDay.keys());
  for (const bucket of ['day', 'week'] as const) {
    const bars = group(spendByDay, first, last, bucket);
    if (bars.length <= MAX_BARS) return { bucket, bars };
  }
  return { bucket: 'month', bars: group(spendByDay, first, last, 'month') };
}

function group(
  spendByDay: ReadonlyMap<number, { fastMicros: number; smartMicros: number }>,
  first: number,
  last: number,
  bucket: Bucket,
): BarSpend[] {
  const bars: BarSpend[] = [];
  for (let index = first; index <= last; index++) {
    const start = bucketStart(index, bucket);
    let bar = bars.at(-1);
    if (bar?.start !== start) {
      bar = { start, fastMicros: 0, smartMicros: 0 };
      bars.push(bar);
    }
    const spend = spendByDay.get(index);
    bar.fastMicros += spend?.fastMicros ?? 0;
    bar.smartMicros += spend?.smartMicros ?? 0;
  }
  return bars;
}

function chartSpec(input: SpendChartInput): Vega.Spec {
  const { bucket, bars } = toBars(input.days);
  const rows = bars.flatMap((bar) => [
    { start: bar.start, model: input.fastLabel, order: 0, usd: bar.fastMicros / MICROS_PER_USD },
    { start: bar.start, model: input.smartLabel, order: 1, usd: bar.smartMicros / MICROS_PER_USD },
  ]);
  const maxBarUsd = Math.max(0, ...bars.map((bar) => (bar.fastMicros + bar.smartMicros) / MICROS_PER_USD));
  const labelEvery = Math.ceil(bars.length / MAX_X_LABELS);
  const labelled = bars.filter((_, index) => index % labelEvery === 0).map((bar) => bar.start);

  return {
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    // The whole image is CHART_WIDTH × CHART_HEIGHT; Vega fits the plot inside it, axes and legend included.
    autosize: { type: 'fit', contains: 'padding' },
    padding: 12,
    background: 'white',
    config: { axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600 } },
    title: { text: input.title, fontSize: 16, fontWeight: 600, anchor: 'start', offset: 8 },
    data: [
      {
        name: 'spend',
        values: rows,
        transform: [{ type: 'stack', groupby: ['start'], sort: { field: 'order' }, field: 'usd' }],
      },
    ],
    scales: [
      {
        name: 'x',
        type: 'band',
        domain: bars.map((bar) => bar.start),
        range: 'width',
        paddingInner: bars.length > 31 ? 0.1 : 0.2,
        paddingOuter: 0.1,
      },
      {
        name: 'y',
        type: 'linear',
        domain: [0, maxBarUsd > 0 ? maxBarUsd : EMPTY_AXIS_MAX_USD],
        range: 'height',
        nice: true,
        zero: true,
      },
      {
        name: 'colour',
        type: 'ordinal',
        domain: [input.fastLabel, input.smartLabel],
        range: [CHART_COLOURS.fast, CHART_COLOURS.smart],
      },
    ],
    axes: [
      {
        orient: 'bottom',
        scale: 'x',
        title: X_AXIS_TITLE[bucket],
        values: labelled,
        encode: {
          labels: {
            update: { text: { signal: `utcFormat(toDate(datum.value), '${X_LABEL_FORMAT[bucket]}')` } },
          },
        },
      },
      {
        orient: 'left',
        scale: 'y',
        title: `USD per ${bucket}`,
        // No precision: Vega picks just enough decimals for the tick step ($0.05, $0.0002, $1.50).
        format: '$,f',
        tickCount: 5,
        grid: true,
        gridColor: '#e6e6e6',
      },
    ],
    legends: [
      { fill: 'colour', orient: 'top', direction: 'horizontal', symbolType: 'square', labelFontSize: 12 },
    ],
    marks: [
      {
        type: 'rect',
        from: { data: 'spend' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'start' },
            width: { scale: 'x', band: 1 },
            y: { scale: 'y', field: 'y0' },
            y2: { scale: 'y', field: 'y1' },
            fill: { scale: 'colour', field: 'model' },
          },
        },
      },
      ...(maxBarUsd === 0
        ? [
            {
              type: 'text' as const,
              encode: {
                enter: {
                  x: { signal: 'width / 2' },
                  y: { signal: 'height / 2' },
                  align: { value: 'center' as const },
                  baseline: { value: 'middle' as const },
                  text: { value: 'No spend in this period' },
                  fontSize: { value: 14 },
                  fill: { value: '#888888' },
                },
              },
            },
          ]
        : []),
    ],
  };
}

/** Days since 1970-01-01 (UTC); a string that is not a real YYYY-MM-DD day is a bug in the caller. */
function dayIndex(day: string): number {
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== day) {
    throw new RangeError(`not a YYYY-MM-DD day: ${JSON.stringify(day)}`);
  }
  return ms / MS_PER_DAY;
}

function bucketStart(index: number, bucket: Bucket): string {
  const date = new Date(index * MS_PER_DAY);
  if (bucket === 'week') date.setUTCDate(date.getUTCDate() - ((date.getUTCDay() + 6) % 7));
  if (bucket === 'month') date.setUTCDate(1);
  return date.toISOString().slice(0, 10);
}

interface Renderer {
  vega: typeof Vega;
  Resvg: typeof Resvg;
  fonts: Uint8Array[];
}
let renderer: Promise<Renderer> | undefined;

/** Loads Vega, compiles resvg's wasm and reads the fonts, once; a failure is not cached. */
function loadRenderer(): Promise<Renderer> {
  renderer ??= (async () => {
    const require = createRequire(import.meta.url);
    const [vega, resvg, wasm, ...fonts] = await Promise.all([
      import('vega'),
      import('@resvg/resvg-wasm'),
      readFile(require.resolve('@resvg/resvg-wasm/index_bg.wasm')),
      readFile(require.resolve('@expo-google-fonts/inter/400Regular/Inter_400Regular.ttf')),
      readFile(require.resolve('@expo-google-fonts/inter/600SemiBold/Inter_600SemiBold.ttf')),
    ]);
    await resvg.initWasm(wasm);
    return { vega, Resvg: resvg.Resvg, fonts };
  })().catch((error: unknown) => {
    renderer = undefined;
    throw error;
  });
  return renderer;
}
