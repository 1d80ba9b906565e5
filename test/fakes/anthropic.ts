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
  /**
   * Defaults to one output token per chunk, and 10 input tokens, or for a request with a PDF what
   * Anthropic would bill for it (see `knowPdf`).
   */
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
  /** Defaults to one output token per ~4 characters, and input as for a stream. */
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

/** Answers for the token-count endpoint, for when counting must fail; a count is otherwise worked out. */
export type AnthropicCountScript =
  | AnthropicErrorScript
  /** Destroy the socket without any response. */
  | { type: 'reset' }
  /** Never answer, until the client gives up. */
  | { type: 'hang' };

export interface FakeAnthropic extends ScriptedServer<AnthropicScript> {
  /**
   * Tells the fake how many pages a PDF really has, as Anthropic's own PDF reader would find them. The
   * test built the file, so it knows; the fake does not parse PDFs, as a parser in test code would be one
   * more guess of the kind that let crafted files pass for one page. A request carrying a PDF the fake was
   * not told about fails loudly.
   */
  knowPdf(data: Uint8Array, pages: number): void;
  /** Queues answers for `POST /v1/messages/count_tokens`, consumed in order before any count is worked out. */
  scriptCount(...responses: AnthropicCountScript[]): void;
}

/**
 * Anthropic bills each page of a PDF as its text plus an image of it: 1,500–3,000 text tokens for a page,
 * plus the image's. The fake takes one figure in that range for every page.
 * https://docs.anthropic.com/en/docs/build-with-claude/pdf-support#estimate-your-costs
 */
export const PDF_PAGE_TOKENS = 3_000;

/** Input limits of the models the fake serves; a request with more input is refused with a 400. */
export const CONTEXT_WINDOW_TOKENS = 200_000;

export const COUNT_TOKENS_PATH = '/v1/messages/count_tokens';

/** Whether a request the fake received was a (free) token count rather than a message. */
export const isCountRequest = (request: RecordedRequest): boolean => request.path === COUNT_TOKENS_PATH;

