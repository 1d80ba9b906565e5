import { REST, RESTEvents, type RateLimitData } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { RateLimitWatch } from '../../src/discord/rate-limits.js';

/** What discord.js emits when it holds a request back (the fields the watch reads, the rest plausible). */
function rateLimited(majorParameter: string, timeToReset: number, global = false): RateLimitData {
  return {
    timeToReset,
    limit: 5,
    method: 'PATCH',
    hash: 'bucket',
    url: `/channels/${majorParameter}/messages/1`,
    route: '/channels/:id/messages/:id',
    majorParameter,
    global,
    scope: global ? 'global' : 'user',
    retryAfter: timeToReset,
    sublimitTimeout: 0,
  };
}

describe('RateLimitWatch', () => {
  it('when discord.js reports a channel limited, then writes there wait it out and other channels do not', () => {
    let now = 0;
    const rest = new REST();
    const watch = new RateLimitWatch(rest, () => now);
    rest.emit(RESTEvents.RateLimited, rateLimited('channel-1', 1_500));
    expect(watch.waitMs('channel-1')).toBe(1_500);
    expect(watch.waitMs('channel-2')).toBe(0);
    now = 1_500;
    expect(watch.waitMs('channel-1')).toBe(0);
  });

  it('when a global limit is reported, then every key waits', () => {
    let now = 0;
    const rest = new REST();
    const watch = new RateLimitWatch(rest, () => now);
    rest.emit(RESTEvents.RateLimited, rateLimited('global', 800, true));
    expect(watch.waitMs('any channel')).toBe(800);
    now = 900;
    expect(watch.waitMs('any channel')).toBe(0);
  });
});
