import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUDGET_PERIODS,
  BUDGET_SCOPES,
  type Budget,
  type BudgetPeriod,
  type BudgetScope,
  type LimitSource,
  type LimitStanding,
  periodWindow,
} from '../../src/core/budget.js';
import type { SettleResult } from '../../src/core/ledger.js';
import { costMicros, type ModelPrice, NO_USAGE, type TokenUsage } from '../../src/core/pricing.js';
import type { AppDatabase } from '../../src/db/database.js';
import type { Ledger } from '../../src/db/ledger.js';
import {
  callRequest,
  createLedger,
  defaultPrices,
  FAST_MODEL,
  temporaryDatabase,
} from '../support/ledger.js';

const GUILD_ID = 'guild-1';
const USER_IDS = ['user-1', 'user-2', 'user-3'] as const;
const ADMIN_ID = 'admin-1';

/** Enough runs and steps to reach every edge many times, few enough to stay well under 20 s. */
const NUM_RUNS = 150;
const MAX_STEPS = 50;

/**
 * Reservations go up to 20,000 input and 4,000 output tokens of GPT-4o Mini: a worst case of at most
 * 5,400 micros, against budgets of up to 25,000 micros, so a handful of calls fill a budget.
 */
const MAX_INPUT_TOKENS = 20_000;
const MAX_OUTPUT_TOKENS = 4_000;
const MAX_BUDGET_MICROS = 25_000;
/**
 * A typical call (2,000 input and 500 output tokens, a 600 micro worst case) and budgets in whole
 * multiples of it come up often, so reservations land exactly on a limit, not only near it.
 */
const TYPICAL_INPUT_TOKENS = 2_000;
const TYPICAL_OUTPUT_TOKENS = 500;
const TYPICAL_WORST_CASE_MICROS = 600;
/** A rollover lands up to six hours into the next window, not always on its first millisecond. */
const MAX_ROLLOVER_OFFSET_MS = 6 * 3_600_000;
const EARLIEST_START_MS = Date.UTC(2024, 0, 1);
const LATEST_START_MS = Date.UTC(2027, 0, 1);
/** Far below what NUM_RUNS runs reach (tens to hundreds of each kind), so it never flakes, but not zero. */
const MIN_LATE_CLOSES = 5;

/** The share (in percent) of a reservation's tokens a call really used, so its cost never exceeds it. */
interface UsageShares {
  input: number;
  cachedInput: number;
  output: number;
}

type Step =
  | { kind: 'reserve'; user: number; inputTokens: number; outputTokens: number }
  | { kind: 'settle'; pick: number; usage: UsageShares }
  | { kind: 'release'; pick: number; usage: UsageShares | null }
  | { kind: 'replay'; pick: number; as: 'settle' | 'release' }
  | { kind: 'set-budget'; scope: BudgetScope; user: number; budget: Budget }
  | { kind: 'clear-budget'; scope: BudgetScope; user: number }
  | { kind: 'rollover'; period: BudgetPeriod; offsetMs: number };

interface Scenario {
  startMs: number;
  botDefault: Budget;
  botServerCap: Budget | undefined;
  steps: Step[];
}

