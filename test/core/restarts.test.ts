import { describe, expect, it } from 'vitest';
import { loginBackoffMs, MAX_BACKOFF_MS } from '../../src/core/restarts.js';

const NOW = Date.parse('2026-11-24T12:00:00Z');
const secondsAgo = (...seconds: number[]) => seconds.map((value) => NOW - value * 1_000);

describe('loginBackoffMs', () => {
  it('when the bot starts for the first or second time in five minutes, then it logs in at once', () => {
    expect(loginBackoffMs([], NOW)).toBe(0);
    expect(loginBackoffMs(secondsAgo(30), NOW)).toBe(0);
  });

  it('when it keeps restarting, then each start waits twice as long as the one before, up to five minutes', () => {
    expect(loginBackoffMs(secondsAgo(10, 20), NOW)).toBe(5_000);
    expect(loginBackoffMs(secondsAgo(10, 20, 30), NOW)).toBe(10_000);
    expect(loginBackoffMs(secondsAgo(10, 20, 30, 40), NOW)).toBe(20_000);
    expect(loginBackoffMs(secondsAgo(...Array.from({ length: 30 }, (_, index) => index + 1)), NOW)).toBe(
      MAX_BACKOFF_MS,
    );
  });

  it('when earlier starts are older than five minutes, then they do not count', () => {
    expect(loginBackoffMs(secondsAgo(301, 400, 500), NOW)).toBe(0);
  });
});
