import type { APIMessage } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { DOWNLOAD_FAILED, EMPTY_QUESTION_HINT } from '../../src/discord/bot.js';
import type { ScriptedAttachment } from '../fakes/discord/index.js';
import { ACCEPT, type BotHarness, botPerTest, until } from '../support/bot.js';

/**
 * Attachment downloads through the real bot, with the loopback CDN made to stall or to send more than a
 * message says: each is cut off within its limit of time or bytes, the person is told why, and a turn
 * ended by a download calls no model and charges nothing.
 */

const startBot = botPerTest();

/** Short, so that a stalled download ends within the test. */
const DOWNLOAD_TIMEOUT_MS = 300;

/** The bot's reply to a message, once it has one. */
async function replyTo(harness: BotHarness, question: APIMessage): Promise<string> {
  const reply = () =>
    harness.discord
      .messagesIn(question.channel_id)
      .find((message) => message.message_reference?.message_id === question.id);
  await until(() => reply() !== undefined);
  return reply()?.content ?? '';
}

function ask(harness: BotHarness, text: string, attachment: ScriptedAttachment): APIMessage {
  return harness.discord.messageCreate({
    content: `<@${harness.discord.bot.id}>${text === '' ? '' : ` ${text}`}`,
    attachments: [attachment],
  });
}

/** Nothing called, nothing charged (or held) for the person who asked. */
async function expectNothingCharged(harness: BotHarness) {
  expect([...harness.openai.requests, ...harness.anthropic.requests]).toEqual([]);
  const member = { userId: harness.discord.user.id, guildId: harness.discord.guild.id };
  for (const standing of await harness.app.storage.budgets.standings(member)) {
    expect([standing.spentMicros, standing.reservedMicros]).toEqual([0, 0]);
  }
}

/** A plain question afterwards is answered: the bot is not stuck on what came before. */
async function expectStillAnswering(harness: BotHarness) {
  harness.openai.script({ type: 'stream', text: 'Still here.' }, { type: 'completion', content: ACCEPT });
  const question = harness.discord.messageCreate({ content: `<@${harness.discord.bot.id}> still there?` });
  await until(() =>
    harness.discord
      .messagesIn(question.channel_id)
      .some(
        (message) =>
          message.message_reference?.message_id === question.id && message.content.includes('\n-# '),
      ),
  );
}

describe('attachment downloads', () => {
  it('when the CDN sends the headers and then nothing, then the download ends at its timeout, the turn ends with a note, and nothing is charged', async () => {
    const harness = await startBot({ bot: { downloadTimeoutMs: DOWNLOAD_TIMEOUT_MS } });
    const question = ask(harness, 'summarise this', {
      filename: 'notes.txt',
      content: 'the minutes of the meeting',
      serving: { stalls: true },
    });

    expect(await replyTo(harness, question)).toBe(
      `${DOWNLOAD_FAILED}\n-# ⚠️ notes.txt: the download did not finish within 0.3 s; not sent`,
    );
    const reply = harness.discord.requests.find(
      (request) => request.route === 'POST /channels/:channel_id/messages',
    );
    expect(reply?.body.allowed_mentions).toMatchObject({ parse: [] });
    await expectNothingCharged(harness);
    await expectStillAnswering(harness);
  });

  it('when the CDN fails, then the turn ends with a note rather than an answer that never saw the file', async () => {
    const harness = await startBot();
    harness.discord.failNext('GET /attachments/:channel_id/:attachment_id/:filename', {
      status: 500,
      code: 0,
      message: '500: Internal Server Error',
    });
    const question = ask(harness, 'what does this say?', { filename: 'notes.txt', content: 'hello' });

    expect(await replyTo(harness, question)).toBe(
      `${DOWNLOAD_FAILED}\n-# ⚠️ notes.txt: could not be downloaded; not sent`,
    );
    await expectNothingCharged(harness);
  });

  it('when a file streams far more bytes than its message says, then the download is cut just past the limit and the file refused with its note', async () => {
    const harness = await startBot();
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const repeat = 1_000; // 64 MB of text, where the message says 1 KB and text files may have 100 KB
    const question = ask(harness, '', {
      filename: 'notes.txt',
      content: chunk,
      size: 1_024,
      serving: { repeat },
    });

    expect(await replyTo(harness, question)).toBe(
      `${EMPTY_QUESTION_HINT}\n-# ⚠️ notes.txt: larger than the 100 KB limit for text files; not sent`,
    );
    const [download] = harness.discord.cdnDownloads(question.attachments[0]!.id);
    expect(download?.isComplete).toBe(false);
    // Far less than the stream was sent: what the sockets buffer once the bot stops reading, not 64 MB.
    expect(download?.bytesSent).toBeLessThan((chunk.length * repeat) / 4);
    await expectNothingCharged(harness);
    await expectStillAnswering(harness);
  });

  it('when the CDN’s length shows an image larger than its message says, with a question, then the question is answered without it and the footer says why', async () => {
    const harness = await startBot();
    const png = Buffer.alloc(6 * 1024 * 1024); // over the 5 MB limit for images
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    harness.openai.script(
      { type: 'stream', text: 'I cannot see an image.' },
      { type: 'completion', content: ACCEPT },
    );
    const question = ask(harness, 'what is in the picture?', {
      filename: 'photo.png',
      content: png,
      size: 2_048,
    });

    await until(() =>
      harness.discord
        .messagesIn(question.channel_id)
        .some((message) => message.author.id === harness.discord.bot.id && message.content.includes('\n-# ')),
    );
    const answer = harness.discord
      .messagesIn(question.channel_id)
      .find((message) => message.message_reference?.message_id === question.id);
    expect(answer?.content).toContain('-# ⚠️ photo.png: larger than the 5 MB limit for images; not sent');
    expect(harness.openai.requests[0]?.body.messages.at(-1)).toEqual({
      role: 'user',
      content: 'what is in the picture?',
    });
  });
});
