import type { TokenUsage } from './pricing.js';

/**
 * The one small interface the rest of tierbot sees of a model API. Adapters in src/providers/ implement
 * it over the vendors' SDKs; nothing outside them sees a vendor quirk.
 */
export type ProviderName = 'openai' | 'anthropic';

export const IMAGE_MEDIA_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'] as const;
export type ImageMediaType = (typeof IMAGE_MEDIA_TYPES)[number];

export type ContentPart =
  | { type: 'text'; text: string }
  | { type: 'image'; mediaType: ImageMediaType; data: Uint8Array; width?: number; height?: number }
  | { type: 'pdf'; data: Uint8Array; name?: string };

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string | readonly ContentPart[];
}

export interface ChatRequest {
  model: string;
  system: string;
  messages: readonly ChatMessage[];
  /** Always sent to the provider (clamped to the model's limit): it bounds what a call can cost. */
  maxOutputTokens: number;
  signal?: AbortSignal | undefined;
}

export const FINISH_REASONS = ['stop', 'length', 'content_filter', 'refusal', 'error'] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];

export interface ChatResult {
  text: string;
  finishReason: FinishReason;
  usage: TokenUsage;
  model: string;
  provider: ProviderName;
  /** From sending the request to the first text delta; null when no text came. */
  timeToFirstTokenMs: number | null;
}

export interface StructuredRequest extends ChatRequest {
  /** A name for the schema (OpenAI requires one). */
  schemaName: string;
  /** A JSON Schema object; strict: every property required, no additional properties. */
  schema: Record<string, unknown>;
}

export interface StructuredResult extends ChatResult {
  /** The parsed JSON object, or undefined when the model refused or was cut off. */
  value: unknown;
}

export interface ChatModel {
  readonly provider: ProviderName;
  /** Streams an answer, calling onDelta with each piece of text as it arrives. */
  stream(request: ChatRequest, onDelta?: (text: string) => void): Promise<ChatResult>;
  /** One call whose output must match a JSON schema (used by the draft check). */
  structured(request: StructuredRequest): Promise<StructuredResult>;
  /**
   * A count of input tokens that is never below what the provider will bill (for reservations). Counted
   * at once, except what only the provider can count (a PDF sent to Anthropic): then a promise, settled
   * once the provider has counted it (or has failed to, and the bound is the model's context window).
   * It rejects only with the request's own abort.
   */
  estimateInputTokens(request: ChatRequest): number | Promise<number>;
  /** The most output tokens the model allows; requests are clamped to it. */
  maxOutputTokensOf(model: string): number;
}

/**
 * What went wrong with a provider call, in the terms callers decide on. Expected failures are values
 * of this type, thrown by adapters and caught by the gateway.
 */
export type ProviderErrorKind =
  /** 429 rate limits: retry after the hinted delay. */
  | 'rate_limited'
  /** 529 / 503 and other 5xx: retry with backoff; counts against the circuit breaker. */
  | 'overloaded'
  | 'server'
  /** Connection refused, reset, or the first token did not come in time. */
  | 'connection'
  | 'timeout'
  /** A stream that ended without finishing (cut mid-way, no finish reason, no choices). */
  | 'truncated'
  /** The account is out of credit or over a spend limit: retrying cannot help. */
  | 'quota'
  /** Bad key or no permission: an operator must fix the configuration. */
  | 'auth'
  /** The provider refused the request as malformed (4xx): retrying sends the same thing. */
  | 'invalid_request'
  /** The caller aborted (a user cancelled, the bot is shutting down). */
  | 'aborted';

const RETRYABLE: ReadonlySet<ProviderErrorKind> = new Set([
  'rate_limited',
  'overloaded',
  'server',
  'connection',
  'timeout',
]);

/** Server-side failures: "this provider is unwell". They trip the circuit breaker; 4xx never do. */
const SERVER_SIDE: ReadonlySet<ProviderErrorKind> = new Set([
  'overloaded',
  'server',
  'connection',
  'timeout',
  'truncated',
]);

/**
 * Failures after which the other provider should answer instead: the provider is unwell or unusable for
 * us (out of credit, bad key, rate-limited past the deadline). Not a malformed request (the other provider
 * would most likely refuse it too) and not a caller's abort.
 */
const FALLBACK_WORTHY: ReadonlySet<ProviderErrorKind> = new Set([
  ...SERVER_SIDE,
  'rate_limited',
  'quota',
  'auth',
]);

export class ProviderError extends Error {
  readonly retryable: boolean;
  readonly isServerSide: boolean;
  readonly warrantsFallback: boolean;

  constructor(
    readonly provider: ProviderName,
    readonly kind: ProviderErrorKind,
    message: string,
    readonly details: {
      status?: number | undefined;
      retryAfterMs?: number | undefined;
      /** What the provider reported it used before failing (a cut stream still bills its tokens). */
      usage?: TokenUsage | undefined;
      /** Text already delivered to the caller before the failure. */
      partialText?: string | undefined;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: details.cause });
    this.name = 'ProviderError';
    this.retryable = RETRYABLE.has(kind);
    this.isServerSide = SERVER_SIDE.has(kind);
    this.warrantsFallback = FALLBACK_WORTHY.has(kind);
  }

  get status(): number | undefined {
    return this.details.status;
  }
}

const PROVIDER_LABEL: Record<ProviderName, string> = { openai: 'OpenAI', anthropic: 'Anthropic' };

export function providerLabel(provider: ProviderName): string {
  return PROVIDER_LABEL[provider];
}
