import { describe, expect, it } from 'vitest';
import { Cooldown } from '../../src/discord/cooldown.js';

describe('Cooldown', () => {
  it('when someone asks again within the cooldown, then they are told how long to wait; others are not', () => {
    let now = 0;
    const cooldown = new Cooldown(10_000, () => now);
    expect(cooldown.take('alice')).toBe(0);
    now = 4_000;
    expect(cooldown.take('alice')).toBe(6_000);
    expect(cooldown.take('bob')).toBe(0);
    now = 10_000;
    expect(cooldown.take('alice')).toBe(0);
  });

  it('when the cooldown is 0, then nobody ever waits', () => {
    const cooldown = new Cooldown(0);
    expect([cooldown.take('alice'), cooldown.take('alice')]).toEqual([0, 0]);
  });
});
