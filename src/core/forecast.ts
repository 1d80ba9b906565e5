import { DAY_MS, type PeriodWindow } from './budget.js';
import type { Micros } from './money.js';
import type { BucketUsage } from './usage.js';

/**
 * Where spending is heading, and the data a cumulative chart draws: written once for every view (a
 * member, a server, the whole bot) and both ways of showing it (Discord, the terminal).
 */

/** A forecast needs this much of the period behind it (a month's first two days say little)… */
export const FORECAST_MIN_ELAPSED_MS = 2 * DAY_MS;
/** …or this share of a period too short for that (a day: 2.4 hours; a week: 16.8 hours). */
export const FORECAST_MIN_ELAPSED_SHARE = 0.1;

export type Forecast =
  /** Too early to tell: a forecast is stated from `fromMs`. */
  | { isShown: false; fromMs: number }
  | {
      isShown: true;
      /** What the period ends at if spending goes on at its pace so far. */
      projectedMicros: Micros;
      /** When that pace reaches the limit; null without a limit or when the pace stays under it. */
      limitReachedAtMs: number | null;
      /** The limit is reached already. */
      isLimitReached: boolean;
    };

/** When a forecast for a window may first be stated: 2 days in, or 10% in, whichever comes first. */
export function forecastFrom(window: PeriodWindow): number {
  const periodMs = window.endMs - window.startMs;
  return window.startMs + Math.min(FORECAST_MIN_ELAPSED_MS, FORECAST_MIN_ELAPSED_SHARE * periodMs);
}

/**
 * Spending at the period's pace so far (what was spent divided by the time gone), carried on to the end of
 * the period: a straight line, which is what "at this pace" promises and no more.
 */
export function forecastSpend(input: {
  window: PeriodWindow;
  nowMs: number;
  spentMicros: Micros;
  limitMicros?: Micros | undefined;
}): Forecast {
  const { window, nowMs, spentMicros, limitMicros } = input;
  const fromMs = forecastFrom(window);
  if (nowMs < fromMs) return { isShown: false, fromMs };
  const elapsedMs = Math.min(nowMs, window.endMs) - window.startMs;
  const periodMs = window.endMs - window.startMs;
  const projectedMicros = Math.round((spentMicros * periodMs) / elapsedMs);
  const isLimitReached = limitMicros !== undefined && spentMicros >= limitMicros;
  const limitReachedAtMs =
    limitMicros !== undefined && !isLimitReached && projectedMicros > limitMicros && spentMicros > 0
      ? Math.round(window.startMs + (limitMicros * elapsedMs) / spentMicros)
      : null;
  return { isShown: true, projectedMicros, limitReachedAtMs, isLimitReached };
}

/** One point of the cumulative chart: everything spent from the start of the view until `atMs`. */
export interface CumulativePoint {
  atMs: number;
  fastMicros: Micros;
  smartMicros: Micros;
}

/**
 * What the cumulative chart draws, in micro-USD, and what a test compares with the ledger: spend so far
 * (the smart model's share on top of the rest), the limit as a line, and the forecast from now to the end.
 */
export interface SpendChartData {
  /** The x axis: the period (for "all time": the first charge until now). */
  fromMs: number;
  toMs: number;
  points: CumulativePoint[];
  /** The last point's total: what the view spent. */
  totalMicros: Micros;
  limit?: { micros: Micros; label: string } | undefined;
  forecast?:
    | {
        fromMs: number;
        fromMicros: Micros;
        toMs: number;
        toMicros: Micros;
        /** When the forecast meets the limit (null: it does not, or there is none). */
        limitReachedAtMs: number | null;
      }
    | undefined;
}

/**
 * The cumulative series of a view: a point at the start, one at the end of each step with spend (and the
 * steps between, so the line stays flat where nothing was spent), and one at `nowMs` for the step under way.
 */
export function spendChartData(input: {
  buckets: readonly BucketUsage[];
  bucketMs: number;
  /** The period's window, or null for all time (the axis then runs from the first charge). */
  window: PeriodWindow | null;
  nowMs: number;
  smartModel: string;
  limit?: { micros: Micros; label: string } | undefined;
  forecast?: Forecast | undefined;
}): SpendChartData {
  const { buckets, bucketMs, window, nowMs, smartModel } = input;
  const bySteps = new Map<number, { fastMicros: Micros; smartMicros: Micros }>();
  for (const bucket of buckets) {
    // Steps are whole hours or days since the epoch (UTC), as every period's window starts on one.
    const startMs = Math.floor(bucket.startMs / bucketMs) * bucketMs;
    const step = bySteps.get(startMs) ?? { fastMicros: 0, smartMicros: 0 };
    if (bucket.model === smartModel) step.smartMicros += bucket.costMicros;
    else step.fastMicros += bucket.costMicros;
    bySteps.set(startMs, step);
  }
  const firstStepMs = Math.min(...bySteps.keys());
  const fromMs = window?.startMs ?? (bySteps.size > 0 ? firstStepMs : Math.floor(nowMs / DAY_MS) * DAY_MS);
  const toMs = window?.endMs ?? Math.max(nowMs, fromMs + bucketMs);
  const lastMs = Math.min(nowMs, toMs);

  const points: CumulativePoint[] = [{ atMs: fromMs, fastMicros: 0, smartMicros: 0 }];
  let fastMicros = 0;
  let smartMicros = 0;
  let stepMs = fromMs;
  for (; stepMs < lastMs; stepMs += bucketMs) {
    const step = bySteps.get(stepMs);
    fastMicros += step?.fastMicros ?? 0;
    smartMicros += step?.smartMicros ?? 0;
    points.push({ atMs: Math.min(stepMs + bucketMs, lastMs), fastMicros, smartMicros });
  }
  // A charge stamped after `nowMs` (another host's clock runs ahead) still counts, in the last point.
  for (const [startMs, step] of bySteps) {
    if (startMs < stepMs) continue;
    fastMicros += step.fastMicros;
    smartMicros += step.smartMicros;
  }
  points[points.length - 1] = { atMs: points.at(-1)?.atMs ?? fromMs, fastMicros, smartMicros };
  const totalMicros = fastMicros + smartMicros;
  const forecast =
    input.forecast?.isShown && window && nowMs < window.endMs
      ? {
          fromMs: lastMs,
          fromMicros: totalMicros,
          toMs: window.endMs,
          toMicros: input.forecast.projectedMicros,
          limitReachedAtMs: input.limit ? input.forecast.limitReachedAtMs : null,
        }
      : undefined;
  return { fromMs, toMs, points, totalMicros, limit: input.limit, forecast };
}
