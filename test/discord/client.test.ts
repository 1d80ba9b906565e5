import type { TextChannel } from 'discord.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MEMBERS_PER_GUILD, MESSAGES_PER_CHANNEL } from '../../src/discord/client.js';
import type { RunningBot } from '../../src/discord/bot.js';
import type { FakeDiscord } from '../fakes/discord/index.js';
import type { FakeOpenAI } from '../fakes/openai.js';
import { ACCEPT, type BotHarness, startBotHarness, until } from '../support/bot.js';

let harness: BotHarness;
let discord: FakeDiscord;
let openai: FakeOpenAI;
let bot: RunningBot;

beforeEach(async () => {
  harness = await startBotHarness();
  ({ discord, openai, bot } = harness);
});

afterEach(() => harness.close());

const FETCH_ONE_MESSAGE = 'GET /channels/:channel_id/messages/:message_id';

/** The bot's cached view of #general. */
const general = () => bot.client.channels.cache.get(discord.channel.id) as TextChannel;

/** Asks in #general, replying to `replyTo`, and waits for the footed answer. */
async function askReplyingTo(replyTo: string): Promise<void> {
  openai.script(
    { type: 'stream', text: 'Marmalade.', finishReason: 'stop' },
    { type: 'completion', content: ACCEPT },
  );
  const from = discord.requests.length;
  discord.messageCreate({ content: `<@${discord.bot.id}> what was the word?`, replyTo });
  await discord.waitForRequest((request) => String(request.body?.content ?? '').includes('\n-# '), { from });
}

describe('what the Discord client keeps in memory', () => {
  it('when a reply chain reaches past the messages kept per channel, then the older message is fetched over REST and the model sees it', async () => {
    const early = discord.messageCreate({ content: 'the word is marmalade' });
    const aside = discord.messageCreate({ content: 'remember it', replyTo: early.id });
    let last = aside;
    for (let index = 0; index < MESSAGES_PER_CHANNEL; index += 1) {
      last = discord.messageCreate({ content: `chatter ${index}` });
    }
    await until(() => general()?.messages.cache.has(last.id) ?? false);
    expect(general().messages.cache.has(early.id)).toBe(false);
    expect(general().messages.cache.size).toBe(MESSAGES_PER_CHANNEL);

    // The question's own payload carries the message it replies to (Discord's `referenced_message`); the
    // one before that comes from the cache or, evicted, over REST.
    await askReplyingTo(aside.id);

    const fetches = discord.requests.filter((request) => request.route === FETCH_ONE_MESSAGE);
    expect(fetches.map((request) => request.params.message_id)).toEqual([early.id]);
    expect(openai.requests[0]?.body.messages.at(-1)).toEqual({
      role: 'user',
      content: 'the word is marmalade\n\nremember it\n\nwhat was the word?',
    });
  });

  it('when the whole chain is still cached, then it is read without a REST request', async () => {
    const early = discord.messageCreate({ content: 'the word is marmalade' });
    const aside = discord.messageCreate({ content: 'remember it', replyTo: early.id });
    await until(() => general()?.messages.cache.has(aside.id) ?? false);

    await askReplyingTo(aside.id);

    expect(discord.requests.filter((request) => request.route === FETCH_ONE_MESSAGE)).toEqual([]);
    expect(openai.requests[0]?.body.messages.at(-1)).toEqual({
      role: 'user',
      content: 'the word is marmalade\n\nremember it\n\nwhat was the word?',
    });
  });

  it('when more members speak than are kept per server, then the bot still holds its own member (permission checks read it)', async () => {
    let last = discord.messageCreate({ content: 'hello' });
    for (let index = 0; index <= MEMBERS_PER_GUILD; index += 1) {
      const person = discord.addUser({ username: `member-${index}` });
      discord.addMember(person.id);
      last = discord.messageCreate({ content: 'hello', authorId: person.id });
    }
    await until(() => general()?.messages.cache.has(last.id) ?? false);

    const guild = general().guild;
    expect(guild.members.cache.size).toBeLessThanOrEqual(MEMBERS_PER_GUILD);
    expect(guild.members.me?.id).toBe(discord.bot.id);
  });
});
