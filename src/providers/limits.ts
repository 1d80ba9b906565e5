import type { ChatRequest } from '../core/chat.js';
import type { TokenUsage } from '../core/pricing.js';

/** Options both adapters take. */
export interface AdapterOptions {
  /** Abort the HTTP request when no text has come by then, so nothing keeps generating and billing. */
  firstTokenTimeoutMs: number;
  /** Output tokens charged on top of what an aborted stream delivered (see {@link usageOfAbort}). */
  abortMarginTokens?: number;
  now?: () => number;
}

/**
 * A provider keeps generating, and billing, between our abort and its noticing the closed connection, and
 * tokens already on the wire never reach us: about a third of a second of GPT-4o Mini's output at its
 * published ~100 tokens/s. ABORT_MARGIN_TOKENS changes it.
 */
export const DEFAULT_ABORT_MARGIN_TOKENS = 32;

/**
 * What a call the caller aborted is charged when the provider reported no usage (OpenAI reports it only
 * at the end of a stream): its input, the output it delivered, and the margin for tokens in flight,
 * never more output than the `max_tokens` sent, so the call's reservation still bounds it. Never the whole
 * `max_tokens` (the draft did not write it), never nothing once the input was sent.
 */
export function usageOfAbort(
  inputTokens: number,
  deliveredOutputTokens: number,
  marginTokens: number,
  maxOutputTokens: number,
): TokenUsage {
  return {
    inputTokens,
    cachedInputTokens: 0,
    cacheWriteTokens: 0,
    outputTokens: Math.min(maxOutputTokens, deliveredOutputTokens + marginTokens),
  };
}

/** Models a vendor does not list here get a cautious output limit. */
const DEFAULT_MAX_OUTPUT_TOKENS = 4_096;

/**
 * Models a vendor does not list here (one added through PRICES_FILE) are assumed to take up to 2,000,000
 * input tokens, the largest context window a vendor sells: a bound on input must never be below the real
 * one, and a reservation this large only fails safe (a PDF sent to such a model may be refused for budget).
 */
const DEFAULT_CONTEXT_WINDOW_TOKENS = 2_000_000;

/** The most output tokens a model allows, from a vendor's table. */
export function maxOutputTokensIn(table: Readonly<Record<string, number>>, model: string): number {
  return table[model] ?? DEFAULT_MAX_OUTPUT_TOKENS;
}

/**
 * The most input tokens a model takes, from a vendor's table. Both vendors refuse a request whose input is
 * longer (400, "prompt is too long" / context_length_exceeded) and bill nothing for it, so no request can
 * be billed more input than this: the bound an estimate falls back on when nothing finer can be trusted.
 */
export function contextWindowIn(table: Readonly<Record<string, number>>, model: string): number {
  return table[model] ?? DEFAULT_CONTEXT_WINDOW_TOKENS;
}

/** The max_tokens actually sent: what the caller asked, within the model's limit, and at least 1. */
export function clampOutputTokens(request: ChatRequest, modelLimit: number): number {
  return Math.max(1, Math.min(request.maxOutputTokens, modelLimit));
}

/** A structured answer's JSON, or undefined when the text is not JSON (cut off, refused). */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