const userArbitrary = fc.nat({ max: USER_IDS.length - 1 });
const periodArbitrary = fc.constantFrom(...BUDGET_PERIODS);
const budgetArbitrary: fc.Arbitrary<Budget> = fc.record({
  amountMicros: fc.oneof(
    fc.nat({ max: MAX_BUDGET_MICROS }),
    fc.nat({ max: 20 }).map((calls) => calls * TYPICAL_WORST_CASE_MICROS),
  ),
  period: periodArbitrary,
});
const callSizeArbitrary = fc.oneof(
  fc.record({
    inputTokens: fc.nat({ max: MAX_INPUT_TOKENS }),
    outputTokens: fc.nat({ max: MAX_OUTPUT_TOKENS }),
  }),
  fc.constant({ inputTokens: TYPICAL_INPUT_TOKENS, outputTokens: TYPICAL_OUTPUT_TOKENS }),
);
const shareArbitrary = fc.nat({ max: 100 });
const usageSharesArbitrary: fc.Arbitrary<UsageShares> = fc.record({
  input: shareArbitrary,
  cachedInput: shareArbitrary,
  output: shareArbitrary,
});

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({ user: userArbitrary, size: callSizeArbitrary })
      .map(({ user, size }) => ({ kind: 'reserve' as const, user, ...size })),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      pick: fc.nat(),
      usage: usageSharesArbitrary,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('release' as const),
      pick: fc.nat(),
      usage: fc.option(usageSharesArbitrary, { nil: null }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('replay' as const),
      pick: fc.nat(),
      as: fc.constantFrom('settle' as const, 'release' as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('set-budget' as const),
      scope: fc.constantFrom(...BUDGET_SCOPES),
      user: userArbitrary,
      budget: budgetArbitrary,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('clear-budget' as const),
      scope: fc.constantFrom(...BUDGET_SCOPES),
      user: userArbitrary,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('rollover' as const),
      period: periodArbitrary,
      offsetMs: fc.nat({ max: MAX_ROLLOVER_OFFSET_MS }),
    }),
  },
);

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  startMs: fc.integer({ min: EARLIEST_START_MS, max: LATEST_START_MS }),
  botDefault: budgetArbitrary,
  botServerCap: fc.option(budgetArbitrary, { nil: undefined }),
  steps: fc.array(stepArbitrary, { minLength: 1, maxLength: MAX_STEPS, size: 'max' }),
});

interface OpenCall {
  requestId: string;
  userId: string;
  amountMicros: number;
  inputTokens: number;
  outputTokens: number;
  createdAt: number;
}

/** A row of spend_counters as SQLite returns it: the latest day, week and month of one user or server. */
type CounterRow = { kind: 'user' | 'server'; guild_key: string; user_key: string } & Record<
  `${BudgetPeriod}_${'start' | 'spent_micros' | 'reserved_micros'}`,
  number
>;

/** The one window of a period that a counter row holds, and the money in it. */
function windowInRow(row: CounterRow, period: BudgetPeriod) {
  return {
    startMs: row[`${period}_start` as const],
    spentMicros: row[`${period}_spent_micros` as const],
    reservedMicros: row[`${period}_reserved_micros` as const],
  };
}

/**
 * How often a run took the rare paths of the counters: a settle or release of a call whose window had
 * ended, landing in the row that still held that window, or dropped because the row had moved on.
 * Checked after all runs, so the property cannot pass by never reaching them.
 */
const coverage = { lateCloseIntoHeldWindow: 0, lateCloseDropped: 0 };

/** A limit as the test last saw it, to tell when an admin or the calendar changed it. */
interface TrackedLimit {
  windowKey: string;
  amountMicros: number;
  /**
   * Set while committed money is above the limit: the most it may still be. It starts at what was
   * committed when the limit changed under it, and follows committed money down, never up.
   */
  ceilingMicros: number | undefined;
}

/**
 * One run: a real SQLite file, a ledger on an injected clock, and the test's own record of what is
 * open, what is closed and which budgets an admin has set.
 */
class World {
  readonly ledger: Ledger;
  private nowMs: number;
  /** The clock before the current step, to tell which windows a rollover has just opened. */
  private previousNowMs: number;
  private readonly price: ModelPrice;
  private readonly open: OpenCall[] = [];
  private readonly closed: string[] = [];
  private readonly budgets = new Map<string, Budget>();
  private readonly tracked = new Map<string, TrackedLimit>();
  /** The window start each counter row held for each period at the last check: it may only move forward. */
  private readonly counterStarts = new Map<string, number>();
  private readonly queries;

