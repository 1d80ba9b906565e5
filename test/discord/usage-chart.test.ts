import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DAY_MS, HOUR_MS, periodWindow } from '../../src/core/budget.js';
import { forecastSpend, type SpendChartData, spendChartData } from '../../src/core/forecast.js';
import type { BucketUsage } from '../../src/core/usage.js';
import {
  CHART_COLOURS,
  CHART_HEIGHT,
  CHART_WIDTH,
  chartDataOf,
  renderSpendChart,
} from '../../src/discord/usage-chart.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const SMART = 'claude-haiku-4-5';
const DECEMBER = periodWindow('month', Date.UTC(2026, 11, 15));

/** Spend on each step from `firstMs`: the fast model's and the smart model's, by `spend`. */
function steps(
  firstMs: number,
  count: number,
  stepMs: number,
  spend: (index: number) => { fastMicros: number; smartMicros: number },
): BucketUsage[] {
  return Array.from({ length: count }, (_, index) => {
    const { fastMicros, smartMicros } = spend(index);
    const base = { calls: 1, inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0 };
    const startMs = firstMs + index * stepMs;
    return [
      { ...base, startMs, model: 'gpt-4o-mini', costMicros: fastMicros, smartCostMicros: 0 },
      { ...base, startMs, model: SMART, costMicros: smartMicros, smartCostMicros: 0 },
    ];
  }).flat();
}

/**
 * Renders a chart; with CHART_PREVIEW_DIR set, also writes it there to be looked at (every chart the bot
 * ships is drawn by one of these tests: `CHART_PREVIEW_DIR=/tmp/charts npx vitest run <this file>`).
 */
async function render(name: string, data: SpendChartData, title = 'Server spend this month (UTC)') {
  const png = await renderSpendChart({ title, data, fastLabel: 'GPT-4o Mini', smartLabel: 'Claude Haiku' });
  const directory = process.env.CHART_PREVIEW_DIR;
  if (directory) {
    mkdirSync(directory, { recursive: true });
    writeFileSync(join(directory, `${name}.png`), png);
  }
  return png;
}

/** A month two-thirds gone with a cap it will pass: every element the chart can draw. */
function busyMonth(): SpendChartData {
  const nowMs = Date.UTC(2026, 11, 18, 15);
  const buckets = steps(DECEMBER.startMs, 18, DAY_MS, (index) => ({
    fastMicros: 1_000_000 + (index % 4) * 200_000,
    smartMicros: 700_000 + (index % 3) * 300_000,
  }));
  const spentMicros = buckets.reduce((sum, bucket) => sum + bucket.costMicros, 0);
  const forecast = forecastSpend({ window: DECEMBER, nowMs, spentMicros, limitMicros: 50_000_000 });
  return spendChartData({
    buckets,
    bucketMs: DAY_MS,
    window: DECEMBER,
    nowMs,
    smartModel: SMART,
    limit: { micros: 50_000_000, label: 'cap' },
    forecast,
  });
}

interface Image {
  width: number;
  height: number;
  /** The pixel as 0xrrggbb when fully opaque, else -1. */
  colourAt(x: number, y: number): number;
}

/** Decodes the 8-bit RGBA, non-interlaced PNG resvg writes (enough of the format to read its pixels back). */
function decodePng(png: Buffer): Image {
  expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
  let offset = 8;
  let header: Buffer | undefined;
  const data: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const body = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') header = body;
    if (type === 'IDAT') data.push(body);
    offset += 12 + length;
  }
  expect(header).toBeDefined();
  const width = header!.readUInt32BE(0);
  const height = header!.readUInt32BE(4);
  expect({ bitDepth: header![8], colourType: header![9], interlace: header![12] }).toEqual({
    bitDepth: 8,
    colourType: 6,
    interlace: 0,
  });

  const raw = inflateSync(Buffer.concat(data));
  const stride = width * 4;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const left = x >= 4 ? pixels[y * stride + x - 4]! : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const upLeft = x >= 4 && y > 0 ? pixels[(y - 1) * stride + x - 4]! : 0;
      const predictor = [0, left, up, (left + up) >> 1, paeth(left, up, upLeft)][filter!];
      if (predictor === undefined) throw new Error(`unknown PNG filter ${filter}`);
      pixels[y * stride + x] = (line[x]! + predictor) & 0xff;
    }
  }
  return {
    width,
    height,
    colourAt(x, y) {
      const at = (y * width + x) * 4;
      return pixels[at + 3] === 255 ? pixels.readUIntBE(at, 3) : -1;
    },
  };
}

