import {
  and,
  count,
  desc,
  eq,
  getTableColumns,
  inArray,
  lte,
  notInArray,
  or,
  type SQL,
  sql,
} from 'drizzle-orm';
import {
  type ApplicableLimit,
  applicableLimits,
  BUDGET_PERIODS,
  type Budget,
  type BudgetPeriod,
  type BudgetScope,
  findDenial,
  type LimitKind,
  type LimitStanding,
  type PeriodWindow,
  periodWindow,
} from '../core/budget.js';
import type { ReserveRequest, ReserveResult, SettleResult, UsageLedger } from '../core/ledger.js';
import type { Micros } from '../core/money.js';
import {
  costMicros,
  NO_USAGE,
  type PriceTable,
  type TokenUsage,
  worstCaseCostMicros,
} from '../core/pricing.js';
import { type AppDatabase, flushBeforeClose } from './database.js';
import { type ModelUsage, usageByModel } from './usage.js';
import { WriteBehind } from './write-behind.js';
import {
  budgetAudit,
  budgets,
  type CallOutcome,
  reservations,
  spendCounters,
  usageLedger,
} from './schema.js';

/** A reservation outlives any model call (whose deadline is a minute or so) by a wide margin. */
export const DEFAULT_RESERVATION_TTL_MS = 15 * 60_000;

export interface LedgerOptions {
  prices: PriceTable;
  /** The model a turn would have used alone: every row also records what its tokens would cost there. */
  smartModel: string;
  /** The budget of a user with none of their own and no server default. */
  defaultUserBudget: Budget;
  /** A cap on every server's total spend, unless the server has set its own. */
  defaultServerCap?: Budget | undefined;
  reservationTtlMs?: number;
  now?: () => number;
  pid?: number;
  /**
   * Hears of a settle that could not be written after the call that needed it (it is tried again with
   * the next one; until then its reservation holds the worst case). By default the error is thrown.
   */
  onWriteError?: (error: unknown) => void;
}

/** A reservation this process made and has not closed: what settling it needs, without reading its row. */
interface HeldReservation {
  userId: string;
  guildId: string | null;
  model: string;
  amountMicros: Micros;
  createdAt: number;
}

/** A settle whose cost is known and reported, waiting to be written. */
interface PendingSettle extends HeldReservation {
  requestId: string;
  usage: TokenUsage;
  costMicros: Micros;
}

export interface BudgetChange {
  guildId: string;
  scope: BudgetScope;
  /** The member, for scope 'user'. */
  userId?: string;
  changedBy: string;
}

export interface AuditEntry {
  scope: BudgetScope;
  userId: string;
  oldBudget: Budget | null;
  newBudget: Budget | null;
  changedBy: string;
  changedAt: number;
}

type CounterKey = { kind: 'user' | 'server'; guildKey: string; userKey: string };

interface CounterParameters {
  guildKey: string;
  userKey: string;
  dayStart: number;
  weekStart: number;
  monthStart: number;
  spent: Micros;
  reserved: Micros;
}

const placeholder = sql.placeholder;

/** The columns that say which call a row is about: a reservation and its ledger row share them. */
const CALL_COLUMNS = [
  ['request_id', 'requestId'],
  ['turn_id', 'turnId'],
  ['user_id', 'userId'],
  ['guild_id', 'guildId'],
  ['channel_id', 'channelId'],
  ['provider', 'provider'],
  ['model', 'model'],
  ['purpose', 'purpose'],
] as const;

/**
 * An INSERT with named parameters, for the hot path's wide rows: binding a dozen or more drizzle
 * placeholders costs more than running the statement. Keys are checked against the table's row type.
 */
function insertStatement<Row extends Record<string, unknown>>(
  db: AppDatabase,
  table: string,
  columns: readonly (readonly [column: string, key: keyof Row & string])[],
) {
  return db.$client.prepare<[Row]>(
    `INSERT INTO ${table} (${columns.map(([column]) => column).join(', ')})
     VALUES (${columns.map(([, key]) => `@${key}`).join(', ')})`,
  );
}

/**
 * The hot path's statements, prepared once: building and preparing a drizzle query costs more than
 * running it (about 700 µs against 50 µs for a reserve + settle), and reserve/settle run on every call.
 * The reads every reserve makes are plain SQL too: drizzle's row mapping took twice as long as the reads.
 */