  constructor(
    db: AppDatabase,
    private readonly scenario: Scenario,
  ) {
    this.nowMs = scenario.startMs;
    this.previousNowMs = scenario.startMs;
    this.ledger = createLedger(db, {
      defaultUserBudget: scenario.botDefault,
      defaultServerCap: scenario.botServerCap,
      now: () => this.nowMs,
    });
    const price = defaultPrices().get(FAST_MODEL);
    if (!price) throw new Error(`no price for ${FAST_MODEL}`);
    this.price = price;
    const sqlite = db.$client;
    this.queries = {
      spentInWindow: sqlite.prepare<
        { userId: string | null; startMs: number; endMs: number },
        { total: number }
      >(
        `SELECT COALESCE(SUM(cost_micros), 0) AS total FROM usage_ledger
         WHERE guild_id = '${GUILD_ID}' AND (@userId IS NULL OR user_id = @userId)
           AND charged_at >= @startMs AND charged_at < @endMs`,
      ),
      reservedInWindow: sqlite.prepare<
        { userId: string | null; startMs: number; endMs: number },
        { total: number }
      >(
        `SELECT COALESCE(SUM(amount_micros), 0) AS total FROM reservations
         WHERE guild_id = '${GUILD_ID}' AND (@userId IS NULL OR user_id = @userId)
           AND created_at >= @startMs AND created_at < @endMs`,
      ),
      counter: sqlite.prepare<{ kind: string; userKey: string }, CounterRow>(
        `SELECT * FROM spend_counters
         WHERE kind = @kind AND guild_key = '${GUILD_ID}' AND user_key = @userKey`,
      ),
      allCounters: sqlite.prepare<[], CounterRow>(
        'SELECT * FROM spend_counters ORDER BY kind, guild_key, user_key',
      ),
      allLedgerRows: sqlite.prepare<[], Record<string, unknown>>('SELECT * FROM usage_ledger ORDER BY id'),
      allReservations: sqlite.prepare<[], Record<string, unknown>>(
        'SELECT * FROM reservations ORDER BY request_id',
      ),
      ledgerRowOf: sqlite.prepare<[string], { cost_micros: number; charged_at: number; outcome: string }>(
        'SELECT cost_micros, charged_at, outcome FROM usage_ledger WHERE request_id = ?',
      ),
    };
  }

  /**
   * The raw tables, read after the ledger writes the settles it keeps behind: standings taken before a
   * read (with those settles still waiting) are checked against what was then written.
   */
  private get statements() {
    this.ledger.flush();
    return this.queries;
  }

  run(step: Step): void {
    this.previousNowMs = this.nowMs;
    switch (step.kind) {
      case 'reserve':
        this.reserve(step);
        break;
      case 'settle':
        this.close(step.pick, 'settle', step.usage);
        break;
      case 'release':
        this.close(step.pick, 'release', step.usage);
        break;
      case 'replay':
        this.replay(step);
        break;
      case 'set-budget':
      case 'clear-budget':
        this.changeBudget(step);
        break;
      case 'rollover':
        this.nowMs = periodWindow(step.period, this.nowMs).endMs + step.offsetMs;
        break;
    }
  }

  private reserve(step: Extract<Step, { kind: 'reserve' }>): void {
    const userId = USER_IDS[step.user] ?? USER_IDS[0];
    const amountMicros = this.ledger.worstCaseMicros(FAST_MODEL, step.inputTokens, step.outputTokens);
    const before = this.ledger.standings(userId, GUILD_ID);
    const request = callRequest({ userId, guildId: GUILD_ID, model: FAST_MODEL, amountMicros });

    const result = this.ledger.reserve(request);

    // A grant holds its amount in every limit's current window; a denial holds nothing.
    expect(this.ledger.standings(userId, GUILD_ID)).toEqual(
      result.ok
        ? before.map((standing) => ({ ...standing, reservedMicros: standing.reservedMicros + amountMicros }))
        : before,
    );
    // The rule, checked on what the ledger reported just before: a grant fits every limit, a denial
    // names the first limit (the user's before the server's) that it would have passed.
    const overLimit = before.find(
      (standing) =>
        standing.spentMicros + standing.reservedMicros + amountMicros > standing.budget.amountMicros,
    );
    if (result.ok) {
      expect(overLimit, 'a granted reservation must fit every limit').toBeUndefined();
      this.open.push({
        requestId: request.requestId,
        userId,
        amountMicros,
        inputTokens: step.inputTokens,
        outputTokens: step.outputTokens,
        createdAt: this.nowMs,
      });
      return;
    }
    expect(overLimit, 'a denied reservation must pass some limit').toBeDefined();
    if (!overLimit) return;
    const { budget, spentMicros, reservedMicros, window } = overLimit;
    expect(result.denial).toEqual({
      limit: overLimit,
      requestedMicros: amountMicros,
      remainingMicros: Math.max(0, budget.amountMicros - spentMicros - reservedMicros),
      resetsAtMs: window.endMs,
    });
  }

