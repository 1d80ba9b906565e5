import type pg from 'pg';
import type { PeriodWindow } from '../../core/budget.js';
import type { AnswersByRoute, ModelUsage, UsageQuery, UsageReport, DaySpend } from '../../core/usage.js';
import type { UsageStore } from '../store.js';

const DAY_MS = 86_400_000;

/** A member's rows in a window: $1 user, $2 guild ('' and IS NULL for DMs), $3–$4 the window. */
const inWindow = (column: 'charged_at' | 'created_at', isDirectMessage: boolean) =>
  `user_id = $1 AND ${isDirectMessage ? 'guild_id IS NULL AND $2 = $2' : 'guild_id = $2'}
   AND ${column} >= $3 AND ${column} < $4`;

/** The /usage queries on PostgreSQL (the same figures as on SQLite, see ../sqlite/usage.ts). */
export class PostgresUsageStore implements UsageStore {
  constructor(private readonly pool: pg.Pool) {}

  async byModel(userId: string, guildId: string | null, window: PeriodWindow): Promise<ModelUsage[]> {
    const result = await this.pool.query<ModelUsage>(
      `SELECT model, COUNT(*)::int AS calls, SUM(input_tokens) AS "inputTokens",
         SUM(cached_input_tokens) AS "cachedInputTokens", SUM(cache_write_tokens) AS "cacheWriteTokens",
         SUM(output_tokens) AS "outputTokens", SUM(cost_micros) AS "costMicros",
         SUM(smart_cost_micros) AS "smartCostMicros"
       FROM usage_ledger WHERE ${inWindow('charged_at', guildId === null)}
       GROUP BY model ORDER BY model`,
      [userId, guildId ?? '', window.startMs, window.endMs],
    );
    return result.rows;
  }

  async report(query: UsageQuery): Promise<UsageReport> {
    const { userId, guildId, window, smartModel } = query;
    const isDirectMessage = guildId === null;
    const parameters = [userId, guildId ?? '', window.startMs, window.endMs];
    const [byModel, days, routes] = await Promise.all([
      this.byModel(userId, guildId, window),
      this.pool.query<{ dayNumber: number; fastMicros: number; smartMicros: number; firstAt: number }>(
        `SELECT charged_at / ${DAY_MS} AS "dayNumber",
           SUM(CASE WHEN model = $5 THEN 0 ELSE cost_micros END) AS "fastMicros",
           SUM(CASE WHEN model = $5 THEN cost_micros ELSE 0 END) AS "smartMicros",
           MIN(charged_at) AS "firstAt"
         FROM usage_ledger WHERE ${inWindow('charged_at', isDirectMessage)}
         GROUP BY 1 ORDER BY 1`,
        [...parameters, smartModel],
      ),
      this.pool.query<AnswersByRoute>(
        `SELECT escalation_source AS reason,
                COUNT(*)::int AS answers, SUM(cost_micros) AS "costMicros",
                SUM(smart_only_cost_micros) AS "smartOnlyCostMicros"
         FROM turns WHERE status = 'answered' AND ${inWindow('created_at', isDirectMessage)}
         GROUP BY 1 ORDER BY answers DESC, reason`,
        parameters,
      ),
    ]);
    return {
      byModel,
      days: days.rows.map(({ dayNumber, fastMicros, smartMicros }): DaySpend => ({
        day: new Date(dayNumber * DAY_MS).toISOString().slice(0, 10),
        fastMicros,
        smartMicros,
      })),
      routes: routes.rows,
      firstChargeAt: days.rows[0]?.firstAt ?? null,
    };
  }
}
