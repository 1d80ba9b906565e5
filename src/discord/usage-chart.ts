/**
 * The PNG chart the /usage views attach: **cumulative** spend over the period, the smart model's share
 * stacked on the rest, the limit (a member's budget, a server's cap) as a line, and the forecast dashed
 * from now to the end of the period. One question reads off it at a glance: will the money last? A line
 * rising towards the cap says so better than bars per day, and the stacked areas still show which model
 * spent it; the day-to-day rhythm is the line's slope.
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
 * The figures drawn travel inside the PNG as a compressed text chunk (zTXt, CHART_DATA_KEYWORD: JSON in
 * micro-USD, a few hundred bytes for a month), so that whoever has the image, a test included, can check what
 * it shows against the ledger without reading pixels.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import type { Resvg } from '@resvg/resvg-wasm';
import type * as Vega from 'vega';
import { DAY_MS } from '../core/budget.js';
import type { SpendChartData } from '../core/forecast.js';
import { formatUsd, MICROS_PER_USD } from '../core/money.js';

export interface SpendChartInput {
  title: string;
  data: SpendChartData;
  fastLabel: string;
  smartLabel: string;
}

export const CHART_WIDTH = 800;
export const CHART_HEIGHT = 400;
/** The zTXt chunk's keyword: its text is the chart's SpendChartData as JSON. */
export const CHART_DATA_KEYWORD = 'tierbot:spend';

/** Vega's default blue and orange for the two models, red for the limit, near-black for the total. */
export const CHART_COLOURS = {
  fast: '#4c78a8',
  smart: '#f58518',
  limit: '#d62728',
  total: '#333333',
} as const;
const FONT_FAMILY = 'Inter';
/** The y axis of a period with no spend and no limit, which would otherwise have no height: $0 to $0.01. */
const EMPTY_AXIS_MAX_USD = 0.01;
/** Headroom above the highest thing drawn, so that the limit's line and labels do not touch the frame. */
const HEADROOM = 1.08;
/** The most labels on the x axis, so that they never overlap. */
const MAX_X_LABELS = 8;

/** Renders the chart as PNG bytes, CHART_WIDTH × CHART_HEIGHT, white background, its data inside. */
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
        return withTextChunk(Buffer.from(image.asPng()), CHART_DATA_KEYWORD, JSON.stringify(input.data));
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

/** The chart data a PNG made here carries, or undefined for any other image. */
export function chartDataOf(png: Buffer): SpendChartData | undefined {
  let offset = 8;
  while (offset + 8 <= png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    if (type === 'zTXt') {
      const body = png.subarray(offset + 8, offset + 8 + length);
      const separator = body.indexOf(0);
      if (body.toString('latin1', 0, separator) === CHART_DATA_KEYWORD) {
        // After the keyword's NUL: the compression method (0, deflate), then the compressed text.
        return JSON.parse(inflateSync(body.subarray(separator + 2)).toString('latin1')) as SpendChartData;
      }
    }
    offset += 12 + length;
  }
  return undefined;
}

/** A zTXt chunk (keyword, NUL, method 0, deflated Latin-1 text) inserted before IEND, the PNG's last chunk. */
function withTextChunk(png: Buffer, keyword: string, text: string): Buffer {
  const body = Buffer.concat([
    Buffer.from(`${keyword}\0\0`, 'latin1'),
    deflateSync(Buffer.from(text, 'latin1')),
  ]);
  const chunk = Buffer.alloc(12 + body.length);
  chunk.writeUInt32BE(body.length, 0);
  chunk.write('zTXt', 4, 'latin1');
  body.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + body.length)), 8 + body.length);
  const iend = png.length - 12;
  return Buffer.concat([png.subarray(0, iend), chunk, png.subarray(iend)]);
}

const usd = (micros: number) => micros / MICROS_PER_USD;
/** A label's amount (Vega expression on `datum.usd`): cents from a dollar up, four decimals below. */
const USD_LABEL = `(datum.usd >= 1 ? format(datum.usd, '$,.2f') : format(datum.usd, '$,.4f'))`;

