import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AppDatabase, closeDatabase, openDatabase } from '../../src/db/database.js';
import type { Ledger } from '../../src/db/ledger.js';
import { callRequest, createLedger, SMART_MODEL, temporaryDatabase } from '../support/ledger.js';

const NOVEMBER_24 = Date.parse('2026-11-24T12:00:00Z');
const usage = { inputTokens: 1_000, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 500 };
// gpt-4o-mini: 1,000 × $0.15/M + 500 × $0.60/M = 150 + 300 micro-USD; on Haiku 4.5: 1,000 + 2,500.
const USAGE_COST = 450;
const USAGE_SMART_COST = 3_500;

let database: ReturnType<typeof temporaryDatabase>;
let db: AppDatabase;
let clock: number;
let ledger: Ledger;

beforeEach(() => {
  database = temporaryDatabase();
  db = database.db;
  clock = NOVEMBER_24;
  ledger = createLedger(db, {
    now: () => clock,
    defaultUserBudget: { amountMicros: 10_000, period: 'month' },
  });
});
afterEach(() => database.cleanup());

const ledgerRows = () => {
  ledger.flush();
  return db.$client.prepare('SELECT * FROM usage_ledger ORDER BY id').all() as Record<string, unknown>[];
};
const userStanding = (userId = 'user-1', guildId: string | null = 'guild-1') =>
  ledger.standings(userId, guildId)[0];

describe('reserve', () => {
  it('when the worst case fits the budget, then it is held against it until the call ends', () => {
    const result = ledger.reserve(callRequest({ amountMicros: 4_000 }));
    expect(result).toMatchObject({ ok: true, amountMicros: 4_000 });
    expect(userStanding()).toMatchObject({ spentMicros: 0, reservedMicros: 4_000, source: 'bot-default' });
    expect(ledger.openReservationCount()).toBe(1);
  });

  it('when the worst case would pass the budget, then it is denied, naming the limit, and nothing is held', () => {
    ledger.reserve(callRequest({ amountMicros: 6_000 }));
    const result = ledger.reserve(callRequest({ amountMicros: 4_001 }));
    expect(result).toMatchObject({
      ok: false,
      denial: {
        limit: { kind: 'user', source: 'bot-default' },
        remainingMicros: 4_000,
        requestedMicros: 4_001,
      },
    });
    expect(result.ok || result.denial.resetsAtMs).toBe(Date.parse('2026-12-01T00:00:00Z'));
    expect(ledger.openReservationCount()).toBe(1);
  });

  it("when the server's cap is reached, then every member is denied, even with budget of their own left", () => {
    ledger.setBudget(
      { guildId: 'guild-1', scope: 'server-total', changedBy: 'admin' },
      { amountMicros: 5_000, period: 'day' },
    );
    expect(ledger.reserve(callRequest({ userId: 'alice', amountMicros: 3_000 })).ok).toBe(true);
    const denied = ledger.reserve(callRequest({ userId: 'bob', amountMicros: 3_000 }));
    expect(denied).toMatchObject({
      ok: false,
      denial: { limit: { kind: 'server', source: 'server-cap' }, remainingMicros: 2_000 },
    });
    expect(denied.ok || denied.denial.resetsAtMs).toBe(Date.parse('2026-11-25T00:00:00Z'));
  });

  it('when the model has no price, then nothing is reserved (never run a call that cannot be charged)', () => {
    expect(() => ledger.reserve(callRequest({ model: 'mystery-model' }))).toThrow(/no price/);
    expect(() => ledger.worstCaseMicros('mystery-model', 10, 10)).toThrow(/no price/);
    expect(ledger.openReservationCount()).toBe(0);
  });

  it('when the worst case is computed, then it prices the estimate and every allowed output token', () => {
    // 2,000 input × $0.15/M + 1,024 output × $0.60/M = 300 + 614.4 → 915
    expect(ledger.worstCaseMicros('gpt-4o-mini', 2_000, 1_024)).toBe(915);
  });
});

