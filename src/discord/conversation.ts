import { type AnyThreadChannel, ChannelType, type Message } from 'discord.js';
import type { ChatMessage, ContentPart } from '../core/chat.js';
import { fitConversation } from '../core/history.js';
import { type DownloadOptions, readAttachments } from './attachments.js';

/** How far up a reply chain the context goes. */
export const MAX_CONTEXT_MESSAGES = 12;

/**
 * The most characters of one message a model reads, the same as /ask's prompt. Discord caps a message
 * at 4,000 characters, so only a malformed or hostile payload is ever cut (and its cost stays bounded).
 */
export const MAX_MESSAGE_CHARACTERS = 6_000;

/** Footer lines the bot adds under its answers (Discord subtext), which are not part of the answer. */
const FOOTER_LINE = /^-# .*$/gm;

/**
 * Text that shows nothing: whitespace, format characters (zero-width spaces and joiners, bidi controls,
 * the BOM, tags), variation selectors, and the blank letters people use to post "empty" messages (Hangul
 * fillers, the blank Braille pattern). Sending it to a model would charge for a question nobody asked.
 */
const INVISIBLE_ONLY = /^[\s\p{Cf}\p{Zs}\p{Variation_Selector}\u115F\u1160\u3164\uFFA0\u2800]*$/u;

/** Whether a message's text shows nothing at all (see {@link INVISIBLE_ONLY}). */
export function isBlank(text: string): boolean {
  return INVISIBLE_ONLY.test(text);
}

/**
 * Whether a message is for the bot: it mentions the bot, replies to the bot, is in a DM, in a channel an
 * admin enabled (/settings channel add), or in a thread the bot started. Never bots (the bot itself included), webhooks, system messages, or empty messages.
 */
export async function isForBot(
  message: Message,
  botId: string,
  isAnsweredChannel: (guildId: string | null, channelId: string) => Promise<boolean> = async () => false,
): Promise<boolean> {
  if (message.author.bot || message.webhookId !== null || message.system) return false;
  if (isBlank(message.content) && message.attachments.size === 0) return false;
  if (message.channel.type === ChannelType.DM) return true;
  if (message.mentions.users.has(botId)) return true;
  if (message.mentions.repliedUser?.id === botId) return true;
  const { channel } = message;
  if (channel.isThread() && channel.ownerId === botId) return true;
  // Last: the only check that may read the database (once per server per few seconds, cached).
  return isAnsweredChannel(message.guildId, message.channelId);
}

export interface BuiltConversation {
  messages: ChatMessage[];
  warnings: string[];
  /** An attachment of the question could not be downloaded (the last warning says which). */
  isDownloadFailed: boolean;
}

/**
 * The conversation a question belongs to: its reply chain, walked up through `message_reference` (from
 * the cache, else over REST), or in a thread the thread's recent messages; oldest first, at most
 * {@link MAX_CONTEXT_MESSAGES} messages and CONVERSATION_TOKEN_BUDGET tokens (core/history.ts). The bot's own
 * answers are assistant turns (without their footers); other people's messages are labelled with their
 * display names, so the model can tell speakers apart.
 */
