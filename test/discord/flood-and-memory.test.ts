import { setTimeout as sleep } from 'node:timers/promises';
import { type APIMessage, ChannelType, REST, RESTEvents } from 'discord.js';
import { describe, expect, it } from 'vitest';
import {
  DIRECT_MESSAGE_CHANNEL_IDLE_MS,
  EMPTY_QUESTION_HINT,
  ONE_AT_A_TIME,
  sweepIdleDirectMessageChannels,
} from '../../src/discord/bot.js';
import { Cooldown } from '../../src/discord/cooldown.js';
import { RateLimitWatch } from '../../src/discord/rate-limits.js';
import { RecentIds, REMEMBERED_IDS, REMEMBERED_IDS_MS } from '../../src/discord/recent-ids.js';
import {
  MESSAGES_WAITING_PER_USER,
  TURNS_IN_FLIGHT_PER_USER,
  UserLanes,
} from '../../src/discord/user-lanes.js';
import { type BotHarness, botPerTest, until } from '../support/bot.js';

/**
 * A long-running bot must not grow with the number of people it has ever seen, nor let one person's flood
 * of messages queue without end. The bookkeeping is driven with tens of thousands of distinct people and
 * must come back to holding only what still matters; the real bot is flooded and must answer what its
 * bound allows, tell the sender once, and call no model for the rest.
 */

const PEOPLE = 50_000;
const person = (index: number) => `person-${index}`;

describe('memory stays flat over many distinct people', () => {
  it('when 50,000 people each have a message answered, then no lane is left once they are done', async () => {
    const lanes = new UserLanes(TURNS_IN_FLIGHT_PER_USER, MESSAGES_WAITING_PER_USER);
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const results: Promise<unknown>[] = [];
    for (let index = 0; index < PEOPLE; index += 1) {
      const offer = lanes.offer(person(index), () => released);
      if (offer.isAccepted) results.push(offer.result);
    }
    expect(lanes.size).toBe(PEOPLE);

    release();
    await Promise.all(results);
    expect(lanes.size).toBe(0);
  });

  it('when 50,000 people ask under a cooldown, then once it has passed only the next asker is remembered', () => {
    let now = 0;
    const cooldown = new Cooldown(60_000, () => now);
    for (let index = 0; index < PEOPLE; index += 1) {
      now += 1;
      cooldown.take(person(index));
    }
    expect(cooldown.size).toBe(PEOPLE);

    now += 60_000;
    expect(cooldown.take('latecomer')).toEqual({ isAllowed: true });
    expect(cooldown.size).toBe(1);
  });

  it('when 50,000 messages are taken, then at most the bound of ids is held, and once they are old only the next one', () => {
    let now = 0;
    const ids = new RecentIds(REMEMBERED_IDS, REMEMBERED_IDS_MS, () => now);
    for (let index = 0; index < PEOPLE; index += 1) ids.take(`message-${index}`);
    expect(ids.size).toBe(REMEMBERED_IDS);

    now += REMEMBERED_IDS_MS;
    ids.take('next');
    expect(ids.size).toBe(1);
  });

  it('when discord.js reports 50,000 channels rate-limited, then once the limits have passed none is held', () => {
    let now = 0;
    const rest = new REST();
    const watch = new RateLimitWatch(rest, () => now);
    for (let index = 0; index < PEOPLE; index += 1) {
      rest.emit(RESTEvents.RateLimited, {
        timeToReset: 1_000,
        limit: 5,
        method: 'POST',
        hash: 'bucket',
        url: `/channels/${index}/messages`,
        route: '/channels/:id/messages',
        majorParameter: `channel-${index}`,
        global: false,
        scope: 'user',
        retryAfter: 1_000,
        sublimitTimeout: 0,
      });
    }
    expect(watch.size).toBe(PEOPLE);

    now += 60_000;
    expect(watch.waitMs('channel-0')).toBe(0);
    expect(watch.size).toBe(0);
  });
});

const startBot = botPerTest();

/** The bot's replies to a message. */
const repliesTo = (harness: BotHarness, question: APIMessage) =>
  harness.discord
    .messagesIn(question.channel_id)
    .filter(
      (message) =>
        message.author.id === harness.discord.bot.id && message.message_reference?.message_id === question.id,
    );

const isFooted = (content: string) => content.includes('\n-# ');

