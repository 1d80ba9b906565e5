import { and, count, desc, eq } from 'drizzle-orm';
import type pg from 'pg';
import {
  type AuditEntry,
  type Budget,
  BUDGET_PERIODS,
  type BudgetChange,
  type BudgetPeriod,
  type BudgetScope,
  subjectOf,
} from '../../core/budget.js';
import type { SettleResult } from '../../core/ledger.js';
import type { Micros } from '../../core/money.js';
import { counterKeys } from '../standings.js';
import type {
  BudgetRow,
  Charge,
  HeldSettle,
  CloseRequest,
  CounterOwner,
  CounterRow,
  LedgerStore,
  LimitCeiling,
  LimitSnapshot,
  ReservationRow,
  ReserveDecision,
  WindowStarts,
} from '../store.js';
import { inBatchedTransaction, inTransaction, POSTGRES_NOW_MS, type PgDatabase } from './database.js';
import { budgetAudit, budgets, reservations } from './schema.js';

type CounterKey = ReturnType<typeof counterKeys>[number];

const COUNTER_COLUMNS = `day_start AS "dayStart", day_spent_micros AS "daySpentMicros",
  day_reserved_micros AS "dayReservedMicros", week_start AS "weekStart", week_spent_micros AS "weekSpentMicros",
  week_reserved_micros AS "weekReservedMicros", month_start AS "monthStart",
  month_spent_micros AS "monthSpentMicros", month_reserved_micros AS "monthReservedMicros"`;

/** The budgets that may apply to a member, with the parameter numbers of its guild, user and roles. */
const budgetsOfMember = (guild: string, user: string, roles: string) => `SELECT scope,
    user_id AS "subjectId", amount_micros AS "amountMicros", period
  FROM budgets WHERE guild_id = ${guild}
    AND ((scope IN ('server-default', 'server-total') AND user_id = '')
      OR (scope = 'user' AND user_id = ${user})
      OR (scope = 'role' AND user_id = ANY(${roles}::text[])))`;

/** The same budgets as one string, to tell at a later reserve whether they are still the stored ones. */
const budgetsKeyOf = (guild: string, user: string, roles: string) => `(SELECT string_agg(
    b.scope || ':' || b."subjectId" || ':' || b."amountMicros" || ':' || b.period, ','
    ORDER BY b.scope COLLATE "C", b."subjectId" COLLATE "C")
  FROM (${budgetsOfMember(guild, user, roles)}) b)`;

/**
 * Locks (creating if missing) the counter rows of a reserve, in the order given (the server's before the
 * member's, always), and returns them with the budgets that may apply and whether the lease is fresh.
 * `DO UPDATE SET kind = c.kind` changes nothing but takes the row lock, which `DO NOTHING` would not; the
 * row comes back as it is after any transaction that held the lock committed (READ COMMITTED reads the
 * newest version of a conflicting row).
 */
const LOCK_COUNTERS = `WITH locked AS (
    INSERT INTO spend_counters AS c (kind, guild_key, user_key, day_start, day_spent_micros, day_reserved_micros,
      week_start, week_spent_micros, week_reserved_micros, month_start, month_spent_micros, month_reserved_micros)
    SELECT kind, guild_key, user_key, $4, 0, 0, $5, 0, 0, $6, 0, 0
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(kind, guild_key, user_key, position)
    ORDER BY position
    ON CONFLICT (kind, guild_key, user_key) DO UPDATE SET kind = c.kind
    RETURNING c.kind, ${COUNTER_COLUMNS}
  )
  SELECT (SELECT lease_expires_at > ${POSTGRES_NOW_MS} FROM instances WHERE id = $7) AS "isLeaseFresh",
    (SELECT json_agg(locked) FROM locked) AS counters,
    (SELECT json_agg(b) FROM (${budgetsOfMember('$8', '$9', '$10')}) b) AS budgets,
    ${budgetsKeyOf('$8', '$9', '$10')} AS "budgetsKey"`;

/**
 * Members' counters, budgets, and which of some reservations are open, read in one statement: $1–$4 the
 * counter keys, each with its member's position in $5–$7 (guild, user, roles as a JSON array); $8 the
 * reservations to tell open.
 */
const SNAPSHOTS = `WITH keys AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS k(member, kind, guild_key, user_key)
  ),
  members AS (
    SELECT * FROM unnest($5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS m(guild_id, user_id, roles, member)
  )
  SELECT
    (SELECT json_agg(c) FROM (SELECT kind, ${COUNTER_COLUMNS} FROM keys JOIN spend_counters USING (kind, guild_key, user_key)
      WHERE keys.member = m.member) c) AS counters,
    (SELECT json_agg(b) FROM (${budgetsOfMember('m.guild_id', 'm.user_id', 'ARRAY(SELECT json_array_elements_text(m.roles::json))')}) b) AS budgets,
    (SELECT array_agg(request_id) FROM reservations WHERE request_id = ANY($8::text[])) AS open
  FROM members m ORDER BY m.member`;

