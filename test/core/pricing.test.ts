import { describe, expect, it } from 'vitest';
import {
  buildPriceTable,
  costMicros,
  DEFAULT_PRICES,
  type ModelPrice,
  type TokenUsage,
  worstCaseCostMicros,
} from '../../src/core/pricing.js';

function priceOf(model: string): ModelPrice {
  const built = buildPriceTable(DEFAULT_PRICES);
  if (!built.ok) throw new Error(built.problems.join('; '));
  const price = built.table.get(model);
  if (!price) throw new Error(`no price for ${model}`);
  return price;
}

const usage = (partial: Partial<TokenUsage>): TokenUsage => ({
  inputTokens: 0,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
  outputTokens: 0,
  ...partial,
});

describe('published prices', () => {
  it('when 1M input and 1M output tokens run on gpt-4o-mini, then they cost $0.75', () => {
    expect(costMicros(usage({ inputTokens: 1e6, outputTokens: 1e6 }), priceOf('gpt-4o-mini'))).toBe(750_000);
  });

  it('when 1M input and 1M output tokens run on claude-3-5-haiku, then they cost $4.80', () => {
    expect(costMicros(usage({ inputTokens: 1e6, outputTokens: 1e6 }), priceOf('claude-3-5-haiku'))).toBe(
      4_800_000,
    );
  });

  it('when 1M input and 1M output tokens run on claude-haiku-4-5, then they cost $6.00', () => {
    expect(costMicros(usage({ inputTokens: 1e6, outputTokens: 1e6 }), priceOf('claude-haiku-4-5'))).toBe(
      6_000_000,
    );
  });

  it('when the table is built, then it holds the shipped rates in micro-USD per million tokens', () => {
    expect(priceOf('gpt-4o-mini')).toEqual({
      input: 150_000,
      cachedInput: 75_000,
      cacheWrite: null,
      output: 600_000,
    });
    expect(priceOf('claude-3-5-haiku')).toEqual({
      input: 800_000,
      cachedInput: 80_000,
      cacheWrite: 1_000_000,
      output: 4_000_000,
    });
    expect(priceOf('claude-haiku-4-5')).toEqual({
      input: 1_000_000,
      cachedInput: 100_000,
      cacheWrite: 1_250_000,
      output: 5_000_000,
    });
  });
});

describe('costMicros', () => {
  it('when tokens are read from or written to the cache, then each bucket is billed at its own rate', () => {
    const haiku = priceOf('claude-haiku-4-5');
    // 1M cached reads at $0.10 + 1M cache writes at $1.25
    expect(costMicros(usage({ cachedInputTokens: 1e6, cacheWriteTokens: 1e6 }), haiku)).toBe(1_350_000);
  });

  it('when a model has no cache-write price, then cache writes cost the input price', () => {
    expect(costMicros(usage({ cacheWriteTokens: 1e6 }), priceOf('gpt-4o-mini'))).toBe(150_000);
  });

  it('when the exact cost has a fraction of a micro-dollar, then it rounds up', () => {
    // 1 gpt-4o-mini input token costs 0.15 micro-USD.
    expect(costMicros(usage({ inputTokens: 1 }), priceOf('gpt-4o-mini'))).toBe(1);
    expect(costMicros(usage({ inputTokens: 7 }), priceOf('gpt-4o-mini'))).toBe(2);
    expect(costMicros(usage({}), priceOf('gpt-4o-mini'))).toBe(0);
  });

  it('when a call is reserved, then its worst case prices all input at the dearest input rate', () => {
    const haiku = priceOf('claude-haiku-4-5');
    // 1,000 input tokens at the cache-write rate ($1.25/M) + 1,024 output tokens at $5/M
    expect(worstCaseCostMicros(haiku, 1_000, 1_024)).toBe(1_250 + 5_120);
    const anyUsage = usage({
      inputTokens: 400,
      cachedInputTokens: 300,
      cacheWriteTokens: 300,
      outputTokens: 1_024,
    });
    expect(costMicros(anyUsage, haiku)).toBeLessThanOrEqual(worstCaseCostMicros(haiku, 1_000, 1_024));
  });
});

describe('buildPriceTable', () => {
  it('when a price is written per token instead of per million, then the table is refused', () => {
    const built = buildPriceTable({ 'my-model': { input: 0.00000015, output: 0.6 } });
    expect(built.ok).toBe(false);
    if (!built.ok) expect(built.problems[0]).toContain('my-model: input price');
  });

  it('when a price is written in micro-dollars, then the table is refused', () => {
    expect(buildPriceTable({ 'my-model': { input: 150_000, output: 600_000 } }).ok).toBe(false);
  });

  it('when a price is missing, negative or not a number, then each problem is named', () => {
    const built = buildPriceTable({
      a: { input: Number.NaN, output: 1 },
      b: { input: 1, output: -2 },
      c: { input: 1, cachedInput: 2, output: 1 },
    });
    expect(built.ok).toBe(false);
    if (!built.ok) {
      expect(built.problems).toHaveLength(3);
      expect(built.problems.join('\n')).toMatch(/a: input[\s\S]*b: output[\s\S]*c: cachedInput/);
    }
  });

  it('when a model has no cached-input price, then cache reads cost the input price', () => {
    const built = buildPriceTable({ plain: { input: 2, output: 8 } });
    expect(built.ok && built.table.get('plain')).toEqual({
      input: 2_000_000,
      cachedInput: 2_000_000,
      cacheWrite: null,
      output: 8_000_000,
    });
  });
});
