import { describe, expect, it } from 'vitest';
import { type LimitStanding, periodWindow } from '../../src/core/budget.js';
import { describeNotice, dueNotice, type NoticeKey } from '../../src/core/notices.js';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const OWNER = { userId: 'user-1', guildId: 'guild-1' };

function standing(spentMicros: number, kind: LimitStanding['kind'] = 'user'): LimitStanding {
  return {
    kind,
    source: kind === 'user' ? 'own' : 'server-cap',
    budget: { amountMicros: 1_000_000, period: 'month' },
    window: periodWindow('month', NOW),
    spentMicros,
    reservedMicros: 0,
  };
}

/** A claim log in memory: the rule under test is which notices are claimed and which one is told. */
function claims() {
  const given = new Set<string>();
  const keys: NoticeKey[] = [];
  const claim = async (key: NoticeKey) => {
    keys.push(key);
    const id = JSON.stringify(key);
    if (given.has(id)) return false;
    given.add(id);
    return true;
  };
  return { claim, keys };
}

describe('dueNotice', () => {
  it('when spending is under 80%, then nothing is due and nothing is claimed', async () => {
    const log = claims();
    expect(await dueNotice(standing(799_999), OWNER, log.claim)).toBeUndefined();
    expect(log.keys).toEqual([]);
  });

  it('when spending reaches 80%, then the 80% notice is due once in the window', async () => {
    const log = claims();
    expect(await dueNotice(standing(800_000), OWNER, log.claim)).toBe(80);
    expect(await dueNotice(standing(900_000), OWNER, log.claim)).toBeUndefined();
    expect(log.keys[0]).toEqual({
      kind: 'user',
      guildId: 'guild-1',
      userId: 'user-1',
      windowStartMs: Date.parse('2026-11-01T00:00:00Z'),
      percent: 80,
    });
  });

  it('when one turn jumps from under 80% to 100%, then only the 100% notice is told and 80% is not told later', async () => {
    const log = claims();
    expect(await dueNotice(standing(1_000_000), OWNER, log.claim)).toBe(100);
    expect(log.keys.map((key) => key.percent)).toEqual([80, 100]);
    expect(await dueNotice(standing(1_200_000), OWNER, log.claim)).toBeUndefined();
  });

  it("when it is a server's cap, then the notice is keyed by the server alone", async () => {
    const log = claims();
    expect(await dueNotice(standing(850_000, 'server'), OWNER, log.claim)).toBe(80);
    expect(log.keys[0]).toMatchObject({ kind: 'server', guildId: 'guild-1', userId: '' });
  });

  it('when the budget is 0 (blocked), then no notice is due', async () => {
    const blocked = { ...standing(0), budget: { amountMicros: 0, period: 'month' as const } };
    expect(await dueNotice(blocked, OWNER, claims().claim)).toBeUndefined();
  });
});

describe('describeNotice', () => {
  it('says whose budget, the share, spent of limit in the period, and the reset', () => {
    expect(describeNotice(80, standing(812_345))).toBe(
      '80% of your budget used ($0.8123 of $1.0000 this month); resets Dec 1, 00:00 UTC',
    );
    expect(describeNotice(100, standing(1_000_000, 'server'))).toBe(
      "100% of this server's budget used ($1.0000 of $1.0000 this month); resets Dec 1, 00:00 UTC",
    );
  });
});