/**
 * Moves money in counter rows, one delta per row, in every window of its moment: a window that has
 * ended starts over; a delta for a window older than the row's is dropped (that period is closed, and the
 * ledger row records it). Every SET expression sees the row as it was.
 */
const windowUpdate = (period: BudgetPeriod) => `
  ${period}_spent_micros = CASE
    WHEN c.${period}_start = d.${period}_start THEN c.${period}_spent_micros + d.spent
    WHEN c.${period}_start < d.${period}_start THEN d.spent
    ELSE c.${period}_spent_micros END,
  ${period}_reserved_micros = CASE
    WHEN c.${period}_start = d.${period}_start THEN c.${period}_reserved_micros + d.reserved
    WHEN c.${period}_start < d.${period}_start THEN d.reserved
    ELSE c.${period}_reserved_micros END,
  ${period}_start = GREATEST(c.${period}_start, d.${period}_start)`;

const COUNTER_DELTAS = `unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
    $7::bigint[], $8::bigint[]) AS d(kind, guild_key, user_key, day_start, week_start, month_start, spent, reserved)`;

const UPDATE_COUNTERS = `UPDATE spend_counters AS c SET ${BUDGET_PERIODS.map(windowUpdate).join(',')}
  FROM ${COUNTER_DELTAS}
  WHERE c.kind = d.kind AND c.guild_key = d.guild_key AND c.user_key = d.user_key`;

/** A new reservation, and its amount added to reserved in the member's and the server's windows. */
const INSERT_RESERVATION = `WITH reservation AS (
    INSERT INTO reservations (request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose,
      amount_micros, created_at, expires_at, instance_id)
    VALUES ($9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
  )
  ${UPDATE_COUNTERS}`;

/**
 * The write behind's batch of settles in one statement (one round trip, in a batched transaction): each
 * reservation is removed, its ledger row written, and its money moved from reserved to spent in its
 * windows. Row locks are taken in the same order as every other close — the reservations first (the
 * DELETE), then the counter rows in the one global order (the `locked` subquery, which the counters'
 * UPDATE waits on) — so transactions queue instead of deadlocking. A reservation already gone (swept by
 * another process) is skipped: nothing is charged twice.
 */
const SETTLE_HELD = `WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
      $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
      AS i(request_id, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros,
           smart_cost_micros, day_start, week_start, month_start)
  ),
  taken AS (
    DELETE FROM reservations r USING input i WHERE r.request_id = i.request_id
    RETURNING r.request_id, r.turn_id, r.user_id, r.guild_id, r.channel_id, r.provider, r.model, r.purpose,
      r.amount_micros, r.created_at, i.input_tokens, i.cached_input_tokens, i.cache_write_tokens,
      i.output_tokens, i.cost_micros, i.smart_cost_micros, i.day_start, i.week_start, i.month_start
  ),
  written AS (
    INSERT INTO usage_ledger (request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose,
      outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros,
      smart_cost_micros, reserved_micros, charged_at, created_at)
    SELECT request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose, 'settled',
      input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros, smart_cost_micros,
      amount_micros, created_at, $11 FROM taken
  ),
  deltas AS (
    SELECT k.kind, COALESCE(t.guild_id, '') AS guild_key, k.user_key, t.day_start, t.week_start,
      t.month_start, SUM(t.cost_micros) AS spent, -SUM(t.amount_micros) AS reserved
    FROM taken t CROSS JOIN LATERAL (VALUES ('user', t.user_id), ('server', '')) AS k(kind, user_key)
    WHERE k.kind = 'user' OR t.guild_id IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6
  ),
  locked AS (
    SELECT 1 FROM spend_counters c
    WHERE (c.kind, c.guild_key, c.user_key) IN (SELECT kind, guild_key, user_key FROM deltas)
    ORDER BY c.kind, c.guild_key, c.user_key FOR UPDATE
  ),
  moved AS (
    UPDATE spend_counters AS c SET ${BUDGET_PERIODS.map(windowUpdate).join(',')}
    FROM deltas d
    WHERE c.kind = d.kind AND c.guild_key = d.guild_key AND c.user_key = d.user_key
      AND (SELECT count(*) FROM locked) >= 0
  )
  SELECT request_id AS "requestId" FROM taken`;

