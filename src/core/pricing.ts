import type { Micros } from './money.js';

/**
 * Token counts of one model call, normalised across vendors into four disjoint buckets, so that cost is
 * simply each bucket times its price. The vendors report this differently (see the usage mappers in
 * src/providers/): OpenAI's `prompt_tokens` *includes* its `cached_tokens`, while Anthropic's
 * `input_tokens` *excludes* `cache_read_input_tokens` and `cache_creation_input_tokens`.
 */
export interface TokenUsage {
  /** Input tokens billed at the full input price: neither read from nor written to a prompt cache. */
  inputTokens: number;
  /** Input tokens read from the prompt cache (billed at the cached-input price). */
  cachedInputTokens: number;
  /** Input tokens written to the prompt cache (Anthropic bills these above the input price). */
  cacheWriteTokens: number;
  outputTokens: number;
}

export const NO_USAGE: TokenUsage = Object.freeze({
  inputTokens: 0,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
  outputTokens: 0,
});

export function totalTokens(usage: TokenUsage): number {
  return usage.inputTokens + usage.cachedInputTokens + usage.cacheWriteTokens + usage.outputTokens;
}

/** A model's prices in micro-USD per million tokens, so every product below stays an exact integer. */
export interface ModelPrice {
  input: number;
  cachedInput: number;
  /** null where the vendor has no separate cache-write charge (OpenAI): such tokens cost the input price. */
  cacheWrite: number | null;
  output: number;
}

/** The way people and vendors write prices: USD per million tokens. */
export interface PriceInUsdPerMillion {
  input: number;
  cachedInput?: number | null;
  cacheWrite?: number | null;
  output: number;
}

export type PriceTable = ReadonlyMap<string, ModelPrice>;

/** Published list prices, USD per million tokens: input / cached input / cache write / output. */
export const DEFAULT_PRICES: Readonly<Record<string, PriceInUsdPerMillion>> = {
  'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, cacheWrite: null, output: 0.6 },
  'gpt-4o': { input: 2.5, cachedInput: 1.25, cacheWrite: null, output: 10 },
  'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, cacheWrite: null, output: 1.6 },
  'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, cacheWrite: null, output: 0.4 },
  'claude-3-5-haiku': { input: 0.8, cachedInput: 0.08, cacheWrite: 1.0, output: 4.0 },
  'claude-3-5-haiku-20241022': { input: 0.8, cachedInput: 0.08, cacheWrite: 1.0, output: 4.0 },
  'claude-haiku-4-5': { input: 1.0, cachedInput: 0.1, cacheWrite: 1.25, output: 5.0 },
  'claude-haiku-4-5-20251001': { input: 1.0, cachedInput: 0.1, cacheWrite: 1.25, output: 5.0 },
  'claude-sonnet-4-5': { input: 3.0, cachedInput: 0.3, cacheWrite: 3.75, output: 15.0 },
};

/**
 * Sane bounds for a price in USD per million tokens. Real prices sit well inside; a price written per
 * token (0.00000015) or per thousand tokens (0.00015), or in micro-dollars (150000), falls outside.
 */
export const MIN_PRICE_USD_PER_MILLION = 0.001;
export const MAX_PRICE_USD_PER_MILLION = 1_000;

const MICROS_PER_MILLION_TOKENS = 1_000_000;

export type PriceTableResult = { ok: true; table: PriceTable } | { ok: false; problems: string[] };

/** Validates prices written in USD per million tokens and converts them to the exact integer form. */
export function buildPriceTable(prices: Readonly<Record<string, PriceInUsdPerMillion>>): PriceTableResult {
  const problems: string[] = [];
  const table = new Map<string, ModelPrice>();
  for (const [model, price] of Object.entries(prices)) {
    const before = problems.length;
    const check = (field: string, value: number | null | undefined, required: boolean) => {
      if (value === null || value === undefined) {
        if (required) problems.push(`${model}: ${field} price is missing`);
        return;
      }
      if (!Number.isFinite(value) || value < MIN_PRICE_USD_PER_MILLION || value > MAX_PRICE_USD_PER_MILLION) {
        problems.push(
          `${model}: ${field} price ${value} is outside ${MIN_PRICE_USD_PER_MILLION}–${MAX_PRICE_USD_PER_MILLION} USD per million tokens (was it written per token or per thousand?)`,
        );
      }
    };
    check('input', price.input, true);
    check('cachedInput', price.cachedInput, false);
    check('cacheWrite', price.cacheWrite, false);
    check('output', price.output, true);
    if (price.cachedInput != null && price.cachedInput > price.input) {
      problems.push(`${model}: cachedInput price is above the input price`);
    }
    if (problems.length > before) continue;
    table.set(model, {
      input: toMicrosPerMillion(price.input),
      // A model without a cache discount bills cache reads as ordinary input.
      cachedInput: toMicrosPerMillion(price.cachedInput ?? price.input),
      cacheWrite: price.cacheWrite == null ? null : toMicrosPerMillion(price.cacheWrite),
      output: toMicrosPerMillion(price.output),
    });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, table };
}

function toMicrosPerMillion(usdPerMillion: number): number {
  return Math.round(usdPerMillion * 1_000_000);
}

/** The exact cost of a call, rounded up to the next micro-dollar (never under-charge). */
export function costMicros(usage: TokenUsage, price: ModelPrice): Micros {
  const scaled =
    usage.inputTokens * price.input +
    usage.cachedInputTokens * price.cachedInput +
    usage.cacheWriteTokens * (price.cacheWrite ?? price.input) +
    usage.outputTokens * price.output;
  return Math.ceil(scaled / MICROS_PER_MILLION_TOKENS);
}

/**
 * The most a call can cost: every input token at the dearest input rate (a cache write costs more than
 * plain input on Anthropic) and every allowed output token. This is what a call reserves before it starts.
 */
export function worstCaseCostMicros(
  price: ModelPrice,
  estimatedInputTokens: number,
  maxOutputTokens: number,
): Micros {
  const inputRate = Math.max(price.input, price.cacheWrite ?? 0);
  return Math.ceil(
    (estimatedInputTokens * inputRate + maxOutputTokens * price.output) / MICROS_PER_MILLION_TOKENS,
  );
}
