import Database from 'better-sqlite3';
import { and, count, eq, gte, isNull, lt, sum } from 'drizzle-orm';
import { DAY_MS, type PeriodWindow } from '../../core/budget.js';
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

/**
 * The UTC day of a charge (or turn) as the indexes `usage_ledger_guild_day` and `turns_guild_day` hold it
 * (migrations/sqlite/0005_reports.sql): a query that filters and groups by this very expression reads the
 * index in order, with no sort. Windows are whole days, so filtering by day numbers is exact. Numbers are
 * written into the SQL, not bound: better-sqlite3 binds a JavaScript number as a float, which would turn
 * the division into a float one and every charge into a group of its own.
 */
const CHARGE_DAY = `charged_at / ${DAY_MS}`;
const TURN_DAY = `created_at / ${DAY_MS}`;

/** Tokens and cost, summed as every /usage view reads them. */
const USAGE_SUMS = `model, COUNT(*) AS calls, SUM(input_tokens) AS inputTokens,
  SUM(cached_input_tokens) AS cachedInputTokens, SUM(cache_write_tokens) AS cacheWriteTokens,
  SUM(output_tokens) AS outputTokens, SUM(cost_micros) AS costMicros, SUM(smart_cost_micros) AS smartCostMicros`;

const ROUTE_SUMS = `escalation_source AS reason, COUNT(*) AS answers, SUM(cost_micros) AS costMicros,
  SUM(smart_only_cost_micros) AS smartOnlyCostMicros`;

/** Where a server's rows are (`guildId` null: direct messages, which need IS NULL). */
const guildIs = (isDirectMessage: boolean) => (isDirectMessage ? 'guild_id IS NULL' : 'guild_id = @guildId');

/** The chart's step a charge falls in, for steps of a day or an hour. */
const stepOf = (bucketMs: number) =>
  bucketMs === DAY_MS ? CHARGE_DAY : `charged_at / ${checkedChartStep(bucketMs)}`;

/** Calls in a day: a page of /usage export, read as it is consumed. */
const DAY_OF_CALLS = `SELECT l.charged_at AS chargedAt, l.user_id AS userId, l.channel_id AS channelId, l.model,
    l.purpose, l.input_tokens AS inputTokens, l.cached_input_tokens AS cachedInputTokens,
    l.cache_write_tokens AS cacheWriteTokens, l.output_tokens AS outputTokens, l.cost_micros AS costMicros,
    t.escalation_source AS routeReason
  FROM usage_ledger l LEFT JOIN turns t ON t.turn_id = l.turn_id
  WHERE l.guild_id = @guildId AND l.${CHARGE_DAY} = @day
  ORDER BY l.charged_at, l.id`;

/** The next day with calls of a server, from `after` (an index seek, however long the gap). */
const NEXT_DAY = `SELECT MIN(${CHARGE_DAY}) AS day FROM usage_ledger
  WHERE guild_id = @guildId AND ${CHARGE_DAY} > @after AND ${CHARGE_DAY} < @endDay`;

/**
 * Every server with calls, found by seeking from one to the next in `usage_ledger_guild_day` (SQLite has
 * no skip scan; DISTINCT would read the whole index).
 */
const SERVERS = `WITH RECURSIVE servers(id) AS (
    SELECT MIN(guild_id) FROM usage_ledger
    UNION ALL
    SELECT (SELECT MIN(guild_id) FROM usage_ledger WHERE guild_id > servers.id) FROM servers WHERE servers.id IS NOT NULL
  ) SELECT id FROM servers WHERE id IS NOT NULL`;

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
    const days = { startDay: Math.floor(window.startMs / DAY_MS), endDay: Math.ceil(window.endMs / DAY_MS) };
    if (scope.kind === 'member') {
      // A member's rows are few (thousands in a busy month): their own covering indexes, then a small sort.
      const parameters = { ...scope, ...window };
      const member = `${guildIs(scope.guildId === null)} AND user_id = @userId`;
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
    // One read transaction: the figures of every server come from the same moment.
    return this.db.$client
      .transaction((): UsageOverview => {
        if (scope.kind === 'server') {
          const server = this.serverFigures(scope.guildId, days, bucketMs);
          return { ...server, top: this.topMembers(scope.guildId, query) };
        }
        const servers = [...this.all<{ id: string }>(SERVERS, {}).map((row) => row.id), null];
        const spentByServer = new Map<string | null, number>();
        const buckets: BucketUsage[] = [];
        const routes: AnswersByRoute[] = [];
        for (const guildId of servers) {
          const server = this.serverFigures(guildId, days, bucketMs);
          buckets.push(...server.buckets);
          routes.push(...server.routes);
          spentByServer.set(
            guildId,
            server.buckets.reduce((total, bucket) => total + bucket.costMicros, 0),
          );
        }
        return { buckets, top: rankSpenders(spentByServer, query.topCount), routes };
      })
      .deferred();
  }

  /**
   * A server's spend by step and model and its answers by reason, each read in the order of its index
   * (`usage_ledger_guild_day`, `turns_guild_day`): by day, so a month of the busiest server needs no sort.
   */
  private serverFigures(
    guildId: string | null,
    days: { startDay: number; endDay: number },
    bucketMs: number,
  ): Pick<UsageOverview, 'buckets' | 'routes'> {
    const inServer = guildIs(guildId === null);
    const parameters = { guildId, ...days };
    const step = stepOf(bucketMs);
    const buckets = this.all<BucketUsage>(
      `SELECT (${step}) * ${bucketMs} AS startMs, ${USAGE_SUMS}
       FROM usage_ledger WHERE ${inServer} AND ${CHARGE_DAY} >= @startDay AND ${CHARGE_DAY} < @endDay
       GROUP BY ${step === CHARGE_DAY ? CHARGE_DAY : `${CHARGE_DAY}, ${step}`}, model`,
      parameters,
    );
    // By day and reason (the index's order); the caller's summary adds the days up.
    const routes = this.all<AnswersByRoute>(
      `SELECT ${ROUTE_SUMS} FROM turns
       WHERE ${inServer} AND ${TURN_DAY} >= @startDay AND ${TURN_DAY} < @endDay AND status = 'answered'
       GROUP BY ${TURN_DAY}, escalation_source`,
      parameters,
    );
    return { buckets, routes };
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
   * A server's calls, a day at a time, each day's rows read one by one as they are consumed, on a read-only
   * connection of its own in one read transaction (WAL lets it read beside the bot's writes; an open
   * iterator would otherwise keep the bot's connection busy). Days without calls are skipped by a seek.
   */
  async *calls(query: CallsQuery): AsyncIterable<CallRecord> {
    const reader = new Database(this.db.$client.name, { readonly: true, fileMustExist: true });
    try {
      reader.exec('BEGIN');
      const nextDay = reader.prepare<[object], { day: number | null }>(NEXT_DAY);
      const dayOfCalls = reader.prepare<[object], CallRecord>(DAY_OF_CALLS);
      const { guildId } = query;
      const endDay = Math.ceil(query.window.endMs / DAY_MS);
      let day = nextDay.get({ guildId, after: Math.floor(query.window.startMs / DAY_MS) - 1, endDay })?.day;
      while (day !== null && day !== undefined) {
        yield* dayOfCalls.iterate({ guildId, day });
        day = nextDay.get({ guildId, after: day, endDay })?.day;
      }
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
