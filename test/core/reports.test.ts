import { describe, expect, it } from 'vitest';
import { type Budget, type LimitStanding, periodWindow } from '../../src/core/budget.js';
import { forecastSpend } from '../../src/core/forecast.js';
import type { Member } from '../../src/core/ports.js';
import {
  budgetShareText,
  foldByModel,
  forecastLine,
  rankSpenders,
  type ReportSources,
  serverView,
  spentLine,
  summarizeAnswers,
} from '../../src/core/reports.js';
import type { BucketUsage, OverviewQuery, UsageOverview } from '../../src/core/usage.js';

const DECEMBER = periodWindow('month', Date.UTC(2026, 11, 15));
const MONTHLY = (amountMicros: number): Budget => ({ amountMicros, period: 'month' });

function standing(overrides: Partial<LimitStanding> & Pick<LimitStanding, 'kind' | 'budget'>): LimitStanding {
  return {
    source: overrides.kind === 'server' ? 'server-cap' : 'own',
    window: periodWindow(overrides.budget.period, Date.UTC(2026, 11, 15)),
    spentMicros: 0,
    reservedMicros: 0,
    ...overrides,
  };
}

function usage(model: string, costMicros: number, startMs = DECEMBER.startMs): BucketUsage {
  return {
    startMs,
    model,
    calls: 2,
    inputTokens: 10,
    cachedInputTokens: 1,
    cacheWriteTokens: 0,
    outputTokens: 5,
    costMicros,
    smartCostMicros: costMicros * 4,
  };
}

describe('the figures', () => {
  it('when a model comes once per day and server, then by model it is one row, the dearest first', () => {
    const { startMs: _startMs, ...haiku } = usage('claude-haiku-4-5', 50);
    expect(
      foldByModel([usage('gpt-4o-mini', 10), usage('claude-haiku-4-5', 50), usage('gpt-4o-mini', 15)]),
    ).toEqual([
      haiku,
      {
        model: 'gpt-4o-mini',
        calls: 4,
        inputTokens: 20,
        cachedInputTokens: 2,
        cacheWriteTokens: 0,
        outputTokens: 10,
        costMicros: 25,
        smartCostMicros: 100,
      },
    ]);
  });

  it('when answers come by day and reason, then they add up by reason, the most first, and savings never go below zero', () => {
    const summary = summarizeAnswers([
      { reason: null, answers: 5, costMicros: 100, smartOnlyCostMicros: 900 },
      { reason: 'check', answers: 1, costMicros: 400, smartOnlyCostMicros: 300 },
      { reason: 'router', answers: 2, costMicros: 300, smartOnlyCostMicros: 200 },
      { reason: 'check', answers: 2, costMicros: 600, smartOnlyCostMicros: 500 },
    ]);
    expect(summary).toEqual({
      answers: 10,
      escalations: 5,
      byReason: [
        { reason: 'check', answers: 3 },
        { reason: 'router', answers: 2 },
      ],
      costMicros: 1_400,
      smartOnlyCostMicros: 1_900,
      savedMicros: 500,
    });
    expect(
      summarizeAnswers([{ reason: 'user', answers: 1, costMicros: 9, smartOnlyCostMicros: 5 }]).savedMicros,
    ).toBe(0);
  });

  it('when spenders are ranked, then the biggest come first, ties by id, none at $0, at most the count', () => {
    const spent = new Map<string | null, number>([
      ['b', 5],
      ['a', 5],
      [null, 9],
      ['zero', 0],
      ['c', 1],
    ]);
    expect(rankSpenders(spent, 3)).toEqual([
      { id: null, spentMicros: 9 },
      { id: 'a', spentMicros: 5 },
      { id: 'b', spentMicros: 5 },
    ]);
  });
});

