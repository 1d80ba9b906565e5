import { describe, expect, it } from 'vitest';
import { buildPriceTable, costMicros, DEFAULT_PRICES } from '../../src/core/pricing.js';
import { convertAnthropicUsage } from '../../src/providers/anthropic/mappers.js';
import { convertOpenAIUsage } from '../../src/providers/openai/mappers.js';

const prices = (() => {
  const built = buildPriceTable(DEFAULT_PRICES);
  if (!built.ok) throw new Error('default prices are invalid');
  return built.table;
})();

describe('convertOpenAIUsage', () => {
  it('when part of the prompt came from the cache, then cached tokens are taken out of prompt_tokens', () => {
    // The final chunk of a stream with stream_options.include_usage, as OpenAI sends it.
    const usage = convertOpenAIUsage({
      prompt_tokens: 2006,
      completion_tokens: 300,
      total_tokens: 2306,
      prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
    });
    expect(usage).toEqual({
      inputTokens: 86,
      cachedInputTokens: 1920,
      cacheWriteTokens: 0,
      outputTokens: 300,
    });
    // 86 × $0.15/M + 1920 × $0.075/M + 300 × $0.60/M = 12.9 + 144 + 180 = 336.9 → 337 micro-USD
    const gpt4oMini = prices.get('gpt-4o-mini');
    expect(gpt4oMini && costMicros(usage, gpt4oMini)).toBe(337);
  });

  it('when the response has no prompt_tokens_details, then nothing is counted as cached', () => {
    expect(convertOpenAIUsage({ prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 })).toEqual({
      inputTokens: 12,
      cachedInputTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 5,
    });
  });
});

describe('convertAnthropicUsage', () => {
  it('when a stream reads and writes the cache, then the three input buckets stay separate', () => {
    // message_start carries the input side; message_delta the cumulative output.
    const start = {
      input_tokens: 25,
      cache_creation_input_tokens: 400,
      cache_read_input_tokens: 1800,
      output_tokens: 1,
    };
    const delta = {
      output_tokens: 503,
      input_tokens: null,
      cache_creation_input_tokens: null,
      cache_read_input_tokens: null,
      output_tokens_details: null,
      server_tool_use: null,
    };
    const usage = convertAnthropicUsage(start, delta);
    expect(usage).toEqual({
      inputTokens: 25,
      cachedInputTokens: 1800,
      cacheWriteTokens: 400,
      outputTokens: 503,
    });
    // Haiku 4.5: 25 × $1 + 1800 × $0.10 + 400 × $1.25 + 503 × $5 (per M) = 25 + 180 + 500 + 2515 = 3220
    const haiku = prices.get('claude-haiku-4-5');
    expect(haiku && costMicros(usage, haiku)).toBe(3220);
  });

  it('when the cache fields are null, then they count as zero', () => {
    expect(
      convertAnthropicUsage({
        input_tokens: 10,
        output_tokens: 20,
        cache_creation_input_tokens: null,
        cache_read_input_tokens: null,
      }),
    ).toEqual({ inputTokens: 10, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 20 });
  });

  it('when the same total input goes through each vendor, then both bill it all exactly once', () => {
    const openai = convertOpenAIUsage({
      prompt_tokens: 1000,
      completion_tokens: 0,
      total_tokens: 1000,
      prompt_tokens_details: { cached_tokens: 600 },
    });
    const anthropic = convertAnthropicUsage({
      input_tokens: 400,
      cache_read_input_tokens: 600,
      cache_creation_input_tokens: 0,
      output_tokens: 0,
    });
    expect(openai).toEqual(anthropic);
  });
});
