import type { ChatRequest } from '../core/chat.js';

/** Options both adapters take. */
export interface AdapterOptions {
  /** Abort the HTTP request when no text has come by then, so nothing keeps generating and billing. */
  firstTokenTimeoutMs: number;
  now?: () => number;
}

/** Models a vendor does not list here get a cautious output limit. */
const DEFAULT_MAX_OUTPUT_TOKENS = 4_096;

/** The most output tokens a model allows, from a vendor's table. */
export function maxOutputTokensIn(table: Readonly<Record<string, number>>, model: string): number {
  return table[model] ?? DEFAULT_MAX_OUTPUT_TOKENS;
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
