import {
  type RecordedRequest,
  type Reply,
  randomId,
  type ScriptedServer,
  ScriptMismatch,
  splitIntoChunks,
  sseFrame,
  startScriptedServer,
} from './http.js';

/**
 * A loopback stand-in for api.anthropic.com that speaks the Messages API on the wire, so tests drive the
 * real `@anthropic-ai/sdk`: `new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 })`.
 * https://docs.anthropic.com/en/docs/build-with-claude/streaming
 */

export type { RecordedRequest } from './http.js';

const DEFAULT_INPUT_TOKENS = 10;

export type AnthropicStopReason = 'end_turn' | 'max_tokens' | 'refusal' | 'stop_sequence';

export interface AnthropicUsageScript {
  /** Input tokens *not* read from or written to the cache (the three counts are disjoint). */
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens?: number;
  cacheCreationInputTokens?: number;
}

export type AnthropicStreamScript = {
  type: 'stream';
  /** Text deltas, sent one per `content_block_delta`. */
  chunks?: string[];
  /** Alternative to `chunks`: split into ~4-character deltas. */
  text?: string;
  /** Default 'end_turn'; null: the stream ends after `content_block_stop`, with no `message_delta` and no `message_stop`. */
  stopReason?: AnthropicStopReason | null;
  /** Defaults to 10 input tokens and one output token per chunk. */
  usage?: AnthropicUsageScript;
  /** Default true: a `ping` event, where the API sends one (after the first `content_block_start`). */
  pings?: boolean;
  /** After the 200 and its headers, before `message_start`. */
  firstChunkDelayMs?: number;
  /** Between text deltas. */
  chunkDelayMs?: number;
  /** Destroy the socket after this many text deltas: no stop events. */
  cutAfterChunks?: number;
  /** Send 200 and the event-stream headers, then nothing until the client disconnects. */
  hang?: boolean;
};

export type AnthropicMessageScript = {
  type: 'message';
  text: string;
  /** Default 'end_turn'. */
  stopReason?: AnthropicStopReason;
  /** Defaults to 10 input tokens and one output token per ~4 characters. */
  usage?: AnthropicUsageScript;
  /** Before the response headers. */
  delayMs?: number;
};

export type AnthropicErrorScript = {
  type: 'error';
  status: number;
  /** `details.error_code` names the cause; the SDK maps some codes to their own error classes. */
  error: { type: string; message: string; details?: { error_code: string } & Record<string, unknown> };
  headers?: Record<string, string>;
};

export type AnthropicScript =
  | AnthropicStreamScript
  | AnthropicMessageScript
  | AnthropicErrorScript
  /** Destroy the socket without any response. */
  | { type: 'reset' };

export type FakeAnthropic = ScriptedServer<AnthropicScript>;

export function startFakeAnthropic(): Promise<FakeAnthropic> {
  return startScriptedServer<AnthropicScript>({
    route: { method: 'POST', path: '/v1/messages' },
    basePath: '',
    respond: respondLikeAnthropic,
  });
}

