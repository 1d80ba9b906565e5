import { describe, expect, it } from 'vitest';
import { Cooldown } from '../../src/discord/cooldown.js';

describe('Cooldown', () => {
  it('when someone asks again within the cooldown, then they are told how long to wait; others are not', () => {
    let now = 0;
    const cooldown = new Cooldown(10_000, () => now);
    expect(cooldown.take('alice')).toEqual({ isAllowed: true });
    now = 4_000;
    expect(cooldown.take('alice')).toEqual({ isAllowed: false, waitMs: 6_000, isFirstRefusal: true });
    expect(cooldown.take('bob')).toEqual({ isAllowed: true });
    now = 10_000;
    expect(cooldown.take('alice')).toEqual({ isAllowed: true });
  });

  it('when someone keeps asking within the cooldown, then only the first refusal is to be told, until the next cooldown', () => {
    let now = 0;
    const cooldown = new Cooldown(10_000, () => now);
    cooldown.take('alice');
    now = 1_000;
    expect(cooldown.take('alice')).toMatchObject({ isAllowed: false, isFirstRefusal: true });
    now = 2_000;
    expect(cooldown.take('alice')).toMatchObject({ isAllowed: false, waitMs: 8_000, isFirstRefusal: false });
    now = 12_000;
    expect(cooldown.take('alice')).toEqual({ isAllowed: true });
    now = 13_000;
    expect(cooldown.take('alice')).toMatchObject({ isAllowed: false, isFirstRefusal: true });
  });

  it('when the cooldown is 0, then nobody ever waits and nobody is remembered', () => {
    const cooldown = new Cooldown(0);
    expect([cooldown.take('alice'), cooldown.take('alice')]).toEqual([
      { isAllowed: true },
      { isAllowed: true },
    ]);
    expect(cooldown.size).toBe(0);
  });
});
