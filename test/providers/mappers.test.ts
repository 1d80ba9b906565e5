import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { type ChatMessage, ProviderError } from '../../src/core/chat.js';
import {
  CACHEABLE_PREFIX_CHARACTERS,
  mapAnthropicError,
  mapAnthropicStopReason,
  toAnthropicMessages,
  toAnthropicSystem,
} from '../../src/providers/anthropic/mappers.js';
import { retryAfterMs } from '../../src/providers/http.js';
import {
  mapOpenAIError,
  mapOpenAIFinishReason,
  toOpenAIMessages,
} from '../../src/providers/openai/mappers.js';
import { type AnthropicErrorScript, anthropicErrors } from '../fakes/anthropic.js';
import { type OpenAIErrorScript, openaiErrors } from '../fakes/openai.js';

/**
 * The small pure mappers of each adapter, fed the shapes the vendors really send: error bodies and headers
 * come from the fakes' catalogues (copied from the vendors' docs), errors are real SDK error instances.
 */

const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PDF = new TextEncoder().encode('%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n');
const base64 = (data: Uint8Array) => Buffer.from(data).toString('base64');

/** The error the `openai` SDK throws for this response, as it builds it from status, body and headers. */
function openAIErrorFor(script: OpenAIErrorScript): InstanceType<typeof OpenAI.APIError> {
  const body = { error: { param: null, code: null, ...script.error } };
  return OpenAI.APIError.generate(script.status, body, undefined, new Headers(script.headers ?? {}));
}

/** The error the `@anthropic-ai/sdk` throws for this response. */
function anthropicErrorFor(script: AnthropicErrorScript): InstanceType<typeof Anthropic.APIError> {
  const body = { type: 'error', error: script.error, request_id: 'req_011CTestTestTestTestTe' };
  return Anthropic.APIError.generate(script.status, body, undefined, new Headers(script.headers ?? {}));
}

describe('mapOpenAIFinishReason', () => {
  it.each([
    ['stop', 'stop'],
    ['length', 'length'],
    ['content_filter', 'content_filter'],
    // tierbot never asks for tools; if a tool call ever came back it is still a finished answer.
    ['tool_calls', 'stop'],
    ['function_call', 'stop'],
  ] as const)("when OpenAI says '%s', then the finish reason is '%s'", (wire, expected) => {
    expect(mapOpenAIFinishReason(wire)).toBe(expected);
  });

  it('when a chunk has no finish reason yet (null), then there is none, so a stream that ends there was cut', () => {
    expect(mapOpenAIFinishReason(null)).toBeUndefined();
    expect(mapOpenAIFinishReason(undefined)).toBeUndefined();
  });
});

describe('mapAnthropicStopReason', () => {
  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['refusal', 'refusal'],
    ['pause_turn', 'stop'],
  ] as const)("when Claude stops with '%s', then the finish reason is '%s'", (wire, expected) => {
    expect(mapAnthropicStopReason(wire)).toBe(expected);
  });

  it('when no stop reason has come (null), then there is none', () => {
    expect(mapAnthropicStopReason(null)).toBeUndefined();
  });
});

