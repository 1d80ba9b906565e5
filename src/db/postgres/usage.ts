import type pg from 'pg';
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
import { botSumsQueries, type HourParameter, hoursOf, serverSumsQueries } from '../usage-by-hour.js';

/** A member's rows in a window: $1 user, $2 guild ('' and IS NULL for DMs), $3–$4 the window. */
const inWindow = (column: 'charged_at' | 'created_at', isDirectMessage: boolean) =>
  `user_id = $1 AND ${isDirectMessage ? 'guild_id IS NULL AND $2 = $2' : 'guild_id = $2'}
   AND ${column} >= $3 AND ${column} < $4`;

/** Tokens and cost, summed as every /usage view reads them. */
const USAGE_SUMS = `model, COUNT(*)::int AS calls, SUM(input_tokens) AS "inputTokens",
  SUM(cached_input_tokens) AS "cachedInputTokens", SUM(cache_write_tokens) AS "cacheWriteTokens",
  SUM(output_tokens) AS "outputTokens", SUM(cost_micros) AS "costMicros", SUM(smart_cost_micros) AS "smartCostMicros"`;

/** A member's answers by reason. */
const ROUTE_SUMS = `escalation_source AS reason, COUNT(*)::int AS answers, SUM(cost_micros) AS "costMicros",
  SUM(smart_only_cost_micros) AS "smartOnlyCostMicros"`;

/** Where each parameter of a server's per-hour sums' statements goes. */
const SERVER_PARAMETERS: Record<HourParameter, string> = { guildKey: '$1', fromHour: '$2', toHour: '$3' };

/** The running totals' columns of each budget period. */
const PERIOD_COLUMNS = { day: 'day', week: 'week', month: 'month' } as const;

/** How many calls /usage export reads per round trip. */
const EXPORT_PAGE_ROWS = 2_000;

/**
 * A page of a server's calls after a (charged_at, id) key, in that order: the index
 * `usage_ledger_guild_time` (guild_id, charged_at, id, …) gives the order and the seek, so each page
 * costs its own rows, however far into the period it starts. The page is taken first and only its rows
 * are joined to their turns: joined in one query, the planner expected the whole period and sent the
 * page to parallel workers, whose start alone cost more than the page (80 ms against 10).
 */
const CALLS_PAGE = `WITH page AS MATERIALIZED (
    SELECT id, turn_id, charged_at, user_id, channel_id, model, purpose, input_tokens, cached_input_tokens,
      cache_write_tokens, output_tokens, cost_micros
    FROM usage_ledger
    WHERE guild_id = $1 AND (charged_at, id) > ($2, $3) AND charged_at < $4
    ORDER BY charged_at, id
    LIMIT ${EXPORT_PAGE_ROWS}
  )
  SELECT p.id, p.charged_at AS "chargedAt", p.user_id AS "userId", p.channel_id AS "channelId", p.model,
    p.purpose, p.input_tokens AS "inputTokens", p.cached_input_tokens AS "cachedInputTokens",
    p.cache_write_tokens AS "cacheWriteTokens", p.output_tokens AS "outputTokens",
    p.cost_micros AS "costMicros", t.escalation_source AS "routeReason"
  FROM page p LEFT JOIN turns t ON t.turn_id = p.turn_id
  ORDER BY p.charged_at, p.id`;

/** The /usage queries on PostgreSQL (the same figures as on SQLite, see ../sqlite/usage.ts). */
export class PostgresUsageStore implements UsageStore {
  constructor(private readonly pool: pg.Pool) {}

  async byModel(userId: string, guildId: string | null, window: PeriodWindow): Promise<ModelUsage[]> {
    const result = await this.pool.query<ModelUsage>(
      `SELECT ${USAGE_SUMS}
       FROM usage_ledger WHERE ${inWindow('charged_at', guildId === null)}
       GROUP BY model ORDER BY model`,
      [userId, guildId ?? '', window.startMs, window.endMs],
    );
    return result.rows;
  }

