import { HOUR_MS, type PeriodWindow } from '../core/budget.js';
import { checkedChartStep } from '../core/reports.js';

/**
 * The reads of /usage server and /usage bot, in SQL both dialects speak: sums of `usage_by_hour` and
 * `answers_by_hour`, the per-hour totals that triggers keep beside the ledger and the turns (see
 * sqlite/schema.ts and the migrations `*_usage_by_hour.sql`). A month of the busiest server is a few
 * hundred of these rows, where the ledger holds tens of thousands of its calls.
 */

/** The statements' parameters, which each dialect writes its own way (`$1`, `@name`). */
export type HourParameter = 'guildKey' | 'fromHour' | 'toHour';

/** A window of whole UTC days as the hours since the epoch that the sums are keyed by. */
export function hoursOf(window: PeriodWindow): { fromHour: number; toHour: number } {
  return { fromHour: Math.floor(window.startMs / HOUR_MS), toHour: Math.ceil(window.endMs / HOUR_MS) };
}

/** The sums' columns of a model's calls, named as `BucketUsage` is. */
const CALL_SUMS = `model, SUM(calls) AS calls, SUM(input_tokens) AS "inputTokens",
  SUM(cached_input_tokens) AS "cachedInputTokens", SUM(cache_write_tokens) AS "cacheWriteTokens",
  SUM(output_tokens) AS "outputTokens", SUM(cost_micros) AS "costMicros", SUM(smart_cost_micros) AS "smartCostMicros"`;

/** Answers by reason, named as `AnswersByRoute` is ('' in the sums is an answer that did not escalate). */
const ANSWER_SUMS = `NULLIF(reason, '') AS reason, SUM(answers) AS answers, SUM(cost_micros) AS "costMicros",
  SUM(smart_only_cost_micros) AS "smartOnlyCostMicros"`;

/** The step of a chart (an hour or a day) an hour's sums fall in, and the window's hours. */
function stepAndWindow(parameter: (name: 'fromHour' | 'toHour') => string, bucketMs: number) {
  return {
    step: `hour / ${checkedChartStep(bucketMs) / HOUR_MS}`,
    inWindow: `hour >= ${parameter('fromHour')} AND hour < ${parameter('toHour')}`,
  };
}

/** A server's statements for a chart step of an hour or a day, with the dialect's way of naming parameters. */
export function serverSumsQueries(parameter: (name: HourParameter) => string, bucketMs: number) {
  const { step, inWindow } = stepAndWindow(parameter, bucketMs);
  const inServer = `guild_key = ${parameter('guildKey')} AND ${inWindow}`;
  return {
    /** The server's calls by step and model. */
    buckets: `SELECT ${step} * ${bucketMs} AS "startMs", ${CALL_SUMS}
      FROM usage_by_hour WHERE ${inServer} GROUP BY ${step}, model`,
    /** The server's answers by escalation reason. */
    routes: `SELECT ${ANSWER_SUMS} FROM answers_by_hour WHERE ${inServer} GROUP BY reason`,
  };
}

/**
 * Every key of a sums table, found by seeking from one to the next in its primary key (guild_key, hour, …):
 * SQLite has no skip scan without statistics, and neither database would otherwise avoid reading every
 * hour of every server ever summed to find a window's.
 */
const keysOf = (table: 'usage_by_hour' | 'answers_by_hour') => `WITH RECURSIVE servers(key) AS (
    SELECT MIN(guild_key) FROM ${table}
    UNION ALL
    SELECT (SELECT MIN(guild_key) FROM ${table} WHERE guild_key > servers.key) FROM servers
    WHERE servers.key IS NOT NULL
  )`;

/**
 * The whole bot's statements: every server's (and direct messages', `guildId` null) figures, each
 * server's hours of the window read by a seek in the primary key.
 */
export function botSumsQueries(parameter: (name: 'fromHour' | 'toHour') => string, bucketMs: number) {
  const { step, inWindow } = stepAndWindow(parameter, bucketMs);
  const ofEachServer = (table: 'usage_by_hour' | 'answers_by_hour') =>
    `FROM servers s JOIN ${table} ON guild_key = s.key AND ${inWindow}`;
  return {
    /** Calls by server, step and model. */
    buckets: `${keysOf('usage_by_hour')}
      SELECT NULLIF(guild_key, '') AS "guildId", ${step} * ${bucketMs} AS "startMs", ${CALL_SUMS}
      ${ofEachServer('usage_by_hour')} GROUP BY guild_key, ${step}, model`,
    /** Every answer's reason. */
    routes: `${keysOf('answers_by_hour')}
      SELECT ${ANSWER_SUMS} ${ofEachServer('answers_by_hour')} GROUP BY reason`,
  };
}
