import { describe, expect, it } from 'vitest';
import { DAY_MS, HOUR_MS, periodWindow } from '../../src/core/budget.js';
import { forecastFrom, forecastSpend, spendChartData } from '../../src/core/forecast.js';
import type { BucketUsage } from '../../src/core/usage.js';

const DECEMBER = periodWindow('month', Date.UTC(2026, 11, 15));
const WEEK = periodWindow('week', Date.UTC(2026, 11, 9)); // Monday Dec 7 to Monday Dec 14
const DAY = periodWindow('day', Date.UTC(2026, 11, 9));
const SMART = 'claude-haiku-4-5';

function bucket(startMs: number, model: string, costMicros: number): BucketUsage {
  return {
    startMs,
    model,
    calls: 1,
    inputTokens: 0,
    cachedInputTokens: 0,
    cacheWriteTokens: 0,
    outputTokens: 0,
    costMicros,
    smartCostMicros: costMicros,
  };
}

describe('forecastFrom', () => {
  it('when a period is a month, then a forecast waits two days; a week or a day, a tenth of it', () => {
    expect(forecastFrom(DECEMBER)).toBe(Date.UTC(2026, 11, 3));
    expect(forecastFrom(WEEK)).toBe(WEEK.startMs + 16.8 * HOUR_MS);
    expect(forecastFrom(DAY)).toBe(DAY.startMs + 2.4 * HOUR_MS);
  });
});

describe('forecastSpend', () => {
  it('when less than two days of a month have passed, then there is no forecast, and it says from when', () => {
    const early = forecastSpend({
      window: DECEMBER,
      nowMs: Date.UTC(2026, 11, 3) - 1,
      spentMicros: 5_000_000,
    });
    expect(early).toEqual({ isShown: false, fromMs: Date.UTC(2026, 11, 3) });
    const onTime = forecastSpend({ window: DECEMBER, nowMs: Date.UTC(2026, 11, 3), spentMicros: 5_000_000 });
    expect(onTime.isShown).toBe(true);
  });

  it('when $1 was spent in the first two days of December, then the pace makes $15.50 by its end and meets a $10 cap on Dec 21', () => {
    const forecast = forecastSpend({
      window: DECEMBER,
      nowMs: Date.UTC(2026, 11, 3),
      spentMicros: 1_000_000,
      limitMicros: 10_000_000,
    });
    expect(forecast).toEqual({
      isShown: true,
      projectedMicros: 15_500_000,
      limitReachedAtMs: Date.UTC(2026, 11, 21),
      isLimitReached: false,
    });
  });

  it('when the pace stays under the limit, or there is none, then no date is given; when it is spent, it is reached', () => {
    const under = forecastSpend({
      window: DECEMBER,
      nowMs: Date.UTC(2026, 11, 11),
      spentMicros: 1_000_000,
      limitMicros: 10_000_000,
    });
    expect(under).toMatchObject({
      projectedMicros: 3_100_000,
      limitReachedAtMs: null,
      isLimitReached: false,
    });
    const noLimit = forecastSpend({
      window: DECEMBER,
      nowMs: Date.UTC(2026, 11, 11),
      spentMicros: 9_000_000,
    });
    expect(noLimit).toMatchObject({ limitReachedAtMs: null, isLimitReached: false });
    const spent = forecastSpend({
      window: DECEMBER,
      nowMs: Date.UTC(2026, 11, 11),
      spentMicros: 10_000_000,
      limitMicros: 10_000_000,
    });
    expect(spent).toMatchObject({ limitReachedAtMs: null, isLimitReached: true });
  });
});

describe('spendChartData', () => {
  it('when a month has spend on some days, then each day ends a point holding everything spent so far, split by model', () => {
    const nowMs = Date.UTC(2026, 11, 4, 12);
    const data = spendChartData({
      buckets: [
        bucket(Date.UTC(2026, 11, 1), 'gpt-4o-mini', 100),
        bucket(Date.UTC(2026, 11, 1), SMART, 1_000),
        bucket(Date.UTC(2026, 11, 3), 'gpt-4o-mini', 50),
        // The same step twice (two servers in the bot's view): added up.
        bucket(Date.UTC(2026, 11, 4), SMART, 7),
        bucket(Date.UTC(2026, 11, 4), SMART, 3),
      ],
      bucketMs: DAY_MS,
      window: DECEMBER,
      nowMs,
      smartModel: SMART,
    });
    expect(data.points).toEqual([
      { atMs: Date.UTC(2026, 11, 1), fastMicros: 0, smartMicros: 0 },
      { atMs: Date.UTC(2026, 11, 2), fastMicros: 100, smartMicros: 1_000 },
      { atMs: Date.UTC(2026, 11, 3), fastMicros: 100, smartMicros: 1_000 },
      { atMs: Date.UTC(2026, 11, 4), fastMicros: 150, smartMicros: 1_000 },
      { atMs: nowMs, fastMicros: 150, smartMicros: 1_010 },
    ]);
    expect(data).toMatchObject({ fromMs: DECEMBER.startMs, toMs: DECEMBER.endMs, totalMicros: 1_160 });
    expect(data.forecast).toBeUndefined();
  });

  it('when a charge is stamped after now (a host whose clock runs ahead), then it still counts in the last point', () => {
    const nowMs = Date.UTC(2026, 11, 9, 10, 30);
    const data = spendChartData({
      buckets: [
        bucket(Date.UTC(2026, 11, 9, 10), 'gpt-4o-mini', 5),
        bucket(Date.UTC(2026, 11, 9, 11), SMART, 9),
      ],
      bucketMs: HOUR_MS,
      window: DAY,
      nowMs,
      smartModel: SMART,
    });
    expect(data.points).toHaveLength(12);
    expect(data.points.at(-1)).toEqual({ atMs: nowMs, fastMicros: 5, smartMicros: 9 });
    expect(data.totalMicros).toBe(14);
  });

  it('when a forecast is shown, then it runs from now and the total to the end of the period, with the limit it meets', () => {
    const nowMs = Date.UTC(2026, 11, 3);
    const forecast = forecastSpend({
      window: DECEMBER,
      nowMs,
      spentMicros: 1_000_000,
      limitMicros: 10_000_000,
    });
    const data = spendChartData({
      buckets: [bucket(Date.UTC(2026, 11, 2), 'gpt-4o-mini', 1_000_000)],
      bucketMs: DAY_MS,
      window: DECEMBER,
      nowMs,
      smartModel: SMART,
      limit: { micros: 10_000_000, label: 'cap' },
      forecast,
    });
    expect(data.forecast).toEqual({
      fromMs: nowMs,
      fromMicros: 1_000_000,
      toMs: DECEMBER.endMs,
      toMicros: 15_500_000,
      limitReachedAtMs: Date.UTC(2026, 11, 21),
    });
    expect(data.limit).toEqual({ micros: 10_000_000, label: 'cap' });
  });

  it('when the view is all time, then the axis starts at the first charge and ends now, with no forecast', () => {
    const nowMs = Date.UTC(2026, 11, 9, 8);
    const data = spendChartData({
      buckets: [bucket(Date.UTC(2026, 10, 28), 'gpt-4o-mini', 40)],
      bucketMs: DAY_MS,
      window: null,
      nowMs,
      smartModel: SMART,
    });
    expect(data.fromMs).toBe(Date.UTC(2026, 10, 28));
    expect(data.toMs).toBe(nowMs);
    expect(data.points.at(-1)).toEqual({ atMs: nowMs, fastMicros: 40, smartMicros: 0 });
  });
});
