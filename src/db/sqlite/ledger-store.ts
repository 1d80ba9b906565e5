import { and, count, desc, eq } from 'drizzle-orm';
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
import type {
  BudgetRow,
  Charge,
  CloseRequest,
  CounterDelta,
  CounterOwner,
  CounterRow,
  LedgerStore,
  LimitSnapshot,
  ReservationRow,
  ReserveDecision,
  WindowStarts,
} from '../store.js';
import { type AppDatabase, immediate } from './database.js';
import { budgetAudit, budgets, reservations } from './schema.js';

/** SQLite's clock in ms (the host's: SQLite files are shared on one host only). */
export const SQLITE_NOW_MS = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

interface CounterParameters {
  guildKey: string;
  userKey: string;
  dayStart: number;
  weekStart: number;
  monthStart: number;
  spent: Micros;
  reserved: Micros;
}

const COUNTER_COLUMNS = `day_start AS dayStart, day_spent_micros AS daySpentMicros, day_reserved_micros AS dayReservedMicros,
  week_start AS weekStart, week_spent_micros AS weekSpentMicros, week_reserved_micros AS weekReservedMicros,
  month_start AS monthStart, month_spent_micros AS monthSpentMicros, month_reserved_micros AS monthReservedMicros`;

/** The columns that say which call a row is about: a reservation and its ledger row share them. */
const CALL_COLUMNS =
  'request_id AS requestId, turn_id AS turnId, user_id AS userId, guild_id AS guildId, channel_id AS channelId, provider, model, purpose';

/**
 * The hot path's statements, prepared once: building and preparing a drizzle query costs more than
 * running it (about 700 µs against 50 µs for a reserve + settle), and reserve/settle run on every call.
 * drizzle's row mapping took twice as long as the reads, so they are plain SQL too.
 */
