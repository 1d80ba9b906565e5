import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Client,
  DefaultRestOptions,
  DiscordAPIError,
  DiscordjsErrorCodes,
  Events,
  GatewayCloseCodes,
  HTTPError,
} from 'discord.js';
import { EXIT_CODES } from '../exit-codes.js';

/**
 * Logging in to Discord, and telling an operator plainly why it failed.
 *
 * discord.js logs in in two steps, and reports a failure of each its own way:
 * 1. REST `GET /gateway/bot` with the token: a 401 becomes a DiscordjsError with code `TokenInvalid`; a
 *    5xx (after @discordjs/rest's own 3 retries) an HTTPError; a refused connection or unknown host
 *    undici's error with its `code`; a timeout (15 s, retried 3 times) an AbortError.
 * 2. The gateway: IDENTIFY, answered by READY, or by a close: 4004 (authentication failed) for a bad token,
 *    4014 (disallowed intents) when a privileged intent is not enabled in the developer portal. For those
 *    discord.js emits `shardDisconnect` with the code, then rejects `login()` with a plain Error. Other
 *    closes, and a gateway it cannot reach, it retries by itself.
 * https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes
 */

/** The first wait before logging in again after a transient failure; each further one doubles. */
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60_000;

export type LoginFailure =
  | { kind: 'token-refused' }
  | { kind: 'intents-disallowed' }
  /** Nothing that answers as Discord where it should be: an operator must look. */
  | { kind: 'unreachable'; reason: string }
  /** A dropped connection, a timeout, a 5xx: worth trying again. */
  | { kind: 'transient'; reason: string };

/** Login failed for a reason an operator can act on; the message says what to do, in one line. */
export class DiscordLoginError extends Error {
  readonly exitCode: number | undefined;

  constructor(
    readonly failure: LoginFailure,
    apiUrl: string,
    options: { cause: unknown },
  ) {
    super(describeLoginFailure(failure, apiUrl), options);
    this.name = 'DiscordLoginError';
    this.exitCode = loginExitCode(failure);
  }
}

/** Logs the client in; a failure with a known cause becomes a {@link DiscordLoginError}. */
export async function logIn(client: Client, token: string): Promise<void> {
  let closeCode: number | undefined;
  const onDisconnect = (event: { code: number }) => {
    closeCode = event.code;
  };
  client.on(Events.ShardDisconnect, onDisconnect);
  try {
    await client.login(token);
  } catch (error) {
    const failure = classifyLoginFailure(error, closeCode);
    if (!failure) throw error;
    throw new DiscordLoginError(failure, client.options.rest?.api ?? DefaultRestOptions.api, {
      cause: error,
    });
  } finally {
    client.off(Events.ShardDisconnect, onDisconnect);
  }
}

/**
 * Runs `start` (which logs in) until it succeeds or fails for good: a transient login failure is tried
 * again after 1 s, 2 s, 4 s… up to a minute between tries, for as long as it takes.
 */
export async function retryTransientLogin<T>(
  start: () => Promise<T>,
  onRetry: (error: DiscordLoginError, waitMs: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await start();
    } catch (error) {
      if (!(error instanceof DiscordLoginError) || error.failure.kind !== 'transient') throw error;
      const waitMs = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
      onRetry(error, waitMs);
      await sleep(waitMs);
    }
  }
}

/** Why `client.login()` failed, from what discord.js reported; undefined for anything unforeseen. */
export function classifyLoginFailure(error: unknown, closeCode?: number): LoginFailure | undefined {
  if (closeCode === GatewayCloseCodes.AuthenticationFailed) return { kind: 'token-refused' };
  if (closeCode === GatewayCloseCodes.DisallowedIntents) return { kind: 'intents-disallowed' };
  const failure = classifyDiscordFailure(error);
  if (failure) return failure;
  if (error instanceof DiscordAPIError) {
    // Any other 4xx to GET /gateway/bot: whatever answered is not Discord's API as the bot needs it.
    return {
      kind: 'unreachable',
      reason: `HTTP ${error.status} for ${error.method.toUpperCase()} ${error.url}`,
    };
  }
  return undefined;
}