/** What a locked counter row `l` holds in a period's window that starts at `start`: NULL if it is in a later one. */
const usedIn = (period: BudgetPeriod, start: string) => `CASE
    WHEN l."${period}Start" = ${start} THEN l."${period}SpentMicros" + l."${period}ReservedMicros"
    WHEN l."${period}Start" < ${start} THEN 0 END`;

/**
 * A reserve in one statement, on budgets read at an earlier reserve (see LedgerStore.reserve's
 * `ceilingsOf`): the counter rows are locked in the one global order, and the reservation is written
 * and its amount added to every window's reserved total only if the lease is fresh, the budgets are
 * still the ones whose key is $11, every counter row exists and none is in a later day than $4 (the
 * process's clock: the rules would decide at the row's moment instead), and each limit's window ($12–$14:
 * kind, period, ceiling) holds no more than its ceiling. It returns the rows
 * as they were locked, so the rules can decide on them too. With BEGIN and COMMIT in its batch, the
 * rows stay locked for no round trip at all.
 */
const RESERVE_AT_ONCE = `WITH locked AS (
    SELECT kind, ${COUNTER_COLUMNS} FROM spend_counters
    WHERE (kind, guild_key, user_key) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
    ORDER BY kind, guild_key, user_key FOR UPDATE
  ),
  verdict AS (
    SELECT COALESCE((SELECT lease_expires_at > ${POSTGRES_NOW_MS} FROM instances WHERE id = $7), false)
        AS "isLeaseFresh",
      ${budgetsKeyOf('$8', '$9', '$10')} IS NOT DISTINCT FROM $11::text AS "isBudgetsSame",
      (SELECT count(*) FROM locked) = cardinality($1::text[])
      AND NOT EXISTS (SELECT 1 FROM locked WHERE "dayStart" > $4) AND NOT EXISTS (
        SELECT 1 FROM unnest($12::text[], $13::text[], $14::bigint[]) AS b(kind, period, ceiling)
        LEFT JOIN locked l ON l.kind = b.kind
        WHERE NOT COALESCE(CASE b.period
          WHEN 'day' THEN ${usedIn('day', '$4')}
          WHEN 'week' THEN ${usedIn('week', '$5')}
          WHEN 'month' THEN ${usedIn('month', '$6')} END <= b.ceiling, false)
      ) AS "isWithinCeilings"
  ),
  go AS (SELECT "isLeaseFresh" AND "isBudgetsSame" AND "isWithinCeilings" AS granted FROM verdict),
  reservation AS (
    INSERT INTO reservations (request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose,
      amount_micros, created_at, expires_at, instance_id)
    SELECT $16::text, $17::text, $18::text, $19::text, $20::text, $21::text, $22::text, $23::text,
      $15::bigint, $24::bigint, $25::bigint, $7::text
    FROM go WHERE granted
  ),
  moved AS (
    UPDATE spend_counters AS c SET ${BUDGET_PERIODS.map(windowUpdate).join(',')}
    FROM (SELECT k.*, $4::bigint AS day_start, $5::bigint AS week_start, $6::bigint AS month_start,
        0::bigint AS spent, $15::bigint AS reserved
      FROM unnest($1::text[], $2::text[], $3::text[]) AS k(kind, guild_key, user_key)) d
    WHERE c.kind = d.kind AND c.guild_key = d.guild_key AND c.user_key = d.user_key
      AND (SELECT granted FROM go)
  )
  SELECT v."isLeaseFresh", v."isBudgetsSame", g.granted, (SELECT json_agg(locked) FROM locked) AS counters
  FROM verdict v, go g`;

const RESERVATION_COLUMNS = `request_id AS "requestId", turn_id AS "turnId", user_id AS "userId",
  guild_id AS "guildId", channel_id AS "channelId", provider, model, purpose, amount_micros AS "amountMicros",
  created_at AS "createdAt", expires_at AS "expiresAt", instance_id AS "instanceId"`;

/** The counter rows a batch moves, locked in one global order before any is changed. */
const LOCK_ROWS = `SELECT 1 FROM spend_counters
  WHERE (kind, guild_key, user_key) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
  ORDER BY kind, guild_key, user_key FOR UPDATE`;

const INSERT_LEDGER_ROWS = `INSERT INTO usage_ledger (request_id, turn_id, user_id, guild_id, channel_id, provider,
    model, purpose, outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros,
    smart_cost_micros, reserved_micros, charged_at, created_at)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[],
    $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[])`;

type ReserveRequest = Parameters<LedgerStore['reserve']>[0];

