import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Shapes of secrets that must never reach a log line, whatever object or error message carries them:
 * API keys, Discord bot tokens, and webhook / interaction URLs (their last segment is a token).
 */
const SECRET_PATTERNS: readonly RegExp[] = [
  /\bsk-ant-[\w-]{8,}/g,
  /\bsk-[\w-]{16,}/g,
  /\b[\w-]{23,28}\.[\w-]{6,7}\.[\w-]{27,}/g,
  /(\/(?:webhooks|interactions)\/\d{17,20}\/)[\w.-]{20,}/g,
];

export function redactSecrets(text: string): string {
  let redacted = text;
  for (const pattern of SECRET_PATTERNS) {
    redacted = redacted.replace(pattern, (_match, prefix?: string) =>
      typeof prefix === 'string' ? `${prefix}[redacted]` : '[redacted]',
    );
  }
  return redacted;
}

/** Field names whose values are secrets, wherever they appear in a logged object. */
const REDACTED_PATHS = [
  'token',
  'apiKey',
  'authorization',
  '*.token',
  '*.apiKey',
  '*.authorization',
  '*.headers.authorization',
  '*.headers["x-api-key"]',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      hooks: {
        // Strings can carry secrets too (an SDK error quoting a URL or a key): scrub every line before it is written.
        streamWrite: redactSecrets,
      },
    },
    destination,
  );
}
