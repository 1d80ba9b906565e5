import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  CHART_COLOURS,
  CHART_HEIGHT,
  CHART_WIDTH,
  MAX_BARS,
  renderSpendChart,
  toBars,
  type DailySpend,
} from '../../src/discord/usage-chart.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Consecutive UTC days from `first`, with the spend each day gets from `spend`. */
function daysFrom(
  first: string,
  count: number,
  spend: (index: number) => Omit<DailySpend, 'day'> = () => ({ fastMicros: 0, smartMicros: 0 }),
): DailySpend[] {
  const start = Date.parse(`${first}T00:00:00Z`);
  return Array.from({ length: count }, (_, index) => ({
    day: new Date(start + index * 86_400_000).toISOString().slice(0, 10),
    ...spend(index),
  }));
}

function render(days: readonly DailySpend[]): Promise<Buffer> {
  return renderSpendChart({
    title: 'Your spend this month',
    days,
    fastLabel: 'GPT-4o Mini',
    smartLabel: 'Claude Haiku',
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

/** Where each colour appears in the image: how many pixels, and their rows and columns. */
function findColour(image: Image, hex: string) {
  const colour = parseInt(hex.slice(1), 16);
  const found = { count: 0, top: Infinity, bottom: -Infinity, left: Infinity, right: -Infinity };
  for (let y = 0; y < image.height; y++) {
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
  it('when a month has spend, then it is a PNG of the declared size with both models drawn, fast under smart', async () => {
    const png = await render(
      daysFrom('2025-01-01', 31, (index) => ({ fastMicros: 20_000 + index * 500, smartMicros: 30_000 })),
    );

    expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    expect(png.toString('latin1', 12, 16)).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([CHART_WIDTH, CHART_HEIGHT]);

    const image = decodePng(png);
    const fast = findColour(image, CHART_COLOURS.fast);
    const smart = findColour(image, CHART_COLOURS.smart);
    // Bars fill a good part of the plot, not a legend swatch alone.
    expect(fast.count).toBeGreaterThan(10_000);
    expect(smart.count).toBeGreaterThan(10_000);
    // Stacked: the smart part sits on top of the fast part, which stands on the axis.
    expect(smart.bottom).toBeLessThan(fast.bottom);
    expect(fast.bottom).toBeGreaterThan(CHART_HEIGHT / 2);
  });

  it('when one day has equal fast and smart spend, then its bar is half one colour, half the other', async () => {
    const image = decodePng(
      await render(
        daysFrom('2025-03-01', 3, (index) => ({
          fastMicros: index === 1 ? 5_000 : 0,
          smartMicros: index === 1 ? 5_000 : 0,
        })),
      ),
    );
    const [fast, smart] = [CHART_COLOURS.fast, CHART_COLOURS.smart].map((hex) => parseInt(hex.slice(1), 16));
    // The bar's middle column: the one with the most fast-coloured pixels (the legend swatch is small).
    const fastPerColumn = Array.from({ length: image.width }, (_, x) => {
      let count = 0;
      for (let y = 0; y < image.height; y++) if (image.colourAt(x, y) === fast) count++;
      return count;
    });
    const column = fastPerColumn.indexOf(Math.max(...fastPerColumn));
    const rows = { fast: [] as number[], smart: [] as number[] };
    for (let y = 0; y < image.height; y++) {
      const colour = image.colourAt(column, y);
      if (colour === fast) rows.fast.push(y);
      if (colour === smart) rows.smart.push(y);
    }
    expect(rows.fast.length).toBeGreaterThan(50);
    expect(Math.abs(rows.fast.length - rows.smart.length)).toBeLessThanOrEqual(2);
    expect(Math.max(...rows.smart)).toBeLessThan(Math.min(...rows.fast));
  });

  it('when only the fast model was used, then no bar is the smart colour', async () => {
    const image = decodePng(
      await render(daysFrom('2025-01-01', 31, () => ({ fastMicros: 12_345, smartMicros: 0 }))),
    );
    expect(findColour(image, CHART_COLOURS.fast).count).toBeGreaterThan(10_000);
    // The legend's swatch is the only smart-coloured thing left.
    expect(findColour(image, CHART_COLOURS.smart).count).toBeLessThan(400);
  });

  it('when the period has no spend, or no days at all, then the chart still renders with no bars', async () => {
    const allZero = await render(daysFrom('2025-02-01', 28));
    const noDays = await render([]);
    for (const png of [allZero, noDays]) {
      const image = decodePng(png);
      expect([image.width, image.height]).toEqual([CHART_WIDTH, CHART_HEIGHT]);
      expect(findColour(image, CHART_COLOURS.fast).count).toBeLessThan(400);
      expect(findColour(image, CHART_COLOURS.smart).count).toBeLessThan(400);
    }
    const withSpend = await render(
      daysFrom('2025-02-01', 28, () => ({ fastMicros: 1_000, smartMicros: 1_000 })),
    );
    expect(withSpend.equals(allZero)).toBe(false);
  });

  it('when rendered without system fonts, then the title and labels are drawn from the bundled font', async () => {
    const image = decodePng(
      await render(daysFrom('2025-01-01', 7, () => ({ fastMicros: 1_000, smartMicros: 0 }))),
    );
    // The title is the only thing in the top rows; no font would leave them blank.
    expect(darkPixels(image, 0, 30)).toBeGreaterThan(200);
  });

  it('when a period is a quarter or longer, then the image keeps its size', async () => {
    for (const count of [92, 400, 2_000]) {
      const image = decodePng(
        await render(
          daysFrom('2024-01-01', count, (index) => ({
            fastMicros: 1_000 + (index % 7) * 100,
            smartMicros: 1_000,
          })),
        ),
      );
      expect([image.width, image.height]).toEqual([CHART_WIDTH, CHART_HEIGHT]);
      expect(findColour(image, CHART_COLOURS.smart).count).toBeGreaterThan(10_000);
    }
  });
});

describe('toBars', () => {
  it('when days are missing between the first and the last, then they are bars of zero, in order', () => {
    const { bucket, bars } = toBars([
      { day: '2025-01-03', fastMicros: 3, smartMicros: 0 },
      { day: '2025-01-01', fastMicros: 1, smartMicros: 10 },
      { day: '2025-01-01', fastMicros: 1, smartMicros: 0 },
    ]);
    expect(bucket).toBe('day');
    expect(bars).toEqual([
      { start: '2025-01-01', fastMicros: 2, smartMicros: 10 },
      { start: '2025-01-02', fastMicros: 0, smartMicros: 0 },
      { start: '2025-01-03', fastMicros: 3, smartMicros: 0 },
    ]);
  });

  it(`when a period has ${MAX_BARS} days, then it is drawn by day; one day more, by ISO week from Monday`, () => {
    expect(toBars(daysFrom('2025-01-01', MAX_BARS)).bucket).toBe('day');

    const { bucket, bars } = toBars(
      daysFrom('2025-01-01', MAX_BARS + 1, () => ({ fastMicros: 1, smartMicros: 2 })),
    );
    expect(bucket).toBe('week');
    // 1 January 2025 is a Wednesday: the first week is 30 December to 5 January, with 5 days of the period.
    expect(bars[0]).toEqual({ start: '2024-12-30', fastMicros: 5, smartMicros: 10 });
    expect(bars[1]).toEqual({ start: '2025-01-06', fastMicros: 7, smartMicros: 14 });
    expect(bars.reduce((sum, bar) => sum + bar.fastMicros, 0)).toBe(MAX_BARS + 1);
  });

  it('when a period is too long even for weeks, then it is drawn by calendar month', () => {
    const { bucket, bars } = toBars(daysFrom('2023-01-15', 1_000, () => ({ fastMicros: 1, smartMicros: 0 })));
    expect(bucket).toBe('month');
    expect(bars.length).toBeLessThanOrEqual(MAX_BARS);
    // 650 days from a Sunday touch 94 ISO weeks: one bar too many, so months.
    expect(toBars(daysFrom('2025-01-05', 650)).bucket).toBe('month');
    expect(bars.slice(0, 2)).toEqual([
      { start: '2023-01-01', fastMicros: 17, smartMicros: 0 },
      { start: '2023-02-01', fastMicros: 28, smartMicros: 0 },
    ]);
  });

  it('when a day is not a real YYYY-MM-DD day, then it is refused', () => {
    for (const day of ['2025-1-5', '2025-02-30', '5 January 2025', '2025-01-05T00:00:00Z']) {
      expect(() => toBars([{ day, fastMicros: 0, smartMicros: 0 }]), day).toThrow(RangeError);
    }
    expect(toBars([{ day: '2024-02-29', fastMicros: 0, smartMicros: 0 }]).bars).toHaveLength(1);
  });
});