function paeth(left: number, up: number, upLeft: number): number {
  const estimate = left + up - upLeft;
  const [toLeft, toUp, toUpLeft] = [left, up, upLeft].map((value) => Math.abs(estimate - value));
  if (toLeft! <= toUp! && toLeft! <= toUpLeft!) return left;
  return toUp! <= toUpLeft! ? up : upLeft;
}

/** Where a colour appears in the image (from a row down): how many pixels, and their rows and columns. */
function findColour(image: Image, hex: string, fromRow = 0) {
  const colour = parseInt(hex.slice(1), 16);
  const found = { count: 0, top: Infinity, bottom: -Infinity, left: Infinity, right: -Infinity };
  for (let y = fromRow; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      if (image.colourAt(x, y) !== colour) continue;
      found.count++;
      found.top = Math.min(found.top, y);
      found.bottom = Math.max(found.bottom, y);
      found.left = Math.min(found.left, x);
      found.right = Math.max(found.right, x);
    }
  }
  return found;
}

/** The row with the most pixels of a colour, and how many. */
function busiestRow(image: Image, hex: string): { row: number; count: number } {
  const colour = parseInt(hex.slice(1), 16);
  let busiest = { row: -1, count: 0 };
  for (let y = 0; y < image.height; y++) {
    let count = 0;
    for (let x = 0; x < image.width; x++) if (image.colourAt(x, y) === colour) count++;
    if (count > busiest.count) busiest = { row: y, count };
  }
  return busiest;
}

/** Pixels darker than mid-grey in a band of rows: text, axes. */
function darkPixels(image: Image, fromRow: number, toRow: number): number {
  let count = 0;
  for (let y = fromRow; y < toRow; y++) {
    for (let x = 0; x < image.width; x++) {
      const colour = image.colourAt(x, y);
      // Red, green and blue all below 128.
      if (colour >= 0 && (colour & 0x808080) === 0) count++;
    }
  }
  return count;
}