function prepareStatements(db: AppDatabase) {
  // One upsert moves the money in the current day, week and month of the user and, in a server, of the
  // server. A window that has ended starts over; a delta for a window older than the row's is dropped (its
  // period is closed and the ledger row records it). SQLite evaluates every SET expression against the
  // row as it was, so the order of the assignments does not matter.
  // Written as SQL: drizzle's onConflictDoUpdate cannot express the window logic without raw SQL anyway.
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
    db.$client.prepare<CounterParameters>(
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
    counter: db.$client.prepare<[CounterKey], typeof spendCounters.$inferSelect>(
      `SELECT ${Object.entries(getTableColumns(spendCounters))
        .map(([key, column]) => `${column.name} AS ${key}`)
        .join(', ')}
       FROM spend_counters WHERE kind = @kind AND guild_key = @guildKey AND user_key = @userKey`,
    ),
    budgetsOfMember: db.$client.prepare<
      [{ guildId: string; userId: string }],
      Pick<typeof budgets.$inferSelect, 'scope' | 'amountMicros' | 'period'>
    >(
      `SELECT scope, amount_micros AS amountMicros, period FROM budgets
       WHERE guild_id = @guildId AND (user_id = @userId OR scope IN ('server-default', 'server-total'))`,
    ),
    insertReservation: insertStatement<typeof reservations.$inferInsert>(db, 'reservations', [
      ...CALL_COLUMNS,
      ['amount_micros', 'amountMicros'],
      ['created_at', 'createdAt'],
      ['expires_at', 'expiresAt'],
      ['holder_pid', 'holderPid'],
    ]),
    reservation: db
      .select()
      .from(reservations)
      .where(eq(reservations.requestId, placeholder('requestId')))
      .prepare(),
    deleteReservation: db
      .delete(reservations)
      .where(eq(reservations.requestId, placeholder('requestId')))
      .prepare(),
    ledgerRowOf: db
      .select({ id: usageLedger.id })
      .from(usageLedger)
      .where(eq(usageLedger.requestId, placeholder('requestId')))
      .prepare(),
    insertLedgerRow: insertStatement<typeof usageLedger.$inferInsert>(db, 'usage_ledger', [
      ...CALL_COLUMNS,
      ['outcome', 'outcome'],
      ['input_tokens', 'inputTokens'],
      ['cached_input_tokens', 'cachedInputTokens'],
      ['cache_write_tokens', 'cacheWriteTokens'],
      ['output_tokens', 'outputTokens'],
      ['cost_micros', 'costMicros'],
      ['smart_cost_micros', 'smartCostMicros'],
      ['reserved_micros', 'reservedMicros'],
      ['charged_at', 'chargedAt'],
      ['created_at', 'createdAt'],
    ]),
  };
}

/**
 * The money ledger: reserve before a model call, settle or release after. Every operation is one
 * BEGIN IMMEDIATE transaction, so it sees and changes the totals atomically even with several processes
 * on one database file. A reservation is granted only if spent + reserved + its amount fits every limit;
 * as long as a call costs no more than it reserved (callers reserve the worst case: conservative input
 * estimates and the max_tokens they send), settled spend cannot pass a budget, whatever the interleaving.
 * Settle still records the real cost when it is higher: the ledger never hides money that was spent.
 */
export class Ledger implements UsageLedger {
  private readonly now: () => number;
  private readonly pid: number;
  private readonly ttlMs: number;
  private readonly statements: ReturnType<typeof prepareStatements>;
  /** One better-sqlite3 transaction wrapper for every operation (drizzle builds a new one per call). */
  private readonly transaction: { immediate: <T>(work: () => T) => T };
  private readonly held = new Map<string, HeldReservation>();
  /**
   * Per limit, the share of its budget that was spent or held, this call included, at this process's
   * latest reserve: an upper bound on what its spending can have reached since (a call costs at most its
   * reservation), which spares the standings read after most turns.
   */
  private readonly shareBounds = new Map<string, number>();
  private readonly settles: WriteBehind<PendingSettle>;

