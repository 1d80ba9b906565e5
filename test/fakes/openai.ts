import {
  type RecordedRequest,
  type Reply,
  randomHex,
  randomId,
  type ScriptedServer,
  ScriptMismatch,
  splitIntoChunks,
  sseFrame,
  startScriptedServer,
  unixSeconds,
} from './http.js';

/**
 * A loopback stand-in for api.openai.com that speaks Chat Completions on the wire, so tests drive the
 * real `openai` SDK: `new OpenAI({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 })`.
 * https://platform.openai.com/docs/api-reference/chat-streaming
 */

export type { RecordedRequest } from './http.js';

/** Every response carries one; real ones change with the backend build. */
const SYSTEM_FINGERPRINT = 'fp_560af6e559';
const DEFAULT_PROMPT_TOKENS = 10;

export interface OpenAIUsageScript {
  /** All input tokens, cached ones included (OpenAI's `prompt_tokens`). */
  promptTokens: number;
  completionTokens: number;
  /** The part of `promptTokens` read from the prompt cache. */
  cachedTokens?: number;
}

export type OpenAIStreamScript = {
  type: 'stream';
  /** Content deltas, sent one per chunk. */
  chunks?: string[];
  /** Alternative to `chunks`: split into ~4-character deltas. */
  text?: string;
  /** Default 'stop'; null: the stream never says why it ended. */
  finishReason?: 'stop' | 'length' | 'content_filter' | null;
  /**
   * Sent as the final chunk (with `choices: []`) only when the request had
   * `stream_options.include_usage`; defaults to 10 prompt tokens and one completion token per chunk.
   */
  usage?: OpenAIUsageScript;
  /** Sent as `delta.refusal` chunks instead of content. */
  refusal?: string;
  /** After the 200 and its headers, before the first chunk (time to first token). */
  firstChunkDelayMs?: number;
  /** Between content chunks. */
  chunkDelayMs?: number;
  /** Destroy the socket after this many content chunks: no finish reason, no `[DONE]`. */
  cutAfterChunks?: number;
  /** Send 200 and the event-stream headers, then nothing until the client disconnects. */
  hang?: boolean;
  /** A 200 stream whose chunks all have `choices: []` (no content, no finish reason). */
  noChoices?: boolean;
};

export type OpenAICompletionScript = {
  type: 'completion';
  content?: string;
  /** The model refused: `message.content` is null and `message.refusal` holds this. */
  refusal?: string;
  /** Default 'stop'. */
  finishReason?: 'stop' | 'length' | 'content_filter';
  /** Defaults to 10 prompt tokens and one completion token per ~4 characters of content. */
  usage?: OpenAIUsageScript;
  /** A 200 whose `choices` is empty. */
  noChoices?: boolean;
  /** Before the response headers. */
  delayMs?: number;
};

export type OpenAIErrorScript = {
  type: 'error';
  status: number;
  error: { message: string; type: string; code?: string | null; param?: string | null };
  headers?: Record<string, string>;
};

export type OpenAIScript =
  | OpenAIStreamScript
  | OpenAICompletionScript
  | OpenAIErrorScript
  /** Destroy the socket without any response. */
  | { type: 'reset' };

export type FakeOpenAI = ScriptedServer<OpenAIScript>;

export function startFakeOpenAI(): Promise<FakeOpenAI> {
  return startScriptedServer<OpenAIScript>({
    route: { method: 'POST', path: '/v1/chat/completions' },
    basePath: '/v1',
    respond: respondLikeOpenAI,
  });
}

/** Errors with the bodies and headers OpenAI sends; https://platform.openai.com/docs/guides/error-codes */
export const openaiErrors = {
  rateLimited(retryAfterSeconds: number): OpenAIErrorScript {
    return {
      type: 'error',
      status: 429,
      error: {
        message: `Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in ${retryAfterSeconds}s. Visit https://platform.openai.com/account/rate-limits to learn more.`,
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      },
      headers: {
        'retry-after': String(retryAfterSeconds),
        'x-ratelimit-limit-requests': '500',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': `${retryAfterSeconds}s`,
        'x-ratelimit-limit-tokens': '200000',
        'x-ratelimit-remaining-tokens': '199950',
        'x-ratelimit-reset-tokens': '15ms',
      },
    };
  },
  insufficientQuota(): OpenAIErrorScript {
    return {
      type: 'error',
      status: 429,
      error: {
        message:
          'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.',
        type: 'insufficient_quota',
        param: null,
        code: 'insufficient_quota',
      },
    };
  },
  /** The organization or project reached the monthly spend limit set in the dashboard. */
  spendLimit(): OpenAIErrorScript {
    return {
      type: 'error',
      status: 429,
      error: {
        message:
          'You have reached your enforced spend limit for this billing period. Raise the limit in your project settings to continue.',
        type: 'insufficient_quota',
        param: null,
        code: 'enforced_spend_limit_reached',
      },
    };
  },
  server(status = 500): OpenAIErrorScript {
    return {
      type: 'error',
      status,
      error: {
        message:
          'The server had an error while processing your request. Sorry about that! You can retry your request, or contact us through our help center at help.openai.com if the error persists.',
        type: 'server_error',
        param: null,
        code: null,
      },
    };
  },
  unavailable(): OpenAIErrorScript {
    return {
      type: 'error',
      status: 503,
      error: {
        message: 'The engine is currently overloaded, please try again later.',
        type: 'server_error',
        param: null,
        code: null,
      },
    };
  },
  badRequest(message: string): OpenAIErrorScript {
    return {
      type: 'error',
      status: 400,
      error: { message, type: 'invalid_request_error', param: null, code: null },
    };
  },
};

