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
});