describe('toOpenAIMessages', () => {
  it('when a conversation with attachments is converted, then the system prompt leads, user parts keep their kind and assistant turns are plain text', () => {
    const messages: ChatMessage[] = [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Look at these.' },
          { type: 'image', mediaType: 'image/png', data: PNG },
          { type: 'pdf', data: PDF },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'A chart ' },
          { type: 'text', text: 'and a report.' },
        ],
      },
      { role: 'user', content: 'Which is newer?' },
    ];

    expect(toOpenAIMessages('You are tierbot.', messages)).toEqual([
      { role: 'system', content: 'You are tierbot.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Look at these.' },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${base64(PNG)}`, detail: 'auto' } },
          {
            type: 'file',
            file: { filename: 'document.pdf', file_data: `data:application/pdf;base64,${base64(PDF)}` },
          },
        ],
      },
      { role: 'assistant', content: 'A chart and a report.' },
      { role: 'user', content: 'Which is newer?' },
    ]);
  });

  it('when a PDF has a name, then OpenAI gets it as the filename', () => {
    const [, user] = toOpenAIMessages('s', [
      { role: 'user', content: [{ type: 'pdf', data: PDF, name: 'q3-report.pdf' }] },
    ]);
    expect(user).toMatchObject({ content: [{ type: 'file', file: { filename: 'q3-report.pdf' } }] });
  });
});

describe('toAnthropicSystem', () => {
  it('when the system prompt is converted, then it is one text block with an ephemeral cache breakpoint', () => {
    expect(toAnthropicSystem('You are tierbot.')).toEqual([
      { type: 'text', text: 'You are tierbot.', cache_control: { type: 'ephemeral' } },
    ]);
  });
});

describe('toAnthropicMessages', () => {
  const longText = 'x'.repeat(CACHEABLE_PREFIX_CHARACTERS);

  it('when consecutive messages share a role, then they become one turn so the roles alternate', () => {
    expect(
      toAnthropicMessages([
        { role: 'user', content: 'alice: hi' },
        { role: 'user', content: [{ type: 'text', text: 'bob: hello' }] },
        { role: 'assistant', content: 'Hi both!' },
        { role: 'user', content: 'alice: what is a monad?' },
      ]),
    ).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'alice: hi' },
          { type: 'text', text: 'bob: hello' },
        ],
      },
      { role: 'assistant', content: [{ type: 'text', text: 'Hi both!' }] },
      { role: 'user', content: [{ type: 'text', text: 'alice: what is a monad?' }] },
    ]);
  });

  it('when the history before the newest message reaches the cacheable length, then its last block gets a breakpoint', () => {
    const converted = toAnthropicMessages([
      { role: 'user', content: longText },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'first' },
          { type: 'text', text: 'second' },
        ],
      },
      { role: 'user', content: 'next question' },
    ]);

    expect(converted[1]?.content).toEqual([
      { type: 'text', text: 'first' },
      { type: 'text', text: 'second', cache_control: { type: 'ephemeral' } },
    ]);
    expect(JSON.stringify([converted[0], converted[2]])).not.toContain('cache_control');
  });

  it('when the history is one character short of the cacheable length, then no block gets a breakpoint', () => {
    const converted = toAnthropicMessages([
      { role: 'user', content: longText.slice(1) },
      { role: 'assistant', content: '' },
      { role: 'user', content: 'next question' },
    ]);
    expect(JSON.stringify(converted)).not.toContain('cache_control');
  });

  it('when the history holds an image, then it counts as long enough to cache', () => {
    const converted = toAnthropicMessages([
      { role: 'user', content: [{ type: 'image', mediaType: 'image/jpeg', data: PNG }] },
      { role: 'assistant', content: 'A cat.' },
      { role: 'user', content: 'What colour is it?' },
    ]);
    expect(converted[1]?.content).toEqual([
      { type: 'text', text: 'A cat.', cache_control: { type: 'ephemeral' } },
    ]);
  });

  it('when there is only the newest message, then it gets no breakpoint however long it is', () => {
    expect(JSON.stringify(toAnthropicMessages([{ role: 'user', content: longText }]))).not.toContain(
      'cache_control',
    );
  });

  it('when attachments are converted, then images are base64 image blocks and PDFs base64 document blocks', () => {
    expect(
      toAnthropicMessages([
        {
          role: 'user',
          content: [
            { type: 'image', mediaType: 'image/gif', data: PNG },
            { type: 'pdf', data: PDF },
            { type: 'pdf', data: PDF, name: 'report.pdf' },
          ],
        },
      ]),
    ).toEqual([
      {
        role: 'user',
        content: [
          { type: 'image', source: { type: 'base64', media_type: 'image/gif', data: base64(PNG) } },
          { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: base64(PDF) } },
          {
            type: 'document',
            source: { type: 'base64', media_type: 'application/pdf', data: base64(PDF) },
            title: 'report.pdf',
          },
        ],
      },
    ]);
  });
});

describe('mapOpenAIError', () => {
  it('when OpenAI rate-limits with retry-after, then it is rate_limited, retryable, with the hinted delay', () => {
    const error = mapOpenAIError(openAIErrorFor(openaiErrors.rateLimited(7)));

    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({
      provider: 'openai',
      kind: 'rate_limited',
      status: 429,
      retryable: true,
      warrantsFallback: true,
      isServerSide: false,
      details: { retryAfterMs: 7_000 },
    });
  });

  it('when OpenAI answers 429 insufficient_quota, then it is quota: not retried, but worth a fallback', () => {
    const error = mapOpenAIError(openAIErrorFor(openaiErrors.insufficientQuota()));
    expect(error).toMatchObject({ kind: 'quota', status: 429, retryable: false, warrantsFallback: true });
  });

  it('when OpenAI answers 429 enforced_spend_limit_reached, then it is quota', () => {
    expect(mapOpenAIError(openAIErrorFor(openaiErrors.spendLimit()))).toMatchObject({
      kind: 'quota',
      retryable: false,
    });
  });

  it('when OpenAI answers 401, then it is auth: an operator must fix the key', () => {
    const unauthorized: OpenAIErrorScript = {
      type: 'error',
      status: 401,
      error: {
        message:
          'Incorrect API key provided: sk-test. You can find your API key at https://platform.openai.com/account/api-keys.',
        type: 'invalid_request_error',
        code: 'invalid_api_key',
      },
    };
    expect(mapOpenAIError(openAIErrorFor(unauthorized))).toMatchObject({
      kind: 'auth',
      status: 401,
      retryable: false,
      warrantsFallback: true,
    });
  });

  it('when OpenAI answers 503, then it is overloaded and counts against the breaker', () => {
    expect(mapOpenAIError(openAIErrorFor(openaiErrors.unavailable()))).toMatchObject({
      kind: 'overloaded',
      retryable: true,
      isServerSide: true,
    });
  });

  it('when OpenAI answers 500, then it is a retryable server failure', () => {
    expect(mapOpenAIError(openAIErrorFor(openaiErrors.server()))).toMatchObject({
      kind: 'server',
      status: 500,
      retryable: true,
      isServerSide: true,
    });
  });

  it('when OpenAI answers 400, then it is invalid_request: not retried and not sent to the other provider', () => {
    expect(mapOpenAIError(openAIErrorFor(openaiErrors.badRequest('messages: too long')))).toMatchObject({
      kind: 'invalid_request',
      status: 400,
      retryable: false,
      warrantsFallback: false,
      isServerSide: false,
    });
  });

  it("when undici reports a body cut mid-stream (TypeError 'terminated'), then it is truncated with the partial text", () => {
    const error = mapOpenAIError(new TypeError('terminated'), { partialText: 'The answer is ' });
    expect(error).toMatchObject({
      kind: 'truncated',
      isServerSide: true,
      details: { partialText: 'The answer is ' },
    });
  });

  it('when the request was aborted by our first-token timer, then it is a timeout; by the caller, aborted', () => {
    expect(mapOpenAIError(new OpenAI.APIUserAbortError(), { timedOut: true })).toMatchObject({
      kind: 'timeout',
      retryable: true,
    });
    expect(mapOpenAIError(new OpenAI.APIUserAbortError())).toMatchObject({
      kind: 'aborted',
      retryable: false,
      warrantsFallback: false,
    });
  });

  it('when the connection failed or timed out in the SDK, then it is connection or timeout', () => {
    expect(mapOpenAIError(new OpenAI.APIConnectionError({ message: 'Connection error.' }))).toMatchObject({
      kind: 'connection',
    });
    expect(mapOpenAIError(new OpenAI.APIConnectionTimeoutError())).toMatchObject({ kind: 'timeout' });
  });

  it('when the error is already a ProviderError, then it passes through unchanged', () => {
    const original = new ProviderError('openai', 'truncated', 'cut');
    expect(mapOpenAIError(original)).toBe(original);
  });
});

describe('mapAnthropicError', () => {
  it('when Anthropic rate-limits with retry-after, then it is rate_limited with the hinted delay', () => {
    expect(mapAnthropicError(anthropicErrorFor(anthropicErrors.rateLimited(9)))).toMatchObject({
      provider: 'anthropic',
      kind: 'rate_limited',
      status: 429,
      retryable: true,
      details: { retryAfterMs: 9_000 },
    });
  });

  // Anthropic sends this 429 with `error.type: 'rate_limit_error'` and a message that says only "API usage
  // limits"; the cause is named in `error.details.error_code` alone (the SDK's `errorCode`). Read from
  // there, it is quota: the gateway neither retries a request that cannot succeed until the month resets
  // nor counts it as a rate limit, and the other provider answers.
  it('when Anthropic answers 429 with error_code enforced_spend_limit_reached, then it is quota from the error code, not a retryable rate limit', () => {
    const thrown = anthropicErrorFor(anthropicErrors.spendLimit());
    expect(thrown.errorCode).toBe('enforced_spend_limit_reached');

    expect(mapAnthropicError(thrown)).toMatchObject({
      kind: 'quota',
      retryable: false,
      warrantsFallback: true,
    });
  });

  it('when Anthropic answers 400 "credit balance is too low", then it is quota, not invalid_request', () => {
    expect(mapAnthropicError(anthropicErrorFor(anthropicErrors.creditBalance()))).toMatchObject({
      kind: 'quota',
      status: 400,
      retryable: false,
      warrantsFallback: true,
    });
  });

  it('when Anthropic answers 401, then it is auth', () => {
    const unauthorized: AnthropicErrorScript = {
      type: 'error',
      status: 401,
      error: { type: 'authentication_error', message: 'invalid x-api-key' },
    };
    expect(mapAnthropicError(anthropicErrorFor(unauthorized))).toMatchObject({ kind: 'auth', status: 401 });
  });

  it('when Anthropic answers 529, then it is overloaded, retryable and server-side', () => {
    expect(mapAnthropicError(anthropicErrorFor(anthropicErrors.overloaded()))).toMatchObject({
      kind: 'overloaded',
      status: 529,
      retryable: true,
      isServerSide: true,
    });
  });

  it('when an overloaded_error arrives mid-stream (no HTTP status), then it is still overloaded', () => {
    const midStream = new Anthropic.APIError(
      undefined,
      { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
      undefined,
      undefined,
    );
    expect(mapAnthropicError(midStream)).toMatchObject({ kind: 'overloaded', isServerSide: true });
  });

  it('when Anthropic answers 500, then it is a server failure', () => {
    expect(mapAnthropicError(anthropicErrorFor(anthropicErrors.server()))).toMatchObject({
      kind: 'server',
      status: 500,
      retryable: true,
    });
  });

  it('when Anthropic answers 400, then it is invalid_request and warrants no fallback', () => {
    expect(
      mapAnthropicError(anthropicErrorFor(anthropicErrors.badRequest('max_tokens: too large'))),
    ).toMatchObject({ kind: 'invalid_request', status: 400, retryable: false, warrantsFallback: false });
  });

  it("when a stream is cut (undici's TypeError or the SDK's AnthropicError 'terminated'), then it is truncated", () => {
    expect(mapAnthropicError(new TypeError('terminated'))).toMatchObject({ kind: 'truncated' });
    expect(mapAnthropicError(new Anthropic.AnthropicError('terminated'))).toMatchObject({
      kind: 'truncated',
    });
  });

  it('when the request was aborted by our first-token timer, then it is a timeout; by the caller, aborted', () => {
    expect(mapAnthropicError(new Anthropic.APIUserAbortError(), { timedOut: true })).toMatchObject({
      kind: 'timeout',
    });
    expect(mapAnthropicError(new Anthropic.APIUserAbortError())).toMatchObject({
      kind: 'aborted',
      warrantsFallback: false,
    });
  });
});

describe('retryAfterMs', () => {
  const NOW = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');

  it('when OpenAI sends retry-after-ms, then it wins over retry-after', () => {
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '1500', 'retry-after': '2' }), NOW)).toBe(1_500);
  });

  it('when retry-after is in seconds, then it is converted to milliseconds', () => {
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }), NOW)).toBe(2_000);
    expect(retryAfterMs(new Headers({ 'retry-after': '0.5' }), NOW)).toBe(500);
  });

  it('when retry-after is an HTTP date, then it is the time until then, and zero for a date past', () => {
    expect(retryAfterMs(new Headers({ 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT' }), NOW)).toBe(30_000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Wed, 21 Oct 2015 07:27:00 GMT' }), NOW)).toBe(0);
  });

  it('when the header is missing, empty or garbage, then there is no hint', () => {
    expect(retryAfterMs(undefined, NOW)).toBeUndefined();
    expect(retryAfterMs(new Headers(), NOW)).toBeUndefined();
    expect(retryAfterMs(new Headers({ 'retry-after': '  ' }), NOW)).toBeUndefined();
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }), NOW)).toBeUndefined();
    expect(retryAfterMs(new Headers({ 'retry-after-ms': 'abc' }), NOW)).toBeUndefined();
  });
});