  private close(pick: number, how: 'settle' | 'release', shares: UsageShares | null): void {
    const call = this.open[pick % Math.max(1, this.open.length)];
    const usage = call && shares ? usageOf(call, shares) : NO_USAGE;
    if (!call) {
      // Nothing is open: closing an id the ledger never saw is 'unknown' and leaves everything alone.
      this.expectUnchangedBy(() => this.closeCall('never-reserved', how, usage), { status: 'unknown' });
      return;
    }
    const expectedCost = costMicros(usage, this.price);
    expect(expectedCost, 'the test only reports usage within the reservation').toBeLessThanOrEqual(
      call.amountMicros,
    );
    const before = this.everyStanding();
    this.countLateClose(call);

    const result = this.closeCall(call.requestId, how, usage);
    // Before anything reads the tables: a settle may still be waiting to be written.
    const counted = this.everyStanding();

    expect(result).toEqual({
      status: 'settled',
      costMicros: expectedCost,
      smartCostMicros: expect.any(Number),
      reservedMicros: call.amountMicros,
    });
    // The charge lands in the window the reservation was made in, whenever it is settled.
    expect(this.statements.ledgerRowOf.get(call.requestId)).toEqual({
      cost_micros: expectedCost,
      charged_at: call.createdAt,
      outcome: how === 'settle' ? 'settled' : 'failed',
    });
    // Money moves from held to spent only in a current window the call was made in: closing a call from
    // an ended window leaves every current figure as it was.
    const after = this.everyStanding();
    for (const userId of USER_IDS) {
      const expected = before.get(userId)?.map((standing) => {
        const isCallsCounter = standing.kind === 'server' || userId === call.userId;
        const isCallsWindow =
          periodWindow(standing.budget.period, call.createdAt).startMs === standing.window.startMs;
        if (!isCallsCounter || !isCallsWindow) return standing;
        return {
          ...standing,
          spentMicros: standing.spentMicros + expectedCost,
          reservedMicros: standing.reservedMicros - call.amountMicros,
        };
      });
      expect(after.get(userId), `${userId} after closing ${call.requestId}`).toEqual(expected);
    }
    expect(counted, 'standings before and after the write').toEqual(after);
    this.open.splice(this.open.indexOf(call), 1);
    this.closed.push(call.requestId);
  }

  private everyStanding(): Map<string, LimitStanding[]> {
    return new Map(USER_IDS.map((userId) => [userId, this.ledger.standings(userId, GUILD_ID)]));
  }

  /** Counts a close whose call was made in a window that has ended, by what its user's row holds now. */
  private countLateClose(call: OpenCall): void {
    const row = this.statements.counter.get({ kind: 'user', userKey: call.userId });
    if (!row) return;
    for (const period of BUDGET_PERIODS) {
      const callsWindowStartMs = periodWindow(period, call.createdAt).startMs;
      if (callsWindowStartMs === periodWindow(period, this.nowMs).startMs) continue;
      if (windowInRow(row, period).startMs === callsWindowStartMs) coverage.lateCloseIntoHeldWindow += 1;
      else coverage.lateCloseDropped += 1;
    }
  }