/**
 * $1–$10 of both reserve statements: the counter keys ($1–$3), the windows a new row starts with
 * ($4–$6), the instance ($7), and the member the budgets are read for ($8–$10).
 */
function memberParameters({ owner, createWindows, instanceId }: ReserveRequest): unknown[] {
  const keys = counterKeys(owner);
  return [
    keys.map((key) => key.kind),
    keys.map((key) => key.guildKey),
    keys.map((key) => key.userKey),
    createWindows.day,
    createWindows.week,
    createWindows.month,
    instanceId,
    owner.guildId ?? '',
    owner.userId,
    owner.guildId === null ? [] : owner.roleIds,
  ];
}

/** Budgets a reserve read, and their key (budgetsKeyOf): null when there were none. */
interface BudgetsSeen {
  rows: BudgetRow[];
  key: string | null;
}

/** Members whose budgets are remembered: a few hundred bytes each. */
const MAX_BUDGETS_SEEN = 10_000;

function budgetsSeenKey(owner: CounterOwner): string {
  return `${owner.guildId ?? ''}|${owner.userId}|${owner.roleIds.join(',')}`;
}

/** The columns that say which call a reservation is for, in the reservations table's order. */
function callColumns(request: ReserveRequest): unknown[] {
  const { requestId, turnId, userId, guildId, channelId, provider, model, purpose } = request;
  return [requestId, turnId, userId, guildId, channelId, provider, model, purpose];
}

interface Delta extends CounterKey {
  windows: WindowStarts;
  spent: Micros;
  reserved: Micros;
}

/**
 * The ledger's tables on PostgreSQL, correct under READ COMMITTED with any number of processes on any
 * number of hosts: a reserve locks the counter rows it decides on (creating them if missing) in one fixed
 * order — the server's, then the member's — decides, and writes before the locks are let go; no
 * check-then-increment. Settles lock every row they move in the same global order, so transactions
 * queue on each other instead of deadlocking. Statements are named, so each connection parses them once.
 */
export class PostgresLedgerStore implements LedgerStore {
  /**
   * The budgets each member's latest reserve read, with their key, so that the next can be decided in the
   * database in one statement. The oldest are forgotten past MAX_BUDGETS_SEEN.
   */
  private readonly budgetsSeen = new Map<string, BudgetsSeen>();

  constructor(
    private readonly db: PgDatabase,
    private readonly pool: pg.Pool,
  ) {}

  /**
   * One round trip (RESERVE_AT_ONCE) when the member's budgets were read before and the caller gives
   * ceilings; two otherwise, or when that does not grant and the rules would: a counter row missing or in
   * a later window, or the budgets changed since.
   */
  async reserve<Denied>(
    request: ReserveRequest,
    stillOpen: readonly string[],
    decide: (snapshot: LimitSnapshot, openIds: ReadonlySet<string>) => ReserveDecision<Denied>,
  ): Promise<ReserveDecision<Denied> | { ok: false; lapsed: true }> {
    const seenKey = budgetsSeenKey(request.owner);
    const seen = this.budgetsSeen.get(seenKey);
    if (seen && request.ceilingsOf && stillOpen.length === 0) {
      const outcome = await this.reserveAtOnce(request, seen, request.ceilingsOf(seen.rows), decide);
      if (outcome) return outcome;
      this.budgetsSeen.delete(seenKey);
    }
    return this.reserveDeciding(request, stillOpen, decide, seenKey);
  }

  /** RESERVE_AT_ONCE: the outcome, or undefined when the rules must decide on what the database holds. */
  private async reserveAtOnce<Denied>(
    request: ReserveRequest,
    seen: BudgetsSeen,
    ceilings: readonly LimitCeiling[],
    decide: (snapshot: LimitSnapshot, openIds: ReadonlySet<string>) => ReserveDecision<Denied>,
  ): Promise<ReserveDecision<Denied> | { ok: false; lapsed: true } | undefined> {
    const { createWindows } = request;
    const result = await inBatchedTransaction(this.pool, (transaction) =>
      transaction.queryAndCommit<{
        isLeaseFresh: boolean;
        isBudgetsSame: boolean;
        granted: boolean;
        counters: (CounterRow & { kind: 'user' | 'server' })[] | null;
      }>({
        name: 'tierbot_reserve_at_once',
        text: RESERVE_AT_ONCE,
        values: [
          ...memberParameters(request),
          seen.key,
          ceilings.map((ceiling) => ceiling.kind),
          ceilings.map((ceiling) => ceiling.period),
          ceilings.map((ceiling) => ceiling.maxUsedMicros),
          request.amountMicros,
          ...callColumns(request),
          request.clockMs,
          request.clockMs + request.ttlMs,
        ],
      }),
    );
    const row = result.rows[0];
    if (!row?.isLeaseFresh) return { ok: false, lapsed: true };
    if (!row.isBudgetsSame) return undefined;
    const counters = row.counters ?? [];
    const decision = decide(
      {
        user: counters.find((counter) => counter.kind === 'user'),
        server: counters.find((counter) => counter.kind === 'server'),
        budgets: seen.rows,
      },
      new Set(),
    );
    if (row.granted) {
      // The same limits, rows and ceilings, at the same moment: the rules agree. Were they ever not to, the
      // reservation is taken back (it holds its amount until then, the safe side) and they decide anew.
      if (decision.ok && decision.atMs === request.clockMs) return decision;
      await this.cancel(request.requestId, () => createWindows);
      return undefined;
    }
    // Refused on the rows as locked a moment ago, the denial stands; a grant needs the rows written first.
    return decision.ok ? undefined : decision;
  }

