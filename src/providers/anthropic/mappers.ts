import Anthropic from '@anthropic-ai/sdk';
import type {
  ContentBlockParam,
  DocumentBlockParam,
  MessageDeltaUsage,
  MessageParam,
  StopReason,
  TextBlockParam,
  Usage,
} from '@anthropic-ai/sdk/resources/messages';
import { type ChatMessage, type ContentPart, type FinishReason, ProviderError } from '../../core/chat.js';
import type { TokenUsage } from '../../core/pricing.js';
import { type ErrorContext, QUOTA_ERROR_CODES, retryAfterMs, toBase64 } from '../http.js';

type AnthropicUsage = Pick<
  Usage,
  'input_tokens' | 'output_tokens' | 'cache_read_input_tokens' | 'cache_creation_input_tokens'
>;

/**
 * Anthropic reports `input_tokens` *excluding* the tokens read from the cache (`cache_read_input_tokens`)
 * and written to it (`cache_creation_input_tokens`): the three are disjoint and each has its own price.
 * In a stream, `message_start` carries the input side and each `message_delta` the cumulative totals,
 * so a later delta's non-null fields replace the start's.
 * https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance
 */
export function convertAnthropicUsage(start: AnthropicUsage, delta?: MessageDeltaUsage): TokenUsage {
  return {
    inputTokens: delta?.input_tokens ?? start.input_tokens,
    cachedInputTokens: delta?.cache_read_input_tokens ?? start.cache_read_input_tokens ?? 0,
    cacheWriteTokens: delta?.cache_creation_input_tokens ?? start.cache_creation_input_tokens ?? 0,
    outputTokens: delta?.output_tokens ?? start.output_tokens,
  };
}

export function mapAnthropicStopReason(reason: StopReason | null | undefined): FinishReason | undefined {
  switch (reason) {
    case null:
    case undefined:
      return undefined;
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'refusal':
      return 'refusal';
    default:
      // end_turn, stop_sequence, and tool_use / pause_turn, which tierbot never asks for.
      return 'stop';
  }
}

/**
 * A conversation prefix this long (in characters, about 1,000 tokens) is worth a cache breakpoint of its
 * own: the next turn then reads it from the cache at a tenth of the input price. Shorter prefixes are
 * below the models' minimum cacheable length, and a breakpoint there would do nothing.
 */
export const CACHEABLE_PREFIX_CHARACTERS = 4_000;

const EPHEMERAL = { type: 'ephemeral' } as const;

/** The system prompt as a block with a cache breakpoint: it is the same on every turn. */
export function toAnthropicSystem(system: string): TextBlockParam[] {
  return [{ type: 'text', text: system, cache_control: EPHEMERAL }];
}

/**
 * Converts the conversation. Consecutive messages of one role are merged (the API wants turns to
 * alternate), and when the history before the newest message is long, its last block gets a second
 * cache breakpoint, so repeated turns of one conversation read it from the prompt cache.
 */
export function toAnthropicMessages(messages: readonly ChatMessage[]): MessageParam[] {
  const converted: { role: 'user' | 'assistant'; content: ContentBlockParam[] }[] = [];
  for (const message of messages) {
    const blocks = toBlocks(message.content);
    const previous = converted.at(-1);
    if (previous && previous.role === message.role) previous.content.push(...blocks);
    else converted.push({ role: message.role, content: blocks });
  }
  const prefix = converted.slice(0, -1);
  if (prefixCharacters(prefix) >= CACHEABLE_PREFIX_CHARACTERS) {
    const lastBlock = prefix.at(-1)?.content.at(-1);
    if (lastBlock && lastBlock.type !== 'thinking' && lastBlock.type !== 'redacted_thinking') {
      Object.assign(lastBlock, { cache_control: EPHEMERAL });
    }
  }
  return converted;
}

function toBlocks(content: ChatMessage['content']): ContentBlockParam[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return content.map(toAnthropicBlock);
}

function toAnthropicBlock(part: ContentPart): ContentBlockParam {
  if (part.type === 'text') return { type: 'text', text: part.text };
  if (part.type === 'image') {
    return {
      type: 'image',
      source: { type: 'base64', media_type: part.mediaType, data: toBase64(part.data) },
    };
  }
  return toAnthropicDocument(part);
}

