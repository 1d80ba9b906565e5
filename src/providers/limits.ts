import type { ChatRequest } from '../core/chat.js';

/** Options both adapters take. */
export interface AdapterOptions {
  /** Abort the HTTP request when no text has come by then, so nothing keeps generating and billing. */
  firstTokenTimeoutMs: number;
  now?: () => number;
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