  constructor(
    private readonly db: AppDatabase,
    private readonly options: LedgerOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.pid = options.pid ?? process.pid;
    this.ttlMs = options.reservationTtlMs ?? DEFAULT_RESERVATION_TTL_MS;
    this.priceOf(options.smartModel);
    this.statements = prepareStatements(db);
    const wrapper = db.$client.transaction((work: () => unknown) => work());
    this.transaction = { immediate: <T>(work: () => T) => wrapper.immediate(work) as T };
    this.settles = new WriteBehind(
      (settles) => {
        this.immediate(() => {
          for (const { requestId, usage } of settles) this.close(requestId, 'settled', usage);
        });
      },
      options.onWriteError ??
        ((error) => {
          throw error;
        }),
    );
    flushBeforeClose(db, () => this.flush());
  }

  /** The most a call can cost; throws for a model without a price (never charge $0). */
  worstCaseMicros(model: string, estimatedInputTokens: number, maxOutputTokens: number): Micros {
    return worstCaseCostMicros(this.priceOf(model), estimatedInputTokens, maxOutputTokens);
  }

  reserve(request: ReserveRequest): ReserveResult {
    this.priceOf(request.model);
    return this.immediate(() => {
      const { standings, atMs: createdAt } = this.standingsAt(request.userId, request.guildId, this.now());
      const denial = findDenial(standings, request.amountMicros);
      if (denial) return { ok: false, denial };
      for (const standing of standings) {
        const { amountMicros } = standing.budget;
        const committed = standing.spentMicros + standing.reservedMicros + request.amountMicros;
        this.shareBounds.set(
          boundKey(standing.kind, request.userId, request.guildId),
          amountMicros === 0 ? 1 : committed / amountMicros,
        );
      }
      this.statements.insertReservation.run({
        requestId: request.requestId,
        turnId: request.turnId,
        userId: request.userId,
        guildId: request.guildId,
        channelId: request.channelId,
        provider: request.provider,
        model: request.model,
        purpose: request.purpose,
        amountMicros: request.amountMicros,
        createdAt,
        expiresAt: createdAt + this.ttlMs,
        holderPid: this.pid,
      });
      this.addToCounters(request.userId, request.guildId, createdAt, {
        spent: 0,
        reserved: request.amountMicros,
      });
      this.held.set(request.requestId, {
        userId: request.userId,
        guildId: request.guildId,
        model: request.model,
        amountMicros: request.amountMicros,
        createdAt,
      });
      return { ok: true, requestId: request.requestId, amountMicros: request.amountMicros };
    });
  }

  /**
   * Records what the call really used and frees its reservation. Idempotent per request id.
   *
   * A reservation this process holds is settled write-behind: its cost is known at once and counts in
   * every later reserve and standing of this process, and the row is written after the current piece of
   * work (with other settles, in one transaction), so nobody waits for the commit. Until then other
   * processes see the reservation's worst case, which only errs on the safe side.
   */
  settle(requestId: string, usage: TokenUsage): SettleResult {
    const held = this.held.get(requestId);
    if (!held) {
      this.flush();
      return this.immediate(() => this.close(requestId, 'settled', usage));
    }
    this.held.delete(requestId);
    const cost = costMicros(usage, this.priceOf(held.model));
    if (cost > held.amountMicros) this.forgetBounds(held.userId, held.guildId);
    this.settles.add({ ...held, requestId, usage, costMicros: cost });
    return {
      status: 'settled',
      costMicros: cost,
      smartCostMicros: costMicros(usage, this.priceOf(this.options.smartModel)),
      reservedMicros: held.amountMicros,
    };
  }

  /** A member's usage over a window, per model (what /usage shows), with every settle written. */
  usageByModel(userId: string, guildId: string | null, window: PeriodWindow): ModelUsage[] {
    this.flush();
    return usageByModel(this.db, userId, guildId, window).all();
  }

  /** Writes the settles still waiting; call it before reading the ledger's tables directly. */
  flush(): void {
    this.settles.flush();
  }

  /**
   * Frees the reservation of a call that failed, charging only what the provider reported it used (a
   * stream cut mid-answer still bills its tokens), or nothing.
   */
  release(requestId: string, reportedUsage: TokenUsage = NO_USAGE): SettleResult {
    this.flush();
    return this.immediate(() => this.close(requestId, 'failed', reportedUsage));
  }