function prepareStatements(db: AppDatabase) {
  const sqlite = db.$client;
  // One upsert moves the money in the current day, week and month of the user and, in a server, of the
  // server. A window that has ended starts over; a delta for a window older than the row's is dropped (its
  // period is closed and the ledger row records it). SQLite evaluates every SET expression against the
  // row as it was, so the order of the assignments does not matter.
  const windowUpdate = (period: BudgetPeriod) => `
      ${period}_spent_micros = CASE
        WHEN ${period}_start = excluded.${period}_start THEN ${period}_spent_micros + excluded.${period}_spent_micros
        WHEN ${period}_start < excluded.${period}_start THEN excluded.${period}_spent_micros
        ELSE ${period}_spent_micros END,
      ${period}_reserved_micros = CASE
        WHEN ${period}_start = excluded.${period}_start THEN ${period}_reserved_micros + excluded.${period}_reserved_micros
        WHEN ${period}_start < excluded.${period}_start THEN excluded.${period}_reserved_micros
        ELSE ${period}_reserved_micros END,
      ${period}_start = MAX(${period}_start, excluded.${period}_start)`;
  const addToCounters = (kinds: readonly ('user' | 'server')[]) =>
    sqlite.prepare<CounterParameters>(
      `INSERT INTO spend_counters (kind, guild_key, user_key,
         day_start, day_spent_micros, day_reserved_micros,
         week_start, week_spent_micros, week_reserved_micros,
         month_start, month_spent_micros, month_reserved_micros)
       VALUES ${kinds
         .map(
           (kind) =>
             `('${kind}', @guildKey, ${kind === 'user' ? '@userKey' : "''"}, ` +
             BUDGET_PERIODS.map((period) => `@${period}Start, @spent, @reserved`).join(', ') +
             ')',
         )
         .join(', ')}
       ON CONFLICT DO UPDATE SET ${BUDGET_PERIODS.map(windowUpdate).join(',')}`,
    );
  return {
    addToUserCounters: addToCounters(['user']),
    addToUserAndServerCounters: addToCounters(['user', 'server']),
    counter: sqlite.prepare<[{ kind: string; guildKey: string; userKey: string }], CounterRow>(
      `SELECT ${COUNTER_COLUMNS} FROM spend_counters WHERE kind = @kind AND guild_key = @guildKey AND user_key = @userKey`,
    ),
    // A member's row and their server's, in one read (server first: 'server' < 'user').
    memberAndServerCounters: sqlite.prepare<
      [{ guildKey: string; userKey: string }],
      CounterRow & { kind: 'user' | 'server' }
    >(
      `SELECT kind, ${COUNTER_COLUMNS} FROM spend_counters
       WHERE (kind = 'server' AND guild_key = @guildKey AND user_key = '')
          OR (kind = 'user' AND guild_key = @guildKey AND user_key = @userKey)`,
    ),
    // Point reads on (guild_id, scope, user_id): the member's own budget and the server's; with roles, the
    // roles' too (most members have no budgeted role to look for, and most messages no roles at all).
    budgetsOfMember: sqlite.prepare<[{ guildId: string; userId: string }], BudgetRow>(
      `SELECT scope, user_id AS subjectId, amount_micros AS amountMicros, period FROM budgets
       WHERE guild_id = @guildId AND scope IN ('server-default', 'server-total') AND user_id = ''
       UNION ALL
       SELECT scope, user_id, amount_micros, period FROM budgets
       WHERE guild_id = @guildId AND scope = 'user' AND user_id = @userId`,
    ),
    budgetsOfMemberWithRoles: sqlite.prepare<
      [{ guildId: string; userId: string; roleIds: string }],
      BudgetRow
    >(
      `SELECT scope, user_id AS subjectId, amount_micros AS amountMicros, period FROM budgets
       WHERE guild_id = @guildId AND scope IN ('server-default', 'server-total') AND user_id = ''
       UNION ALL
       SELECT scope, user_id, amount_micros, period FROM budgets
       WHERE guild_id = @guildId AND scope = 'user' AND user_id = @userId
       UNION ALL
       SELECT scope, user_id, amount_micros, period FROM budgets
       WHERE guild_id = @guildId AND scope = 'role' AND user_id IN (SELECT value FROM json_each(@roleIds))`,
    ),
    isLeaseFresh: sqlite
      .prepare<[{ id: string }], number>(
        `SELECT lease_expires_at > ${SQLITE_NOW_MS} FROM instances WHERE id = @id`,
      )
      .pluck(),
    openOf: sqlite
      .prepare<[{ ids: string }], string>(
        'SELECT request_id FROM reservations WHERE request_id IN (SELECT value FROM json_each(@ids))',
      )
      .pluck(),
    insertReservation: sqlite.prepare<[ReservationRow]>(
      `INSERT INTO reservations (request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose,
         amount_micros, created_at, expires_at, instance_id)
       VALUES (@requestId, @turnId, @userId, @guildId, @channelId, @provider, @model, @purpose,
         @amountMicros, @createdAt, @expiresAt, @instanceId)`,
    ),
    takeReservation: sqlite.prepare<[{ requestId: string }], ReservationRow>(
      `DELETE FROM reservations WHERE request_id = @requestId
       RETURNING ${CALL_COLUMNS}, amount_micros AS amountMicros, created_at AS createdAt,
         expires_at AS expiresAt, instance_id AS instanceId`,
    ),
    hasLedgerRow: sqlite
      .prepare<[{ requestId: string }], number>('SELECT 1 FROM usage_ledger WHERE request_id = @requestId')
      .pluck(),
    insertLedgerRow: sqlite.prepare<[Record<string, unknown>]>(
      `INSERT INTO usage_ledger (request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose,
         outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros,
         smart_cost_micros, reserved_micros, charged_at, created_at)
       VALUES (@requestId, @turnId, @userId, @guildId, @channelId, @provider, @model, @purpose,
         @outcome, @inputTokens, @cachedInputTokens, @cacheWriteTokens, @outputTokens, @costMicros,
         @smartCostMicros, @reservedMicros, @chargedAt, @createdAt)`,
    ),
    staleReservations: sqlite
      .prepare<[{ nowMs: number; own: string; dead: string }], string>(
        `SELECT request_id FROM reservations
         WHERE expires_at <= @nowMs
            OR (instance_id <> @own
                AND (instance_id NOT IN (SELECT id FROM instances WHERE lease_expires_at > ${SQLITE_NOW_MS})
                     OR instance_id IN (SELECT value FROM json_each(@dead))))`,
      )
      .pluck(),
  };
}

/**
 * The ledger's tables on SQLite. Every operation is one BEGIN IMMEDIATE transaction: SQLite has one
 * writer at a time, so taking the write lock first makes a reserve's reads and writes atomic across
 * every process sharing the file (the "lock the counter rows" of the rules is the database lock here).
 */
export class SqliteLedgerStore implements LedgerStore {
  private readonly statements: ReturnType<typeof prepareStatements>;

  constructor(private readonly db: AppDatabase) {
    this.statements = prepareStatements(db);
  }

  async reserve<Denied>(
    request: Parameters<LedgerStore['reserve']>[0],
    stillOpen: readonly string[],
    decide: (snapshot: LimitSnapshot, openIds: ReadonlySet<string>) => ReserveDecision<Denied>,
  ): Promise<ReserveDecision<Denied> | { ok: false; lapsed: true }> {
    return immediate(this.db, () => {
      if (request.checkLease && this.statements.isLeaseFresh.get({ id: request.instanceId }) !== 1) {
        return { ok: false as const, lapsed: true as const };
      }
      const snapshot = this.read(request.owner);
      const openIds = this.openOf(stillOpen);
      const decision = decide(snapshot, openIds);
      if (!decision.ok) return decision;
      // SQLite decides in this process anyway: the clock and ceilings are the PostgreSQL store's.
      const {
        owner,
        ttlMs,
        checkLease: _checkLease,
        clockMs: _clockMs,
        createWindows: _createWindows,
        ceilingsOf: _ceilingsOf,
        ...row
      } = request;
      this.statements.insertReservation.run({
        ...row,
        createdAt: decision.atMs,
        expiresAt: decision.atMs + ttlMs,
      });
      this.addToCounters({
        owner,
        windows: decision.windows,
        spentMicros: 0,
        reservedMicros: request.amountMicros,
      });
      return decision;
    });
  }

  async close(
    requests: readonly CloseRequest[],
    charge: (reservation: ReservationRow, request: CloseRequest) => Charge,
  ): Promise<SettleResult[]> {
    return immediate(this.db, () => requests.map((request) => this.closeOne(request, charge)));
  }

  private closeOne(
    request: CloseRequest,
    charge: (reservation: ReservationRow, request: CloseRequest) => Charge,
  ): SettleResult {
    const { requestId } = request;
    const reservation = this.statements.takeReservation.get({ requestId });
    if (!reservation) {
      return this.statements.hasLedgerRow.get({ requestId })
        ? { status: 'duplicate' }
        : { status: 'unknown' };
    }
    const { costMicros, smartCostMicros, windows } = charge(reservation, request);
    this.statements.insertLedgerRow.run({
      requestId,
      turnId: reservation.turnId,
      userId: reservation.userId,
      guildId: reservation.guildId,
      channelId: reservation.channelId,
      provider: reservation.provider,
      model: reservation.model,
      purpose: reservation.purpose,
      outcome: request.outcome,
      ...request.usage,
      costMicros,
      smartCostMicros,
      reservedMicros: reservation.amountMicros,
      chargedAt: reservation.createdAt,
      createdAt: Date.now(),
    });
    this.addToCounters({
      owner: reservation,
      windows,
      spentMicros: costMicros,
      reservedMicros: -reservation.amountMicros,
    });
    return { status: 'settled', costMicros, smartCostMicros, reservedMicros: reservation.amountMicros };
  }

  async cancel(requestId: string, windowsOf: (createdAt: number) => WindowStarts): Promise<void> {
    immediate(this.db, () => {
      const reservation = this.statements.takeReservation.get({ requestId });
      if (!reservation) return;
      this.addToCounters({
        owner: reservation,
        windows: windowsOf(reservation.createdAt),
        spentMicros: 0,
        reservedMicros: -reservation.amountMicros,
      });
    });
  }

  async snapshots(
    owners: readonly CounterOwner[],
    stillOpen: readonly string[],
  ): Promise<{ snapshots: LimitSnapshot[]; openIds: Set<string> }> {
    // Synchronous reads: nothing is written between them.
    return { snapshots: owners.map((owner) => this.read(owner)), openIds: this.openOf(stillOpen) };
  }

  private openOf(ids: readonly string[]): Set<string> {
    return new Set(ids.length === 0 ? [] : this.statements.openOf.all({ ids: JSON.stringify(ids) }));
  }

  async staleReservations(sweep: Parameters<LedgerStore['staleReservations']>[0]): Promise<string[]> {
    return this.statements.staleReservations.all({
      nowMs: sweep.nowMs,
      own: sweep.ownInstanceId,
      dead: JSON.stringify(sweep.deadInstanceIds),
    });
  }

  async openReservationCount(): Promise<number> {
    return this.db.select({ open: count() }).from(reservations).get()?.open ?? 0;
  }

  async writeBudget(change: BudgetChange, budget: Budget | null, atMs: number): Promise<Budget | undefined> {
    const subjectId = subjectOf(change);
    return immediate(this.db, () => {
      const old = this.budgetRow(change.guildId, change.scope, subjectId);
      if (!old && !budget) return undefined;
      if (budget) {
        this.db
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
          })
          .run();
      } else {
        this.db
          .delete(budgets)
          .where(
            and(
              eq(budgets.guildId, change.guildId),
              eq(budgets.scope, change.scope),
              eq(budgets.userId, subjectId),
            ),
          )
          .run();
      }
      this.db
        .insert(budgetAudit)
        .values({
          guildId: change.guildId,
          scope: change.scope,
          userId: subjectId,
          oldAmountMicros: old?.amountMicros ?? null,
          oldPeriod: old?.period ?? null,
          newAmountMicros: budget?.amountMicros ?? null,
          newPeriod: budget?.period ?? null,
          changedBy: change.changedBy,
          changedAt: atMs,
        })
        .run();
      return old;
    });
  }

  async budgetOf(guildId: string, scope: BudgetScope, subjectId: string): Promise<Budget | undefined> {
    return this.budgetRow(guildId, scope, subjectId);
  }

  async roleBudgets(guildId: string): Promise<{ roleId: string; budget: Budget }[]> {
    return this.db
      .select({ roleId: budgets.userId, amountMicros: budgets.amountMicros, period: budgets.period })
      .from(budgets)
      .where(and(eq(budgets.guildId, guildId), eq(budgets.scope, 'role')))
      .all()
      .map(({ roleId, amountMicros, period }) => ({ roleId, budget: { amountMicros, period } }));
  }

  async auditLog(guildId: string, limit: number): Promise<AuditEntry[]> {
    return this.db
      .select()
      .from(budgetAudit)
      .where(eq(budgetAudit.guildId, guildId))
      .orderBy(desc(budgetAudit.changedAt), desc(budgetAudit.id))
      .limit(limit)
      .all()
      .map((row) => ({
        scope: row.scope,
        subjectId: row.userId,
        oldBudget: toBudget(row.oldAmountMicros, row.oldPeriod),
        newBudget: toBudget(row.newAmountMicros, row.newPeriod),
        changedBy: row.changedBy,
        changedAt: row.changedAt,
      }));
  }

  private budgetRow(guildId: string, scope: BudgetScope, subjectId: string): Budget | undefined {
    return (
      this.db
        .select({ amountMicros: budgets.amountMicros, period: budgets.period })
        .from(budgets)
        .where(and(eq(budgets.guildId, guildId), eq(budgets.scope, scope), eq(budgets.userId, subjectId)))
        .get() ?? undefined
    );
  }

  private read(owner: CounterOwner): LimitSnapshot {
    const { guildId, userId, roleIds } = owner;
    if (guildId === null) {
      return {
        user: this.statements.counter.get({ kind: 'user', guildKey: '', userKey: userId }),
        server: undefined,
        budgets: [],
      };
    }
    let user: CounterRow | undefined;
    let server: CounterRow | undefined;
    for (const row of this.statements.memberAndServerCounters.all({ guildKey: guildId, userKey: userId })) {
      if (row.kind === 'user') user = row;
      else server = row;
    }
    const budgets =
      roleIds.length === 0
        ? this.statements.budgetsOfMember.all({ guildId, userId })
        : this.statements.budgetsOfMemberWithRoles.all({ guildId, userId, roleIds: JSON.stringify(roleIds) });
    return { user, server, budgets };
  }

  /** Moves money between "reserved" and "spent" in every window (day, week, month) of one moment. */
  private addToCounters({ owner, windows, spentMicros, reservedMicros }: CounterDelta): void {
    const statement =
      owner.guildId === null ? this.statements.addToUserCounters : this.statements.addToUserAndServerCounters;
    statement.run({
      guildKey: owner.guildId ?? '',
      userKey: owner.userId,
      dayStart: windows.day,
      weekStart: windows.week,
      monthStart: windows.month,
      spent: spentMicros,
      reserved: reservedMicros,
    });
  }
}

function toBudget(amountMicros: number | null, period: BudgetPeriod | null): Budget | null {
  return amountMicros === null || period === null ? null : { amountMicros, period };
}
