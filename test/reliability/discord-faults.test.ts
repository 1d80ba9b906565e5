import type { APIMessage, TextChannel } from 'discord.js';
import { describe, expect, it, vi } from 'vitest';
import { EMPTY_QUESTION_HINT } from '../../src/discord/bot.js';
import { registerCommands } from '../../src/discord/commands/register.js';
import type { RecordedRequest } from '../fakes/discord/index.js';
import { ACCEPT, type BotHarness, botPerTest } from '../support/bot.js';
import { BACKENDS } from '../support/databases.js';

/**
 * Discord faults end to end: the real bot and discord.js against the loopback Discord. 429s on the
 * messages an answer creates, a gateway that drops mid-answer, events delivered twice, and REST requests
 * whose response comes too late: in each, the answer arrives once, is charged once, and nothing is
 * duplicated.
 */

const CREATE = 'POST /channels/:channel_id/messages';
const EDIT = 'PATCH /channels/:channel_id/messages/:message_id';
const CALLBACK = 'POST /interactions/:interaction_id/:interaction_token/callback';

const FOOTER = /\n-# gpt-4o-mini · [\d,]+ tokens · \$\d+\.\d{4}$/;

const start = botPerTest();

/** The bot's messages in #general, oldest first. */
function botMessages(harness: BotHarness): APIMessage[] {
  return harness.discord
    .messagesIn(harness.discord.channel.id)
    .filter((message) => message.author.id === harness.discord.bot.id);
}

/** The ledger's rows: one per model call, under one turn per answer. */
async function ledgerRows(harness: BotHarness) {
  await harness.app.storage.flush();
  return harness.database.query<{ turn_id: string; purpose: string; outcome: string; cost_micros: number }>(
    'SELECT turn_id, purpose, outcome, cost_micros FROM usage_ledger ORDER BY id',
  );
}

/** One answered turn: a draft and a check, both settled, under one turn id. */
async function expectOneChargedAnswer(harness: BotHarness): Promise<void> {
  const rows = await ledgerRows(harness);
  expect(rows.map((row) => [row.purpose, row.outcome])).toEqual([
    ['draft', 'settled'],
    ['check', 'settled'],
  ]);
  expect(new Set(rows.map((row) => row.turn_id)).size).toBe(1);
  expect(harness.openai.requests.map((request) => request.body.stream === true)).toEqual([true, false]);
}

/**
 * A bare mention from the server's owner, answered with the hint and no model call. Gateway events
 * arrive in order, so once its hint is out the bot has handled everything dispatched before it.
 */
async function barrier(harness: BotHarness): Promise<void> {
  const from = harness.discord.requests.length;
  const ping = harness.discord.messageCreate({
    authorId: harness.discord.owner.id,
    content: `<@${harness.discord.bot.id}>`,
  });
  await harness.discord.waitForRequest(
    (request) =>
      request.route === CREATE &&
      request.status === 200 &&
      request.body?.message_reference?.message_id === ping.id,
    { from, timeoutMs: 10_000 },
  );
}

const repliesTo = (messageId: string) => (request: RecordedRequest) =>
  request.body?.message_reference?.message_id === messageId;