describe('what the views say', () => {
  const cap = standing({ kind: 'server', budget: MONTHLY(50_000_000), spentMicros: 12_340_000 });

  it('when a cap runs over the period, then the first line is spent of it; without one, of no cap; over another period, it says which', () => {
    expect(spentLine('Server spent', 12_340_000, 'month', { noun: 'cap', standing: cap })).toBe(
      'Server spent $12.3400 of $50.0000 this month',
    );
    expect(spentLine('Server spent', 0, 'week', { noun: 'cap', standing: undefined })).toBe(
      'Server spent $0.0000 of no cap this week',
    );
    expect(spentLine('Server spent', 1_000, 'day', { noun: 'cap', standing: cap })).toBe(
      'Server spent $0.0010 this day (the cap is $50.0000 a month)',
    );
    expect(spentLine('Server spent', 1_000, 'all', { noun: 'cap', standing: cap })).toBe(
      'Server spent $0.0010 all time',
    );
    expect(spentLine('Bot spent', 2_500_000, 'month')).toBe('Bot spent $2.5000 this month');
  });

  it('when a forecast is shown, then it names the end of the period and the day the cap is met; before, it says when it will be', () => {
    const nowMs = Date.UTC(2026, 11, 3);
    const shown = forecastSpend({ window: DECEMBER, nowMs, spentMicros: 1_000_000, limitMicros: 10_000_000 });
    expect(forecastLine(shown, 'month', DECEMBER, 'the cap')).toBe(
      'at this pace: $15.5000 by Dec 31 — the cap is reached around Dec 21',
    );
    const early = forecastSpend({ window: DECEMBER, nowMs: nowMs - 1, spentMicros: 1_000_000 });
    expect(forecastLine(early, 'month', DECEMBER, 'the cap')).toBe(
      'no forecast before Dec 3, 00:00 UTC: too early in the month to tell',
    );
    const day = periodWindow('day', Date.UTC(2026, 11, 9));
    const hourly = forecastSpend({
      window: day,
      nowMs: Date.UTC(2026, 11, 9, 6),
      spentMicros: 100_000,
      limitMicros: 300_000,
    });
    expect(forecastLine(hourly, 'day', day, 'the budget')).toBe(
      'at this pace: $0.4000 by the end of the day — the budget is reached around 18:00 UTC',
    );
  });

  it("when a member's budget comes from a role, then their share names the role; a $0 budget blocks", () => {
    const fromRole = standing({
      kind: 'user',
      source: 'role',
      roleId: '42',
      budget: MONTHLY(5_000_000),
      spentMicros: 3_200_000,
    });
    expect(budgetShareText(fromRole, (roleId) => `<@&${roleId}>`)).toBe(
      '64% of $5.0000 a month (role <@&42>)',
    );
    const blocked = standing({
      kind: 'user',
      source: 'server-default',
      budget: { amountMicros: 0, period: 'day' },
    });
    expect(budgetShareText(blocked, String)).toBe('blocked $0.0000 a day (server default)');
  });
});

/**
 * The sources as a scripted port: each call must be one the test scripted (by what it is for), or the
 * test fails loudly.
 */
function scriptedSources(script: {
  overview: (query: OverviewQuery) => UsageOverview;
  standings: (member: Member) => LimitStanding[];
  roleBudgets: Record<string, { roleId: string; budget: Budget }[]>;
}) {
  const calls: { standings: Member[]; overview: OverviewQuery[] } = { standings: [], overview: [] };
  const sources: ReportSources = {
    usage: {
      async overview(query) {
        calls.overview.push(query);
        return script.overview(query);
      },
    },
    budgets: {
      async standings(member) {
        calls.standings.push(member);
        return script.standings(member);
      },
      async standingsOfMembers(members) {
        calls.standings.push(...members);
        return members.map((member) => script.standings(member));
      },
      async roleBudgets(guildId) {
        const budgets = script.roleBudgets[guildId];
        if (!budgets) throw new Error(`unscripted roleBudgets(${guildId})`);
        return budgets;
      },
    },
  };
  return { sources, calls };
}