  /** LOCK_COUNTERS, then the rules decide, then INSERT_RESERVATION: the rows stay locked for one round trip. */
  private async reserveDeciding<Denied>(
    request: ReserveRequest,
    stillOpen: readonly string[],
    decide: (snapshot: LimitSnapshot, openIds: ReadonlySet<string>) => ReserveDecision<Denied>,
    seenKey: string,
  ): Promise<ReserveDecision<Denied> | { ok: false; lapsed: true }> {
    const { owner } = request;
    const keys = counterKeys(owner);
    // BEGIN goes with the lock and COMMIT with the write.
    return inBatchedTransaction(this.pool, async (transaction) => {
      const locked = await transaction.query<{
        isLeaseFresh: boolean | null;
        counters: (CounterRow & { kind: 'user' | 'server' })[] | null;
        budgets: BudgetRow[] | null;
        budgetsKey: string | null;
      }>({
        name: 'tierbot_reserve_lock',
        text: LOCK_COUNTERS,
        values: [...memberParameters(request)],
      });
      const row = locked.rows[0];
      if (!row?.isLeaseFresh) return { ok: false as const, lapsed: true as const };
      const counters = row.counters ?? [];
      const snapshot: LimitSnapshot = {
        user: counters.find((counter) => counter.kind === 'user'),
        server: counters.find((counter) => counter.kind === 'server'),
        budgets: owner.guildId === null ? [] : (row.budgets ?? []),
      };
      this.rememberBudgets(seenKey, { rows: snapshot.budgets, key: row.budgetsKey });
      // Settles of this process that concern these rows and were written since it looked are in the rows
      // now; with the rows locked, no more can be written until this transaction ends.
      const openIds = new Set<string>();
      if (stillOpen.length > 0) {
        const open = await transaction.query<{ requestId: string }>({
          name: 'tierbot_reserve_open',
          text: 'SELECT request_id AS "requestId" FROM reservations WHERE request_id = ANY($1::text[])',
          values: [stillOpen],
        });
        for (const { requestId } of open.rows) openIds.add(requestId);
      }
      const decision = decide(snapshot, openIds);
      if (!decision.ok) return decision;
      await transaction.queryAndCommit({
        name: 'tierbot_reserve_write',
        text: INSERT_RESERVATION,
        values: [
          ...deltaColumns(
            keys.map((key) => ({
              ...key,
              windows: decision.windows,
              spent: 0,
              reserved: request.amountMicros,
            })),
          ),
          ...callColumns(request),
          request.amountMicros,
          decision.atMs,
          decision.atMs + request.ttlMs,
          request.instanceId,
        ],
      });
      return decision;
    });
  }

  private rememberBudgets(seenKey: string, seen: BudgetsSeen): void {
    this.budgetsSeen.delete(seenKey);
    if (this.budgetsSeen.size >= MAX_BUDGETS_SEEN) {
      const oldest = this.budgetsSeen.keys().next();
      if (!oldest.done) this.budgetsSeen.delete(oldest.value);
    }
    this.budgetsSeen.set(seenKey, seen);
  }