/** Errors with the bodies and headers Anthropic sends; https://docs.anthropic.com/en/api/errors */
export const anthropicErrors = {
  overloaded(): AnthropicErrorScript {
    return { type: 'error', status: 529, error: { type: 'overloaded_error', message: 'Overloaded' } };
  },
  rateLimited(retryAfterSeconds: number): AnthropicErrorScript {
    const reset = new Date(Date.now() + retryAfterSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    return {
      type: 'error',
      status: 429,
      error: {
        type: 'rate_limit_error',
        message:
          'This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.',
      },
      headers: {
        'retry-after': String(retryAfterSeconds),
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-requests-remaining': '0',
        'anthropic-ratelimit-requests-reset': reset,
        'anthropic-ratelimit-input-tokens-limit': '50000',
        'anthropic-ratelimit-input-tokens-remaining': '50000',
        'anthropic-ratelimit-input-tokens-reset': reset,
        'anthropic-ratelimit-output-tokens-limit': '10000',
        'anthropic-ratelimit-output-tokens-remaining': '10000',
        'anthropic-ratelimit-output-tokens-reset': reset,
        'anthropic-ratelimit-tokens-limit': '60000',
        'anthropic-ratelimit-tokens-remaining': '60000',
        'anthropic-ratelimit-tokens-reset': reset,
      },
    };
  },
  server(): AnthropicErrorScript {
    return { type: 'error', status: 500, error: { type: 'api_error', message: 'Internal server error' } };
  },
  badRequest(message: string): AnthropicErrorScript {
    return { type: 'error', status: 400, error: { type: 'invalid_request_error', message } };
  },
  /**
   * The organization crossed the monthly spend limit of its tier. The SDK turns `details.error_code` into
   * an `EnforcedSpendLimitReachedError` (a `RateLimitError`); retrying will not help until the month resets.
   */
  spendLimit(): AnthropicErrorScript {
    return {
      type: 'error',
      status: 429,
      error: {
        type: 'rate_limit_error',
        message:
          'You have reached your specified API usage limits. You will regain access on the first of next month at 00:00 UTC.',
        details: { error_code: 'enforced_spend_limit_reached' },
      },
    };
  },
  creditBalance(): AnthropicErrorScript {
    return anthropicErrors.badRequest(
      'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.',
    );
  },
};

async function respondLikeAnthropic(
  script: AnthropicScript,
  request: RecordedRequest,
  reply: Reply,
): Promise<void> {
  // The same id goes in the `request-id` header and in error bodies.
  const requestId = randomId('req_011C', 20);
  const headers = {
    'request-id': requestId,
    'anthropic-organization-id': '00000000-0000-4000-8000-000000000000',
  };
  switch (script.type) {
    case 'reset':
      reply.cut();
      return;
    case 'error':
      await reply.json(
        script.status,
        {
          type: 'error',
          error: script.error,
          request_id: requestId,
        },
        { ...headers, ...script.headers },
      );
      return;
    case 'message':
      if (request.body?.stream === true) {
        throw new ScriptMismatch('scripted a message but the request asked for stream: true');
      }
      if (!(await reply.wait(script.delayMs))) return;
      await reply.json(200, messageBody(script, request), headers);
      return;
    case 'stream':
      if (request.body?.stream !== true) {
        throw new ScriptMismatch('scripted a stream but the request did not ask for stream: true');
      }
      await streamEvents(script, request, reply, headers);
      return;
  }
}

function modelOf(request: RecordedRequest): string {
  return typeof request.body?.model === 'string' ? request.body.model : 'claude-haiku-4-5';
}

/** The `usage` of a Message: what `message_start` carries and what a non-streaming response ends with. */
function messageUsage(usage: AnthropicUsageScript, outputTokens: number) {
  return {
    input_tokens: usage.inputTokens,
    cache_creation_input_tokens: usage.cacheCreationInputTokens ?? 0,
    cache_read_input_tokens: usage.cacheReadInputTokens ?? 0,
    cache_creation: {
      ephemeral_5m_input_tokens: usage.cacheCreationInputTokens ?? 0,
      ephemeral_1h_input_tokens: 0,
    },
    output_tokens: outputTokens,
    service_tier: 'standard',
    inference_geo: 'not_available',
  };
}

function stopDetails(stopReason: AnthropicStopReason | null) {
  return stopReason === 'refusal' ? { type: 'refusal', category: null, explanation: null } : null;
}

function messageBody(script: AnthropicMessageScript, request: RecordedRequest) {
  const usage = script.usage ?? {
    inputTokens: DEFAULT_INPUT_TOKENS,
    outputTokens: Math.max(1, splitIntoChunks(script.text).length),
  };
  const stopReason = script.stopReason ?? 'end_turn';
  return {
    id: randomId('msg_01', 22),
    type: 'message',
    role: 'assistant',
    model: modelOf(request),
    content: [{ type: 'text', text: script.text }],
    stop_reason: stopReason,
    stop_sequence: null,
    stop_details: stopDetails(stopReason),
    usage: messageUsage(usage, usage.outputTokens),
  };
}

async function streamEvents(
  script: AnthropicStreamScript,
  request: RecordedRequest,
  reply: Reply,
  headers: Record<string, string>,
): Promise<void> {
  const pieces = script.chunks ?? splitIntoChunks(script.text ?? '');
  const usage = script.usage ?? {
    inputTokens: DEFAULT_INPUT_TOKENS,
    outputTokens: Math.max(1, pieces.length),
  };
  const send = (event: string, data: unknown) => reply.write(sseFrame(JSON.stringify(data), event));

  reply.openEventStream(headers);
  if (script.hang) {
    await reply.untilGone();
    return;
  }
  // Each chunk is due at a time counted from the headers, not from the chunk before: timers that fire late
  // do not add up, so a paced stream keeps its published speed.
  const startedAt = performance.now();
  const dueIn = (index: number) =>
    startedAt + (script.firstChunkDelayMs ?? 0) + index * (script.chunkDelayMs ?? 0) - performance.now();
  if (!(await reply.wait(dueIn(0)))) return;

  const message = {
    id: randomId('msg_01', 22),
    type: 'message',
    role: 'assistant',
    model: modelOf(request),
    content: [],
    stop_reason: null,
    stop_sequence: null,
    stop_details: null,
    // message_start reports the whole input side and a token or so of output; the final output count
    // comes in message_delta.
    usage: messageUsage(usage, Math.min(1, usage.outputTokens)),
  };
  if (!(await send('message_start', { type: 'message_start', message }))) return;
  const blockStart = { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } };
  if (!(await send('content_block_start', blockStart))) return;
  // Written verbatim: the API's ping data has a space after the colon, unlike its other events.
  if (script.pings !== false && !(await reply.write(sseFrame('{"type": "ping"}', 'ping')))) return;

  for (const [index, piece] of pieces.entries()) {
    if (script.cutAfterChunks !== undefined && index >= script.cutAfterChunks) {
      reply.cut();
      return;
    }
    if (index > 0 && !(await reply.wait(dueIn(index)))) return;
    const delta = { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } };
    if (!(await send('content_block_delta', delta))) return;
  }
  if (script.cutAfterChunks !== undefined) {
    reply.cut();
    return;
  }
  if (!(await send('content_block_stop', { type: 'content_block_stop', index: 0 }))) return;

  const stopReason = script.stopReason === undefined ? 'end_turn' : script.stopReason;
  if (stopReason !== null) {
    // Usage here is cumulative for the whole message; the API repeats the input side too.
    const messageDelta = {
      type: 'message_delta',
      delta: { stop_reason: stopReason, stop_sequence: null, stop_details: stopDetails(stopReason) },
      usage: {
        input_tokens: usage.inputTokens,
        cache_creation_input_tokens: usage.cacheCreationInputTokens ?? 0,
        cache_read_input_tokens: usage.cacheReadInputTokens ?? 0,
        output_tokens: usage.outputTokens,
      },
    };
    if (!(await send('message_delta', messageDelta))) return;
    if (!(await send('message_stop', { type: 'message_stop' }))) return;
  }
  await reply.end();
}