async function respondLikeOpenAI(
  script: OpenAIScript,
  request: RecordedRequest,
  reply: Reply,
): Promise<void> {
  const headers = responseHeaders();
  switch (script.type) {
    case 'reset':
      reply.cut();
      return;
    case 'error':
      // OpenAI pretty-prints error bodies with four spaces and a trailing newline.
      await reply.json(
        script.status,
        {
          error: {
            message: script.error.message,
            type: script.error.type,
            param: script.error.param ?? null,
            code: script.error.code ?? null,
          },
        },
        { ...headers, ...script.headers },
        4,
      );
      return;
    case 'completion':
      if (request.body?.stream === true) {
        throw new ScriptMismatch('scripted a completion but the request asked for stream: true');
      }
      if (!(await reply.wait(script.delayMs))) return;
      await reply.json(200, completionBody(script, request), headers);
      return;
    case 'stream':
      if (request.body?.stream !== true) {
        throw new ScriptMismatch('scripted a stream but the request did not ask for stream: true');
      }
      await streamChunks(script, request, reply, headers);
      return;
  }
}

function responseHeaders(): Record<string, string> {
  return {
    'x-request-id': `req_${randomHex(32)}`,
    'openai-version': '2020-10-01',
    'openai-organization': 'user-fake',
    'openai-processing-ms': '42',
  };
}

function modelOf(request: RecordedRequest): string {
  return typeof request.body?.model === 'string' ? request.body.model : 'gpt-4o-mini';
}

function usageBody(usage: OpenAIUsageScript) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens ?? 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

function completionBody(script: OpenAICompletionScript, request: RecordedRequest) {
  const content = script.refusal === undefined ? (script.content ?? '') : null;
  const usage = script.usage ?? {
    promptTokens: DEFAULT_PROMPT_TOKENS,
    completionTokens: splitIntoChunks(content ?? script.refusal ?? '').length,
  };
  return {
    id: randomId('chatcmpl-', 29),
    object: 'chat.completion',
    created: unixSeconds(),
    model: modelOf(request),
    choices: script.noChoices
      ? []
      : [
          {
            index: 0,
            message: { role: 'assistant', content, refusal: script.refusal ?? null, annotations: [] },
            logprobs: null,
            finish_reason: script.finishReason ?? 'stop',
          },
        ],
    usage: usageBody(usage),
    service_tier: 'default',
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
}

async function streamChunks(
  script: OpenAIStreamScript,
  request: RecordedRequest,
  reply: Reply,
  headers: Record<string, string>,
): Promise<void> {
  // `usage` is on every chunk (null until the last) only when the request asked for it.
  const includeUsage = request.body?.stream_options?.include_usage === true;
  const base = {
    id: randomId('chatcmpl-', 29),
    object: 'chat.completion.chunk',
    created: unixSeconds(),
    model: modelOf(request),
    service_tier: 'default',
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
  const chunkFrame = (choices: unknown[], usage: unknown = null) =>
    sseFrame(JSON.stringify({ ...base, choices, ...(includeUsage ? { usage } : {}) }));
  const choice = (delta: Record<string, unknown>, finishReason: string | null = null) => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finishReason,
  });

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

  const isRefusal = script.refusal !== undefined;
  const pieces = isRefusal
    ? splitIntoChunks(script.refusal ?? '')
    : (script.chunks ?? splitIntoChunks(script.text ?? ''));

  if (script.noChoices) {
    if (!(await reply.write(chunkFrame([])))) return;
  } else {
    const roleDelta = isRefusal
      ? { role: 'assistant', content: null, refusal: '' }
      : { role: 'assistant', content: '', refusal: null };
    if (!(await reply.write(chunkFrame([choice(roleDelta)])))) return;

    for (const [index, piece] of pieces.entries()) {
      if (script.cutAfterChunks !== undefined && index >= script.cutAfterChunks) {
        reply.cut();
        return;
      }
      if (index > 0 && !(await reply.wait(dueIn(index)))) return;
      const delta = isRefusal ? { refusal: piece } : { content: piece };
      if (!(await reply.write(chunkFrame([choice(delta)])))) return;
    }
    if (script.cutAfterChunks !== undefined) {
      reply.cut();
      return;
    }
    if (script.finishReason !== null) {
      if (!(await reply.write(chunkFrame([choice({}, script.finishReason ?? 'stop')])))) return;
    }
  }

  if (includeUsage) {
    const usage = script.usage ?? { promptTokens: DEFAULT_PROMPT_TOKENS, completionTokens: pieces.length };
    if (!(await reply.write(chunkFrame([], usageBody(usage))))) return;
  }
  if (!(await reply.write(sseFrame('[DONE]')))) return;
  await reply.end();
}
