import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { type FakeDiscord, shardOfGuild, startFakeDiscord } from '../fakes/discord/index.js';
import { type SplitOpenAI, startSplitOpenAI } from '../fakes/openai-router.js';
import { until } from '../support/bot.js';
import { type BotProcess, startBotProcess, turnsDone } from '../support/bot-process.js';
import { type TemporaryDatabase, temporaryDatabase } from '../support/databases.js';
import { loopbackEnvironment } from '../support/environment.js';
import { ACCEPT } from '../support/verdicts.js';

/*
 * Discord shards spread over bot processes that share one PostgreSQL database: each process runs the
 * shards DISCORD_SHARD_IDS lists, and the loopback Discord routes each guild's events to the session of
 * its shard — (guild_id >> 22) % shard count — and DMs to shard 0, as Discord does.
 */

/** Bot processes take seconds to start on a busy 2-core machine. */
const PROCESS_TEST_TIMEOUT_MS = 180_000;

let discord: FakeDiscord;
let openai: SplitOpenAI;
let anthropic: FakeAnthropic;
let database: TemporaryDatabase;
let bots: BotProcess[];

beforeEach(async () => {
  [discord, openai, anthropic, database] = await Promise.all([
    startFakeDiscord({ heartbeatIntervalMs: 5_000 }),
    startSplitOpenAI(),
    startFakeAnthropic(),
    temporaryDatabase('postgres'),
  ]);
  bots = [];
});

afterEach(async () => {
  await Promise.all(bots.map((bot) => bot.stop()));
  await Promise.all([discord.close(), openai.close(), anthropic.close()]);
  await database.cleanup();
});

function startShardProcess(shardIds: string, name: string): BotProcess {
  const bot = startBotProcess(
    {
      ...loopbackEnvironment({ discord, openai, anthropic, database }),
      DISCORD_SHARD_COUNT: '2',
      DISCORD_SHARD_IDS: shardIds,
    },
    name,
  );
  bots.push(bot);
  return bot;
}

/** A server on the given shard of two (the fake's ids are sequential snowflakes: a few tries suffice). */
function guildOnShard(shardId: number) {
  for (;;) {
    const guild =
      shardOfGuild(discord.guild.id, 2) === shardId && !usedGuilds.has(discord.guild.id)
        ? discord.guild
        : discord.addGuild({ name: `server on shard ${shardId}` });
    if (shardOfGuild(guild.id, 2) === shardId) {
      usedGuilds.add(guild.id);
      discord.addMember(discord.user.id, { guildId: guild.id });
      return guild;
    }
  }
}
const usedGuilds = new Set<string>();

function scriptAnswers(count: number): void {
  for (let index = 0; index < count; index += 1) {
    openai.drafts.script({ type: 'stream', text: `Answer ${index + 1}.`, finishReason: 'stop' });
    openai.checks.script({ type: 'completion', content: ACCEPT });
  }
}

const channelOf = (guildId: string) =>
  [...discord.world.channels.values()].find(
    (channel) => 'guild_id' in channel && channel.guild_id === guildId && channel.name === 'general',
  )?.id ?? '';

describe('Discord shards over two processes', () => {
  it(
    "when two processes run shards 0 and 1, then each guild's messages are answered once, by the process of its shard, and DMs by shard 0's",
    async () => {
      usedGuilds.clear();
      const shard0Guild = guildOnShard(0);
      const shard1Guild = guildOnShard(1);
      const first = startShardProcess('0', 'shard-0 process');
      const second = startShardProcess('1', 'shard-1 process');
      await Promise.all([first.ready, second.ready]);
      expect(discord.shards).toEqual([0, 1]);
      expect(discord.identifies.map((identify) => identify.shard).sort()).toEqual([
        [0, 2],
        [1, 2],
      ]);

      scriptAnswers(3);
      discord.messageCreate({ content: `<@${discord.bot.id}> first?`, channelId: channelOf(shard0Guild.id) });
      discord.messageCreate({
        content: `<@${discord.bot.id}> second?`,
        channelId: channelOf(shard1Guild.id),
      });
      discord.directMessageCreate({ content: 'and a DM?' });
      await until(() => turnsDone(first).length + turnsDone(second).length === 3);

      expect(
        turnsDone(first)
          .map((line) => line.guildId)
          .sort(),
      ).toEqual([null, shard0Guild.id].sort());
      expect(turnsDone(second).map((line) => line.guildId)).toEqual([shard1Guild.id]);
      expect(await database.value("SELECT COUNT(*) FROM usage_ledger WHERE purpose = 'draft'")).toBe(3);
    },
    PROCESS_TEST_TIMEOUT_MS,
  );

  it(
    'when one shard runs in two processes at once (a deploy overlap) and both get an event, then it is answered once and charged once',
    async () => {
      usedGuilds.clear();
      const guild = guildOnShard(0);
      const old = startShardProcess('0', 'old shard-0 process');
      await old.ready;
      const replacement = startShardProcess('0', 'new shard-0 process');
      await replacement.ready;
      scriptAnswers(2);

      discord.messageCreate({
        content: `<@${discord.bot.id}> only once, please`,
        channelId: channelOf(guild.id),
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