  private replay(step: Extract<Step, { kind: 'replay' }>): void {
    const requestId = this.closed[step.pick % Math.max(1, this.closed.length)];
    if (requestId === undefined) return;
    this.expectUnchangedBy(() => this.closeCall(requestId, step.as, NO_USAGE), { status: 'duplicate' });
    // Reporting usage on the replay does not sneak a second charge in either.
    const usage = { inputTokens: 1_000, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 1_000 };
    this.expectUnchangedBy(() => this.closeCall(requestId, step.as, usage), { status: 'duplicate' });
  }

  private changeBudget(step: Extract<Step, { kind: 'set-budget' | 'clear-budget' }>): void {
    const userId = step.scope === 'user' ? (USER_IDS[step.user] ?? USER_IDS[0]) : '';
    const change = { guildId: GUILD_ID, scope: step.scope, userId, changedBy: ADMIN_ID };
    const key = `${step.scope}|${userId}`;
    if (step.kind === 'set-budget') {
      this.ledger.setBudget(change, step.budget);
      this.budgets.set(key, step.budget);
    } else {
      this.ledger.clearBudget(change);
      this.budgets.delete(key);
    }
  }

  private closeCall(requestId: string, how: 'settle' | 'release', usage: TokenUsage): SettleResult {
    return how === 'settle' ? this.ledger.settle(requestId, usage) : this.ledger.release(requestId, usage);
  }

  private expectUnchangedBy(act: () => SettleResult, expected: SettleResult): void {
    const before = this.snapshot();
    expect(act()).toEqual(expected);
    expect(this.snapshot()).toEqual(before);
  }

  private snapshot() {
    return {
      ledgerRows: this.statements.allLedgerRows.all(),
      reservations: this.statements.allReservations.all(),
      counters: this.statements.allCounters.all(),
    };
  }

  /** Every check, after every step. `step` says whether the step could change a limit. */
  checkBooks(step: Step): void {
    this.checkCounterRows();
    const serverStandings: LimitStanding[] = [];
    for (const userId of USER_IDS) {
      const standings = this.ledger.standings(userId, GUILD_ID);
      expect(standings.map(({ kind, source, budget }) => ({ kind, source, budget }))).toEqual(
        this.expectedLimits(userId),
      );
      for (const standing of standings) {
        this.checkStanding(standing, userId, step);
        if (standing.kind === 'server') serverStandings.push(standing);
      }
    }
    // Every member sees the same server-wide standing.
    for (const standing of serverStandings) expect(standing).toEqual(serverStandings[0]);
  }

  /** The limits the test expects from the budgets it set: the user's own, the server's default or the bot's. */
  private expectedLimits(userId: string) {
    const own = this.budgets.get(`user|${userId}`);
    const serverDefault = this.budgets.get('server-default|');
    const serverTotal = this.budgets.get('server-total|');
    const limits: { kind: 'user' | 'server'; source: LimitSource; budget: Budget }[] = [
      own
        ? { kind: 'user', source: 'own', budget: own }
        : serverDefault
          ? { kind: 'user', source: 'server-default', budget: serverDefault }
          : { kind: 'user', source: 'bot-default', budget: this.scenario.botDefault },
    ];
    if (serverTotal) limits.push({ kind: 'server', source: 'server-cap', budget: serverTotal });
    else if (this.scenario.botServerCap) {
      limits.push({ kind: 'server', source: 'bot-cap', budget: this.scenario.botServerCap });
    }
    return limits;
  }

