import {
  ChannelType,
  DiscordAPIError,
  DiscordjsErrorCodes,
  type Message,
  PermissionFlagsBits,
  RESTJSONErrorCodes,
  ThreadAutoArchiveDuration,
  type ThreadChannel,
} from 'discord.js';
import type { ServerSettings } from '../core/settings.js';
import type { Logger } from '../log.js';
import { messageSurface, NO_MENTIONS, type ReplySurface } from './live-reply.js';

/**
 * The longest thread name the bot gives (Discord allows 100): the channel's thread list and the
 * thread's header show about this much before they cut it themselves.
 */
export const THREAD_NAME_LENGTH = 60;

/** A thread nobody writes in for a day is archived; writing in it again brings it back. */
const THREAD_ARCHIVE = ThreadAutoArchiveDuration.OneDay;

/** What answering in threads needs, by the names Discord's permission settings show. */
export const THREAD_PERMISSIONS = [
  [PermissionFlagsBits.CreatePublicThreads, 'Create Public Threads'],
  [PermissionFlagsBits.SendMessagesInThreads, 'Send Messages in Threads'],
] as const;

/** Where an answer to a chat message goes, and the channel its turn is recorded in. */
export interface AnswerPlace {
  surface: ReplySurface;
  /** The thread, when the answer goes in one: /escalate used there finds the turn. */
  channelId: string;
}

/**
 * Where the answer to a chat message goes: with /settings threads on, in a public thread opened from
 * the message in a plain text channel; otherwise (or when the thread cannot be opened) as a reply in
 * its channel, with a note saying what the admins can fix.
 */
export async function answerPlace(
  message: Message,
  settings: ServerSettings,
  log: Logger,
): Promise<AnswerPlace> {
  const inChannel = { surface: messageSurface(message), channelId: message.channelId };
  if (!settings.answersInThreads || !canOpenThreadFrom(message)) return inChannel;
  try {
    const thread = await message.startThread({
      name: threadName(
        message.content,
        `Question from ${message.member?.displayName ?? message.author.displayName}`,
      ),
      autoArchiveDuration: THREAD_ARCHIVE,
    });
    return { surface: threadSurface(thread, message, log), channelId: thread.id };
  } catch (error) {
    log.warn(
      { err: error, guildId: message.guildId, channelId: message.channelId, messageId: message.id },
      'could not open a thread; answering in the channel',
    );
    const note = openFailureNote(error);
    return { ...inChannel, surface: { ...inChannel.surface, notes: () => [note] } };
  }
}

/**
 * Only a plain text channel's messages start threads of the kind people follow: a DM has none, a message
 * in a thread (or a forum post) is in one already, and a thread from an announcement channel's message
 * is an announcement thread, which followers of the channel do not get.
 */
function canOpenThreadFrom(message: Message): boolean {
  return message.inGuild() && message.channel.type === ChannelType.GuildText;
}

/**
 * The answer in a thread opened from the question: its first message sent in the thread, then edited
 * and continued there. If the bot cannot write in the thread (no Send Messages in Threads), the answer
 * goes to the channel as a reply instead, with a note: it is never lost.
 */
export function threadSurface(thread: ThreadChannel, question: Message, log: Logger): ReplySurface {
  let answer: Message | undefined;
  let fallback: ReplySurface | undefined;
  const notes: string[] = [];
  return {
    get limitKey() {
      return fallback ? question.channelId : thread.id;
    },
    async typing() {
      await thread.sendTyping().catch(() => {});
    },
    async write(piece) {
      if (fallback) return fallback.write(piece);
      const options = { ...piece, allowedMentions: NO_MENTIONS };
      if (answer) return answer.edit(options);
      try {
        answer = await thread.send(options);
        return answer;
      } catch (error) {
        log.warn(
          { err: error, guildId: question.guildId, threadId: thread.id },
          'could not write in the thread; answering in the channel',
        );
        notes.push(sendFailureNote(error));
        fallback = messageSurface(question);
        return fallback.write(piece);
      }
    },
    continue: (previous, piece) => previous.reply({ ...piece, allowedMentions: NO_MENTIONS }),
    notes: () => notes,
  };
}

/** The footer note when the thread could not be opened: what the admins can do about it. */
function openFailureNote(error: unknown): string {
  if (isDiscordError(error, RESTJSONErrorCodes.MissingPermissions)) {
    return "⚠️ couldn't open a thread: give me Create Public Threads in this channel";
  }
  if (
    isDiscordError(error, RESTJSONErrorCodes.ThreadAlreadyCreatedForMessage) ||
    (error as { code?: unknown }).code === DiscordjsErrorCodes.MessageExistingThread
  ) {
    return '⚠️ answered here: this message has a thread already';
  }
  return `⚠️ couldn't open a thread${discordCode(error)}, so the answer is here`;
}

/** The footer note when the thread was opened but the bot could not write in it. */
function sendFailureNote(error: unknown): string {
  if (isDiscordError(error, RESTJSONErrorCodes.MissingPermissions)) {
    return "⚠️ couldn't write in the thread: give me Send Messages in Threads in this channel";
  }
  return `⚠️ couldn't write in the thread${discordCode(error)}, so the answer is here`;
}

function isDiscordError(error: unknown, code: RESTJSONErrorCodes): boolean {
  return error instanceof DiscordAPIError && error.code === code;
}

/** ` (Discord error 50001)` for an error Discord gave, else nothing (a timeout says nothing useful). */
function discordCode(error: unknown): string {
  return error instanceof DiscordAPIError ? ` (Discord error ${error.code})` : '';
}

/** Mentions, channel and role links, custom emoji: markup that reads as noise in a thread's name. */
const MARKUP = /<(?:@[!&]?|#)\d+>|<a?:\w+:\d+>/g;
/** Code blocks: a question's code rarely names it. */
const CODE_BLOCK = /```[\s\S]*?(?:```|$)/g;
/** Headings, quotes and subtext at a line's start; bold, italic, strike-through, spoiler and code marks. */
const FORMATTING = /^\s*(?:#{1,3}|-#|>{1,3})\s+|\*\*|__|~~|\|\||`/gm;
/** A name cut at a word ends there when that keeps at least this much of it; otherwise mid-word. */
const SHORTEST_WORD_CUT = THREAD_NAME_LENGTH / 2;

/**
 * A thread's name from the question: its words without markup, code blocks or line breaks, at most
 * {@link THREAD_NAME_LENGTH} characters, cut at a word with an ellipsis when longer; `fallback` when
 * nothing readable is left (a bare mention with an image).
 */
export function threadName(question: string, fallback: string): string {
  const text = question
    .replace(CODE_BLOCK, ' ')
    .replace(MARKUP, ' ')
    .replace(FORMATTING, '')
    .replace(/\s+/g, ' ')
    .trim();
  const name = text === '' ? fallback.replace(/\s+/g, ' ').trim() : text;
  if (name.length <= THREAD_NAME_LENGTH) return name;
  const room = THREAD_NAME_LENGTH - 1;
  let cut = name.slice(0, room);
  const lastSpace = cut.lastIndexOf(' ');
  if (lastSpace >= SHORTEST_WORD_CUT) cut = cut.slice(0, lastSpace);
  // Never half of a character written with two UTF-16 units (an emoji, many CJK extensions).
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut.replace(/[\s,;:.!?-]+$/, '')}…`;
}