  /**
   * A view's reads, in one read-only snapshot (its figures agree with each other, as on SQLite) on one
   * connection. A member's figures come from their calls (their own covering index); a server's and the
   * bot's from the per-hour sums (../usage-by-hour.ts).
   */
  async overview(query: OverviewQuery): Promise<UsageOverview> {
    const { scope, window, bucketMs } = query;
    return this.inSnapshot(async (read) => {
      if (scope.kind === 'member') {
        // Grouped by the step number, whose distinct values PostgreSQL knows for a day's step from the
        // statistics object `usage_ledger_charge_day` (migrations/postgres/0002_reports.sql).
        const step = `charged_at / ${checkedChartStep(bucketMs)}`;
        const isDirectMessage = scope.guildId === null;
        const parameters = [scope.userId, scope.guildId ?? '', window.startMs, window.endMs];
        const buckets = await read<BucketUsage>(
          `SELECT ${step} * ${bucketMs} AS "startMs", ${USAGE_SUMS} FROM usage_ledger
           WHERE ${inWindow('charged_at', isDirectMessage)} GROUP BY ${step}, model`,
          parameters,
        );
        const routes = await read<AnswersByRoute>(
          `SELECT ${ROUTE_SUMS} FROM turns
           WHERE status = 'answered' AND ${inWindow('created_at', isDirectMessage)} GROUP BY 1`,
          parameters,
        );
        return { buckets, top: [], routes };
      }
      const { fromHour, toHour } = hoursOf(window);
      if (scope.kind === 'server') {
        const sums = serverSumsQueries((name) => SERVER_PARAMETERS[name], bucketMs);
        const parameters = [scope.guildId, fromHour, toHour];
        const buckets = await read<BucketUsage>(sums.buckets, parameters);
        const routes = await read<AnswersByRoute>(sums.routes, parameters);
        return { buckets, top: await topMembers(read, scope.guildId, query), routes };
      }
      // Every server (and DMs), grouped by server too for the biggest ones.
      const sums = botSumsQueries((name) => (name === 'fromHour' ? '$1' : '$2'), bucketMs);
      const rows = await read<BucketUsage & { guildId: string | null }>(sums.buckets, [fromHour, toHour]);
      const routes = await read<AnswersByRoute>(sums.routes, [fromHour, toHour]);
      const spentByServer = new Map<string | null, number>();
      const buckets = rows.map(({ guildId, ...bucket }) => {
        spentByServer.set(guildId, (spentByServer.get(guildId) ?? 0) + bucket.costMicros);
        return bucket;
      });
      return { buckets, top: rankSpenders(spentByServer, query.topCount), routes };
    });
  }

  private async inSnapshot<T>(work: (read: Read) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query(
        'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL max_parallel_workers_per_gather = 0',
      );
      const result = await work(async (sql, parameters) => (await client.query(sql, parameters)).rows);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** A server's calls, a page of EXPORT_PAGE_ROWS at a time, each page asked for when the last is consumed. */
  async *calls(query: CallsQuery): AsyncIterable<CallRecord> {
    let after = { chargedAt: query.window.startMs, id: -1 };
    for (;;) {
      const page = await this.rows<CallRecord & { id: number }>(CALLS_PAGE, [
        query.guildId,
        after.chargedAt,
        after.id,
        query.window.endMs,
      ]);
      for (const { id: _id, ...call } of page) yield call;
      const last = page.at(-1);
      if (!last || page.length < EXPORT_PAGE_ROWS) return;
      after = { chargedAt: last.chargedAt, id: last.id };
    }
  }

  private async rows<Row extends object>(sql: string, parameters: unknown[]): Promise<Row[]> {
    return (await this.pool.query<Row>(sql, parameters)).rows;
  }
}

/** Runs one statement of a view's snapshot. */
type Read = <Row extends object>(sql: string, parameters: unknown[]) => Promise<Row[]>;

/** A server's biggest spenders: the running totals for a period's current window, else the ledger. */
async function topMembers(read: Read, guildId: string, query: OverviewQuery): Promise<Spender[]> {
  if (query.topCount === 0) return [];
  if (query.period === 'all') {
    return read<Spender>(
      `SELECT user_id AS id, SUM(cost_micros) AS "spentMicros" FROM usage_ledger WHERE guild_id = $1
       GROUP BY user_id ORDER BY 2 DESC, user_id LIMIT $2`,
      [guildId, query.topCount],
    );
  }
  const column = PERIOD_COLUMNS[query.period];
  return read<Spender>(
    `SELECT user_key AS id, ${column}_spent_micros AS "spentMicros" FROM spend_counters
     WHERE kind = 'user' AND guild_key = $1 AND ${column}_start = $2 AND ${column}_spent_micros > 0
     ORDER BY 2 DESC, user_key LIMIT $3`,
    [guildId, query.window.startMs, query.topCount],
  );
}
