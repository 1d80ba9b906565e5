import { and, count, eq, gte, isNull, lt, sum } from 'drizzle-orm';
import type { PeriodWindow } from '../../core/budget.js';
import type { AnswersByRoute, ModelUsage, UsageQuery, UsageReport } from '../../core/usage.js';
import type { AppDatabase } from './database.js';
import { usageLedger } from './schema.js';

/**
 * A member's calls, tokens and cost in a server (or in DMs, `guildId` null) over a window, per model,
 * with what the same tokens would have cost on the smart model: what /usage shows. Reads only the
 * covering index `usage_ledger_user_period`.
 */
function usageByModel(db: AppDatabase, userId: string, guildId: string | null, window: PeriodWindow) {
  return db
    .select({
      model: usageLedger.model,
      calls: count(),
      inputTokens: sum(usageLedger.inputTokens).mapWith(Number),
      cachedInputTokens: sum(usageLedger.cachedInputTokens).mapWith(Number),
      cacheWriteTokens: sum(usageLedger.cacheWriteTokens).mapWith(Number),
      outputTokens: sum(usageLedger.outputTokens).mapWith(Number),
      costMicros: sum(usageLedger.costMicros).mapWith(Number),
      smartCostMicros: sum(usageLedger.smartCostMicros).mapWith(Number),
    })
    .from(usageLedger)
    .where(
      and(
        // eq(column, null) matches nothing in SQL: direct messages need IS NULL.
        guildId === null ? isNull(usageLedger.guildId) : eq(usageLedger.guildId, guildId),
        eq(usageLedger.userId, userId),
        gte(usageLedger.chargedAt, window.startMs),
        lt(usageLedger.chargedAt, window.endMs),
      ),
    )
    .groupBy(usageLedger.model);
}

const DAY_MS = 86_400_000;

/**
 * What /usage shows for one member over a window: tokens and cost by model, spend per UTC day split
 * between the smart model and the rest, and answers by why they escalated (with what sending each to the
 * smart model alone would have cost). Callers write pending rows first (storage.ts does).
 */
function usageReport(db: AppDatabase, query: UsageQuery): UsageReport {
  const { userId, guildId, window, smartModel } = query;
  const inWindow = (column: 'charged_at' | 'created_at') =>
    `user_id = @userId AND ${guildId === null ? 'guild_id IS NULL' : 'guild_id = @guildId'}
     AND ${column} >= @startMs AND ${column} < @endMs`;
  const parameters = {
    userId,
    guildId,
    startMs: window.startMs,
    endMs: window.endMs,
    smartModel,
    dayMs: DAY_MS,
  };
  const days = db.$client
    .prepare<
      [typeof parameters],
      { dayNumber: number; fastMicros: number; smartMicros: number; firstAt: number }
    >(
      `SELECT charged_at / @dayMs AS dayNumber,
              SUM(CASE WHEN model = @smartModel THEN 0 ELSE cost_micros END) AS fastMicros,
              SUM(CASE WHEN model = @smartModel THEN cost_micros ELSE 0 END) AS smartMicros,
              MIN(charged_at) AS firstAt
       FROM usage_ledger WHERE ${inWindow('charged_at')}
       GROUP BY dayNumber ORDER BY dayNumber`,
    )
    .all(parameters);
  const routes = db.$client
    .prepare<[typeof parameters], AnswersByRoute>(
      `SELECT escalation_source AS reason,
              COUNT(*) AS answers, SUM(cost_micros) AS costMicros, SUM(smart_only_cost_micros) AS smartOnlyCostMicros
       FROM turns WHERE status = 'answered' AND ${inWindow('created_at')}
       GROUP BY reason ORDER BY answers DESC, reason`,
    )
    .all(parameters);
  return {
    byModel: usageByModel(db, userId, guildId, window).all() as ModelUsage[],
    days: days.map(({ dayNumber, fastMicros, smartMicros }) => ({
      day: new Date(dayNumber * DAY_MS).toISOString().slice(0, 10),
      fastMicros,
      smartMicros,
    })),
    routes,
    firstChargeAt: days[0]?.firstAt ?? null,
  };
}

/** The /usage queries on SQLite. */
export class SqliteUsageStore {
  constructor(private readonly db: AppDatabase) {}

  async byModel(userId: string, guildId: string | null, window: PeriodWindow): Promise<ModelUsage[]> {
    return usageByModel(this.db, userId, guildId, window).all() as ModelUsage[];
  }

  async report(query: UsageQuery): Promise<UsageReport> {
    return usageReport(this.db, query);
  }
}
