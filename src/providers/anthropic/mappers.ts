import type { MessageDeltaUsage, Usage } from '@anthropic-ai/sdk/resources/messages';
import type { TokenUsage } from '../../core/pricing.js';

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
