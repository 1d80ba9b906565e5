import { describe, expect, it } from 'vitest';
import {
  applicableLimits,
  type Budget,
  describeDenial,
  findDenial,
  type LimitStanding,
  periodWindow,
} from '../../src/core/budget.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe('periodWindow', () => {
  it('when the period is a day, then the window is that UTC calendar day', () => {
    const window = periodWindow('day', at('2026-11-24T23:59:59.999Z'));
    expect([iso(window.startMs), iso(window.endMs)]).toEqual([
      '2026-11-24T00:00:00.000Z',
      '2026-11-25T00:00:00.000Z',
    ]);
  });

  it('when the period is a week, then the window is the ISO week from Monday 00:00 UTC', () => {
    // 2026-11-24 is a Tuesday; 2026-11-29 a Sunday, still in the same ISO week.
    for (const moment of ['2026-11-24T12:00:00Z', '2026-11-23T00:00:00Z', '2026-11-29T23:59:59Z']) {
      const window = periodWindow('week', at(moment));
      expect([iso(window.startMs), iso(window.endMs)]).toEqual([
        '2026-11-23T00:00:00.000Z',
        '2026-11-30T00:00:00.000Z',
      ]);
    }
  });

  it('when the period is a month, then the window is the calendar month, across year ends too', () => {
    const november = periodWindow('month', at('2026-11-24T08:00:00Z'));
    expect([iso(november.startMs), iso(november.endMs)]).toEqual([
      '2026-11-01T00:00:00.000Z',
      '2026-12-01T00:00:00.000Z',
    ]);
    const december = periodWindow('month', at('2026-12-31T23:00:00Z'));
    expect(iso(december.endMs)).toBe('2027-01-01T00:00:00.000Z');
  });
});

const monthly = (usd: number): Budget => ({ amountMicros: usd * 1_000_000, period: 'month' });

describe('applicableLimits', () => {
  const botDefault = monthly(1);

  it("when a member has their own budget, then it replaces the server's default", () => {
    const limits = applicableLimits({
      own: monthly(5),
      serverDefault: monthly(2),
      botDefault,
      isDirectMessage: false,
    });
    expect(limits).toEqual([{ kind: 'user', source: 'own', budget: monthly(5) }]);
  });

  it("when a server sets a default and a cap, then members are held to both, the user's first", () => {
    const limits = applicableLimits({
      serverDefault: monthly(2),
      serverTotal: monthly(50),
      botDefault,
      botServerCap: monthly(100),
      isDirectMessage: false,
    });
    expect(limits.map((limit) => [limit.kind, limit.source])).toEqual([
      ['user', 'server-default'],
      ['server', 'server-cap'],
    ]);
  });

  it('when nothing is set, then the bot defaults apply', () => {
    expect(applicableLimits({ botDefault, botServerCap: monthly(100), isDirectMessage: false })).toEqual([
      { kind: 'user', source: 'bot-default', budget: botDefault },
      { kind: 'server', source: 'bot-cap', budget: monthly(100) },
    ]);
  });

  it('when in a direct message, then only the bot default applies', () => {
    expect(applicableLimits({ botDefault, botServerCap: monthly(100), isDirectMessage: true })).toEqual([
      { kind: 'user', source: 'bot-default', budget: botDefault },
    ]);
  });
});

function standing(
  kind: 'user' | 'server',
  limitMicros: number,
  spentMicros: number,
  reservedMicros = 0,
): LimitStanding {
  return {
    kind,
    source: kind === 'user' ? 'own' : 'server-cap',
    budget: { amountMicros: limitMicros, period: 'month' },
    window: periodWindow('month', at('2026-11-24T00:00:00Z')),
    spentMicros,
    reservedMicros,
  };
}

describe('findDenial', () => {
  it('when spent + reserved + this call fits every limit exactly, then it is allowed', () => {
    expect(
      findDenial([standing('user', 1_000, 600, 300), standing('server', 5_000, 4_900)], 100),
    ).toBeUndefined();
  });

  it('when one micro-dollar would pass a limit, then it is denied with what remains', () => {
    const denial = findDenial([standing('user', 1_000, 600, 300), standing('server', 5_000, 0)], 101);
    expect(denial).toMatchObject({ limit: { kind: 'user' }, remainingMicros: 100, requestedMicros: 101 });
  });

  it("when only the server's cap is short, then the denial names the server", () => {
    const denial = findDenial([standing('user', 1_000, 0), standing('server', 5_000, 4_950)], 100);
    expect(denial?.limit.kind).toBe('server');
    expect(denial?.resetsAtMs).toBe(at('2026-12-01T00:00:00Z'));
  });

  it('when a budget is 0, then every call is denied', () => {
    expect(findDenial([standing('user', 0, 0)], 1)).toBeDefined();
  });

  it('when a denial is described, then it says which limit, spent of what, what is left and when it resets', () => {
    const denial = findDenial([standing('user', 1_000_000, 998_000, 1_000)], 5_000);
    expect(denial && describeDenial(denial)).toBe(
      'Not enough left in your budget: $0.9980 of $1.0000 spent this month, $0.0010 held by answers in progress; ' +
        '$0.0010 left, and this answer could cost up to $0.0050. Resets Dec 1, 00:00 UTC.',
    );
    const server = findDenial([standing('user', 1_000_000, 0), standing('server', 2_000_000, 2_000_000)], 1);
    expect(server && describeDenial(server)).toContain(
      "this server's budget: $2.0000 of $2.0000 spent this month",
    );
  });
});