export async function startFakeAnthropic(): Promise<FakeAnthropic> {
  const pdfPages = new Map<string, number>();
  const countQueue: AnthropicCountScript[] = [];
  const server = await startScriptedServer<AnthropicScript>({
    route: { method: 'POST', path: '/v1/messages' },
    basePath: '',
    respond: (script, request, reply) => respondLikeAnthropic(script, request, reply, pdfPages),
    async respondOffRoute(request, reply) {
      if (request.method !== 'POST' || !isCountRequest(request)) return 'no route';
      await countLikeAnthropic(countQueue.shift(), request, reply, pdfPages);
      return 'answered';
    },
  });
  return Object.assign(server, {
    knowPdf(data: Uint8Array, pages: number) {
      pdfPages.set(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'), pages);
    },
    scriptCount(...responses: AnthropicCountScript[]) {
      countQueue.push(...responses);
    },
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
  /** A message whose input is over the model's context window (a token count is never refused so). */
  promptTooLong(inputTokens: number, maximum = CONTEXT_WINDOW_TOKENS): AnthropicErrorScript {
    return anthropicErrors.badRequest(`prompt is too long: ${inputTokens} tokens > ${maximum} maximum`);
  },
  creditBalance(): AnthropicErrorScript {
    return anthropicErrors.badRequest(
      'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.',
    );
  },
};

/** The headers every answer carries; the same id goes in error bodies. */
function responseHeaders() {
  return {
    'request-id': randomId('req_011C', 20),
    'anthropic-organization-id': '00000000-0000-4000-8000-000000000000',
  };
}

function sendError(
  reply: Reply,
  headers: Record<string, string>,
  script: AnthropicErrorScript,
): Promise<boolean> {
  return reply.json(
    script.status,
    { type: 'error', error: script.error, request_id: headers['request-id'] },
    { ...headers, ...script.headers },
  );
}

async function respondLikeAnthropic(
  script: AnthropicScript,
  request: RecordedRequest,
  reply: Reply,
  pdfPages: ReadonlyMap<string, number>,
): Promise<void> {
  const headers = responseHeaders();
  if (script.type === 'reset') {
    reply.cut();
    return;
  }
  if (script.type === 'error') {
    await sendError(reply, headers, script);
    return;
  }
  if ((request.body?.stream === true) !== (script.type === 'stream')) {
    throw new ScriptMismatch(
      script.type === 'stream'
        ? 'scripted a stream but the request did not ask for stream: true'
        : 'scripted a message but the request asked for stream: true',
    );
  }
  // A request with a PDF is billed as Anthropic would bill it, unless the test scripted its usage.
  const inputTokens = script.usage ? undefined : billedInputTokens(request.body, pdfPages);
  if (inputTokens !== undefined && inputTokens > CONTEXT_WINDOW_TOKENS) {
    await sendError(reply, headers, anthropicErrors.promptTooLong(inputTokens));
    return;
  }
  if (script.type === 'message') {
    if (!(await reply.wait(script.delayMs))) return;
    await reply.json(200, messageBody(script, request, inputTokens), headers);
    return;
  }
  await streamEvents(script, request, reply, headers, inputTokens);
}

/**
 * `POST /v1/messages/count_tokens`: free, generating nothing, answering `{"input_tokens": N}` for a body
 * like a message's. It counts past the context window (only a message is refused for its length).
 * https://docs.anthropic.com/en/api/messages-count-tokens
 */
async function countLikeAnthropic(
  script: AnthropicCountScript | undefined,
  request: RecordedRequest,
  reply: Reply,
  pdfPages: ReadonlyMap<string, number>,
): Promise<void> {
  const headers = responseHeaders();
  if (script?.type === 'reset') {
    reply.cut();
    return;
  }
  if (script?.type === 'hang') {
    await reply.untilGone();
    return;
  }
  if (script?.type === 'error') {
    await sendError(reply, headers, script);
    return;
  }
  const inputTokens = billedInputTokens(request.body, pdfPages);
  if (inputTokens === undefined) {
    throw new ScriptMismatch('a token count without a PDF (the fake counts only requests carrying one)');
  }
  await reply.json(200, { input_tokens: inputTokens }, headers);
}

/** Claude's tokenizer averages about 3.5 characters a token; the fake bills one token per 3 bytes. */
const textTokens = (text: unknown) => Math.ceil(Buffer.byteLength(String(text ?? ''), 'utf8') / 3);
/** The framing of a message's role and of a document around its pages. */
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_DOCUMENT = 8;

/**
 * The input Anthropic bills for a request carrying a PDF: each PDF's real pages (as the test told the
 * fake) at PDF_PAGE_TOKENS, its title and all text at a token per 3 bytes, and the framing of each message
 * and document. Undefined for a request without a PDF (those bill what their script says). An image,
 * whose cost the fake does not work out, or a PDF the fake was not told about fails loudly.
 */
function billedInputTokens(body: any, pdfPages: ReadonlyMap<string, number>): number | undefined {
  let tokens = 0;
  let hasPdf = false;
  const system: unknown = body?.system;
  if (typeof system === 'string') tokens += textTokens(system);
  else if (Array.isArray(system)) for (const block of system) tokens += textTokens(block.text);
  for (const message of body?.messages ?? []) {
    tokens += TOKENS_PER_MESSAGE;
    const blocks =
      typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content;
    for (const block of blocks) {
      if (block.type === 'text') tokens += textTokens(block.text);
      else if (block.type === 'document' && block.source?.type === 'base64') {
        const pages = pdfPages.get(block.source.data);
        if (pages === undefined)
          throw new ScriptMismatch('a PDF the test did not tell the fake about (knowPdf)');
        hasPdf = true;
        tokens += TOKENS_PER_DOCUMENT + textTokens(block.title) + pages * PDF_PAGE_TOKENS;
      } else {
        throw new ScriptMismatch(`a ${block.type} block beside a PDF: script this request's usage`);
      }
    }
  }
  return hasPdf ? tokens : undefined;
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

function messageBody(
  script: AnthropicMessageScript,
  request: RecordedRequest,
  inputTokens = DEFAULT_INPUT_TOKENS,
) {
  const usage = script.usage ?? {
    inputTokens,
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
  inputTokens = DEFAULT_INPUT_TOKENS,
): Promise<void> {
  const pieces = script.chunks ?? splitIntoChunks(script.text ?? '');
  const usage = script.usage ?? {
    inputTokens,
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
