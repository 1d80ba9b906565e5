import type { ChatMessage } from './chat.js';

/**
 * The most tokens of conversation a turn sends, history and question together: a long reply chain costs
 * input tokens on every call of every turn (draft, check, refinement), so its oldest messages go first.
 */
export const CONVERSATION_TOKEN_BUDGET = 8_000;

/** Role markers and separators around each message. */
const TOKENS_PER_MESSAGE = 4;
/**
 * A token is about 4 bytes of English and about one 3-byte character of Chinese or Japanese: a third of the
 * UTF-8 length is on the safe side for both, without a tokenizer.
 */
const BYTES_PER_TOKEN = 3;

/** What a message's text adds to a request, roughly and rather more than less. Attachments are not counted. */
export function roughTokens(message: ChatMessage): number {
  const parts = typeof message.content === 'string' ? [message.content] : message.content;
  let bytes = 0;
  for (const part of parts) {
    if (typeof part === 'string') bytes += Buffer.byteLength(part, 'utf8');
    else if (part.type === 'text') bytes += Buffer.byteLength(part.text, 'utf8');
  }
  return TOKENS_PER_MESSAGE + Math.ceil(bytes / BYTES_PER_TOKEN);
}

export interface FittedConversation {
  messages: ChatMessage[];
  /** How many of the oldest messages were left out. */
  dropped: number;
}

/**
 * The newest messages that fit in `budgetTokens`, oldest left out first. The question (the last message)
 * always stays. When messages are left out, the kept part starts with a person's message, not with an
 * answer whose question is gone; a conversation that fits is kept whole, even one that opens with the
 * bot's message (a reply to an /ask answer).
 */
export function fitConversation(
  messages: readonly ChatMessage[],
  budgetTokens = CONVERSATION_TOKEN_BUDGET,
): FittedConversation {
  let start = messages.length - 1;
  let tokens = start >= 0 ? roughTokens(messages[start]!) : 0;
  while (start > 0) {
    const cost = roughTokens(messages[start - 1]!);
    if (tokens + cost > budgetTokens) break;
    tokens += cost;
    start -= 1;
  }
  if (start > 0) {
    while (start < messages.length - 1 && messages[start]?.role === 'assistant') start += 1;
  }
  return { messages: messages.slice(Math.max(0, start)), dropped: Math.max(0, start) };
}
