import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { EMPTY_QUESTION_HINT, type RunningBot } from '../../src/discord/bot.js';
import { type FakeAnthropic, isCountRequest } from '../fakes/anthropic.js';
import type { FakeDiscord } from '../fakes/discord/index.js';
import { type FakeOpenAI, openaiErrors } from '../fakes/openai.js';
import { ACCEPT, type BotHarness, startBotHarness, until } from '../support/bot.js';
import { BACKENDS } from '../support/databases.js';

describe.each(BACKENDS)('on %s', (backend) => {
  let harness: BotHarness;
  let discord: FakeDiscord;
  let openai: FakeOpenAI;
  let anthropic: FakeAnthropic;
  let app: App;
  let bot: RunningBot;

  beforeEach(async () => {
    harness = await startBotHarness({ backend });
    ({ discord, openai, anthropic, app, bot } = harness);
  });

  afterEach(() => harness.close());

  const accept = ACCEPT;
  const isBotWrite = (request: { method: string; route?: string }) =>
    request.route === 'POST /channels/:channel_id/messages' ||
    request.route === 'PATCH /channels/:channel_id/messages/:message_id';

  describe('answering in Discord', () => {
    it('when someone mentions the bot, then it replies at once, streams by edits, and ends with a footer', async () => {
      const words =
        'A monad is a way to chain computations that carry context along with their values.'.split(' ');
      openai.script(
        { type: 'stream', chunks: words.map((word) => `${word} `), chunkDelayMs: 40, finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      const question = discord.messageCreate({ content: `<@${discord.bot.id}> what is a monad?` });

      const final = await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-# gpt-4o-mini'),
        { timeoutMs: 10_000 },
      );
      const writes = discord.requests.filter(isBotWrite);
      expect(writes[0]?.method).toBe('POST');
      expect(writes[0]?.body.message_reference?.message_id).toBe(question.id);
      expect(writes.filter((request) => request.method === 'PATCH').length).toBeGreaterThanOrEqual(2);
      expect(final.body.content).toMatch(
        /^A monad is a way to chain computations that carry context along with their values\.\n-# gpt-4o-mini · [\d,]+ tokens · \$0\.\d{4}$/,
      );
      // Every create and edit tells Discord to ping nobody.
      for (const request of writes) expect(request.body.allowed_mentions).toMatchObject({ parse: [] });
      expect(openai.requests[0]?.body.messages.at(-1)).toEqual({ role: 'user', content: 'what is a monad?' });
    });

    it('when an answer is shown, then one log line tells what it cost and how long it spent inside the providers', async () => {
      openai.script(
        { type: 'stream', text: 'Slowly.', firstChunkDelayMs: 150, finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      const question = discord.messageCreate({ content: `<@${discord.bot.id}> take your time` });

      const isTurnLine = (entry: Record<string, unknown>) => entry.msg === 'turn done';
      await until(() => harness.logs.some(isTurnLine));
      const line = harness.logs.find(isTurnLine) ?? {};
      expect(line).toMatchObject({
        messageId: question.id,
        userId: question.author.id,
        status: 'answered',
        models: ['gpt-4o-mini'],
      });
      expect(line.costMicros).toBeGreaterThan(0);
      // The draft's 150 ms wait for its first token is provider time; the turn took longer than its calls.
      expect(line.providerMs).toBeGreaterThanOrEqual(150);
      expect(line.ms).toBeGreaterThan(Number(line.providerMs));
      expect(harness.logs.filter(isTurnLine)).toHaveLength(1);
    });

    it('when a message does not mention the bot in a server channel, then it is ignored', async () => {
      discord.messageCreate({ content: 'just chatting among ourselves' });
      openai.script(
        { type: 'stream', text: 'pong', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> ping` });
      await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );
      expect(openai.requests).toHaveLength(2);
      expect(openai.requests[0]?.body.messages.at(-1).content).toBe('ping');
    });

    it('when another bot or the bot itself mentions the bot, then it is ignored', async () => {
      const robot = discord.addUser({ username: 'robot', isBot: true });
      discord.addMember(robot.id);
      discord.messageCreate({ authorId: robot.id, content: `<@${discord.bot.id}> answer me, fellow bot` });
      discord.messageCreate({ authorId: discord.bot.id, content: `<@${discord.bot.id}> talking to myself` });
      // A person's message after theirs is answered, and it is the only one a model ever sees.
      openai.script(
        { type: 'stream', text: 'pong', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> ping` });
      await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );
      expect(openai.requests.map((request) => request.body.stream === true)).toEqual([true, false]);
      expect(openai.requests[0]?.body.messages.at(-1).content).toBe('ping');
      const replies = discord.requests.filter(
        (request) => request.route === 'POST /channels/:channel_id/messages',
      );
      expect(replies).toHaveLength(1);
    });

    it('when someone mentions the bot with nothing else, then it says how to ask and calls no model', async () => {
      discord.messageCreate({ content: `<@${discord.bot.id}>   ` });
      const hint = await discord.waitForRequest(isBotWrite);
      expect(hint.body.content).toBe(EMPTY_QUESTION_HINT);
      expect(hint.body.allowed_mentions).toMatchObject({ parse: [] });
      expect(openai.requests).toHaveLength(0);
    });

    it('when someone writes in a DM, then the bot answers without a mention', async () => {
      openai.script(
        { type: 'stream', text: 'Hello!', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.directMessageCreate({ content: 'hi there' });
      const final = await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );
      expect(final.body.content).toMatch(/^Hello!\n-# gpt-4o-mini/);
    });

    it('when a conversation goes on by replies, then the model sees the whole chain, with its own answers as assistant turns', async () => {
      const footer = (request: { body?: { content?: unknown } }) =>
        String(request.body?.content).includes('-#');
      openai.script(
        { type: 'stream', text: 'Paris.', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      const first = discord.messageCreate({ content: `<@${discord.bot.id}> capital of France?` });
      const firstAnswer = await discord.waitForRequest((request) => isBotWrite(request) && footer(request));
      const answerId =
        firstAnswer.method === 'POST' ? firstAnswer.responseBody?.id : firstAnswer.params.message_id;

      openai.script(
        { type: 'stream', text: 'About 2.1 million.', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      const from = discord.requests.length;
      discord.messageCreate({ content: 'and its population?', replyTo: answerId });
      await discord.waitForRequest((request) => isBotWrite(request) && footer(request), { from });

      expect(first.id).toBeDefined();
      const draft = openai.requests[2]?.body;
      expect(draft.messages.slice(1)).toEqual([
        { role: 'user', content: 'capital of France?' },
        { role: 'assistant', content: 'Paris.' },
        { role: 'user', content: 'and its population?' },
      ]);
    });

    it('when a reply chain is longer than the token budget, then its oldest messages are left out and the footer says so', async () => {
      // Five long messages (each ~2,000 tokens by the bot's rough count) replying to each other, then the question.
      let previous: string | undefined;
      const chain: string[] = [];
      for (const letter of ['a', 'b', 'c', 'd', 'e']) {
        const content = `${letter.repeat(5_900)}`;
        chain.push(content);
        previous = discord.messageCreate({ content, ...(previous ? { replyTo: previous } : {}) }).id;
      }
      openai.script(
        { type: 'stream', text: 'Summarised.', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> sum it up`, replyTo: previous });
      const final = await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );

      // The model saw the four newest long messages and the question, as one user turn; the oldest was left out.
      const sent = openai.requests[0]?.body.messages.at(-1).content;
      expect(sent).toBe([...chain.slice(1), 'sum it up'].join('\n\n'));
      expect(final.body.content).toContain('⚠️ using the last 5 messages');
    });

    it('when the model writes @everyone, @here, role and user mentions, then nobody is pinged', async () => {
      const pings = `@everyone @here <@&123456789012345678> <@${discord.user.id}> look!`;
      openai.script(
        { type: 'stream', text: pings, finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> shout` });
      const final = await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );
      expect(final.body.content.startsWith(pings)).toBe(true);
      const writes = discord.requests.filter(isBotWrite);
      expect(writes.length).toBeGreaterThan(0);
      for (const request of writes) {
        expect(request.body.allowed_mentions).toEqual(expect.objectContaining({ parse: [] }));
        expect(request.body.allowed_mentions.replied_user).toBe(false);
      }
    });

    it('when the user has no budget left, then the reply says which limit and when it resets, and no model is called', async () => {
      await app.storage.budgets.setBudget(
        { guildId: discord.guild.id, scope: 'user', userId: discord.user.id, changedBy: discord.owner.id },
        { amountMicros: 0, period: 'month' },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> are you there?` });
      const refusal = await discord.waitForRequest(isBotWrite);
      expect(refusal.body.content).toMatch(
        /^Not enough left in your budget: \$0\.0000 of \$0\.0000 spent this month; \$0\.0000 left, .* Resets \w+ \d+, 00:00 UTC\.$/,
      );
      expect(openai.requests).toHaveLength(0);
      expect(anthropic.requests).toHaveLength(0);
    });

    it('when OpenAI is down, then Claude Haiku answers and the footer says so', async () => {
      openai.script(openaiErrors.insufficientQuota());
      anthropic.script({ type: 'stream', text: 'Still here.', stopReason: 'end_turn' });
      discord.messageCreate({ content: `<@${discord.bot.id}> hello?` });
      const final = await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
        { timeoutMs: 10_000 },
      );
      expect(final.body.content).toMatch(
        /^Still here\.\n-# claude-haiku-4-5 \(fallback: OpenAI is unavailable\)/,
      );
      expect(final.body.content).toContain('-# answered by claude-haiku-4-5: OpenAI is unavailable');
    });

    it('when someone writes in a thread the bot started, then it answers without a mention, with the thread as context', async () => {
      const thread = discord.createThread({ name: 'monads', ownerId: discord.bot.id });
      await discord.waitForEvent((event) => event.type === 'sent' && event.t === 'THREAD_CREATE');
      const answered = (from: number) =>
        discord.waitForRequest(
          (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
          { from },
        );
      openai.script(
        { type: 'stream', text: 'Monads chain computations.', finishReason: 'stop' },
        { type: 'completion', content: accept },
        { type: 'stream', text: 'Yes: Maybe is one.', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      let from = discord.requests.length;
      discord.messageCreate({ content: 'tell me about monads', channelId: thread.id });
      await answered(from);
      from = discord.requests.length;
      discord.messageCreate({ content: 'is Maybe a monad?', channelId: thread.id });
      await answered(from);

      const secondDraft = openai.requests[2]?.body;
      expect(secondDraft.messages.slice(1)).toEqual([
        { role: 'user', content: 'tell me about monads' },
        { role: 'assistant', content: 'Monads chain computations.' },
        { role: 'user', content: 'is Maybe a monad?' },
      ]);
    });

    it('when the bot is stopped mid-answer, then the answer is cancelled after the grace time and nothing stays reserved', async () => {
      openai.script({ type: 'stream', hang: true });
      discord.messageCreate({ content: `<@${discord.bot.id}> take your time` });
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (openai.requests.length > 0) {
            clearInterval(poll);
            resolve();
          }
        }, 10);
      });
      await bot.stop();
      expect(await harness.database.value('SELECT COUNT(*) FROM reservations')).toBe(0);
      expect(openai.closedEarly).toBe(1);
      expect(anthropic.requests).toHaveLength(0);
    });

    it('when an admin enabled a channel, then every message there is answered without a mention', async () => {
      await app.storage.settings.addAnsweredChannel(discord.guild.id, discord.channel.id, discord.owner.id);
      openai.script(
        { type: 'stream', text: 'Sure.', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: 'anyone know a good pasta recipe?' });
      const final = await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );
      expect(final.body.content).toMatch(/^Sure\.\n-# gpt-4o-mini/);
    });

    it('when a server set escalation to manual and the footer off, then no check runs and only notes show', async () => {
      await app.storage.settings.update(
        discord.guild.id,
        { escalationMode: 'manual', showFooter: false },
        discord.owner.id,
      );
      openai.script({ type: 'stream', text: 'Quick answer.', finishReason: 'stop' });
      discord.messageCreate({ content: `<@${discord.bot.id}> quick one` });
      // The turn is recorded once it is over (the last edit is sent just after).
      await until(
        async () => (await app.storage.turns.latest(discord.user.id, discord.channel.id)) !== undefined,
      );
      await discord.waitForRequest(
        (request) => isBotWrite(request) && request.body?.content === 'Quick answer.',
      );
      const writes = discord.requests.filter(isBotWrite);
      expect(writes.at(-1)?.body.content).toBe('Quick answer.');
      expect(openai.requests).toHaveLength(1);
    });

    it('when Discord answers 429 to an edit, then the bot waits and the final text still arrives', async () => {
      discord.rateLimits.reject('PATCH /channels/:channel_id/messages/:message_id', {
        retryAfterSeconds: 0.2,
        times: 2,
      });
      const words = 'Rate limits are a fact of life for bots that stream by editing.'.split(' ');
      openai.script(
        { type: 'stream', chunks: words.map((word) => `${word} `), chunkDelayMs: 30, finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> tell me about rate limits` });
      const final = await discord.waitForRequest(
        (request) =>
          isBotWrite(request) && request.status < 300 && String(request.body?.content).includes('-#'),
        { timeoutMs: 10_000 },
      );
      expect(final.body.content).toMatch(
        /^Rate limits are a fact of life for bots that stream by editing\.\n-# /,
      );
      expect(discord.rateLimits.count).toBe(2);
    });

    it('when discord.js reports a channel rate-limited, then answers there send no interim edit until it passes', async () => {
      const EDIT = 'PATCH /channels/:channel_id/messages/:message_id';
      const footed = (request: { body?: { content?: unknown } }) =>
        String(request.body?.content).includes('\n-# ');
      // A first answer teaches discord.js the edit route's bucket (it honours limits only on a known bucket).
      openai.script(
        { type: 'stream', text: 'Warm.', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> warm up` });
      await discord.waitForRequest((request) => request.route === EDIT && footed(request));

      // The next edit in #general empties the bucket for 1.5 s; two answers stream there for about 1 s.
      discord.rateLimits.exhaust(EDIT, { resetAfterSeconds: 1.5 });
      const from = discord.requests.length;
      const stream = {
        type: 'stream' as const,
        chunks: Array.from({ length: 20 }, (_, index) => `part ${index} `),
        chunkDelayMs: 50,
        finishReason: 'stop' as const,
      };
      openai.script(
        stream,
        stream,
        { type: 'completion', content: accept },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> first` });
      discord.messageCreate({ content: `<@${discord.bot.id}> second` });
      await until(
        () =>
          discord.requests.slice(from).filter((request) => request.route === EDIT && footed(request))
            .length === 2,
      );

      const edits = discord.requests.slice(from).filter((request) => request.route === EDIT);
      const emptying = edits.findIndex((request) => !footed(request));
      expect(emptying).toBeGreaterThanOrEqual(0);
      // After the edit that emptied the bucket: the one interim edit that was already on its way when discord.js
      // first held it (that is how the limit became known), then each answer's final edit; nothing stale.
      const after = edits.slice(emptying + 1);
      expect(after.filter((request) => !footed(request)).length).toBeLessThanOrEqual(1);
      expect(after.filter(footed)).toHaveLength(2);
    });

    it('when a question comes with an image, then the image goes to the model as vision input', async () => {
      const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex');
      openai.script(
        { type: 'stream', text: 'A tiny image.', finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({
        content: `<@${discord.bot.id}> what is this?`,
        attachments: [{ filename: 'pixel.png', content: png, contentType: 'image/png' }],
      });
      await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );
      const parts = openai.requests[0]?.body.messages.at(-1).content;
      expect(parts[0]).toEqual({ type: 'text', text: 'what is this?' });
      expect(parts[1].type).toBe('image_url');
      expect(parts[1].image_url.url).toBe(`data:image/png;base64,${png.toString('base64')}`);
    });

    it('when a question comes with a PDF, then Claude Haiku reads it natively', async () => {
      const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n');
      anthropic.knowPdf(pdf, 1);
      anthropic.script({ type: 'stream', text: 'It is a one-page PDF.', stopReason: 'end_turn' });
      discord.messageCreate({
        content: `<@${discord.bot.id}> summarise`,
        attachments: [{ filename: 'report.pdf', content: pdf, contentType: 'application/pdf' }],
      });
      const final = await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-#'),
      );
      expect(final.body.content).toContain('-# claude-haiku-4-5 (PDF)');
      // Anthropic counts the PDF first (free), then answers.
      expect(anthropic.requests.map(isCountRequest)).toEqual([true, false]);
      const blocks = anthropic.requests[1]?.body.messages.at(-1).content;
      expect(blocks[1]).toMatchObject({ type: 'document', source: { media_type: 'application/pdf' } });
      expect(openai.requests).toHaveLength(0);
    });

    it('when attachments lie about their type or are not supported, then they are not sent and the reply says why', async () => {
      discord.messageCreate({
        content: `<@${discord.bot.id}>`,
        attachments: [
          { filename: 'cat.png', content: 'this is not a png', contentType: 'image/png' },
          { filename: 'archive.zip', content: 'PK\u0003\u0004', contentType: 'application/zip' },
        ],
      });
      const reply = await discord.waitForRequest(isBotWrite);
      expect(reply.body.content).toContain('cat.png: not a valid png, jpeg, gif or webp image; not sent');
      expect(reply.body.content).toContain('archive.zip: this kind of file is not supported');
      expect(openai.requests).toHaveLength(0);
    });

    it('when an answer is 6,000 characters with a code fence across a boundary, then it arrives split, fenced and in order', async () => {
      const code = Array.from(
        { length: 90 },
        (_, line) => `    total += values[${line}] * weights[${line}];`,
      ).join('\n');
      const answer = `Here is the function.\n\n\`\`\`ts\nfunction score(values: number[], weights: number[]) {\n  let total = 0;\n${code}\n  return total;\n}\n\`\`\`\n\n${'It multiplies each value by its weight and adds them up. '.repeat(45)}`;
      expect(answer.length).toBeGreaterThan(6_000);
      openai.script(
        { type: 'stream', text: answer, finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> write a weighted sum` });
      await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).includes('-# gpt-4o-mini'),
        { timeoutMs: 10_000 },
      );
      const finals = discord
        .messagesIn(discord.channel.id)
        .filter((message) => message.author.id === discord.bot.id);
      expect(finals.length).toBeGreaterThanOrEqual(4);
      for (const message of finals) {
        expect(message.content.length).toBeLessThanOrEqual(2_000);
        expect((message.content.match(/^```/gm) ?? []).length % 2).toBe(0);
      }
      expect(finals[1]?.content.startsWith('```ts\n')).toBe(true);
      const words = (text: string) =>
        text
          .replace(/^```\w*$/gm, '')
          .replace(/^-# .*$/gm, '')
          .split(/\s+/)
          .filter(Boolean);
      expect(words(finals.map((message) => message.content).join('\n'))).toEqual(words(answer));
    });

    it('when more people ask at once than answers may be written at once, then the others wait their turn, in order, and all are answered', async () => {
      await harness.close();
      harness = await startBotHarness({ bot: { turnsInFlight: 1 } });
      ({ discord, openai, anthropic, app, bot } = harness);
      const bob = discord.addUser({ username: 'bob' });
      discord.addMember(bob.id);
      openai.script(
        { type: 'stream', chunks: ['First ', 'answer.'], chunkDelayMs: 100 },
        { type: 'completion', content: accept },
        { type: 'stream', text: 'Second answer.' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> first?` });
      discord.messageCreate({ content: `<@${discord.bot.id}> second?`, authorId: bob.id });
      await discord.waitForRequest(
        (request) => isBotWrite(request) && String(request.body?.content).startsWith('Second answer.\n-#'),
      );
      // The second draft was asked for only after the first answer had its check: one answer at a time.
      expect(openai.requests.map((request) => request.body.messages.at(-1).content)).toEqual([
        'first?',
        expect.any(String),
        'second?',
        expect.any(String),
      ]);
    });

    it('when the first reply is slow to arrive, then text that streams meanwhile goes in one write, not a queue of them', async () => {
      // The first reply is held back by a 429 while 40 deltas arrive.
      discord.rateLimits.reject('POST /channels/:channel_id/messages', { retryAfterSeconds: 0.3 });
      const chunks = Array.from({ length: 40 }, (_, index) => `word${index} `);
      openai.script(
        { type: 'stream', chunks, chunkDelayMs: 5, finishReason: 'stop' },
        { type: 'completion', content: accept },
      );
      discord.messageCreate({ content: `<@${discord.bot.id}> count to forty` });
      const final = await discord.waitForRequest(
        (request) =>
          isBotWrite(request) && request.status < 300 && String(request.body?.content).includes('-#'),
        { timeoutMs: 10_000 },
      );
      expect(final.body.content.startsWith(chunks.join('').trim())).toBe(true);
      const successfulWrites = discord.requests.filter(
        (request) => isBotWrite(request) && request.status < 300,
      );
      expect(successfulWrites.length).toBeLessThanOrEqual(4);
    });
  });
});