describe('rate limits on the messages an answer creates', () => {
  it('when Discord answers 429 to both creates of a two-message answer, then each message lands once, in order', async () => {
    const harness = await start();
    const sentence = 'Rate limits are a fact of life for bots that answer at length. ';
    const answer = sentence.repeat(50).trim();
    expect(answer.length).toBeGreaterThan(2_000);
    harness.openai.script(
      {
        type: 'stream',
        chunks: answer.split(/(?<= )/),
        finishReason: 'stop',
      },
      { type: 'completion', content: ACCEPT },
    );
    const question = harness.discord.messageCreate({
      content: `<@${harness.discord.bot.id}> tell me about rate limits`,
    });
    // One 429 for the reply to the question, one for the continuation (a reply to the bot's first message).
    harness.discord.rateLimits.reject(CREATE, { retryAfterSeconds: 0.2, matching: repliesTo(question.id) });
    harness.discord.rateLimits.reject(CREATE, {
      retryAfterSeconds: 0.2,
      matching: (request) => !repliesTo(question.id)(request),
    });

    await vi.waitFor(() => expect(botMessages(harness).at(-1)?.content).toMatch(FOOTER), { timeout: 10_000 });
    await harness.bot.stop();

    const creates = harness.discord.requests.filter((request) => request.route === CREATE);
    expect(creates.map((request) => request.status)).toEqual([429, 200, 429, 200]);
    const [first, second] = botMessages(harness);
    expect(botMessages(harness)).toHaveLength(2);
    expect(first?.message_reference?.message_id).toBe(question.id);
    expect(second?.message_reference?.message_id).toBe(first?.id);
    const words = (text: string) =>
      text
        .replace(/^-# .*$/gm, '')
        .split(/\s+/)
        .filter(Boolean);
    expect(words(`${first?.content}\n${second?.content}`)).toEqual(words(answer));
    expect(harness.discord.rateLimits.count).toBe(2);
    await expectOneChargedAnswer(harness);
  });
});

describe('a gateway that drops mid-answer', () => {
  for (const { how, abrupt } of [
    { how: 'closes the connection (4000)', abrupt: false },
    { how: 'drops the TCP connection', abrupt: true },
  ]) {
    it(`when Discord ${how} while an answer streams, then the bot resumes, the answer completes once, and a message sent meanwhile is answered`, async () => {
      const harness = await start();
      const chunks = Array.from({ length: 30 }, (_, index) => `word${index} `);
      harness.openai.script(
        { type: 'stream', chunks, chunkDelayMs: 30, finishReason: 'stop' },
        { type: 'completion', content: ACCEPT },
      );
      const question = harness.discord.messageCreate({
        content: `<@${harness.discord.bot.id}> count to thirty`,
      });
      await harness.discord.waitForRequest((request) => request.route === CREATE && request.status === 200);

      await harness.discord.disconnect({ abrupt });
      // The answer was still streaming when the connection went.
      expect(botMessages(harness).at(-1)?.content).not.toMatch(FOOTER);
      // Sent while the bot is away: held for the resume, as Discord holds it.
      const meanwhile = harness.discord.messageCreate({
        authorId: harness.discord.owner.id,
        content: `<@${harness.discord.bot.id}>`,
      });

      await vi.waitFor(
        () => {
          expect(botMessages(harness).map((message) => message.content)).toEqual([
            expect.stringMatching(FOOTER),
            EMPTY_QUESTION_HINT,
          ]);
        },
        { timeout: 10_000 },
      );
      await harness.bot.stop();

      const [answer, hint] = botMessages(harness);
      expect(answer?.message_reference?.message_id).toBe(question.id);
      expect(answer?.content.replace(FOOTER, '')).toBe(chunks.join('').trim());
      expect(hint?.message_reference?.message_id).toBe(meanwhile.id);
      expect(harness.discord.identifies).toHaveLength(1);
      expect(harness.discord.events).toContainEqual(expect.objectContaining({ type: 'resumed' }));
      expect(harness.discord.events).toContainEqual(
        expect.objectContaining({ type: 'closed', by: 'fake', code: abrupt ? 1006 : 4000 }),
      );
      expect(
        harness.discord.requests.filter((request) => request.route === CREATE && request.status === 200),
      ).toHaveLength(2);
      await expectOneChargedAnswer(harness);
    });
  }
});

// The repeat that reaches the bot's handler is stopped by the event's claim in the database: on both.
describe.each(BACKENDS)('events delivered twice (%s)', (backend) => {
  it('when the same MESSAGE_CREATE comes again, at once and after newer messages pushed it out of discord.js’s cache, then one model call, one charge, one reply', async () => {
    const harness = await start({ backend });
    harness.openai.script(
      { type: 'stream', text: 'Once is enough.', finishReason: 'stop' },
      { type: 'completion', content: ACCEPT },
    );
    const question = harness.discord.messageCreate({ content: `<@${harness.discord.bot.id}> say it once` });
    // At once: discord.js still has the message cached and drops the repeat itself.
    harness.discord.redeliver('MESSAGE_CREATE', question.id);
    await vi.waitFor(() => expect(botMessages(harness).at(-1)?.content).toMatch(FOOTER), { timeout: 10_000 });

    // discord.js keeps 200 messages a channel: after 200 newer ones, a repeat reaches the bot's own handler.
    for (let index = 0; index < 200; index += 1) {
      harness.discord.messageCreate({ authorId: harness.discord.owner.id, content: `chatter ${index}` });
    }
    await barrier(harness);
    const cached = harness.bot.client.channels.cache.get(harness.discord.channel.id) as
      TextChannel | undefined;
    expect(cached?.messages.cache.has(question.id)).toBe(false);
    harness.discord.redeliver('MESSAGE_CREATE', question.id);
    await barrier(harness);
    await harness.bot.stop();

    const answers = botMessages(harness).filter(
      (message) => message.message_reference?.message_id === question.id,
    );
    expect(answers.map((message) => message.content)).toEqual([
      expect.stringMatching(/^Once is enough\.\n-# /),
    ]);
    const sent = harness.discord.events.filter(
      (event) => event.type === 'sent' && event.t === 'MESSAGE_CREATE' && event.d.id === question.id,
    );
    expect(sent).toHaveLength(3);
    await expectOneChargedAnswer(harness);
  });

  it('when the same INTERACTION_CREATE comes twice, at once and after the answer, then one acknowledgement, one model call, one charge, one reply', async () => {
    const harness = await start({
      backend,
      before: (_discord, config) => registerCommands(config.discord).then(() => {}),
    });
    harness.openai.script(
      { type: 'stream', text: 'Once is enough.', finishReason: 'stop' },
      { type: 'completion', content: ACCEPT },
    );
    const interaction = harness.discord.chatInputCommand({
      commandName: 'ask',
      options: { prompt: 'say it once' },
    });
    harness.discord.redeliver('INTERACTION_CREATE', interaction.id);
    await vi.waitFor(
      () => expect(harness.discord.interactionResponses(interaction.id).original?.content).toMatch(FOOTER),
      { timeout: 10_000 },
    );
    harness.discord.redeliver('INTERACTION_CREATE', interaction.id);
    await barrier(harness);
    await harness.bot.stop();

    const callbacks = harness.discord.requests.filter((request) => request.route === CALLBACK);
    expect(callbacks.map((request) => [request.params.interaction_id, request.status])).toEqual([
      [interaction.id, 200],
    ]);
    const { original, followUps } = harness.discord.interactionResponses(interaction.id);
    expect(original?.content).toMatch(/^Once is enough\.\n-# gpt-4o-mini/);
    expect(followUps).toEqual([]);
    await expectOneChargedAnswer(harness);
  });
});

describe('REST requests that time out', () => {
  it('when the reply’s create and an edit get their responses after discord.js’s timeout, then it retries and the channel holds one reply', async () => {
    const harness = await start({ bot: { rest: { timeout: 500 } } });
    // Discord carries each request out at once; only the responses come too late, twice for the create.
    harness.discord.delayNext(CREATE, { delayMs: 2_000, times: 2 });
    harness.discord.delayNext(EDIT, { delayMs: 2_000 });
    const words = 'Slow networks should never make a bot say things twice.'.split(' ');
    harness.openai.script(
      { type: 'stream', chunks: words.map((word) => `${word} `), chunkDelayMs: 20, finishReason: 'stop' },
      { type: 'completion', content: ACCEPT },
    );
    const question = harness.discord.messageCreate({ content: `<@${harness.discord.bot.id}> be careful` });

    await vi.waitFor(() => expect(botMessages(harness).at(-1)?.content).toMatch(FOOTER), { timeout: 15_000 });
    await harness.bot.stop();

    const replies = botMessages(harness);
    expect(replies).toHaveLength(1);
    expect(replies[0]?.message_reference?.message_id).toBe(question.id);
    expect(replies[0]?.content).toMatch(/^Slow networks should never make a bot say things twice\.\n-# /);
    const creates = harness.discord.requests.filter((request) => request.route === CREATE);
    expect(creates).toHaveLength(3);
    expect(new Set(creates.map((request) => request.body.nonce)).size).toBe(1);
    expect(creates.every((request) => request.body.enforce_nonce === true)).toBe(true);
    expect(new Set(creates.map((request) => request.responseBody.id))).toEqual(new Set([replies[0]?.id]));
    // The first edit was retried too (edits repeat harmlessly).
    const edits = harness.discord.requests.filter((request) => request.route === EDIT);
    expect(edits.length).toBeGreaterThanOrEqual(2);
    expect(edits[1]?.body).toEqual(edits[0]?.body);
    await expectOneChargedAnswer(harness);
  });
});