describe('a flood from one person', () => {
  it('when one person sends twelve messages at once, then five are answered, the sixth is told once, and the rest call no model', async () => {
    const harness = await startBot();
    const { discord, openai, app } = harness;
    // Manual escalation: one model call per answer, so every call is a draft whose question can be read.
    await app.storage.settings.update(discord.guild.id, { escalationMode: 'manual' }, discord.owner.id);
    const accepted = TURNS_IN_FLIGHT_PER_USER + MESSAGES_WAITING_PER_USER;
    // The first answers take their time: the whole flood arrives while they are in progress.
    openai.script(
      ...Array.from({ length: TURNS_IN_FLIGHT_PER_USER }, () => ({
        type: 'stream' as const,
        text: 'A slow answer.',
        firstChunkDelayMs: 1_000,
      })),
      ...Array.from({ length: MESSAGES_WAITING_PER_USER }, () => ({
        type: 'stream' as const,
        text: 'A quick answer.',
      })),
    );

    const flood = Array.from({ length: 12 }, (_, index) =>
      discord.messageCreate({ content: `<@${discord.bot.id}> question ${index + 1}` }),
    );
    await until(() =>
      flood
        .slice(0, accepted)
        .every((question) => repliesTo(harness, question).some((reply) => isFooted(reply.content))),
    );

    // The overflow: the first refused message is told once; the others get nothing.
    const notices = flood.slice(accepted).map((question) => repliesTo(harness, question));
    expect(notices.map((replies) => replies.map((reply) => reply.content))).toEqual([
      [ONE_AT_A_TIME],
      ...Array.from({ length: flood.length - accepted - 1 }, () => []),
    ]);
    const noticeRequest = discord.requests.find((request) => request.body?.content === ONE_AT_A_TIME);
    expect(noticeRequest?.body.allowed_mentions).toMatchObject({ parse: [] });
    // A model saw exactly the accepted questions (their order is the lanes' own test).
    expect(openai.requests.map((request) => request.body.messages.at(-1).content).sort()).toEqual(
      Array.from({ length: accepted }, (_, index) => `question ${index + 1}`).sort(),
    );
    // An answer is over a moment after its last edit arrives; then its person's lane is gone.
    await until(() => harness.bot.remembered().inFlight === 0);
    expect(harness.bot.remembered().lanes).toBe(0);

    // Once the flood is answered, the same person is answered again.
    openai.script({ type: 'stream', text: 'Back to normal.' });
    const after = discord.messageCreate({ content: `<@${discord.bot.id}> one more` });
    await until(() => repliesTo(harness, after).some((reply) => isFooted(reply.content)));
    expect(openai.requests.at(-1)?.body.messages.at(-1).content).toBe('one more');
  });

  it('when a person under a cooldown sends five messages at once, then the first is answered and one notice covers the rest', async () => {
    const harness = await startBot({ environment: { USER_COOLDOWN_SECONDS: '60' } });
    const { discord } = harness;
    const burst = Array.from({ length: 5 }, () => discord.messageCreate({ content: `<@${discord.bot.id}>` }));
    await until(() => repliesTo(harness, burst[1]!).length > 0 && repliesTo(harness, burst[0]!).length > 0);
    // The last of the burst had its turn too: a later person's message is answered after it.
    const bob = discord.addUser({ username: 'bob' });
    discord.addMember(bob.id);
    const sentinel = discord.messageCreate({ content: `<@${discord.bot.id}>`, authorId: bob.id });
    await until(() => repliesTo(harness, sentinel).length > 0);

    expect(burst.map((question) => repliesTo(harness, question).map((reply) => reply.content))).toEqual([
      [EMPTY_QUESTION_HINT],
      [expect.stringMatching(/^⏳ You can ask again in (60|59) s\.$/)],
      [],
      [],
      [],
    ]);
  });
});

describe('the real bot forgets the people it is done with', () => {
  it('when 200 people each ask once under a cooldown, then once they are answered and the cooldown has passed it holds almost nothing', async () => {
    const harness = await startBot({
      environment: { USER_COOLDOWN_SECONDS: '1' },
      // The replies are not what is measured: lift discord.js's 50 requests a second.
      bot: { rest: { globalRequestsPerSecond: 10_000 } },
    });
    const { discord, bot } = harness;
    const people = Array.from({ length: 200 }, (_, index) => {
      const user = discord.addUser({ username: `person${index}` });
      discord.addMember(user.id);
      return user;
    });
    // A bare mention: answered with the hint, no model involved.
    const questions = people.map((user) =>
      discord.messageCreate({ content: `<@${discord.bot.id}>`, authorId: user.id }),
    );
    await until(() => questions.every((question) => repliesTo(harness, question).length > 0));
    // An answer is over a moment after its reply arrives; then its person's lane is gone.
    await until(() => bot.remembered().inFlight === 0);
    const afterBurst = bot.remembered();
    expect(afterBurst.lanes).toBe(0);
    expect(afterBurst.cooldowns).toBeGreaterThan(0);
    expect(afterBurst.recentIds).toBe(questions.length);

    // Once the cooldown has passed, the next person's message is all that is left of the cooldowns.
    await sleep(1_100);
    const latecomer = discord.messageCreate({ content: `<@${discord.bot.id}>` });
    await until(() => repliesTo(harness, latecomer).length > 0 && bot.remembered().inFlight === 0);
    expect(bot.remembered()).toMatchObject({ lanes: 0, cooldowns: 1 });
  });

  it('when 100 people DM the bot, then their DM channels leave the cache once idle, except one still being answered, and the next DM is answered', async () => {
    const harness = await startBot({ bot: { rest: { globalRequestsPerSecond: 10_000 } } });
    const { discord, bot } = harness;
    const isDirectMessage = (channel: { type: ChannelType }) => channel.type === ChannelType.DM;
    const questions = Array.from({ length: 100 }, (_, index) => {
      const user = discord.addUser({ username: `writer${index}` });
      return discord.directMessageCreate({ content: `<@${discord.bot.id}>`, authorId: user.id });
    });
    await until(() => questions.every((question) => repliesTo(harness, question).length > 0));
    expect(bot.client.channels.cache.filter(isDirectMessage).size).toBe(questions.length);

    const busy = questions[0]!.author.id;
    const idleLater = Date.now() + DIRECT_MESSAGE_CHANNEL_IDLE_MS;
    expect(sweepIdleDirectMessageChannels(bot.client, (userId) => userId === busy, idleLater)).toBe(
      questions.length - 1,
    );
    expect([...bot.client.channels.cache.filter(isDirectMessage).values()]).toEqual([
      expect.objectContaining({ recipientId: busy }),
    ]);

    // A person whose channel was dropped writes again: it comes back, and they are answered.
    const again = discord.directMessageCreate({
      content: `<@${discord.bot.id}>`,
      authorId: questions[1]!.author.id,
    });
    await until(() => repliesTo(harness, again).length > 0);
    expect(repliesTo(harness, again).map((reply) => reply.content)).toEqual([EMPTY_QUESTION_HINT]);
  });
});