describe('renderSpendChart', () => {
  it('when a month has spend, a cap and a forecast, then it is a PNG of the declared size with both models stacked, the cap a line across and the forecast after the spend', async () => {
    const png = await render('month-cap-forecast', busyMonth());

    expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    expect(png.toString('latin1', 12, 16)).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([CHART_WIDTH, CHART_HEIGHT]);

    const image = decodePng(png);
    // Below the title and the legend: the plot.
    const plot = 60;
    const fast = findColour(image, CHART_COLOURS.fast, plot);
    const smart = findColour(image, CHART_COLOURS.smart, plot);
    const limit = findColour(image, CHART_COLOURS.limit, plot);
    const total = findColour(image, CHART_COLOURS.total, plot);
    // Areas fill a good part of the plot, not a legend swatch alone.
    expect(fast.count).toBeGreaterThan(10_000);
    expect(smart.count).toBeGreaterThan(10_000);
    // Stacked: the smart model's area rises above the fast model's, which stands on the axis.
    expect(smart.top).toBeLessThan(fast.top);
    expect(fast.bottom).toBeGreaterThan(CHART_HEIGHT / 2);
    // The cap: a line across the plot (one row of it nearly the image's width), above what is spent so far.
    const capRow = busiestRow(image, CHART_COLOURS.limit);
    expect(capRow.count).toBeGreaterThan(CHART_WIDTH * 0.8);
    expect(capRow.row).toBeLessThan(Math.min(fast.top, smart.top));
    expect(limit.right - limit.left).toBeGreaterThan(CHART_WIDTH * 0.8);
    // The forecast: the total's colour carries on where the spend ends, dashed towards the period's end.
    expect(total.right).toBeGreaterThan(Math.max(fast.right, smart.right) + CHART_WIDTH / 4);
  });

  it('when a chart is drawn, then the figures it shows travel inside the PNG, as given', async () => {
    const data = busyMonth();
    const png = await render('month-data', data);
    expect(chartDataOf(png)).toEqual(data);
    expect(data.totalMicros).toBe(data.points.at(-1)!.fastMicros + data.points.at(-1)!.smartMicros);
  });

  it('when only the fast model was used, then no area is the smart colour', async () => {
    const nowMs = Date.UTC(2026, 11, 20);
    const data = spendChartData({
      buckets: steps(DECEMBER.startMs, 19, DAY_MS, () => ({ fastMicros: 12_345, smartMicros: 0 })),
      bucketMs: DAY_MS,
      window: DECEMBER,
      nowMs,
      smartModel: SMART,
    });
    const image = decodePng(await render('month-fast-only', data, 'Your spend this month (UTC)'));
    expect(findColour(image, CHART_COLOURS.fast).count).toBeGreaterThan(10_000);
    // The legend's swatch is the only smart-coloured thing left.
    expect(findColour(image, CHART_COLOURS.smart).count).toBeLessThan(400);
  });

  it('when the period has no spend, then the chart still renders, with no areas and says so', async () => {
    const data = spendChartData({
      buckets: [],
      bucketMs: DAY_MS,
      window: DECEMBER,
      nowMs: Date.UTC(2026, 11, 2),
      smartModel: SMART,
    });
    const image = decodePng(await render('month-empty', data, 'Your spend this month (UTC)'));
    expect([image.width, image.height]).toEqual([CHART_WIDTH, CHART_HEIGHT]);
    expect(findColour(image, CHART_COLOURS.fast).count).toBeLessThan(400);
    expect(findColour(image, CHART_COLOURS.smart).count).toBeLessThan(400);
    // "No spend in this period", in grey in the middle of the plot.
    expect(findColour(image, '#888888').count).toBeGreaterThan(50);
  });

  it('when rendered without system fonts, then the title and labels are drawn from the bundled font', async () => {
    const image = decodePng(await render('month-font', busyMonth()));
    // The title is the only thing in the top rows; no font would leave them blank.
    expect(darkPixels(image, 0, 30)).toBeGreaterThan(200);
  });

  it("when the view is a day by the hour with a member's budget, or years of all time, then the image keeps its size", async () => {
    const day = periodWindow('day', Date.UTC(2026, 11, 9));
    const nowMs = Date.UTC(2026, 11, 9, 14, 20);
    const hours = steps(day.startMs, 14, HOUR_MS, (index) => ({
      fastMicros: (index % 3) * 4_000,
      smartMicros: index % 5 === 0 ? 9_000 : 0,
    }));
    const spentMicros = hours.reduce((sum, bucket) => sum + bucket.costMicros, 0);
    const dayData = spendChartData({
      buckets: hours,
      bucketMs: HOUR_MS,
      window: day,
      nowMs,
      smartModel: SMART,
      limit: { micros: 150_000, label: 'budget' },
      forecast: forecastSpend({ window: day, nowMs, spentMicros, limitMicros: 150_000 }),
    });
    const allTime = spendChartData({
      buckets: steps(Date.UTC(2021, 5, 1), 2_000, DAY_MS, (index) => ({
        fastMicros: 1_000 + (index % 7) * 100,
        smartMicros: 1_000,
      })),
      bucketMs: DAY_MS,
      window: null,
      nowMs: Date.UTC(2021, 5, 1) + 2_000 * DAY_MS,
      smartModel: SMART,
    });
    for (const [name, data, title] of [
      ['day-budget-forecast', dayData, 'Your spend today (UTC)'],
      ['all-time', allTime, 'Bot spend across every server all time (UTC)'],
    ] as const) {
      const image = decodePng(await render(name, data, title));
      expect([image.width, image.height]).toEqual([CHART_WIDTH, CHART_HEIGHT]);
      expect(findColour(image, CHART_COLOURS.smart).count).toBeGreaterThan(2_000);
    }
  });
});

describe('chartDataOf', () => {
  it('when a PNG was not drawn here, then it has no chart data', async () => {
    const png = await render('plain', busyMonth());
    // The same image without its zTXt chunk: what any other PNG looks like.
    const withoutText = Buffer.concat([
      png.subarray(0, png.indexOf('zTXt') - 4),
      png.subarray(png.length - 12),
    ]);
    expect(chartDataOf(withoutText)).toBeUndefined();
  });
});
