import { describe, expect, it } from 'vitest';
import { until } from '../support/bot.js';
import { type BotProcess, botProcessesPerTest, channelOnShard, turnsDone } from '../support/bot-process.js';
import { ACCEPT } from '../support/verdicts.js';

/*
 * Bot processes on two "hosts" sharing one PostgreSQL database: each host is a PID namespace of its own
 * (`unshare --pid --fork`), so its PIDs mean nothing to the other, and killing its first process kills
 * everything in it, as when a machine dies. Only leases, renewed on the database's clock, can tell the
 * other host that its reservations were left behind. Leases last 5 s here (30 s by default).
 */

const LEASE_SECONDS = 5;
/** Bot processes take seconds to start on a busy 2-core machine, and a lease must run out. */
const PROCESS_TEST_TIMEOUT_MS = 180_000;

const world = botProcessesPerTest();

function startHost(name: string, shardId: number, options: { ownHost?: boolean } = {}): BotProcess {
  return world.start(
    { LEASE_SECONDS: String(LEASE_SECONDS), DISCORD_SHARD_COUNT: '2', DISCORD_SHARD_IDS: String(shardId) },
    name,
    options,
  );
}

const openReservations = () => world.database.value('SELECT COUNT(*) FROM reservations');

/** The money in the counters equals the ledger's, and nothing is held: the books balance. */
async function expectBooksBalance(): Promise<void> {
  const { database } = world;
  const ledger = await database.value('SELECT COALESCE(SUM(cost_micros), 0) FROM usage_ledger');
  expect(
    await database.value(
      "SELECT COALESCE(SUM(month_spent_micros), 0) FROM spend_counters WHERE kind = 'user'",
    ),
  ).toBe(ledger);
  expect(
    await database.value(
      "SELECT COALESCE(SUM(month_spent_micros), 0) FROM spend_counters WHERE kind = 'server'",
    ),
  ).toBe(ledger);
  expect(await database.value('SELECT COALESCE(SUM(month_reserved_micros), 0) FROM spend_counters')).toBe(0);
  expect(await openReservations()).toBe(0);
}

const slowDraft = {
  type: 'stream' as const,
  chunks: Array.from({ length: 40 }, () => 'slowly '),
  chunkDelayMs: 250,
};

describe('leases across hosts', () => {
  it(
    'when a host dies mid-turn (SIGKILL to every process on it), then the other host charges its reservation at its worst case once its lease expires, and nothing else is lost',
    async () => {
      const { discord, openai, database } = world;
      const doomedChannel = channelOnShard(discord, 0, 2);
      const doomed = startHost('doomed host', 0, { ownHost: true });
      const survivor = startHost('surviving host', 1, { ownHost: true });
      await Promise.all([doomed.ready, survivor.ready]);

      // One whole turn first: what was settled before the crash must still be there after it.
      openai.drafts.script({ type: 'stream', text: 'Settled before the crash.' });
      openai.checks.script({ type: 'completion', content: ACCEPT });
      discord.messageCreate({ content: `<@${discord.bot.id}> first`, channelId: doomedChannel });
      await until(() => turnsDone(doomed).length === 1);
      await until(async () => (await database.value('SELECT COUNT(*) FROM usage_ledger')) === 2);

      openai.drafts.script(slowDraft);
      discord.messageCreate({ content: `<@${discord.bot.id}> second`, channelId: doomedChannel });
      await until(() => openai.drafts.requests.length === 2);
      expect(await openReservations()).toBe(1);
      const [held] = await database.query<{ request_id: string; amount_micros: number }>(
        'SELECT request_id, amount_micros FROM reservations',
      );

      doomed.child.kill('SIGKILL');
      await doomed.exited;
      await until(async () => (await openReservations()) === 0);

      expect(
        await database.query(
          'SELECT purpose, outcome, cost_micros, reserved_micros FROM usage_ledger ORDER BY id',
        ),
      ).toEqual([
        expect.objectContaining({ purpose: 'draft', outcome: 'settled' }),
        expect.objectContaining({ purpose: 'check', outcome: 'settled' }),
        {
          purpose: 'draft',
          outcome: 'swept',
          cost_micros: held?.amount_micros,
          reserved_micros: held?.amount_micros,
        },
      ]);
      expect(
        survivor.logs.some((line) => line.msg?.toString().startsWith('charged reservations left open')),
      ).toBe(true);
      await expectBooksBalance();
    },
    PROCESS_TEST_TIMEOUT_MS,
  );

  it(
    'when a process is paused past its lease, then its reservation is swept; when it wakes, its late settle charges nothing twice and its next reserve waits for a renewed lease',
    async () => {
      const { discord, openai, database } = world;
      const pausedChannel = channelOnShard(discord, 0, 2);
      const paused = startHost('paused process', 0);
      const sweeper = startHost('sweeping process', 1, { ownHost: true });
      await Promise.all([paused.ready, sweeper.ready]);

      openai.drafts.script(slowDraft);
      openai.checks.script({ type: 'completion', content: ACCEPT });
      discord.messageCreate({ content: `<@${discord.bot.id}> take your time`, channelId: pausedChannel });
      await until(() => openai.drafts.requests.length === 1);
      paused.child.kill('SIGSTOP');
      await until(async () => (await openReservations()) === 0);
      const [swept] = await database.query<{ request_id: string }>(
        "SELECT request_id FROM usage_ledger WHERE outcome = 'swept'",
      );
      expect(swept).toBeDefined();

      paused.child.kill('SIGCONT');
      // The woken process finishes its turn: the draft's settle finds it swept; the check renews the lease.
      await until(() => turnsDone(paused).length === 1);
      expect(paused.logs.some((line) => String(line.msg).startsWith('this process lost its lease'))).toBe(
        true,
      );
      expect(
        await database.query('SELECT request_id, purpose, outcome FROM usage_ledger ORDER BY id'),
      ).toEqual([
        { request_id: swept?.request_id, purpose: 'draft', outcome: 'swept' },
        expect.objectContaining({ purpose: 'check', outcome: 'settled' }),
      ]);
      await expectBooksBalance();
    },
    PROCESS_TEST_TIMEOUT_MS,
  );
});
