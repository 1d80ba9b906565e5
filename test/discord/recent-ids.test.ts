import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/discord/recent-ids.js';

describe('RecentIds', () => {
  it('when an id comes twice, then only the first is taken', () => {
    const ids = new RecentIds();
    expect(ids.take('1')).toBe(true);
    expect(ids.take('2')).toBe(true);
    expect(ids.take('1')).toBe(false);
  });

  it('when more ids come than it holds, then the oldest are forgotten first', () => {
    const ids = new RecentIds(2);
    ids.take('1');
    ids.take('2');
    ids.take('3');
    expect(ids.take('2')).toBe(false);
    expect(ids.take('3')).toBe(false);
    expect(ids.take('1')).toBe(true);
  });

  it('when ids keep coming, many times what it holds, then it always knows exactly the newest ones', () => {
    const ids = new RecentIds(3);
    for (let index = 0; index < 10; index += 1) expect(ids.take(String(index))).toBe(true);
    expect(['7', '8', '9'].map((id) => ids.take(id))).toEqual([false, false, false]);
    expect(ids.take('6')).toBe(true);
    expect(ids.size).toBe(3);
  });

  it('when an id was taken longer ago than it is remembered, then it is forgotten, and a repeat within that is not', () => {
    let now = 0;
    const ids = new RecentIds(100, 60_000, () => now);
    ids.take('old');
    now = 30_000;
    ids.take('newer');
    now = 59_999;
    expect(ids.take('old')).toBe(false);
    now = 60_000;
    expect(ids.take('newer')).toBe(false);
    expect(ids.size).toBe(1);
    expect(ids.take('old')).toBe(true);
  });
});