function chartSpec(input: SpendChartInput): Vega.Spec {
  const { data, fastLabel, smartLabel } = input;
  const points = data.points.map((point) => ({
    at: point.atMs,
    fast: usd(point.fastMicros),
    total: usd(point.fastMicros + point.smartMicros),
  }));
  const limitReached =
    data.limit && data.forecast?.limitReachedAtMs
      ? [{ at: data.forecast.limitReachedAtMs, usd: usd(data.limit.micros) }]
      : [];
  const forecast = data.forecast
    ? [
        { at: data.forecast.fromMs, usd: usd(data.forecast.fromMicros) },
        { at: data.forecast.toMs, usd: usd(data.forecast.toMicros) },
      ]
    : [];
  const highestUsd = Math.max(
    usd(data.totalMicros),
    data.limit ? usd(data.limit.micros) : 0,
    data.forecast ? usd(data.forecast.toMicros) : 0,
  );
  const isEmpty = data.totalMicros === 0;
  const spanMs = data.toMs - data.fromMs;
  const spansDays = spanMs > 2 * DAY_MS;
  // Hours for a day, days for a month, months for longer (years of days would repeat "Jan 1").
  const timeFormat = spanMs > 180 * DAY_MS ? '%b %Y' : spansDays ? '%b %-d' : '%H:%M';
  const legend = [fastLabel, smartLabel, 'total', ...(data.limit ? [data.limit.label] : [])];
  const legendColours = [CHART_COLOURS.fast, CHART_COLOURS.smart, CHART_COLOURS.total, CHART_COLOURS.limit];

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
      { name: 'spend', values: points },
      { name: 'forecast', values: forecast },
      { name: 'forecastEnd', values: forecast.slice(1) },
      { name: 'limitReached', values: limitReached },
      { name: 'limit', values: data.limit ? [{ usd: usd(data.limit.micros), label: data.limit.label }] : [] },
    ],
    scales: [
      { name: 'x', type: 'utc', domain: [data.fromMs, data.toMs], range: 'width', nice: false },
      {
        name: 'y',
        type: 'linear',
        domain: [0, highestUsd > 0 ? highestUsd * HEADROOM : EMPTY_AXIS_MAX_USD],
        range: 'height',
        nice: true,
        zero: true,
      },
      { name: 'colour', type: 'ordinal', domain: legend, range: legendColours.slice(0, legend.length) },
    ],
    axes: [
      {
        orient: 'bottom',
        scale: 'x',
        title: spansDays ? 'Day (UTC)' : 'Hour (UTC)',
        tickCount: MAX_X_LABELS,
        format: timeFormat,
        formatType: 'utc',
        grid: false,
      },
      {
        orient: 'left',
        scale: 'y',
        title: 'USD spent so far',
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
        type: 'area',
        from: { data: 'spend' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'at' },
            y: { scale: 'y', field: 'fast' },
            y2: { scale: 'y', value: 0 },
            fill: { value: CHART_COLOURS.fast },
          },
        },
      },
      {
        type: 'area',
        from: { data: 'spend' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'at' },
            y: { scale: 'y', field: 'total' },
            y2: { scale: 'y', field: 'fast' },
            fill: { value: CHART_COLOURS.smart },
          },
        },
      },
      {
        type: 'line',
        from: { data: 'spend' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'at' },
            y: { scale: 'y', field: 'total' },
            stroke: { value: CHART_COLOURS.total },
            strokeWidth: { value: 2 },
          },
        },
      },
      {
        type: 'line',
        from: { data: 'forecast' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'at' },
            y: { scale: 'y', field: 'usd' },
            stroke: { value: CHART_COLOURS.total },
            strokeWidth: { value: 2 },
            strokeDash: { value: [6, 4] },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'forecastEnd' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'at' },
            y: { scale: 'y', field: 'usd' },
            dy: { value: -8 },
            align: { value: 'right' },
            text: { signal: `'at this pace: ' + ${USD_LABEL}` },
            fontSize: { value: 12 },
            fill: { value: CHART_COLOURS.total },
          },
        },
      },
      {
        type: 'rule',
        from: { data: 'limit' },
        encode: {
          enter: {
            x: { value: 0 },
            x2: { signal: 'width' },
            y: { scale: 'y', field: 'usd' },
            stroke: { value: CHART_COLOURS.limit },
            strokeWidth: { value: 2 },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'limit' },
        encode: {
          enter: {
            x: { value: 4 },
            y: { scale: 'y', field: 'usd' },
            dy: { value: -6 },
            text: { signal: `datum.label + ' ' + ${USD_LABEL}` },
            fontSize: { value: 12 },
            fill: { value: CHART_COLOURS.limit },
          },
        },
      },
      {
        type: 'symbol',
        from: { data: 'limitReached' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'at' },
            y: { scale: 'y', field: 'usd' },
            size: { value: 64 },
            fill: { value: CHART_COLOURS.limit },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'limitReached' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'at' },
            y: { scale: 'y', field: 'usd' },
            dx: { value: 6 },
            dy: { value: 18 },
            align: { value: 'left' },
            text: { signal: `'reached ~' + utcFormat(datum.at, '${spansDays ? '%b %-d' : '%H:%M'}')` },
            fontSize: { value: 12 },
            fill: { value: CHART_COLOURS.limit },
          },
        },
      },
      ...(isEmpty
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

/** "$4.1000 spent; cap $10.0000; at this pace $8.2000": the chart in words, for its alt text. */
export function describeChart(data: SpendChartData): string {
  const parts = [`${formatUsd(data.totalMicros)} spent`];
  if (data.limit) parts.push(`${data.limit.label} ${formatUsd(data.limit.micros)}`);
  if (data.forecast) parts.push(`at this pace ${formatUsd(data.forecast.toMicros)} by the end`);
  return `Cumulative spend: ${parts.join('; ')}`;
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