  async close(
    requests: readonly CloseRequest[],
    charge: (reservation: ReservationRow, request: CloseRequest) => Charge,
  ): Promise<SettleResult[]> {
    return inTransaction(this.pool, async (client) => {
      const taken = await client.query<ReservationRow>({
        name: 'tierbot_close_take',
        text: `DELETE FROM reservations WHERE request_id = ANY($1::text[]) RETURNING ${RESERVATION_COLUMNS}`,
        values: [requests.map((request) => request.requestId)],
      });
      const byId = new Map(taken.rows.map((row) => [row.requestId, row]));
      const missing = requests
        .filter((request) => !byId.has(request.requestId))
        .map((request) => request.requestId);
      const written = new Set<string>();
      if (missing.length > 0) {
        const rows = await client.query<{ requestId: string }>({
          name: 'tierbot_close_written',
          text: 'SELECT request_id AS "requestId" FROM usage_ledger WHERE request_id = ANY($1::text[])',
          values: [missing],
        });
        for (const { requestId } of rows.rows) written.add(requestId);
      }
      const now = Date.now();
      const results: SettleResult[] = [];
      const closed = new Set<string>();
      const ledgerRows: unknown[][] = [];
      const deltas: Delta[] = [];
      for (const request of requests) {
        const reservation = byId.get(request.requestId);
        if (!reservation) {
          const isWritten = written.has(request.requestId) || closed.has(request.requestId);
          results.push({ status: isWritten ? 'duplicate' : 'unknown' });
          continue;
        }
        // A request listed twice in one batch is closed once.
        byId.delete(request.requestId);
        closed.add(request.requestId);
        const { costMicros, smartCostMicros, windows } = charge(reservation, request);
        ledgerRows.push([
          reservation.requestId,
          reservation.turnId,
          reservation.userId,
          reservation.guildId,
          reservation.channelId,
          reservation.provider,
          reservation.model,
          reservation.purpose,
          request.outcome,
          request.usage.inputTokens,
          request.usage.cachedInputTokens,
          request.usage.cacheWriteTokens,
          request.usage.outputTokens,
          costMicros,
          smartCostMicros,
          reservation.amountMicros,
          reservation.createdAt,
          now,
        ]);
        for (const key of counterKeys(reservation)) {
          deltas.push({ ...key, windows, spent: costMicros, reserved: -reservation.amountMicros });
        }
        results.push({
          status: 'settled',
          costMicros,
          smartCostMicros,
          reservedMicros: reservation.amountMicros,
        });
      }
      if (ledgerRows.length > 0) {
        await this.moveCounters(client, deltas);
        await client.query({
          name: 'tierbot_close_ledger',
          text: INSERT_LEDGER_ROWS,
          values: columnsOf(ledgerRows, 18),
        });
      }
      return results;
    });
  }

  async settleHeld(settles: readonly HeldSettle[]): Promise<SettleResult[]> {
    // A counter row in two windows (settles from either side of midnight) would be one UPDATE's target
    // twice, which PostgreSQL applies once: such a batch is settled in parts, one window per row each.
    const parts = splitByWindows(settles);
    const settled = new Set<string>();
    for (const part of parts) {
      const result = await inBatchedTransaction(this.pool, (transaction) =>
        transaction.queryAndCommit<{ requestId: string }>({
          name: 'tierbot_settle_held',
          text: SETTLE_HELD,
          values: [
            part.map((settle) => settle.requestId),
            part.map((settle) => settle.usage.inputTokens),
            part.map((settle) => settle.usage.cachedInputTokens),
            part.map((settle) => settle.usage.cacheWriteTokens),
            part.map((settle) => settle.usage.outputTokens),
            part.map((settle) => settle.costMicros),
            part.map((settle) => settle.smartCostMicros),
            part.map((settle) => settle.windows.day),
            part.map((settle) => settle.windows.week),
            part.map((settle) => settle.windows.month),
            Date.now(),
          ],
        }),
      );
      for (const { requestId } of result.rows) settled.add(requestId);
    }
    return settles.map((settle): SettleResult =>
      settled.has(settle.requestId)
        ? {
            status: 'settled',
            costMicros: settle.costMicros,
            smartCostMicros: settle.smartCostMicros,
            reservedMicros: settle.amountMicros,
          }
        : // Swept meanwhile by another process, which charged its worst case.
          { status: 'duplicate' },
    );
  }

  async cancel(requestId: string, windowsOf: (createdAt: number) => WindowStarts): Promise<void> {
    await inTransaction(this.pool, async (client) => {
      const taken = await client.query<ReservationRow>({
        name: 'tierbot_close_take',
        text: `DELETE FROM reservations WHERE request_id = ANY($1::text[]) RETURNING ${RESERVATION_COLUMNS}`,
        values: [[requestId]],
      });
      const reservation = taken.rows[0];
      if (!reservation) return;
      const windows = windowsOf(reservation.createdAt);
      await this.moveCounters(
        client,
        counterKeys(reservation).map((key) => ({
          ...key,
          windows,
          spent: 0,
          reserved: -reservation.amountMicros,
        })),
      );
    });
  }

