import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Member } from '../../src/core/ports.js';
import type { AppStorage, StorageOptions } from '../../src/db/storage.js';
import { BACKENDS, type TemporaryDatabase, temporaryDatabase } from '../support/databases.js';
import { callRequest, SMART_MODEL, type StorageHarness, temporaryStorage } from '../support/ledger.js';

const NOVEMBER_24 = Date.parse('2026-11-24T12:00:00Z');
const usage = { inputTokens: 1_000, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 500 };
// gpt-4o-mini: 1,000 × $0.15/M + 500 × $0.60/M = 150 + 300 micro-USD; on Haiku 4.5: 1,000 + 2,500.
const USAGE_COST = 450;
const USAGE_SMART_COST = 3_500;
const MEMBER: Member = { userId: 'user-1', guildId: 'guild-1' };

describe.each(BACKENDS)('on %s', (backend) => {
  let database: TemporaryDatabase;
  let clock: number;
  let opened: StorageHarness[];
  let storage: AppStorage;

  /** Another bot process on the same database (its own instance and lease), with the same clock. */
  const process = async (options: Partial<StorageOptions> = {}) => {
    const harness = await temporaryStorage(
      backend,
      { now: () => clock, defaultUserBudget: { amountMicros: 10_000, period: 'month' }, ...options },
      database,
    );
    opened.push(harness);
    return harness.storage;
  };

  beforeEach(async () => {
    database = await temporaryDatabase(backend);
    clock = NOVEMBER_24;
    opened = [];
    storage = await process();
  });
  afterEach(async () => {
    for (const harness of opened) await harness.cleanup();
    await database.cleanup();
  });

  const ledgerRows = async () => {
    await storage.flush();
    return database.query<Record<string, unknown>>('SELECT * FROM usage_ledger ORDER BY id');
  };
  const userStanding = async (userId = 'user-1', guildId: string | null = 'guild-1') =>
    (await storage.budgets.standings({ userId, guildId }))[0];

  describe('reserve', () => {
    it('when the worst case fits the budget, then it is held against it until the call ends', async () => {
      const result = await storage.ledger.reserve(callRequest({ amountMicros: 4_000 }));
      expect(result).toMatchObject({ ok: true, amountMicros: 4_000 });
      expect(await userStanding()).toMatchObject({
        spentMicros: 0,
        reservedMicros: 4_000,
        source: 'bot-default',
      });
      expect(await storage.ledger.openReservationCount()).toBe(1);
      await storage.ledger.release(result.ok ? result.requestId : '');
    });

    it('when the worst case would pass the budget, then it is denied, naming the limit, and nothing is held', async () => {
      await storage.ledger.reserve(callRequest({ amountMicros: 6_000 }));
      const result = await storage.ledger.reserve(callRequest({ amountMicros: 4_001 }));
      expect(result).toMatchObject({
        ok: false,
        denial: {
          limit: { kind: 'user', source: 'bot-default' },
          remainingMicros: 4_000,
          requestedMicros: 4_001,
        },
      });
      expect(result.ok || result.denial.resetsAtMs).toBe(Date.parse('2026-12-01T00:00:00Z'));
      expect(await storage.ledger.openReservationCount()).toBe(1);
    });

    it("when the server's cap is reached, then every member is denied, even with budget of their own left", async () => {
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'server-total', changedBy: 'admin' },
        { amountMicros: 5_000, period: 'day' },
      );
      expect((await storage.ledger.reserve(callRequest({ userId: 'alice', amountMicros: 3_000 }))).ok).toBe(
        true,
      );
      const denied = await storage.ledger.reserve(callRequest({ userId: 'bob', amountMicros: 3_000 }));
      expect(denied).toMatchObject({
        ok: false,
        denial: { limit: { kind: 'server', source: 'server-cap' }, remainingMicros: 2_000 },
      });
      expect(denied.ok || denied.denial.resetsAtMs).toBe(Date.parse('2026-11-25T00:00:00Z'));
    });

    it('when the model has no price, then nothing is reserved (never run a call that cannot be charged)', async () => {
      await expect(storage.ledger.reserve(callRequest({ model: 'mystery-model' }))).rejects.toThrow(
        /no price/,
      );
      expect(() => storage.ledger.worstCaseMicros('mystery-model', 10, 10)).toThrow(/no price/);
      expect(await storage.ledger.openReservationCount()).toBe(0);
    });

    it('when the worst case is computed, then it prices the estimate and every allowed output token', () => {
      // 2,000 input × $0.15/M + 1,024 output × $0.60/M = 300 + 614.4 → 915
      expect(storage.ledger.worstCaseMicros('gpt-4o-mini', 2_000, 1_024)).toBe(915);
    });
  });

  describe('settle', () => {
    it('when a call settles, then its real cost is spent, its smart-model cost recorded, and its hold freed', async () => {
      await storage.ledger.reserve(
        callRequest({ requestId: 'call-1', turnId: 'turn-1', amountMicros: 4_000 }),
      );
      expect(await storage.ledger.settle('call-1', usage)).toEqual({
        status: 'settled',
        costMicros: USAGE_COST,
        smartCostMicros: USAGE_SMART_COST,
        reservedMicros: 4_000,
      });
      expect(await userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
      expect(await ledgerRows()).toEqual([
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
      expect(await storage.ledger.openReservationCount()).toBe(0);
    });

    it('when a call settles, then this process counts its cost at once and its row is written after the current work, while other processes hold its worst case until then', async () => {
      const other = await process();
      await storage.ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
      await storage.ledger.settle('call-1', usage);

      expect(await userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
      // Another process sees the worst case held until the row is written, and never less.
      expect([
        { spentMicros: 0, reservedMicros: 4_000 },
        { spentMicros: USAGE_COST, reservedMicros: 0 },
      ]).toContainEqual(
        expect.objectContaining(
          await other.budgets.standings(MEMBER).then(([standing]) => ({
            spentMicros: standing?.spentMicros,
            reservedMicros: standing?.reservedMicros,
          })),
        ),
      );
      // A reservation made now is checked against the settled cost, not the worst case.
      expect(
        (
          await storage.ledger.reserve(
            callRequest({ requestId: 'call-2', amountMicros: 10_000 - USAGE_COST }),
          )
        ).ok,
      ).toBe(true);

      await storage.flush();
      expect((await other.budgets.standings(MEMBER))[0]).toMatchObject({
        spentMicros: USAGE_COST,
        reservedMicros: 10_000 - USAGE_COST,
      });
      expect(await database.query('SELECT request_id FROM usage_ledger')).toEqual([{ request_id: 'call-1' }]);
    });

    it('when storage closes with settles still waiting, then they are written first', async () => {
      await storage.ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
      await storage.ledger.settle('call-1', usage);
      await storage.close();
      expect(await database.query('SELECT request_id, cost_micros FROM usage_ledger')).toEqual([
        { request_id: 'call-1', cost_micros: USAGE_COST },
      ]);
      expect(await database.value('SELECT COUNT(*) FROM reservations')).toBe(0);
    });

    it("when asked whether spending may have reached a share, then it answers from this process's latest reserve, and not once a call cost more than it held", async () => {
      // Budget 10,000: nothing known yet, so it may have.
      expect(storage.ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(true);
      await storage.ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
      expect(storage.ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(false);
      expect(storage.ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.4)).toBe(true);
      await storage.ledger.settle('call-1', usage);
      // 450 spent + 8,000 held = 84.5%.
      await storage.ledger.reserve(callRequest({ requestId: 'call-2', amountMicros: 8_000 }));
      expect(storage.ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(true);
      await storage.ledger.settle('call-2', usage);
      await storage.ledger.reserve(callRequest({ requestId: 'call-3', amountMicros: 100 }));
      expect(storage.ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(false);
      // Used more than it reserved: the bound is gone.
      await storage.ledger.settle('call-3', usage);
      expect(storage.ledger.mayHaveReached('user', 'user-1', 'guild-1', 0.8)).toBe(true);
    });

    it('when the same request settles twice, then the second is a no-op', async () => {
      await storage.ledger.reserve(callRequest({ requestId: 'call-1', amountMicros: 4_000 }));
      await storage.ledger.settle('call-1', usage);
      expect(await storage.ledger.settle('call-1', usage)).toEqual({ status: 'duplicate' });
      expect(await storage.ledger.release('call-1', usage)).toEqual({ status: 'duplicate' });
      expect(await ledgerRows()).toHaveLength(1);
      expect(await userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
    });

    it('when a request id was never reserved, then settling it reports unknown and charges nothing', async () => {
      expect(await storage.ledger.settle('never-reserved', usage)).toEqual({ status: 'unknown' });
      expect(await ledgerRows()).toHaveLength(0);
    });

    it('when a call settles after its month ended, then the charge lands in the month it was reserved in', async () => {
      clock = Date.parse('2026-11-30T23:59:59Z');
      await storage.ledger.reserve(callRequest({ requestId: 'late', amountMicros: 4_000 }));
      clock = Date.parse('2026-12-01T00:00:05Z');
      await storage.ledger.settle('late', usage);
      expect(await userStanding()).toMatchObject({ spentMicros: 0, reservedMicros: 0 });
      clock = Date.parse('2026-11-30T23:59:59Z');
      expect(await userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
    });
  });

  describe('release', () => {
    it('when a call fails before the provider reports usage, then its hold is freed and nothing is charged', async () => {
      await storage.ledger.reserve(callRequest({ requestId: 'failed', amountMicros: 4_000 }));
      expect(await storage.ledger.release('failed')).toMatchObject({ status: 'settled', costMicros: 0 });
      expect(await userStanding()).toMatchObject({ spentMicros: 0, reservedMicros: 0 });
      expect(await ledgerRows()).toEqual([expect.objectContaining({ outcome: 'failed', cost_micros: 0 })]);
    });

    it('when a failed call reported usage (a stream cut mid-answer), then exactly that is charged', async () => {
      await storage.ledger.reserve(callRequest({ requestId: 'cut', amountMicros: 4_000 }));
      expect(await storage.ledger.release('cut', usage)).toMatchObject({
        status: 'settled',
        costMicros: USAGE_COST,
      });
      expect(await userStanding()).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
    });

    it('when a call is cancelled before it reached a provider, then its hold is freed and nothing is written', async () => {
      await storage.ledger.reserve(callRequest({ requestId: 'never-sent', amountMicros: 4_000 }));
      await storage.ledger.cancel('never-sent');
      expect(await userStanding()).toMatchObject({ spentMicros: 0, reservedMicros: 0 });
      expect(await ledgerRows()).toEqual([]);
    });
  });

  describe('budgets', () => {
    it("when an admin sets a member's budget, then it replaces the default and the change is audited", async () => {
      const change = { guildId: 'guild-1', scope: 'user' as const, userId: 'user-1', changedBy: 'admin-1' };
      await storage.budgets.setBudget(change, { amountMicros: 50_000, period: 'week' });
      expect(await userStanding()).toMatchObject({
        source: 'own',
        budget: { amountMicros: 50_000, period: 'week' },
      });
      clock += 1_000;
      await storage.budgets.setBudget(change, { amountMicros: 20_000, period: 'day' });
      clock += 1_000;
      await storage.budgets.clearBudget(change);
      expect(await userStanding()).toMatchObject({ source: 'bot-default', budget: { amountMicros: 10_000 } });
      expect(await storage.budgets.auditLog('guild-1')).toEqual([
        {
          scope: 'user',
          subjectId: 'user-1',
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

    it("when a server sets a default, then members without their own budget get it, and other servers don't", async () => {
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'server-default', changedBy: 'admin' },
        { amountMicros: 3_000, period: 'month' },
      );
      expect(await userStanding('someone')).toMatchObject({
        source: 'server-default',
        budget: { amountMicros: 3_000 },
      });
      expect(await userStanding('someone', 'guild-2')).toMatchObject({ source: 'bot-default' });
    });

    it('when a member has two budgeted roles, then the higher applies; their own beats both; without the roles the default applies', async () => {
      const role = (roleId: string, amountMicros: number) =>
        storage.budgets.setBudget(
          { guildId: 'guild-1', scope: 'role', roleId, changedBy: 'admin' },
          { amountMicros, period: 'month' },
        );
      await role('role-helpers', 20_000);
      await role('role-patrons', 50_000);
      const member = { userId: 'user-1', guildId: 'guild-1', roleIds: ['role-helpers', 'role-patrons'] };
      expect((await storage.budgets.standings(member))[0]).toMatchObject({
        source: 'role',
        roleId: 'role-patrons',
        budget: { amountMicros: 50_000 },
      });
      // The role budget holds reservations too.
      expect(
        (await storage.ledger.reserve({ ...callRequest({ amountMicros: 45_000 }), roleIds: member.roleIds }))
          .ok,
      ).toBe(true);
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'user', userId: 'user-1', changedBy: 'admin' },
        { amountMicros: 5_000, period: 'month' },
      );
      expect((await storage.budgets.standings(member))[0]).toMatchObject({ source: 'own' });
      expect((await storage.budgets.standings({ userId: 'user-2', guildId: 'guild-1' }))[0]).toMatchObject({
        source: 'bot-default',
      });
    });

    it("when several members' standings are read at once, then each is what it reads alone: own, role, default budgets, DMs, and a settle not yet written", async () => {
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'role', roleId: 'role-patrons', changedBy: 'admin' },
        { amountMicros: 50_000, period: 'month' },
      );
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'user', userId: 'user-2', changedBy: 'admin' },
        { amountMicros: 7_000, period: 'week' },
      );
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'server-total', changedBy: 'admin' },
        { amountMicros: 100_000, period: 'month' },
      );
      const members: Member[] = [
        { userId: 'user-1', guildId: 'guild-1', roleIds: ['role-patrons'] },
        { userId: 'user-2', guildId: 'guild-1' },
        { userId: 'user-3', guildId: 'guild-1' },
        { userId: 'user-1', guildId: null },
      ];
      const held = await storage.ledger.reserve({
        ...callRequest({ amountMicros: 4_000 }),
        roleIds: ['role-patrons'],
      });
      const settled = await storage.ledger.reserve(callRequest({ userId: 'user-2', amountMicros: 2_000 }));
      const direct = await storage.ledger.reserve(
        callRequest({ userId: 'user-1', guildId: null, amountMicros: 900 }),
      );
      expect([held.ok, settled.ok, direct.ok]).toEqual([true, true, true]);
      // Settled in this process, its row not written yet: counted as spent, its hold gone.
      await storage.ledger.settle(settled.ok ? settled.requestId : '', usage);
      const together = await storage.budgets.standingsOfMembers(members);
      const alone = await Promise.all(members.map((member) => storage.budgets.standings(member)));
      expect(together).toEqual(alone);
      expect(together.map((standings) => standings.map(({ kind, source }) => `${kind}:${source}`))).toEqual([
        ['user:role', 'server:server-cap'],
        ['user:own', 'server:server-cap'],
        ['user:bot-default', 'server:server-cap'],
        ['user:bot-default'],
      ]);
      expect(together[1]?.[0]).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 0 });
      expect(together[2]?.[1]).toMatchObject({ spentMicros: USAGE_COST, reservedMicros: 4_000 });
      expect(together[0]?.[0]).toMatchObject({ reservedMicros: 4_000 });
      expect(together[3]?.[0]).toMatchObject({ reservedMicros: 900 });
      expect(await storage.budgets.standingsOfMembers([])).toEqual([]);
    });

    it('when a budget period changes from month to day, then spend already made today still counts', async () => {
      await storage.ledger.reserve(callRequest({ requestId: 'today', amountMicros: 4_000 }));
      await storage.ledger.settle('today', usage);
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'user', userId: 'user-1', changedBy: 'admin' },
        { amountMicros: 500, period: 'day' },
      );
      expect(await userStanding()).toMatchObject({ spentMicros: USAGE_COST, budget: { period: 'day' } });
      expect((await storage.ledger.reserve(callRequest({ amountMicros: 51 }))).ok).toBe(false);
      expect((await storage.ledger.reserve(callRequest({ amountMicros: 50 }))).ok).toBe(true);
    });

    it("when another process changes a member's budget or roles between two of this process's reserves, then the second is decided on the new budgets", async () => {
      // A second reserve for a member may be decided in the database on the budgets the first one read
      // (PostgreSQL): it must see that they changed.
      const admin = await process();
      const member = { userId: 'user-1', guildId: 'guild-1', roleIds: ['helpers'] };
      const reserve = (amountMicros: number) =>
        storage.ledger.reserve(callRequest({ ...member, amountMicros }));
      expect((await reserve(1_000)).ok).toBe(true);
      await admin.budgets.setBudget(
        { guildId: 'guild-1', scope: 'user', userId: 'user-1', changedBy: 'admin' },
        { amountMicros: 1_500, period: 'day' },
      );
      expect(await reserve(501)).toMatchObject({
        ok: false,
        denial: { limit: { source: 'own' }, remainingMicros: 500 },
      });
      expect((await reserve(500)).ok).toBe(true);
      await admin.budgets.clearBudget({
        guildId: 'guild-1',
        scope: 'user',
        userId: 'user-1',
        changedBy: 'admin',
      });
      await admin.budgets.setBudget(
        { guildId: 'guild-1', scope: 'role', roleId: 'helpers', changedBy: 'admin' },
        { amountMicros: 1_600, period: 'month' },
      );
      expect(await reserve(101)).toMatchObject({ ok: false, denial: { limit: { source: 'role' } } });
      expect((await reserve(100)).ok).toBe(true);
      // Without the role, the default (10,000) applies again.
      expect((await storage.ledger.reserve(callRequest({ amountMicros: 8_400 }))).ok).toBe(true);
    });

    it('when an unset budget is cleared, then nothing changes and nothing is audited', async () => {
      expect(
        await storage.budgets.clearBudget({ guildId: 'guild-1', scope: 'server-total', changedBy: 'admin' }),
      ).toBeUndefined();
      expect(await storage.budgets.auditLog('guild-1')).toEqual([]);
    });

    it('when a budget is 0, then it blocks every call', async () => {
      await storage.budgets.setBudget(
        { guildId: 'guild-1', scope: 'user', userId: 'user-1', changedBy: 'admin' },
        { amountMicros: 0, period: 'month' },
      );
      expect((await storage.ledger.reserve(callRequest({ amountMicros: 1 }))).ok).toBe(false);
    });

    it('when a user talks in direct messages, then only the bot default applies, counted apart from servers', async () => {
      await storage.ledger.reserve(callRequest({ guildId: null, requestId: 'dm', amountMicros: 9_000 }));
      expect(await storage.budgets.standings({ userId: 'user-1', guildId: null })).toEqual([
        expect.objectContaining({ kind: 'user', source: 'bot-default', reservedMicros: 9_000 }),
      ]);
      expect(await userStanding('user-1', 'guild-1')).toMatchObject({ reservedMicros: 0 });
    });
  });

  describe('leases and sweeping', () => {
    it('when a process on this host died holding reservations, then the next start charges them at the reserved amount at once', async () => {
      const crashed = await process();
      await crashed.ledger.reserve(callRequest({ requestId: 'orphan', amountMicros: 4_000 }));
      // Dead, as far as this host can tell: its instance carries a PID that no process has.
      await database.query(`UPDATE instances SET pid = 999999 WHERE id = '${crashed.lease.instanceId}'`);
      await crashed.abandon();
      await storage.ledger.reserve(callRequest({ requestId: 'mine', amountMicros: 1_000 }));
      expect(await storage.sweep()).toBe(1);
      expect(await ledgerRows()).toEqual([
        expect.objectContaining({ request_id: 'orphan', outcome: 'swept', cost_micros: 4_000 }),
      ]);
      expect(await userStanding()).toMatchObject({ spentMicros: 4_000, reservedMicros: 1_000 });
      expect(await storage.ledger.settle('orphan', usage)).toEqual({ status: 'duplicate' });
      await storage.ledger.release('mine');
    });

    it('when a process restarts under the same process id (as in a container), then the earlier reservations are swept and its own are not', async () => {
      const before = await process();
      await before.ledger.reserve(callRequest({ requestId: 'left-by-the-crash', amountMicros: 4_000 }));
      await before.abandon();
      // The earlier process had this PID, but started at another time.
      await database.query(
        `UPDATE instances SET process_started_at = process_started_at - 60000 WHERE id = '${before.lease.instanceId}'`,
      );
      const after = await process();
      await after.ledger.reserve(callRequest({ requestId: 'in-flight-now', amountMicros: 1_000 }));
      expect(await after.sweep()).toBe(0);
      expect(await ledgerRows()).toEqual([
        expect.objectContaining({ request_id: 'left-by-the-crash', outcome: 'swept', cost_micros: 4_000 }),
      ]);
      expect(await after.ledger.openReservationCount()).toBe(1);
      await after.ledger.release('in-flight-now');
    });

    it("when another host's process stops renewing its lease, then its reservations are charged once the lease expires, not before", async () => {
      const otherHost = await process({ leaseMs: 1_000 });
      // Another host: its PID means nothing here, so only its lease can tell.
      await database.query(
        `UPDATE instances SET host = 'elsewhere' WHERE id = '${otherHost.lease.instanceId}'`,
      );
      await otherHost.ledger.reserve(callRequest({ requestId: 'far-away', amountMicros: 4_000 }));
      await otherHost.abandon();
      expect(await storage.sweep()).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(await storage.sweep()).toBe(1);
      expect(await userStanding()).toMatchObject({ spentMicros: 4_000, reservedMicros: 0 });
    });

    it('when a process finds its lease lapsed, then it writes what waits, renews, and only then reserves; its late settle charges nothing twice', async () => {
      const paused = await process({ leaseMs: 1_000 });
      await paused.ledger.reserve(callRequest({ requestId: 'held-while-paused', amountMicros: 4_000 }));
      // Paused past its lease: it renews nothing, and another process sweeps what it held.
      paused.lease.abandon();
      await database.query(`UPDATE instances SET host = 'elsewhere' WHERE id = '${paused.lease.instanceId}'`);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(await storage.sweep()).toBe(1);
      // It wakes up: its call ends and settles (nothing more is charged), and its next reserve renews first.
      expect((await paused.ledger.settle('held-while-paused', usage)).status).toBe('settled');
      expect((await paused.ledger.reserve(callRequest({ requestId: 'after', amountMicros: 1_000 }))).ok).toBe(
        true,
      );
      expect(await paused.lease.check()).toBe(true);
      await paused.ledger.release('after');
      await paused.flush();
      expect(await ledgerRows()).toEqual([
        expect.objectContaining({ request_id: 'held-while-paused', outcome: 'swept', cost_micros: 4_000 }),
        expect.objectContaining({ request_id: 'after', outcome: 'failed', cost_micros: 0 }),
      ]);
      expect(await userStanding()).toMatchObject({ spentMicros: 4_000, reservedMicros: 0 });
    });

    it('when a reservation outlives its TTL, then the sweep charges it and frees the budget', async () => {
      const short = await process({ reservationTtlMs: 60_000 });
      await short.ledger.reserve(callRequest({ requestId: 'stuck', amountMicros: 4_000 }));
      clock += 59_999;
      expect(await short.sweep()).toBe(0);
      clock += 1;
      expect(await short.sweep()).toBe(1);
      expect(await userStanding()).toMatchObject({ spentMicros: 4_000, reservedMicros: 0 });
    });
  });

  describe('construction', () => {
    it('when the smart model has no price, then storage refuses to open', async () => {
      await expect(process({ smartModel: 'unpriced' })).rejects.toThrow(/no price/);
      await expect(process({ smartModel: SMART_MODEL })).resolves.toBeDefined();
    });
  });

  describe('clocks', () => {
    it("when one process's clock lags behind a day another already started, then its calls still count against that day", async () => {
      const midnight = Date.parse('2026-11-25T00:00:00Z');
      const budget = { amountMicros: 1_000, period: 'day' as const };
      const ahead = await process({ defaultUserBudget: budget, now: () => midnight + 1 });
      const behind = await process({ defaultUserBudget: budget, now: () => midnight - 1 });
      expect((await ahead.ledger.reserve(callRequest({ requestId: 'ahead', amountMicros: 600 }))).ok).toBe(
        true,
      );

      const granted = [];
      for (let index = 0; index < 10; index += 1) {
        const result = await behind.ledger.reserve(
          callRequest({ requestId: `behind-${index}`, amountMicros: 600 }),
        );
        if (result.ok) granted.push(result);
      }
      expect(granted).toEqual([]);
      await ahead.ledger.settle('ahead', usage);
      await ahead.flush();
      expect((await behind.ledger.reserve(callRequest({ requestId: 'fits', amountMicros: 550 }))).ok).toBe(
        true,
      );
      expect((await ahead.budgets.standings(MEMBER))[0]).toMatchObject({
        spentMicros: USAGE_COST,
        reservedMicros: 550,
      });
      await behind.ledger.release('fits');
    });

    it.each([
      { budget: 'month', other: 'user-1' },
      { budget: 'day', other: 'user-2' },
    ] as const)(
      "when a process's clock is behind the day another's reserve moved a counter row to ($budget budgets, the other reserving for $other), then its next reserve counts in that day",
      async ({ budget, other }) => {
        // A reserve decided in the database on budgets read before (PostgreSQL) must see that a counter
        // row is in a later day than this process's clock, as the rules do; without a day limit on that
        // row (month budgets, or the server's row with no server cap) no ceiling looks at its day.
        const midnight = Date.parse('2026-11-25T00:00:00Z');
        let behindClock = midnight - 10;
        const defaultUserBudget = { amountMicros: 100_000, period: budget };
        const ahead = await process({ defaultUserBudget, now: () => midnight + 1 });
        const behind = await process({ defaultUserBudget, now: () => behindClock });
        expect((await behind.ledger.reserve(callRequest({ requestId: 'b1', amountMicros: 600 }))).ok).toBe(
          true,
        );
        expect(
          (await ahead.ledger.reserve(callRequest({ requestId: 'a1', userId: other, amountMicros: 600 }))).ok,
        ).toBe(true);
        behindClock = midnight - 5;
        expect((await behind.ledger.reserve(callRequest({ requestId: 'b2', amountMicros: 600 }))).ok).toBe(
          true,
        );
        const [b2] = await database.query<{ created_at: number }>(
          "SELECT created_at FROM reservations WHERE request_id = 'b2'",
        );
        expect(Number(b2?.created_at)).toBeGreaterThanOrEqual(midnight);
        await behind.ledger.release('b1');
        await behind.ledger.release('b2');
        await ahead.ledger.release('a1');
        expect(await ahead.ledger.openReservationCount()).toBe(0);
      },
    );
  });
});
