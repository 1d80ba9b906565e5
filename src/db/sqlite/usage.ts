import Database from 'better-sqlite3';
import { and, count, eq, gte, isNull, lt, sum } from 'drizzle-orm';
import type { PeriodWindow } from '../../core/budget.js';
import { checkedChartStep, rankSpenders } from '../../core/reports.js';
import type {
  AnswersByRoute,
  BucketUsage,
  CallRecord,
  CallsQuery,
  ModelUsage,
  OverviewQuery,
  Spender,
  UsageOverview,
} from '../../core/usage.js';
import type { UsageStore } from '../store.js';
import type { AppDatabase } from './database.js';
import { usageLedger } from './schema.js';
import { botSumsQueries, hoursOf, serverSumsQueries } from '../usage-by-hour.js';

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

/** Tokens and cost, summed as a member's /usage views read them. */
const USAGE_SUMS = `model, COUNT(*) AS calls, SUM(input_tokens) AS inputTokens,
  SUM(cached_input_tokens) AS cachedInputTokens, SUM(cache_write_tokens) AS cacheWriteTokens,
  SUM(output_tokens) AS outputTokens, SUM(cost_micros) AS costMicros, SUM(smart_cost_micros) AS smartCostMicros`;

const ROUTE_SUMS = `escalation_source AS reason, COUNT(*) AS answers, SUM(cost_micros) AS costMicros,
  SUM(smart_only_cost_micros) AS smartOnlyCostMicros`;

/**
 * A server's calls in a window, in time order, each with its turn's route: /usage export, read from the
 * index `usage_ledger_guild_time` (guild_id, charged_at, then the rowid) in its order, with no sort.
 */
const CALLS = `SELECT l.charged_at AS chargedAt, l.user_id AS userId, l.channel_id AS channelId, l.model,
    l.purpose, l.input_tokens AS inputTokens, l.cached_input_tokens AS cachedInputTokens,
    l.cache_write_tokens AS cacheWriteTokens, l.output_tokens AS outputTokens, l.cost_micros AS costMicros,
    t.escalation_source AS routeReason
  FROM usage_ledger l LEFT JOIN turns t ON t.turn_id = l.turn_id
  WHERE l.guild_id = @guildId AND l.charged_at >= @startMs AND l.charged_at < @endMs
  ORDER BY l.charged_at, l.id`;

const PERIOD_COLUMNS = { day: 'day', week: 'week', month: 'month' } as const;

/** The /usage queries on SQLite. */
export class SqliteUsageStore implements UsageStore {
  private readonly statements = new Map<string, Database.Statement<[object], unknown>>();

  constructor(private readonly db: AppDatabase) {}

  async byModel(userId: string, guildId: string | null, window: PeriodWindow): Promise<ModelUsage[]> {
    return usageByModel(this.db, userId, guildId, window).all() as ModelUsage[];
  }

  async overview(query: OverviewQuery): Promise<UsageOverview> {
    const { scope, window, bucketMs } = query;
    if (scope.kind === 'member') {
      // A member's rows are few (thousands in a busy month): their own covering indexes, then a small sort.
      const parameters = { ...scope, ...window };
      const member = `${scope.guildId === null ? 'guild_id IS NULL' : 'guild_id = @guildId'} AND user_id = @userId`;
      const buckets = this.all<BucketUsage>(
        `SELECT (charged_at / ${checkedChartStep(bucketMs)}) * ${bucketMs} AS startMs, ${USAGE_SUMS}
         FROM usage_ledger WHERE ${member} AND charged_at >= @startMs AND charged_at < @endMs
         GROUP BY startMs, model`,
        parameters,
      );
      const routes = this.all<AnswersByRoute>(
        `SELECT ${ROUTE_SUMS} FROM turns
         WHERE ${member} AND status = 'answered' AND created_at >= @startMs AND created_at < @endMs
         GROUP BY reason`,
        parameters,
      );
      return { buckets, top: [], routes };
    }
    // A server's and the bot's figures come from the per-hour sums (../usage-by-hour.ts), in one read
    // transaction: the figures come from the same moment.
    const hours = hoursOf(window);
    return this.db.$client
      .transaction((): UsageOverview => {
        if (scope.kind === 'server') {
          const sums = serverSumsQueries((name) => `@${name}`, bucketMs);
          const parameters = { guildKey: scope.guildId, ...hours };
          return {
            buckets: this.all<BucketUsage>(sums.buckets, parameters),
            top: this.topMembers(scope.guildId, query),
            routes: this.all<AnswersByRoute>(sums.routes, parameters),
          };
        }
        const sums = botSumsQueries((name) => `@${name}`, bucketMs);
        const rows = this.all<BucketUsage & { guildId: string | null }>(sums.buckets, hours);
        const spentByServer = new Map<string | null, number>();
        const buckets = rows.map(({ guildId, ...bucket }) => {
          spentByServer.set(guildId, (spentByServer.get(guildId) ?? 0) + bucket.costMicros);
          return bucket;
        });
        return {
          buckets,
          top: rankSpenders(spentByServer, query.topCount),
          routes: this.all<AnswersByRoute>(sums.routes, hours),
        };
      })
      .deferred();
  }

  /**
   * A server's biggest spenders: for a budget period's current window, from the running totals the budget
   * check keeps (written in the same transaction as every ledger row, so they hold the same sums), a
   * read of the server's members instead of a sort of its month; for all time, from the ledger.
   */
  private topMembers(guildId: string, query: OverviewQuery): Spender[] {
    if (query.topCount === 0) return [];
    if (query.period === 'all') {
      return this.all<Spender>(
        `SELECT user_id AS id, SUM(cost_micros) AS spentMicros FROM usage_ledger WHERE guild_id = @guildId
         GROUP BY user_id ORDER BY spentMicros DESC, user_id LIMIT @limit`,
        { guildId, limit: query.topCount },
      );
    }
    const column = PERIOD_COLUMNS[query.period];
    return this.all<Spender>(
      `SELECT user_key AS id, ${column}_spent_micros AS spentMicros FROM spend_counters
       WHERE kind = 'user' AND guild_key = @guildId AND ${column}_start = @startMs AND ${column}_spent_micros > 0
       ORDER BY spentMicros DESC, user_key LIMIT @limit`,
      { guildId, startMs: query.window.startMs, limit: query.topCount },
    );
  }

  /**
   * A server's calls, read one by one as they are consumed, on a read-only connection of its own in one
   * read transaction (WAL lets it read beside the bot's writes; an open iterator would otherwise keep the
   * bot's connection busy).
   */
  async *calls(query: CallsQuery): AsyncIterable<CallRecord> {
    const reader = new Database(this.db.$client.name, { readonly: true, fileMustExist: true });
    try {
      reader.exec('BEGIN');
      yield* reader.prepare<[object], CallRecord>(CALLS).iterate({ guildId: query.guildId, ...query.window });
    } finally {
      reader.close();
    }
  }

  /** Runs a statement prepared once per text (the bot's view prepares the same two for every server). */
  private all<Row>(sql: string, parameters: object): Row[] {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.$client.prepare<[object], unknown>(sql);
      this.statements.set(sql, statement);
    }
    return statement.all(parameters) as Row[];
  }
}