  /** Frees a reservation whose call never reached a provider (a circuit opened in between): no ledger row. */
  cancel(requestId: string): void {
    this.flush();
    this.immediate(() => {
      const reservation = this.statements.reservation.get({ requestId });
      if (!reservation) return;
      this.addToCounters(reservation.userId, reservation.guildId, reservation.createdAt, {
        spent: 0,
        reserved: -reservation.amountMicros,
      });
      this.statements.deleteReservation.run({ requestId });
    });
  }

  /**
   * Charges reservations that expired (held past the TTL) at their reserved amount: their call may well
   * have been billed, and the worst case is the only safe figure.
   */
  sweepExpired(): number {
    return this.sweep(lte(reservations.expiresAt, this.now()));
  }

  /**
   * At start-up: charges reservations whose process is gone (left open by a crash) or expired. Several
   * bot processes may share the file, so a live process's reservations are left alone.
   */
  sweepOrphans(isAlive: (pid: number) => boolean = isProcessAlive): number {
    this.flush();
    const held = this.db
      .selectDistinct({ pid: reservations.holderPid })
      .from(reservations)
      .all()
      .map((row) => row.pid);
    const deadPids = held.filter((pid) => pid !== this.pid && !isAlive(pid));
    // Held under this process's id but not by this ledger: left by an earlier process that had the same
    // id (a container's bot is often PID 1 on every start).
    const ours = [...this.held.keys()];
    const earlierSelf = and(
      eq(reservations.holderPid, this.pid),
      ours.length === 0 ? undefined : notInArray(reservations.requestId, ours),
    );
    return this.sweep(
      or(lte(reservations.expiresAt, this.now()), inArray(reservations.holderPid, deadPids), earlierSelf),
    );
  }

  /** The limits that apply to a user here and how each stands right now (for /usage and /budget show). */
  standings(userId: string, guildId: string | null): LimitStanding[] {
    return this.standingsAt(userId, guildId, this.now()).standings;
  }

  /**
   * Whether a member's (or their server's) spending may have reached `share` of its budget: false only
   * when this process's latest reserve for that limit, its call included, stayed below it. Other
   * processes' spending since is not counted, so the answer can come one call late, never wrong.
   */
  mayHaveReached(kind: LimitKind, userId: string, guildId: string | null, share: number): boolean {
    const bound = this.shareBounds.get(boundKey(kind, userId, guildId));
    return bound === undefined || bound >= share;
  }

  /** A call cost more than it reserved (its estimate fell short): the bounds no longer hold. */
  private forgetBounds(userId: string, guildId: string | null): void {
    this.shareBounds.delete(boundKey('user', userId, guildId));
    this.shareBounds.delete(boundKey('server', userId, guildId));
  }

  /** Sets a budget and audits the change; returns the budget it replaced. */
  setBudget(change: BudgetChange, budget: Budget): Budget | undefined {
    return this.immediate(() => this.writeBudget(change, budget));
  }

  /** Removes a budget (back to the default) and audits it; clearing an unset budget changes nothing. */
  clearBudget(change: BudgetChange): Budget | undefined {
    return this.immediate(() => this.writeBudget(change, null));
  }

  /** The budget stored for a scope, if any. */
  budgetOf(guildId: string, scope: BudgetScope, userId = ''): Budget | undefined {
    const row = this.db
      .select({ amountMicros: budgets.amountMicros, period: budgets.period })
      .from(budgets)
      .where(and(eq(budgets.guildId, guildId), eq(budgets.scope, scope), eq(budgets.userId, userId)))
      .get();
    return row ?? undefined;
  }

  auditLog(guildId: string, limit = 10): AuditEntry[] {
    return this.db
      .select()
      .from(budgetAudit)
      .where(eq(budgetAudit.guildId, guildId))
      .orderBy(desc(budgetAudit.changedAt), desc(budgetAudit.id))
      .limit(limit)
      .all()
      .map((row) => ({
        scope: row.scope,
        userId: row.userId,
        oldBudget: toBudget(row.oldAmountMicros, row.oldPeriod),
        newBudget: toBudget(row.newAmountMicros, row.newPeriod),
        changedBy: row.changedBy,
        changedAt: row.changedAt,
      }));
  }

  openReservationCount(): number {
    this.flush();
    return this.db.select({ open: count() }).from(reservations).get()?.open ?? 0;
  }

  private priceOf(model: string) {
    const price = this.options.prices.get(model);
    if (!price) throw new Error(`no price for model ${model}: refusing to run it unbilled`);
    return price;
  }

