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
