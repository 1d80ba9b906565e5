import type { CompletionUsage } from 'openai/resources/completions';
import type { TokenUsage } from '../../core/pricing.js';

/**
 * OpenAI reports `prompt_tokens` as *all* input tokens, cached ones included; `cached_tokens` is the part
 * of them read from the prompt cache (billed at the cached-input price). OpenAI has no cache-write charge.
 * https://platform.openai.com/docs/guides/prompt-caching
 */
export function convertOpenAIUsage(usage: CompletionUsage): TokenUsage {
  const cachedInputTokens = usage.prompt_tokens_details?.cached_tokens ?? 0;
  return {
    inputTokens: usage.prompt_tokens - cachedInputTokens,
    cachedInputTokens,
    cacheWriteTokens: 0,
    outputTokens: usage.completion_tokens,
  };
}