/**
 * A failed Discord REST request (discord.js's client or its REST alone) that says nothing about the request
 * itself: the token refused, or Discord not reached. Undefined for anything else.
 */
export function classifyDiscordFailure(error: unknown): LoginFailure | undefined {
  if (!(error instanceof Error)) return undefined;
  const isTokenInvalid = (error as { code?: unknown }).code === DiscordjsErrorCodes.TokenInvalid;
  if (isTokenInvalid || (error instanceof DiscordAPIError && error.status === 401)) {
    return { kind: 'token-refused' };
  }
  if (error instanceof HTTPError) return { kind: 'transient', reason: `HTTP ${error.status}` };
  if (error.name === 'AbortError' || error.name === 'TimeoutError') {
    return { kind: 'transient', reason: 'timed out' };
  }
  for (const code of networkErrorCodes(error)) {
    const unreachable = UNREACHABLE[code];
    if (unreachable) return { kind: 'unreachable', reason: unreachable };
    const transient = TRANSIENT[code];
    if (transient) return { kind: 'transient', reason: transient };
  }
  return undefined;
}

/** Network errors that will not go away by themselves: wrong address, no route, no such host. */
const UNREACHABLE: Partial<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  ENETUNREACH: 'network unreachable',
  EHOSTUNREACH: 'host unreachable',
  CERT_HAS_EXPIRED: 'its TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate is not trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its TLS certificate is for another host',
};

/** Network errors that usually pass: a dropped connection, a slow answer, DNS briefly failing. */
const TRANSIENT: Partial<Record<string, string>> = {
  ECONNRESET: 'the connection was reset',
  EPIPE: 'the connection was reset',
  UND_ERR_SOCKET: 'the connection dropped',
  ETIMEDOUT: 'timed out',
  UND_ERR_CONNECT_TIMEOUT: 'timed out connecting',
  UND_ERR_HEADERS_TIMEOUT: 'timed out',
  UND_ERR_BODY_TIMEOUT: 'timed out',
  EAI_AGAIN: 'DNS lookup failed for now',
};

/** `code`s along the error, its causes and, for an AggregateError (both address families), its errors. */
function networkErrorCodes(error: unknown, depth = 0): string[] {
  if (!(error instanceof Error) || depth > 4) return [];
  const code = (error as { code?: unknown }).code;
  return [
    ...(typeof code === 'string' ? [code] : []),
    ...networkErrorCodes(error.cause, depth + 1),
    ...(error instanceof AggregateError
      ? error.errors.flatMap((inner) => networkErrorCodes(inner, depth + 1))
      : []),
  ];
}

/** One line: what is wrong and what to do. Never the token. */
export function describeLoginFailure(failure: LoginFailure, apiUrl: string): string {
  switch (failure.kind) {
    case 'token-refused':
      return (
        'Discord refused the bot token (DISCORD_TOKEN): reset it in the developer portal under Bot → Reset ' +
        'Token and put the new one in .env'
      );
    case 'intents-disallowed':
      return (
        'Discord refused the Message Content intent: enable Message Content Intent in the developer portal ' +
        'under Bot → Privileged Gateway Intents, then start again'
      );
    case 'unreachable':
      return (
        `cannot reach Discord at ${apiUrl} (${failure.reason}): check this machine's network, DNS and ` +
        'firewall, and DISCORD_API_URL if you set it'
      );
    case 'transient':
      return `Discord did not answer (${failure.reason})`;
  }
}

/** The process's exit code for a failure that ends it; undefined for a transient one, which is retried. */
export function loginExitCode(failure: LoginFailure): number | undefined {
  switch (failure.kind) {
    case 'token-refused':
      return EXIT_CODES.tokenRefused;
    case 'intents-disallowed':
      return EXIT_CODES.intentsDisallowed;
    case 'unreachable':
      return EXIT_CODES.discordUnreachable;
    case 'transient':
      return undefined;
  }
}