  async snapshots(
    owners: readonly CounterOwner[],
    stillOpen: readonly string[],
  ): Promise<{ snapshots: LimitSnapshot[]; openIds: Set<string> }> {
    if (owners.length === 0) return { snapshots: [], openIds: new Set() };
    const keys = owners.flatMap((owner, index) =>
      counterKeys(owner).map((key) => ({ ...key, member: index + 1 })),
    );
    // One statement, so one view of the database for every member.
    const result = await this.pool.query<{
      counters: (CounterRow & { kind: 'user' | 'server' })[] | null;
      budgets: BudgetRow[] | null;
      open: string[] | null;
    }>({
      name: 'tierbot_snapshots',
      text: SNAPSHOTS,
      values: [
        keys.map((key) => key.member),
        keys.map((key) => key.kind),
        keys.map((key) => key.guildKey),
        keys.map((key) => key.userKey),
        owners.map((owner) => owner.guildId ?? ''),
        owners.map((owner) => owner.userId),
        owners.map((owner) => JSON.stringify(owner.guildId === null ? [] : owner.roleIds)),
        stillOpen,
      ],
    });
    const snapshots = owners.map((owner, index): LimitSnapshot => {
      const row = result.rows[index];
      const counters = row?.counters ?? [];
      return {
        user: counters.find((counter) => counter.kind === 'user'),
        server: counters.find((counter) => counter.kind === 'server'),
        budgets: owner.guildId === null ? [] : (row?.budgets ?? []),
      };
    });
    return { snapshots, openIds: new Set(result.rows[0]?.open ?? []) };
  }

  async staleReservations(sweep: Parameters<LedgerStore['staleReservations']>[0]): Promise<string[]> {
    const result = await this.pool.query<{ requestId: string }>({
      name: 'tierbot_stale',
      text: `SELECT r.request_id AS "requestId" FROM reservations r
        WHERE r.expires_at <= $1
           OR (r.instance_id <> $2
               AND (r.instance_id = ANY($3::text[])
                    OR NOT EXISTS (SELECT 1 FROM instances i
                                   WHERE i.id = r.instance_id AND i.lease_expires_at > ${POSTGRES_NOW_MS})))`,
      values: [sweep.nowMs, sweep.ownInstanceId, sweep.deadInstanceIds],
    });
    return result.rows.map((row) => row.requestId);
  }

  async openReservationCount(): Promise<number> {
    const [row] = await this.db.select({ open: count() }).from(reservations);
    return row?.open ?? 0;
  }

  async writeBudget(change: BudgetChange, budget: Budget | null, atMs: number): Promise<Budget | undefined> {
    const subjectId = subjectOf(change);
    return this.db.transaction(async (tx) => {
      const where = and(
        eq(budgets.guildId, change.guildId),
        eq(budgets.scope, change.scope),
        eq(budgets.userId, subjectId),
      );
      const [old] = await tx
        .select({ amountMicros: budgets.amountMicros, period: budgets.period })
        .from(budgets)
        .where(where)
        .for('update');
      if (!old && !budget) return undefined;
      if (budget) {
        await tx
          .insert(budgets)
          .values({
            scope: change.scope,
            guildId: change.guildId,
            userId: subjectId,
            ...budget,
            setBy: change.changedBy,
            setAt: atMs,
          })
          .onConflictDoUpdate({
            target: [budgets.guildId, budgets.scope, budgets.userId],
            set: { ...budget, setBy: change.changedBy, setAt: atMs },
          });
      } else {
        await tx.delete(budgets).where(where);
      }
      await tx.insert(budgetAudit).values({
        guildId: change.guildId,
        scope: change.scope,
        userId: subjectId,
        oldAmountMicros: old?.amountMicros ?? null,
        oldPeriod: old?.period ?? null,
        newAmountMicros: budget?.amountMicros ?? null,
        newPeriod: budget?.period ?? null,
        changedBy: change.changedBy,
        changedAt: atMs,
      });
      return old;
    });
  }

  async budgetOf(guildId: string, scope: BudgetScope, subjectId: string): Promise<Budget | undefined> {
    const [row] = await this.db
      .select({ amountMicros: budgets.amountMicros, period: budgets.period })
      .from(budgets)
      .where(and(eq(budgets.guildId, guildId), eq(budgets.scope, scope), eq(budgets.userId, subjectId)));
    return row;
  }

  async roleBudgets(guildId: string): Promise<{ roleId: string; budget: Budget }[]> {
    const rows = await this.db
      .select({ roleId: budgets.userId, amountMicros: budgets.amountMicros, period: budgets.period })
      .from(budgets)
      .where(and(eq(budgets.guildId, guildId), eq(budgets.scope, 'role')));
    return rows.map(({ roleId, amountMicros, period }) => ({ roleId, budget: { amountMicros, period } }));
  }