  private checkStanding(standing: LimitStanding, userId: string, step: Step): void {
    const { kind, budget, window } = standing;
    expect(window).toEqual(periodWindow(budget.period, this.nowMs));
    const userKey = kind === 'user' ? userId : '';
    const range = { userId: kind === 'user' ? userId : null, startMs: window.startMs, endMs: window.endMs };

    // What the ledger reports is its counter row when the row holds the current window, else nothing,
    // and that is the sum of the raw rows of the current window.
    const counter = this.statements.counter.get({ kind, userKey });
    const held = counter && windowInRow(counter, budget.period);
    const isCurrent = held?.startMs === window.startMs;
    expect(standing.spentMicros).toBe(isCurrent ? held.spentMicros : 0);
    expect(standing.reservedMicros).toBe(isCurrent ? held.reservedMicros : 0);
    expect(standing.reservedMicros).toBe(this.statements.reservedInWindow.get(range)?.total);
    expect(standing.spentMicros).toBe(this.statements.spentInWindow.get(range)?.total);
    // A window the clock has only just entered starts empty, whatever the one before it held.
    const isNewWindow = window.startMs !== periodWindow(budget.period, this.previousNowMs).startMs;
    if (step.kind === 'rollover' && isNewWindow) {
      expect(
        { spentMicros: standing.spentMicros, reservedMicros: standing.reservedMicros },
        `${kind}|${userKey} right after a ${budget.period} rollover`,
      ).toEqual({ spentMicros: 0, reservedMicros: 0 });
    }

    this.checkCommitted(`${kind}|${userKey}`, `${budget.period}|${window.startMs}`, standing, step);
  }

  /**
   * Committed money (spent + reserved) must fit the limit: reserve() refuses anything that would pass it.
   * But an admin can lower a budget, or switch its period to a window that already holds more, below what
   * is already committed; nothing is taken back then. So the precise invariant is: committed never exceeds
   * max(limit, what was committed at the moment the limit changed), and while it is over the limit it
   * never grows: settles and releases only shrink it (a cost never exceeds its reservation) and every
   * reserve is refused, until it fits again. Only a budget change or a rollover may change a limit; a
   * step that moves money never may, so committed money above an unchanged limit with no ceiling is a bug.
   */
  private checkCommitted(label: string, windowKey: string, standing: LimitStanding, step: Step): void {
    const committedMicros = standing.spentMicros + standing.reservedMicros;
    const { amountMicros } = standing.budget;
    const previous = this.tracked.get(label);
    const hasLimitChanged =
      previous === undefined || previous.windowKey !== windowKey || previous.amountMicros !== amountMicros;
    const canChangeLimits =
      step.kind === 'set-budget' || step.kind === 'clear-budget' || step.kind === 'rollover';
    if (hasLimitChanged && previous !== undefined) {
      expect(canChangeLimits, `a ${step.kind} step changed the limit ${label}`).toBe(true);
    }

    const isOverLimit = committedMicros > amountMicros;
    if (isOverLimit && !hasLimitChanged) {
      expect(
        committedMicros,
        `${label}: committed money grew past its ${amountMicros} micro limit`,
      ).toBeLessThanOrEqual(previous?.ceilingMicros ?? amountMicros);
    }
    // Over the limit, what is committed now is the most it may ever be until it fits again.
    const ceilingMicros = isOverLimit ? committedMicros : undefined;
    this.tracked.set(label, { windowKey, amountMicros, ceilingMicros });
  }