/** A PDF as a document block, titled with its name (the title is billed too); `data` is its base64. */
export function toAnthropicDocument(
  part: Extract<ContentPart, { type: 'pdf' }>,
  data = toBase64(part.data),
): DocumentBlockParam {
  return {
    type: 'document',
    source: { type: 'base64', media_type: 'application/pdf', data },
    ...(part.name ? { title: part.name } : {}),
  };
}

function prefixCharacters(prefix: readonly { content: ContentBlockParam[] }[]): number {
  let characters = 0;
  for (const message of prefix) {
    for (const block of message.content) {
      if (block.type === 'text') characters += block.text.length;
      // An image or a document is large enough to be worth caching on its own.
      else if (block.type === 'image' || block.type === 'document') characters += CACHEABLE_PREFIX_CHARACTERS;
    }
  }
  return characters;
}

export function mapAnthropicError(error: unknown, context: ErrorContext = {}): ProviderError {
  if (error instanceof ProviderError) return error;
  const details = { usage: context.usage, partialText: context.partialText, cause: error };
  if (error instanceof Anthropic.APIUserAbortError) {
    return context.timedOut
      ? new ProviderError('anthropic', 'timeout', 'Anthropic sent no answer in time', details)
      : new ProviderError('anthropic', 'aborted', 'the request was cancelled', details);
  }
  if (error instanceof Anthropic.APIConnectionTimeoutError) {
    return new ProviderError('anthropic', 'timeout', 'Anthropic did not answer in time', details);
  }
  if (error instanceof Anthropic.APIConnectionError) {
    return new ProviderError('anthropic', 'connection', 'could not reach Anthropic', details);
  }
  if (error instanceof Anthropic.APIError) {
    const status = error.status;
    const body = error.error as { error?: { type?: string; message?: string } } | undefined;
    const type = body?.error?.type ?? '';
    // The specific cause comes in error.details.error_code (a 429 enforced_spend_limit_reached is not a
    // rate limit: retrying cannot help until the month resets).
    const errorCode = error.errorCode ?? '';
    const message = body?.error?.message ?? '';
    const withStatus = { ...details, status };
    if (
      QUOTA_ERROR_CODES.has(type) ||
      QUOTA_ERROR_CODES.has(errorCode) ||
      /credit balance/i.test(message) ||
      status === 402
    ) {
      return new ProviderError(
        'anthropic',
        'quota',
        'the Anthropic account is out of credit or over its limit',
        withStatus,
      );
    }
    if (status === 401 || status === 403) {
      return new ProviderError('anthropic', 'auth', 'Anthropic refused the API key', withStatus);
    }
    if (status === 429) {
      return new ProviderError('anthropic', 'rate_limited', 'Anthropic is rate-limiting us', {
        ...withStatus,
        retryAfterMs: retryAfterMs(error.headers),
      });
    }
    if (status === 408) return new ProviderError('anthropic', 'timeout', 'Anthropic timed out', withStatus);
    // 529 overloaded_error, also sent mid-stream as an `error` event (the SDK then has no status).
    if (status === 529 || status === 503 || type === 'overloaded_error') {
      return new ProviderError('anthropic', 'overloaded', 'Anthropic is overloaded', {
        ...withStatus,
        retryAfterMs: retryAfterMs(error.headers),
      });
    }
    if (status === 409 || status === undefined || status >= 500) {
      return new ProviderError('anthropic', 'server', `Anthropic failed (${status ?? type})`, withStatus);
    }
    return new ProviderError(
      'anthropic',
      'invalid_request',
      `Anthropic refused the request (${status})`,
      withStatus,
    );
  }
  // A body cut mid-stream: undici's `TypeError: terminated`, which messages.stream() rethrows as a plain
  // AnthropicError('terminated').
  if (
    (error instanceof TypeError || error instanceof Anthropic.AnthropicError) &&
    /terminated/.test(error.message)
  ) {
    return new ProviderError('anthropic', 'truncated', 'the Anthropic stream was cut off', details);
  }
  return new ProviderError(
    'anthropic',
    'connection',
    `Anthropic call failed: ${(error as Error)?.message}`,
    details,
  );
}