export async function buildConversation(
  question: Message,
  botId: string,
  download: DownloadOptions = {},
): Promise<BuiltConversation> {
  const chain: Message[] = [question];
  let current = question;
  let isCut = false;
  while (current.reference?.messageId) {
    if (chain.length >= MAX_CONTEXT_MESSAGES) {
      isCut = true;
      break;
    }
    const parent = await current.fetchReference().catch(() => undefined);
    if (!parent) break;
    chain.unshift(parent);
    current = parent;
  }
  // In a thread, a message that replies to nothing continues the thread: its recent messages are the context.
  if (chain.length === 1 && question.channel.isThread()) {
    const history = await threadHistory(question.channel, question.id);
    isCut = history.isCut || history.messages.length > MAX_CONTEXT_MESSAGES - 1;
    chain.unshift(...history.messages.slice(-(MAX_CONTEXT_MESSAGES - 1)));
  }
  // Bounded twice: by message count (above) and by tokens, the oldest messages going first.
  const fitted = fitConversation(chain.map((message) => toChatMessage(message, question.author.id, botId)));
  const messages = mergeTurns(fitted.messages);
  const warnings =
    fitted.dropped > 0
      ? [`⚠️ using the last ${fitted.messages.length} messages`]
      : isCut
        ? [`⚠️ using the last ${MAX_CONTEXT_MESSAGES} messages`]
        : [];
  const questionLength = withoutBotMention(question.content, botId).length;
  if (questionLength > MAX_MESSAGE_CHARACTERS) {
    warnings.push(
      `⚠️ your message has ${questionLength.toLocaleString('en-US')} characters; only the first ` +
        `${MAX_MESSAGE_CHARACTERS.toLocaleString('en-US')} were read`,
    );
  }
  let isDownloadFailed = false;
  if (question.attachments.size > 0) {
    const read = await readAttachments(question.attachments.values(), download);
    const { parts, notes } = read;
    isDownloadFailed = read.isDownloadFailed;
    const last = messages.at(-1);
    if (last && parts.length > 0) {
      const text = typeof last.content === 'string' ? last.content : '';
      const content: ContentPart[] = text === '' ? parts : [{ type: 'text', text }, ...parts];
      messages[messages.length - 1] = { role: 'user', content };
    }
    warnings.push(...notes.map((note) => `⚠️ ${note}`));
  }
  return { messages, warnings, isDownloadFailed };
}

/**
 * A thread's messages before `beforeId`, oldest first, at most {@link MAX_CONTEXT_MESSAGES}; when that
 * reaches the thread's start, the message it was opened from (which lives in the parent channel) comes
 * first. System messages (the thread's "started from" marker among them) are left out.
 */
async function threadHistory(
  thread: AnyThreadChannel,
  beforeId: string,
): Promise<{ messages: Message[]; isCut: boolean }> {
  const recent = await thread.messages
    .fetch({ limit: MAX_CONTEXT_MESSAGES, before: beforeId })
    .catch(() => undefined);
  if (!recent) return { messages: [], isCut: false };
  const messages = [...recent.values()]
    .filter((message) => !message.system)
    .sort((a, b) => a.createdTimestamp - b.createdTimestamp);
  if (recent.size >= MAX_CONTEXT_MESSAGES) return { messages, isCut: true };
  // A thread opened from a message has that message's id; any other thread has none (Discord says 404).
  const starter = await thread.fetchStarterMessage().catch(() => null);
  return { messages: starter ? [starter, ...messages] : messages, isCut: false };
}

function toChatMessage(message: Message, askerId: string, botId: string): ChatMessage {
  if (message.author.id === botId) {
    return { role: 'assistant', content: message.content.replace(FOOTER_LINE, '').trim() };
  }
  const text = clip(withoutBotMention(message.content, botId));
  const speaker = message.member?.displayName ?? message.author.displayName;
  return { role: 'user', content: message.author.id === askerId ? text : `${speaker}: ${text}` };
}

/** The text without the bot's mentions; '' when nothing visible is left (a bare mention, zero-width padding). */
function withoutBotMention(content: string, botId: string): string {
  const text = content.replaceAll(`<@${botId}>`, '').replaceAll(`<@!${botId}>`, '').trim();
  return isBlank(text) ? '' : text;
}

/** At most {@link MAX_MESSAGE_CHARACTERS}, never splitting a character made of two UTF-16 units. */
function clip(text: string): string {
  if (text.length <= MAX_MESSAGE_CHARACTERS) return text;
  const end = /[\uD800-\uDBFF]/.test(text.charAt(MAX_MESSAGE_CHARACTERS - 1))
    ? MAX_MESSAGE_CHARACTERS - 1
    : MAX_MESSAGE_CHARACTERS;
  return text.slice(0, end);
}

/** Consecutive messages of one role become one turn. */
function mergeTurns(messages: ChatMessage[]): ChatMessage[] {
  const merged: ChatMessage[] = [];
  for (const message of messages) {
    const previous = merged.at(-1);
    if (previous && previous.role === message.role && typeof previous.content === 'string') {
      merged[merged.length - 1] = {
        role: message.role,
        content: `${previous.content}\n\n${message.content}`,
      };
    } else {
      merged.push(message);
    }
  }
  return merged;
}
