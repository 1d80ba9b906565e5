import { Writable } from 'node:stream';
import { ChannelType, type Message, MessageFlags, PermissionFlagsBits } from 'discord.js';
import { beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { registerCommands } from '../../src/discord/commands/register.js';
import { LiveReply, type ReplySurface } from '../../src/discord/live-reply.js';
import { THREAD_NAME_LENGTH, threadName } from '../../src/discord/threads.js';
import { createLogger } from '../../src/log.js';
import type { RecordedRequest } from '../fakes/discord/index.js';
import { ACCEPT, type BotHarness, botPerTest, until } from '../support/bot.js';
import { BACKENDS } from '../support/databases.js';

const START_THREAD = 'POST /channels/:channel_id/messages/:message_id/threads';
const QUESTION =
  'What is the difference between a monad and an applicative functor, and when does it matter?';
/** QUESTION as a thread's name: cut at a word within 60 characters. */
const QUESTION_THREAD = 'What is the difference between a monad and an applicative…';

const isBotWrite = (request: RecordedRequest) =>
  request.route === 'POST /channels/:channel_id/messages' ||
  request.route === 'PATCH /channels/:channel_id/messages/:message_id';

const startBot = botPerTest();

describe.each(BACKENDS)('on %s', (backend) => {
  let harness: BotHarness;

  beforeEach(async () => {
    harness = await startBot({
      backend,
      before: (_discord, config) => registerCommands(config.discord).then(() => {}),
    });
  });

  /** An admin runs /settings threads; returns the private answer. */
  async function setThreads(mode: 'on' | 'off'): Promise<string> {
    const { discord } = harness;
    const interaction = discord.chatInputCommand({
      commandName: 'settings',
      subcommand: 'threads',
      options: { mode },
      userId: discord.owner.id,
    });
    await until(() => discord.interactionResponses(interaction.id).original?.content !== undefined);
    const { original } = discord.interactionResponses(interaction.id);
    expect((original?.flags ?? 0) & MessageFlags.Ephemeral).toBe(MessageFlags.Ephemeral);
    return original?.content ?? '';
  }

  /**
   * Alice asks (mentioning the bot, except in a thread) and GPT-4o Mini's accepted answer streams in a
   * few pieces; returns her message, the answer's final write (the one with `footer`) and the index of the
   * first request it caused.
   */
  async function ask(
    question: string,
    answer: string,
    options: { channelId?: string; chunkDelayMs?: number; footer?: string } = {},
  ) {
    const { discord } = harness;
    harness.openai.script(
      {
        type: 'stream',
        chunks: answer.split(/(?<= )/),
        chunkDelayMs: options.chunkDelayMs ?? 0,
        finishReason: 'stop',
      },
      { type: 'completion', content: ACCEPT },
    );
    const channel = discord.world.channel(options.channelId ?? discord.channel.id);
    const isThread = channel.type === ChannelType.PublicThread;
    const from = discord.requests.length;
    const message = discord.messageCreate({
      content: isThread ? question : `<@${discord.bot.id}> ${question}`,
      ...(options.channelId === undefined ? {} : { channelId: options.channelId }),
    });
    const final = await finalWrite(from, options.footer);
    return { message, final, from };
  }

  /** The final write of an answer (the one with its footer), from request index `from` on. */
  function finalWrite(from: number, footer = '-# gpt-4o-mini') {
    return harness.discord.waitForRequest(
      (request) => isBotWrite(request) && String(request.body?.content).includes(footer),
      { from, timeoutMs: 10_000 },
    );
  }

  /** The turn is recorded once it is over (its last edit is sent just after). */
  const turnRecorded = (channelId: string) =>
    until(
      async () => (await harness.app.storage.turns.latest(harness.discord.user.id, channelId)) !== undefined,
    );
  /** What everyone sees in a channel (private interaction replies left out). */
  const visibleIn = (channelId: string) =>
    harness.discord
      .messagesIn(channelId)
      .filter((message) => ((message.flags ?? 0) & MessageFlags.Ephemeral) === 0);
  const writesFrom = (from: number) => harness.discord.requests.slice(from).filter(isBotWrite);
  const threadStarts = () => harness.discord.requests.filter((request) => request.route === START_THREAD);

  it('when threads are on and someone asks in a text channel, then a thread named after the question is opened from the message and the answer streams there, not in the channel', async () => {
    const { discord } = harness;
    expect(await setThreads('on')).toMatch(/^A question asked in a text channel is now answered in a thread/);

    const { message, final, from } = await ask(
      QUESTION,
      'A monad sequences effects that depend on earlier results; an applicative cannot. ',
      { chunkDelayMs: 30 },
    );

    const [start] = threadStarts();
    expect(start?.status).toBe(201);
    expect(start?.params.message_id).toBe(message.id);
    expect(start?.body).toMatchObject({ name: QUESTION_THREAD, auto_archive_duration: 1440 });
    const thread = discord.world.channel(message.id);
    expect(thread).toMatchObject({ type: ChannelType.PublicThread, parent_id: discord.channel.id });
    // Every piece of the answer went to the thread, as a message of its own (not a reply), pinging nobody.
    const writes = writesFrom(from);
    expect(writes.filter((request) => request.method === 'PATCH').length).toBeGreaterThanOrEqual(1);
    for (const write of writes) {
      expect(write.params.channel_id).toBe(thread.id);
      expect(write.body.allowed_mentions).toMatchObject({ parse: [] });
      expect(write.body.message_reference).toBeUndefined();
    }
    expect(final.body.content).toMatch(/^A monad sequences effects .* cannot\.\n-# gpt-4o-mini · /);
    expect(visibleIn(discord.channel.id).map((visible) => visible.id)).toEqual([message.id]);
    // The turn belongs to the thread: /escalate used there finds it.
    await turnRecorded(thread.id);
  });

  it('when someone follows up in the thread without a mention, then the answer comes in the thread, with the question it was opened from as context', async () => {
    await setThreads('on');
    const { message } = await ask(QUESTION, 'Monads chain; applicatives combine.');

    const { from } = await ask('where does it matter?', 'Parsing is one place.', { channelId: message.id });

    expect(threadStarts()).toHaveLength(1);
    expect(writesFrom(from).every((request) => request.params.channel_id === message.id)).toBe(true);
    // The follow-up's draft saw the question (from the parent channel), the answer and the follow-up, and
    // not the thread's empty "started from" system message.
    expect(harness.openai.requests[2]?.body.messages.slice(1)).toEqual([
      { role: 'user', content: QUESTION },
      { role: 'assistant', content: 'Monads chain; applicatives combine.' },
      { role: 'user', content: 'where does it matter?' },
    ]);
  });

  it('when threads are off, which is the default, then the answer is a reply in the channel and no thread is opened', async () => {
    const { discord } = harness;
    const { message, final, from } = await ask('where?', 'Right here.');

    expect(final.params.channel_id).toBe(discord.channel.id);
    expect(writesFrom(from)[0]?.body.message_reference?.message_id).toBe(message.id);
    expect(threadStarts()).toHaveLength(0);

    expect(await setThreads('on')).toMatch(/thread/);
    expect(await setThreads('off')).toBe('Questions are answered in their channel again, as replies.');
    expect((await ask('and now?', 'Still here.')).final.params.channel_id).toBe(discord.channel.id);
    expect(threadStarts()).toHaveLength(0);
  });

  it('when the bot may not create public threads in the channel, then /settings warns, and answers come in the channel as replies with a note saying what to give it', async () => {
    const { discord } = harness;
    discord.setBotPermissions({ deny: PermissionFlagsBits.CreatePublicThreads });
    expect(await setThreads('on')).toMatch(
      new RegExp(
        `\\n⚠️ In <#${discord.channel.id}> I lack Create Public Threads: answers there stay in the channel until I get it\\.$`,
      ),
    );

    const { message, final, from } = await ask('can you thread this?', 'Answered anyway.', {
      footer: "couldn't open a thread",
    });

    expect(threadStarts().map((request) => request.status)).toEqual([403]);
    expect(final.params.channel_id).toBe(discord.channel.id);
    expect(writesFrom(from)[0]?.body.message_reference?.message_id).toBe(message.id);
    expect(final.body.content).toMatch(
      /^Answered anyway\.\n-# gpt-4o-mini · .*\n-# ⚠️ couldn't open a thread: give me Create Public Threads in this channel$/,
    );
    expect(
      harness.logs.some(
        (line) => line.level === 40 && line.msg === 'could not open a thread; answering in the channel',
      ),
    ).toBe(true);
  });

  it('when the bot opens the thread but may not write in it, then the whole answer comes in the channel with a note', async () => {
    const { discord } = harness;
    discord.setBotPermissions({ deny: PermissionFlagsBits.SendMessagesInThreads });
    await setThreads('on');

    const { message, final, from } = await ask('hello?', 'Not lost, just not in the thread. ', {
      chunkDelayMs: 30,
      footer: "couldn't write in the thread",
    });

    expect(threadStarts().map((request) => request.status)).toEqual([201]);
    const refused = writesFrom(from).filter((request) => request.params.channel_id === message.id);
    expect(refused.map((request) => request.status)).toEqual([403]);
    expect(final.params.channel_id).toBe(discord.channel.id);
    expect(final.body.content).toMatch(
      /^Not lost, just not in the thread\.\n-# gpt-4o-mini · .*\n-# ⚠️ couldn't write in the thread: give me Send Messages in Threads in this channel$/,
    );
    expect(visibleIn(discord.channel.id).map((visible) => visible.content)).toEqual([
      `<@${discord.bot.id}> hello?`,
      final.body.content,
    ]);
  });

  it('when a question is asked in an announcement channel, then it is answered there as a reply, without a thread', async () => {
    const { discord } = harness;
    await setThreads('on');
    const news = discord.addAnnouncementChannel({ name: 'news' });
    await discord.waitForEvent((event) => event.type === 'sent' && event.t === 'CHANNEL_CREATE');

    const { final } = await ask('thoughts?', 'Announced.', { channelId: news.id });

    expect(final.params.channel_id).toBe(news.id);
    expect(threadStarts()).toHaveLength(0);
  });

  it('when the Escalate button under an answer in a thread is clicked, then Claude Haiku answers again in the thread', async () => {
    const { discord, anthropic } = harness;
    await setThreads('on');
    const { message, final } = await ask(QUESTION, 'A short answer.');
    const customId = final.body.components[0].components[0].custom_id as string;
    await turnRecorded(message.id);

    anthropic.script({ type: 'stream', text: 'The longer, better answer.' });
    const from = discord.requests.length;
    const click = discord.clickButton({ messageId: String(final.responseBody.id), customId });
    const again = await finalWrite(from, 'requested by user');

    expect(again.params.channel_id).toBe(message.id);
    expect(again.body.content).toMatch(/^The longer, better answer\.\n-# .*claude-haiku-4-5/);
    expect(JSON.stringify(anthropic.requests[0]?.body.messages)).toContain(QUESTION);
    await until(
      () => discord.interactionResponses(click.id).original?.content?.includes('answered again') ?? false,
    );
    expect(threadStarts()).toHaveLength(1);
  });

  it('when /escalate is used in the thread, then Claude Haiku answers the latest question there again, in the thread', async () => {
    const { discord, anthropic } = harness;
    await setThreads('on');
    const { message } = await ask(QUESTION, 'A short answer.');
    await turnRecorded(message.id);

    anthropic.script({ type: 'stream', text: 'Again, from the thread.' });
    const from = discord.requests.length;
    discord.chatInputCommand({ commandName: 'escalate', channelId: message.id });
    const again = await finalWrite(from, 'requested by user');

    expect(again.params.channel_id).toBe(message.id);
    expect(again.body.content).toMatch(/^Again, from the thread\./);
    expect(visibleIn(discord.channel.id)).toHaveLength(1);
  });

  it('when the bot restarts, then threads stay on, and a thread it opened before still gets answers', async () => {
    const { discord } = harness;
    await setThreads('on');
    const before = (await ask('first?', 'Before the restart.')).message;

    await harness.restart();
    expect((await harness.app.storage.settings.of(discord.guild.id)).answersInThreads).toBe(true);

    const inOldThread = await ask('still there?', 'In the old thread.', { channelId: before.id });
    expect(inOldThread.final.params.channel_id).toBe(before.id);
    const after = await ask('second?', 'In a new thread.');
    expect(after.final.params.channel_id).toBe(after.message.id);
    expect(threadStarts().map((request) => request.params.message_id)).toEqual([before.id, after.message.id]);
  });

  it('when another process turns threads on, then this one follows (PostgreSQL at once by NOTIFY, SQLite once its cache expires)', async () => {
    const { discord } = harness;
    const settings = harness.app.storage.settings;
    expect((await settings.of(discord.guild.id)).answersInThreads).toBe(false);
    const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
    const other = await createApp(harness.config, createLogger('info', quiet));
    try {
      await other.storage.settings.update(discord.guild.id, { answersInThreads: true }, discord.owner.id);
      await until(async () => (await settings.of(discord.guild.id)).answersInThreads);
    } finally {
      await other.close();
    }
    expect(await harness.database.value('SELECT updated_by FROM guild_settings')).toBe(discord.owner.id);
  });
});

describe('threadName', () => {
  const name = (question: string) => threadName(question, 'Question from alice');

  it('when the question is short, then it is the name, without mentions, markup, code or line breaks', () => {
    expect(name('<@123> **Why** does `map` fail here?\n```js\n[1].map((x) => x.y.z)\n```\nThanks!')).toBe(
      'Why does map fail here? Thanks!',
    );
    expect(name('# Heading\n> quoted <#456> and <:party:789>')).toBe('Heading quoted and');
  });

  it('when the question is long, then it is cut at a word within 60 characters and ends with an ellipsis', () => {
    expect(name(QUESTION)).toBe(QUESTION_THREAD);
    expect(name(`${'word '.repeat(30)}`).length).toBeLessThanOrEqual(THREAD_NAME_LENGTH);
  });

  it('when a long question has no space to cut at, or a two-unit character at the cut, then it is cut cleanly', () => {
    expect(name('x'.repeat(100))).toBe(`${'x'.repeat(59)}…`);
    expect(name(`${'a'.repeat(58)}😀 and more`)).toBe(`${'a'.repeat(58)}…`);
  });

  it('when nothing readable is left (a bare mention with an image), then the fallback names it', () => {
    expect(name('<@123>')).toBe('Question from alice');
    expect(name('```\ncode only\n```')).toBe('Question from alice');
  });
});

describe('LiveReply with a surface that moves on its first send', () => {
  it('when the first message is sent at the finish and the surface gains a note then, then the note is added by an edit of that message', async () => {
    const writes: string[] = [];
    const notes: string[] = [];
    const surface: ReplySurface = {
      limitKey: 'thread',
      typing: () => Promise.resolve(),
      async write(piece) {
        // As a thread surface does when the thread refuses its first message: it falls back, with a note.
        if (writes.length === 0) notes.push("⚠️ couldn't write in the thread");
        writes.push(piece.content);
        return { id: String(writes.length) } as Message;
      },
      continue: () => Promise.reject(new Error('one message is enough')),
      notes: () => notes,
    };

    const sent = await new LiveReply(surface, 10).finish('The answer.', ['-# gpt-4o-mini']);

    expect(writes).toEqual([
      'The answer.\n-# gpt-4o-mini',
      "The answer.\n-# gpt-4o-mini\n-# ⚠️ couldn't write in the thread",
    ]);
    expect(sent).toHaveLength(1);
  });
});
