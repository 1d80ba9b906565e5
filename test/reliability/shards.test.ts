import { describe, expect, it } from 'vitest';
import { until } from '../support/bot.js';
import { type BotProcess, botProcessesPerTest, channelOnShard, turnsDone } from '../support/bot-process.js';
import { ACCEPT } from '../support/verdicts.js';

/*
 * Discord shards spread over bot processes that share one PostgreSQL database: each process runs the
 * shards DISCORD_SHARD_IDS lists, and the loopback Discord routes each guild's events to the session of
 * its shard — (guild_id >> 22) % shard count — and DMs to shard 0, as Discord does.
 */

/** Bot processes take seconds to start on a busy 2-core machine. */
const PROCESS_TEST_TIMEOUT_MS = 180_000;

const world = botProcessesPerTest();

function startShardProcess(shardIds: string, name: string): BotProcess {
  return world.start({ DISCORD_SHARD_COUNT: '2', DISCORD_SHARD_IDS: shardIds }, name);
}

function scriptAnswers(count: number): void {
  for (let index = 0; index < count; index += 1) {
    world.openai.drafts.script({ type: 'stream', text: `Answer ${index + 1}.`, finishReason: 'stop' });
    world.openai.checks.script({ type: 'completion', content: ACCEPT });
  }
}

const guildOf = (channelId: string) => world.discord.world.guildIdOf(world.discord.world.channel(channelId));

describe('Discord shards over two processes', () => {
  it(
    "when two processes run shards 0 and 1, then each guild's messages are answered once, by the process of its shard, and DMs by shard 0's",
    async () => {
      const { discord, database } = world;
      const shard0Channel = channelOnShard(discord, 0, 2);
      const shard1Channel = channelOnShard(discord, 1, 2);
      const first = startShardProcess('0', 'shard-0 process');
      const second = startShardProcess('1', 'shard-1 process');
      await Promise.all([first.ready, second.ready]);
      expect(discord.shards).toEqual([0, 1]);
      expect(discord.identifies.map((identify) => identify.shard).sort()).toEqual([
        [0, 2],
        [1, 2],
      ]);

      scriptAnswers(3);
      discord.messageCreate({ content: `<@${discord.bot.id}> first?`, channelId: shard0Channel });
      discord.messageCreate({ content: `<@${discord.bot.id}> second?`, channelId: shard1Channel });
      discord.directMessageCreate({ content: 'and a DM?' });
      await until(() => turnsDone(first).length + turnsDone(second).length === 3);

      expect(
        turnsDone(first)
          .map((line) => line.guildId)
          .sort(),
      ).toEqual([null, guildOf(shard0Channel)].sort());
      expect(turnsDone(second).map((line) => line.guildId)).toEqual([guildOf(shard1Channel)]);
      expect(await database.value("SELECT COUNT(*) FROM usage_ledger WHERE purpose = 'draft'")).toBe(3);
    },
    PROCESS_TEST_TIMEOUT_MS,
  );

  it(
    'when one shard runs in two processes at once (a deploy overlap) and both get an event, then it is answered once and charged once',
    async () => {
      const { discord, database, openai } = world;
      const channelId = channelOnShard(discord, 0, 2);
      const old = startShardProcess('0', 'old shard-0 process');
      await old.ready;
      const replacement = startShardProcess('0', 'new shard-0 process');
      await replacement.ready;
      scriptAnswers(2);

      discord.messageCreate({
        content: `<@${discord.bot.id}> only once, please`,
        channelId,
        toEverySession: true,
      });
      await until(() => turnsDone(old).length + turnsDone(replacement).length >= 1);
      // Give the other process every chance to answer too.
      await new Promise((resolve) => setTimeout(resolve, 1_000));

      expect(turnsDone(old).length + turnsDone(replacement).length).toBe(1);
      expect(openai.drafts.requests).toHaveLength(1);
      expect(await database.value('SELECT COUNT(*) FROM usage_ledger')).toBe(2);
      const replies = discord.requests.filter(
        (request) => request.route === 'POST /channels/:channel_id/messages',
      );
      expect(replies).toHaveLength(1);
    },
    PROCESS_TEST_TIMEOUT_MS,
  );
});