  async auditLog(guildId: string, limit: number): Promise<AuditEntry[]> {
    const rows = await this.db
      .select()
      .from(budgetAudit)
      .where(eq(budgetAudit.guildId, guildId))
      .orderBy(desc(budgetAudit.changedAt), desc(budgetAudit.id))
      .limit(limit);
    return rows.map((row) => ({
      scope: row.scope,
      subjectId: row.userId,
      oldBudget: toBudget(row.oldAmountMicros, row.oldPeriod),
      newBudget: toBudget(row.newAmountMicros, row.newPeriod),
      changedBy: row.changedBy,
      changedAt: row.changedAt,
    }));
  }

  /**
   * Applies counter deltas: the rows are locked in one global order first, then moved by one statement
   * per group of deltas that touch each row at most once (deltas to one row in one window are summed).
   */
  private async moveCounters(client: pg.PoolClient, deltas: readonly Delta[]): Promise<void> {
    const summed = new Map<string, Delta>();
    for (const delta of deltas) {
      const key = `${delta.kind}|${delta.guildKey}|${delta.userKey}|${delta.windows.day}|${delta.windows.week}|${delta.windows.month}`;
      const sum = summed.get(key);
      if (sum) {
        sum.spent += delta.spent;
        sum.reserved += delta.reserved;
      } else summed.set(key, { ...delta });
    }
    const rows = [...summed.values()].sort(compareKeys);
    const distinct = rows.filter(
      (row, index) => index === 0 || compareKeys(rows[index - 1] as Delta, row) !== 0,
    );
    await client.query({
      name: 'tierbot_lock_rows',
      text: LOCK_ROWS,
      values: [
        distinct.map((row) => row.kind),
        distinct.map((row) => row.guildKey),
        distinct.map((row) => row.userKey),
      ],
    });
    // A row with deltas in two windows (a settle from last month beside this month's) takes two statements.
    for (let remaining = rows; remaining.length > 0;) {
      const seen = new Set<string>();
      const now: Delta[] = [];
      const later: Delta[] = [];
      for (const row of remaining) {
        const key = `${row.kind}|${row.guildKey}|${row.userKey}`;
        (seen.has(key) ? later : now).push(row);
        seen.add(key);
      }
      await client.query({ name: 'tierbot_move_counters', text: UPDATE_COUNTERS, values: deltaColumns(now) });
      remaining = later;
    }
  }
}

/** Splits settles so that no counter row sees two different windows within one part. */
function splitByWindows(settles: readonly HeldSettle[]): HeldSettle[][] {
  const parts: { settles: HeldSettle[]; windowsByRow: Map<string, string> }[] = [];
  for (const settle of settles) {
    const windows = `${settle.windows.day}|${settle.windows.week}|${settle.windows.month}`;
    const rows = counterKeys(settle).map((key) => `${key.kind}|${key.guildKey}|${key.userKey}`);
    const part = parts.find(({ windowsByRow }) =>
      rows.every((row) => (windowsByRow.get(row) ?? windows) === windows),
    );
    const target = part ?? { settles: [], windowsByRow: new Map<string, string>() };
    if (!part) parts.push(target);
    target.settles.push(settle);
    for (const row of rows) target.windowsByRow.set(row, windows);
  }
  return parts.map((part) => part.settles);
}

function deltaColumns(deltas: readonly Delta[]): unknown[] {
  return [
    deltas.map((delta) => delta.kind),
    deltas.map((delta) => delta.guildKey),
    deltas.map((delta) => delta.userKey),
    deltas.map((delta) => delta.windows.day),
    deltas.map((delta) => delta.windows.week),
    deltas.map((delta) => delta.windows.month),
    deltas.map((delta) => delta.spent),
    deltas.map((delta) => delta.reserved),
  ];
}

/** Rows as column arrays, for INSERT … SELECT * FROM unnest(…): one statement whatever the batch. */
function columnsOf(rows: readonly unknown[][], width: number): unknown[][] {
  return Array.from({ length: width }, (_, column) => rows.map((row) => row[column]));
}

function compareKeys(a: CounterKey, b: CounterKey): number {
  return (
    a.kind.localeCompare(b.kind) || a.guildKey.localeCompare(b.guildKey) || a.userKey.localeCompare(b.userKey)
  );
}

function toBudget(amountMicros: number | null, period: BudgetPeriod | null): Budget | null {
  return amountMicros === null || period === null ? null : { amountMicros, period };
}
