import { and, count, eq, gte, isNull, lt, sum } from 'drizzle-orm';
import type { PeriodWindow } from '../core/budget.js';
import type { AppDatabase } from './database.js';
import { usageLedger } from './schema.js';

/**
 * A member's calls, tokens and cost in a server (or in DMs, `guildId` null) over a window, per model,
 * with what the same tokens would have cost on the smart model: what /usage shows. Reads only the
 * covering index `usage_ledger_user_period`.
 */
export function usageByModel(db: AppDatabase, userId: string, guildId: string | null, window: PeriodWindow) {
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

export type ModelUsage = ReturnType<ReturnType<typeof usageByModel>['all']>[number];