describe('settle', () => {
  it('when a call settles, then its real cost is spent, its smart-model cost recorded, and its hold freed', () => {
    ledger.reserve(callRequest({ requestId: 'call-1', turnId: 'turn-1', amountMicros: 4_000 }));
    expect(ledger.settle('call-1', usage)).toEqual({
      status: 'settled',
      costMicros: USAGE_COST,
      smartCostMicros: USAGE_SMART_COST,
      reservedMicros: 4_000,
    });
    expect(userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
    expect(ledgerRows()).toEqual([
      expect.objectContaining({
        request_id: 'call-1',
        turn_id: 'turn-1',
        user_id: 'user-1',
        guild_id: 'guild-1',
        model: 'gpt-4o-mini',
        purpose: 'draft',
        outcome: 'settled',
        input_tokens: 1_000,
        output_tokens: 500,
        cost_micros: USAGE_COST,
        smart_cost_micros: USAGE_SMART_COST,
        reserved_micros: 4_000,
        charged_at: NOVEMBER_24,
      }),
    ]);
    expect(ledger.openReservationCount()).toBe(0);
  });

  it('when a call settles, then this process counts its cost at once and its row is written after the current work, while other processes hold its worst case until then', async () => {
    const other = createLedger(db, {
      now: () => clock,
      defaultUserBudget: { amountMicros: 10_000, period: 'month' },
    });
    ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
    ledger.settle('call-1', usage);

    expect(userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
    expect(other.standings('user-1', 'guild-1')[0]).toMatchObject({ spentMicros: 0, reservedMicros: 4_000 });
    expect(db.$client.prepare('SELECT COUNT(*) AS rows FROM usage_ledger').get()).toEqual({ rows: 0 });
    // A reservation made now is checked against the settled cost, not the worst case.
    expect(ledger.reserve(callRequest({ requestId: 'call-2', amountMicros: 10_000 - USAGE_COST })).ok).toBe(
      true,
    );

    await new Promise((resolve) => setImmediate(resolve));
    expect(other.standings('user-1', 'guild-1')[0]).toMatchObject({
      spentMicros: USAGE_COST,
      reservedMicros: 10_000 - USAGE_COST,
    });
    expect(db.$client.prepare('SELECT request_id FROM usage_ledger').all()).toEqual([
      { request_id: 'call-1' },
    ]);
  });

  it('when the database closes with settles still waiting, then they are written first', () => {
    ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
    ledger.settle('call-1', usage);
    closeDatabase(db);
    const reopened = openDatabase(database.path);
    try {
      expect(reopened.$client.prepare('SELECT request_id, cost_micros FROM usage_ledger').all()).toEqual([
        { request_id: 'call-1', cost_micros: USAGE_COST },
      ]);
      expect(reopened.$client.prepare('SELECT COUNT(*) AS open FROM reservations').get()).toEqual({
        open: 0,
      });
    } finally {
      closeDatabase(reopened);
    }
  });

  it("when asked whether spending may have reached a share, then it answers from this process's latest reserve, and not once a call cost more than it held", () => {
    // Budget 10,000: nothing known yet, so it may have.
    expect(ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(true);
    ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
    expect(ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(false);
    expect(ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.4)).toBe(true);
    ledger.settle('call-1', usage);
    // 450 spent + 8,000 held = 84.5%.
    ledger.reserve(callRequest({ requestId: 'call-2', amountMicros: 8_000 }));
    expect(ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(true);
    ledger.settle('call-2', usage);
    ledger.reserve(callRequest({ requestId: 'call-3', amountMicros: 100 }));
    expect(ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(false);
    // Used more than it reserved: the bound is gone.
    ledger.settle('call-3', usage);
    expect(ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(true);
  });

  it('when the same request settles twice, then the second is a no-op', () => {
    ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
    ledger.settle('call-1', usage);
    expect(ledger.settle('call-1', usage)).toEqual({ status: 'duplicate' });
    expect(ledger.release('call-1', usage)).toEqual({ status: 'duplicate' });
    expect(ledgerRows()).toHaveLength(1);
    expect(userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
  });

  it('when a request id was never reserved, then settling it reports unknown and charges nothing', () => {
    expect(ledger.settle('never-reserved', usage)).toEqual({ status: 'unknown' });
    expect(ledgerRows()).toHaveLength(0);
  });

  it('when a call settles after its month ended, then the charge lands in the month it was reserved in', () => {
    clock = Date.parse('2026-11-30T23:59:59Z');
    ledger.reserve(callRequest({ requestId: 'late', amountMicros: 4_000 }));
    clock = Date.parse('2026-12-01T00:00:05Z');
    ledger.settle('late', usage);
    expect(userStanding()).toMatchObject({ spentMicros: 0, reservedMicros: 0 });
    clock = Date.parse('2026-11-30T23:59:59Z');
    expect(userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
  });
});

describe('release', () => {
  it('when a call fails before the provider reports usage, then its hold is freed and nothing is charged', () => {
    ledger.reserve(callRequest({ requestId: 'failed', amountMicros: 4_000 }));
    expect(ledger.release('failed')).toMatchObject({ status: 'settled', costMicros: 0 });
    expect(userStanding()).toMatchObject({ spentMicros: 0, reservedMicros: 0 });
    expect(ledgerRows()).toEqual([expect.objectContaining({ outcome: 'failed', cost_micros: 0 })]);
  });

  it('when a failed call reported usage (a stream cut mid-answer), then exactly that is charged', () => {
    ledger.reserve(callRequest({ requestId: 'cut', amountMicros: 4_000 }));
    expect(ledger.release('cut', usage)).toMatchObject({ status: 'settled', costMicros: USAGE_COST });
    expect(userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
  });
});

describe('budgets', () => {
  it("when an admin sets a member's budget, then it replaces the default and the change is audited", () => {
    const change = { guildId: 'guild-1', scope: 'user' as const, userId: 'user-1', changedBy: 'admin-1' };
    ledger.setBudget(change, { amountMicros: 50_000, period: 'week' });
    expect(userStanding()).toMatchObject({ source: 'own', budget: { amountMicros: 50_000, period: 'week' } });
    clock += 1_000;
    ledger.setBudget(change, { amountMicros: 20_000, period: 'day' });
    clock += 1_000;
    ledger.clearBudget(change);
    expect(userStanding()).toMatchObject({ source: 'bot-default', budget: { amountMicros: 10_000 } });
    expect(ledger.auditLog('guild-1')).toEqual([
      {
        scope: 'user',
        userId: 'user-1',
        oldBudget: { amountMicros: 20_000, period: 'day' },
        newBudget: null,
        changedBy: 'admin-1',
        changedAt: NOVEMBER_24 + 2_000,
      },
      expect.objectContaining({
        oldBudget: { amountMicros: 50_000, period: 'week' },
        newBudget: { amountMicros: 20_000, period: 'day' },
      }),
      expect.objectContaining({ oldBudget: null, newBudget: { amountMicros: 50_000, period: 'week' } }),
    ]);
  });

  it("when a server sets a default, then members without their own budget get it, and other servers don't", () => {
    ledger.setBudget(
      { guildId: 'guild-1', scope: 'server-default', changedBy: 'admin' },
      { amountMicros: 3_000, period: 'month' },
    );
    expect(userStanding('someone')).toMatchObject({
      source: 'server-default',
      budget: { amountMicros: 3_000 },
    });
    expect(userStanding('someone', 'guild-2')).toMatchObject({ source: 'bot-default' });
  });

  it('when a budget period changes from month to day, then spend already made today still counts', () => {
    ledger.reserve(callRequest({ requestId: 'today', amountMicros: 4_000 }));
    ledger.settle('today', usage);
    ledger.setBudget(
      { guildId: 'guild-1', scope: 'user', userId: 'user-1', changedBy: 'admin' },
      { amountMicros: 500, period: 'day' },
    );
    expect(userStanding()).toMatchObject({ spentMicros: USAGE_COST, budget: { period: 'day' } });
    expect(ledger.reserve(callRequest({ amountMicros: 51 })).ok).toBe(false);
    expect(ledger.reserve(callRequest({ amountMicros: 50 })).ok).toBe(true);
  });

  it('when an unset budget is cleared, then nothing changes and nothing is audited', () => {
    expect(
      ledger.clearBudget({ guildId: 'guild-1', scope: 'server-total', changedBy: 'admin' }),
    ).toBeUndefined();
    expect(ledger.auditLog('guild-1')).toEqual([]);
  });

  it('when a budget is 0, then it blocks every call', () => {
    ledger.setBudget(
      { guildId: 'guild-1', scope: 'user', userId: 'user-1', changedBy: 'admin' },
      { amountMicros: 0, period: 'month' },
    );
    expect(ledger.reserve(callRequest({ amountMicros: 1 })).ok).toBe(false);
  });

  it('when a user talks in direct messages, then only the bot default applies, counted apart from servers', () => {
    ledger.reserve(callRequest({ guildId: null, requestId: 'dm', amountMicros: 9_000 }));
    expect(ledger.standings('user-1', null)).toEqual([
      expect.objectContaining({ kind: 'user', source: 'bot-default', reservedMicros: 9_000 }),
    ]);
    expect(userStanding('user-1', 'guild-1')).toMatchObject({ reservedMicros: 0 });
  });
});

describe('sweeping', () => {
  it('when a process died holding reservations, then start-up charges them at the reserved amount', () => {
    const crashed = createLedger(db, {
      now: () => clock,
      pid: 999_999,
      defaultUserBudget: { amountMicros: 10_000, period: 'month' },
    });
    crashed.reserve(callRequest({ requestId: 'orphan', amountMicros: 4_000 }));
    ledger.reserve(callRequest({ requestId: 'mine', amountMicros: 1_000 }));
    expect(ledger.sweepOrphans((pid) => pid !== 999_999)).toBe(1);
    expect(ledgerRows()).toEqual([
      expect.objectContaining({ request_id: 'orphan', outcome: 'swept', cost_micros: 4_000 }),
    ]);
    expect(userStanding()).toMatchObject({ spentMicros: 4_000, reservedMicros: 1_000 });
    expect(ledger.settle('orphan', usage)).toEqual({ status: 'duplicate' });
  });

  it('when the process restarts under the same process id (as in a container), then the earlier reservations are swept and its own are not', () => {
    const before = createLedger(db, {
      now: () => clock,
      pid: 1,
      defaultUserBudget: { amountMicros: 10_000, period: 'month' },
    });
    before.reserve(callRequest({ requestId: 'left-by-the-crash', amountMicros: 4_000 }));
    const after = createLedger(db, {
      now: () => clock,
      pid: 1,
      defaultUserBudget: { amountMicros: 10_000, period: 'month' },
    });
    after.reserve(callRequest({ requestId: 'in-flight-now', amountMicros: 1_000 }));
    expect(after.sweepOrphans(() => true)).toBe(1);
    expect(ledgerRows()).toEqual([
      expect.objectContaining({ request_id: 'left-by-the-crash', outcome: 'swept', cost_micros: 4_000 }),
    ]);
    expect(after.openReservationCount()).toBe(1);
  });

  it('when a reservation outlives its TTL, then the sweep charges it and frees the budget', () => {
    const short = createLedger(db, {
      now: () => clock,
      reservationTtlMs: 60_000,
      defaultUserBudget: { amountMicros: 10_000, period: 'month' },
    });
    short.reserve(callRequest({ requestId: 'stuck', amountMicros: 4_000 }));
    clock += 59_999;
    expect(short.sweepExpired()).toBe(0);
    clock += 1;
    expect(short.sweepExpired()).toBe(1);
    expect(userStanding()).toMatchObject({ spentMicros: 4_000, reservedMicros: 0 });
  });
});

describe('construction', () => {
  it('when the smart model has no price, then the ledger refuses to start', () => {
    expect(() => createLedger(db, { smartModel: 'unpriced' })).toThrow(/no price/);
    expect(() => createLedger(db, { smartModel: SMART_MODEL })).not.toThrow();
  });
});

describe('clocks', () => {
  it("when one process's clock lags behind a day another already started, then its calls still count against that day", () => {
    const midnight = Date.parse('2026-11-25T00:00:00Z');
    const budget = { amountMicros: 1_000, period: 'day' as const };
    const ahead = createLedger(db, { defaultUserBudget: budget, now: () => midnight + 1 });
    const behind = createLedger(db, { defaultUserBudget: budget, now: () => midnight - 1 });
    expect(ahead.reserve(callRequest({ requestId: 'ahead', amountMicros: 600 })).ok).toBe(true);

    const granted = Array.from({ length: 10 }, (_, index) =>
      behind.reserve(callRequest({ requestId: `behind-${index}`, amountMicros: 600 })),
    ).filter((result) => result.ok);
    expect(granted).toEqual([]);
    ahead.settle('ahead', usage);
    ahead.flush();
    expect(behind.reserve(callRequest({ requestId: 'fits', amountMicros: 550 })).ok).toBe(true);
    expect(ahead.standings('user-1', 'guild-1')[0]).toMatchObject({
      spentMicros: USAGE_COST,
      reservedMicros: 550,
    });
  });
});