  /**
   * A counter row keeps one window per period: the latest its user or server had money in. That window
   * never moves back (a late delta for an older one is dropped), it holds exactly the ledger rows charged
   * in it plus the reservations made in it and still open (a late settle for it still lands, as long as
   * the row has not moved on), and the current window's money is nowhere else: when a row does not hold
   * the current window of a period, nothing has been charged or held in that window yet. Checked for
   * every period, not only the budgets' ones: an admin may switch a budget to any period at once.
   */
  private checkCounterRows(): void {
    const rows = this.statements.allCounters.all();
    const rowsSeen = new Set<string>();
    for (const row of rows) {
      expect(row.guild_key).toBe(GUILD_ID);
      for (const period of BUDGET_PERIODS) {
        const held = windowInRow(row, period);
        const label = `${row.kind}|${row.user_key}|${period}`;
        const heldWindow = periodWindow(period, held.startMs);
        expect(held.startMs, `${label} holds a window boundary`).toBe(heldWindow.startMs);
        expect(held.startMs, `${label} holds a window after the clock`).toBeLessThanOrEqual(
          periodWindow(period, this.nowMs).startMs,
        );
        const previousStartMs = this.counterStarts.get(label);
        if (previousStartMs !== undefined) {
          expect(held.startMs, `${label} went back to an earlier window`).toBeGreaterThanOrEqual(
            previousStartMs,
          );
        }
        this.counterStarts.set(label, held.startMs);
        rowsSeen.add(label);
        const range = {
          userId: row.kind === 'user' ? row.user_key : null,
          startMs: held.startMs,
          endMs: heldWindow.endMs,
        };
        expect(
          { spentMicros: held.spentMicros, reservedMicros: held.reservedMicros },
          `${label} for the window from ${new Date(held.startMs).toISOString()}`,
        ).toEqual({
          spentMicros: this.statements.spentInWindow.get(range)?.total,
          reservedMicros: this.statements.reservedInWindow.get(range)?.total,
        });
      }
    }
    for (const label of this.counterStarts.keys()) {
      expect(rowsSeen.has(label), `the counter row ${label} disappeared`).toBe(true);
    }

    const counterKeys = [...USER_IDS.map((userId) => ['user', userId] as const), ['server', ''] as const];
    for (const [kind, userKey] of counterKeys) {
      const row = rows.find((candidate) => candidate.kind === kind && candidate.user_key === userKey);
      for (const period of BUDGET_PERIODS) {
        const window = periodWindow(period, this.nowMs);
        if (row && windowInRow(row, period).startMs === window.startMs) continue;
        const range = {
          userId: kind === 'user' ? userKey : null,
          startMs: window.startMs,
          endMs: window.endMs,
        };
        expect(
          {
            spentMicros: this.statements.spentInWindow.get(range)?.total,
            reservedMicros: this.statements.reservedInWindow.get(range)?.total,
          },
          `${kind}|${userKey}|${period}: money in the current window that its counter row does not hold`,
        ).toEqual({ spentMicros: 0, reservedMicros: 0 });
      }
    }
  }
}

function usageOf(call: OpenCall, shares: UsageShares): TokenUsage {
  const inputTokens = Math.floor((call.inputTokens * shares.input) / 100);
  const cachedInputTokens = Math.floor(((call.inputTokens - inputTokens) * shares.cachedInput) / 100);
  return {
    inputTokens,
    cachedInputTokens,
    cacheWriteTokens: 0,
    outputTokens: Math.floor((call.outputTokens * shares.output) / 100),
  };
}

describe('Ledger under random interleavings', () => {
  it('when reserves, settles, releases, replays, budget changes and rollovers interleave at random, then each counter row holds exactly the money of its window, new windows start empty and committed money never passes a limit it was not already over', () => {
    const { db: probe, cleanup: closeProbe } = temporaryDatabase();
    try {
      expect(
        createLedger(probe).worstCaseMicros(FAST_MODEL, TYPICAL_INPUT_TOKENS, TYPICAL_OUTPUT_TOKENS),
      ).toBe(TYPICAL_WORST_CASE_MICROS);
    } finally {
      closeProbe();
    }
    coverage.lateCloseIntoHeldWindow = 0;
    coverage.lateCloseDropped = 0;

    fc.assert(
      fc.property(scenarioArbitrary, (scenario) => {
        const { db, cleanup } = temporaryDatabase();
        try {
          const world = new World(db, scenario);
          for (const step of scenario.steps) {
            world.run(step);
            world.checkBooks(step);
          }
        } finally {
          cleanup();
        }
      }),
      { numRuns: NUM_RUNS },
    );

    // Both ways a late settle can meet the counters were really taken, many times over.
    expect(coverage.lateCloseIntoHeldWindow).toBeGreaterThan(MIN_LATE_CLOSES);
    expect(coverage.lateCloseDropped).toBeGreaterThan(MIN_LATE_CLOSES);
  });
});