  private immediate<T>(work: () => T): T {
    return this.transaction.immediate(work);
  }

  private close(requestId: string, outcome: CallOutcome, usage: TokenUsage): SettleResult {
    this.held.delete(requestId);
    const reservation = this.statements.reservation.get({ requestId });
    if (!reservation) {
      return this.statements.ledgerRowOf.get({ requestId }) ? { status: 'duplicate' } : { status: 'unknown' };
    }
    const cost =
      outcome === 'swept' ? reservation.amountMicros : costMicros(usage, this.priceOf(reservation.model));
    const smartCost = outcome === 'swept' ? cost : costMicros(usage, this.priceOf(this.options.smartModel));
    this.statements.insertLedgerRow.run({
      requestId,
      turnId: reservation.turnId,
      userId: reservation.userId,
      guildId: reservation.guildId,
      channelId: reservation.channelId,
      provider: reservation.provider,
      model: reservation.model,
      purpose: reservation.purpose,
      outcome,
      ...usage,
      costMicros: cost,
      smartCostMicros: smartCost,
      reservedMicros: reservation.amountMicros,
      chargedAt: reservation.createdAt,
      createdAt: this.now(),
    });
    if (cost > reservation.amountMicros) this.forgetBounds(reservation.userId, reservation.guildId);
    this.addToCounters(reservation.userId, reservation.guildId, reservation.createdAt, {
      spent: cost,
      reserved: -reservation.amountMicros,
    });
    this.statements.deleteReservation.run({ requestId });
    return {
      status: 'settled',
      costMicros: cost,
      smartCostMicros: smartCost,
      reservedMicros: reservation.amountMicros,
    };
  }

  private sweep(which: SQL | undefined): number {
    this.flush();
    return this.immediate(() => {
      const stale = this.db
        .select({ requestId: reservations.requestId })
        .from(reservations)
        .where(which)
        .all();
      for (const { requestId } of stale) this.close(requestId, 'swept', NO_USAGE);
      return stale.length;
    });
  }

  /**
   * The standings at a moment that is never behind the newest window already counted: a process whose
   * clock lags (skew between processes, a clock stepped back at midnight) would otherwise read the
   * counters' newer window as empty and have its own charges dropped as belonging to an ended one.
   */
  private standingsAt(
    userId: string,
    guildId: string | null,
    clockMs: number,
  ): { standings: LimitStanding[]; atMs: number } {
    const limits = applicableLimits({
      ...this.budgetSettings(userId, guildId),
      isDirectMessage: guildId === null,
    });
    const rows = {
      user: this.statements.counter.get(counterKey('user', userId, guildId)),
      server:
        guildId === null ? undefined : this.statements.counter.get(counterKey('server', userId, guildId)),
    };
    const atMs = Math.max(clockMs, rows.user?.dayStart ?? 0, rows.server?.dayStart ?? 0);
    const standings = limits.map((limit) =>
      withPendingSettles(standingOf(limit, rows[limit.kind], atMs), this.settles.pending, userId, guildId),
    );
    return { standings, atMs };
  }

  private budgetSettings(userId: string, guildId: string | null) {
    const settings = {
      botDefault: this.options.defaultUserBudget,
      botServerCap: this.options.defaultServerCap,
      own: undefined as Budget | undefined,
      serverDefault: undefined as Budget | undefined,
      serverTotal: undefined as Budget | undefined,
    };
    if (guildId === null) return settings;
    const rows = this.statements.budgetsOfMember.all({ guildId, userId });
    for (const { scope, amountMicros, period } of rows) {
      const budget = { amountMicros, period };
      if (scope === 'user') settings.own = budget;
      else if (scope === 'server-default') settings.serverDefault = budget;
      else settings.serverTotal = budget;
    }
    return settings;
  }

  /** Moves money between "reserved" and "spent" in every window (day, week, month) the call falls in. */
  private addToCounters(
    userId: string,
    guildId: string | null,
    atMs: number,
    delta: { spent: Micros; reserved: Micros },
  ): void {
    const statement =
      guildId === null ? this.statements.addToUserCounters : this.statements.addToUserAndServerCounters;
    statement.run({
      guildKey: guildId ?? '',
      userKey: userId,
      dayStart: periodWindow('day', atMs).startMs,
      weekStart: periodWindow('week', atMs).startMs,
      monthStart: periodWindow('month', atMs).startMs,
      spent: delta.spent,
      reserved: delta.reserved,
    });
  }