describe('serverView', () => {
  const nowMs = Date.UTC(2026, 11, 9, 12);
  const cap = standing({ kind: 'server', budget: MONTHLY(10_000_000), spentMicros: 3_000_000 });
  const budgets: Record<string, LimitStanding> = {
    asker: standing({ kind: 'user', budget: MONTHLY(1_000_000) }),
    alice: standing({
      kind: 'user',
      source: 'role',
      roleId: 'pro',
      budget: MONTHLY(4_000_000),
      spentMicros: 2_000_000,
    }),
    bob: standing({
      kind: 'user',
      source: 'server-default',
      budget: MONTHLY(2_000_000),
      spentMicros: 1_000_000,
    }),
  };

  function scripted(roleBudgets: { roleId: string; budget: Budget }[]) {
    return scriptedSources({
      overview(query) {
        if (query.scope.kind !== 'server' || query.scope.guildId !== 'guild') {
          throw new Error(`unscripted overview ${JSON.stringify(query.scope)}`);
        }
        return {
          buckets: [
            usage('gpt-4o-mini', 2_000_000, DECEMBER.startMs),
            usage('claude-haiku-4-5', 1_000_000, nowMs - 3_600_000),
          ],
          top: [
            { id: 'alice', spentMicros: 2_000_000 },
            { id: 'bob', spentMicros: 1_000_000 },
          ],
          routes: [],
        };
      },
      standings(member) {
        const own = budgets[member.userId];
        if (!own || member.guildId !== 'guild')
          throw new Error(`unscripted standings ${JSON.stringify(member)}`);
        return [own, cap];
      },
      roleBudgets: { guild: roleBudgets },
    });
  }

  it("when the server has a monthly cap, then the view is the cap's month: the cap line and its forecast, members against their own budgets", async () => {
    const { sources, calls } = scripted([{ roleId: 'pro', budget: MONTHLY(4_000_000) }]);
    const view = await serverView(sources, {
      guildId: 'guild',
      askerId: 'asker',
      defaultPeriod: 'week',
      nowMs,
      smartModel: 'claude-haiku-4-5',
      rolesOf: (userId) => (userId === 'alice' ? ['pro'] : undefined),
    });

    expect(calls.overview).toEqual([
      {
        scope: { kind: 'server', guildId: 'guild' },
        window: DECEMBER,
        period: 'month',
        bucketMs: 86_400_000,
        topCount: 10,
      },
    ]);
    expect(calls.standings.map((member) => [member.userId, member.roleIds])).toEqual([
      ['asker', []],
      ['alice', ['pro']],
      ['bob', []],
    ]);
    expect(view).toMatchObject({ period: 'month', spentMicros: 3_000_000, cap, doesCapApply: true });
    expect(view.top).toEqual([
      { userId: 'alice', spentMicros: 2_000_000, budget: budgets.alice, isBudgetCertain: true },
      // The server has role budgets and bob's roles are not known: his share may be wrong, and says so.
      { userId: 'bob', spentMicros: 1_000_000, budget: budgets.bob, isBudgetCertain: false },
    ]);
    expect(view.chart.limit).toEqual({ micros: 10_000_000, label: 'cap' });
    expect(view.chart.totalMicros).toBe(3_000_000);
    expect(view.forecast).toMatchObject({ isShown: true });
  });

  it("when the server has no role budgets, then unknown roles do not matter; a period other than the cap's draws no cap line", async () => {
    const { sources } = scripted([]);
    const view = await serverView(sources, {
      guildId: 'guild',
      askerId: 'asker',
      period: 'week',
      defaultPeriod: 'week',
      nowMs,
      smartModel: 'claude-haiku-4-5',
      rolesOf: () => undefined,
    });
    expect(view.top.map((member) => member.isBudgetCertain)).toEqual([true, true]);
    expect(view).toMatchObject({ period: 'week', doesCapApply: false });
    expect(view.chart.limit).toBeUndefined();
  });
});
