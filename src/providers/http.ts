import type { TokenUsage } from '../core/pricing.js';

/**
 * How long a rate-limited response asks us to wait: OpenAI sends `retry-after-ms`, both vendors send
 * `retry-after` in seconds (or, per RFC 9110, an HTTP date).
 */
export function retryAfterMs(headers: Headers | undefined, nowMs = Date.now()): number | undefined {
  if (!headers) return undefined;
  const milliseconds = Number.parseFloat(headers.get('retry-after-ms') ?? '');
  if (Number.isFinite(milliseconds) && milliseconds >= 0) return milliseconds;
  const value = headers.get('retry-after');
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - nowMs) : undefined;
}

/** Error codes that mean the account is out of credit or over its spend limit: retrying cannot help. */
export const QUOTA_ERROR_CODES: ReadonlySet<string> = new Set([
  'insufficient_quota',
  'enforced_spend_limit_reached',
  'contract_spend_limit_reached',
  'billing_hard_limit_reached',
  'billing_error',
]);

export function toBase64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

/** What an adapter knew when a call failed, for the error it reports. */
export interface ErrorContext {
  /** Our first-token timer fired (the abort was ours, not the caller's). */
  timedOut?: boolean;
  usage?: TokenUsage | undefined;
  partialText?: string;
}