  private writeBudget(change: BudgetChange, budget: Budget | null): Budget | undefined {
    const userId = change.scope === 'user' ? (change.userId ?? '') : '';
    if (change.scope === 'user' && userId === '') throw new Error('a user budget needs a user');
    const old = this.budgetOf(change.guildId, change.scope, userId);
    if (!old && !budget) return undefined;
    const changedAt = this.now();
    if (budget) {
      this.db
        .insert(budgets)
        .values({
          scope: change.scope,
          guildId: change.guildId,
          userId,
          ...budget,
          setBy: change.changedBy,
          setAt: changedAt,
        })
        .onConflictDoUpdate({
          target: [budgets.guildId, budgets.scope, budgets.userId],
          set: { ...budget, setBy: change.changedBy, setAt: changedAt },
        })
        .run();
    } else {
      this.db
        .delete(budgets)
        .where(
          and(
            eq(budgets.guildId, change.guildId),
            eq(budgets.scope, change.scope),
            eq(budgets.userId, userId),
          ),
        )
        .run();
    }
    this.db
      .insert(budgetAudit)
      .values({
        guildId: change.guildId,
        scope: change.scope,
        userId,
        oldAmountMicros: old?.amountMicros ?? null,
        oldPeriod: old?.period ?? null,
        newAmountMicros: budget?.amountMicros ?? null,
        newPeriod: budget?.period ?? null,
        changedBy: change.changedBy,
        changedAt,
      })
      .run();
    return old;
  }
}

function standingOf(
  limit: ApplicableLimit,
  row: typeof spendCounters.$inferSelect | undefined,
  atMs: number,
): LimitStanding {
  const window = periodWindow(limit.budget.period, atMs);
  const counted = row && windowTotals(row, limit.budget.period);
  // A row still holding an ended window counts as empty for the current one.
  const isCurrent = counted?.startMs === window.startMs;
  return {
    ...limit,
    window,
    spentMicros: isCurrent ? counted.spentMicros : 0,
    reservedMicros: isCurrent ? counted.reservedMicros : 0,
  };
}

/**
 * A standing as it will be once the settles waiting to be written are: each moves its call's cost into
 * spent and frees its reservation, in the window it was reserved in (as the counters will count it).
 */
function withPendingSettles(
  standing: LimitStanding,
  pending: readonly PendingSettle[],
  userId: string,
  guildId: string | null,
): LimitStanding {
  let { spentMicros, reservedMicros } = standing;
  for (const settle of pending) {
    const isCounted = settle.guildId === guildId && (standing.kind === 'server' || settle.userId === userId);
    const isInWindow =
      settle.createdAt >= standing.window.startMs && settle.createdAt < standing.window.endMs;
    if (!isCounted || !isInWindow) continue;
    spentMicros += settle.costMicros;
    reservedMicros -= settle.amountMicros;
  }
  return { ...standing, spentMicros, reservedMicros };
}

function windowTotals(row: typeof spendCounters.$inferSelect, period: BudgetPeriod) {
  switch (period) {
    case 'day':
      return {
        startMs: row.dayStart,
        spentMicros: row.daySpentMicros,
        reservedMicros: row.dayReservedMicros,
      };
    case 'week':
      return {
        startMs: row.weekStart,
        spentMicros: row.weekSpentMicros,
        reservedMicros: row.weekReservedMicros,
      };
    case 'month':
      return {
        startMs: row.monthStart,
        spentMicros: row.monthSpentMicros,
        reservedMicros: row.monthReservedMicros,
      };
  }
}

function boundKey(kind: LimitKind, userId: string, guildId: string | null): string {
  return kind === 'user' ? `user|${guildId ?? ''}|${userId}` : `server|${guildId ?? ''}`;
}

function counterKey(kind: 'user' | 'server', userId: string, guildId: string | null): CounterKey {
  return { kind, guildKey: guildId ?? '', userKey: kind === 'user' ? userId : '' };
}

function toBudget(amountMicros: number | null, period: Budget['period'] | null): Budget | null {
  return amountMicros === null || period === null ? null : { amountMicros, period };
}

/** Whether a process on this machine is still running (SQLite WAL files are only shared on one host). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
