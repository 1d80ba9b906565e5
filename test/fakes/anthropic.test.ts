import Anthropic, {
  AnthropicError,
  APIConnectionError,
  APIError,
  APIUserAbortError,
  BadRequestError,
  InternalServerError,
  OverloadedError,
  RateLimitError,
} from '@anthropic-ai/sdk';
import type { RawMessageStreamEvent } from '@anthropic-ai/sdk/resources/messages';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { base64Of, escapedNamePdf, plainPdf } from '../support/pdfs.js';
import {
  anthropicErrors,
  CONTEXT_WINDOW_TOKENS,
  type FakeAnthropic,
  PDF_PAGE_TOKENS,
  startFakeAnthropic,
} from './anthropic.js';

let fake: FakeAnthropic;
let client: Anthropic;

beforeEach(async () => {
  fake = await startFakeAnthropic();
  client = new Anthropic({ apiKey: 'test-key', baseURL: fake.url, maxRetries: 0 });
});

afterEach(async () => {
  await fake.close();
});

const MODEL = 'claude-haiku-4-5';
const PARAMS = { model: MODEL, max_tokens: 256, messages: [{ role: 'user' as const, content: 'Hi' }] };

function streamMessage(signal?: AbortSignal) {
  const stream = client.messages.stream(PARAMS, { signal });
  const texts: string[] = [];
  stream.on('text', (text) => texts.push(text));
  return { stream, texts };
}

describe('streaming messages', () => {
  it('when a stream is scripted, then messages.stream() emits its text and finalMessage() has stop reason and usage', async () => {
    fake.script({
      type: 'stream',
      chunks: ['Hel', 'lo', ' there'],
      stopReason: 'end_turn',
      usage: {
        inputTokens: 86,
        outputTokens: 300,
        cacheReadInputTokens: 1920,
        cacheCreationInputTokens: 512,
      },
    });

    const { stream, texts } = streamMessage();
    const message = await stream.finalMessage();

    expect(texts).toEqual(['Hel', 'lo', ' there']);
    expect(message.id).toMatch(/^msg_01/);
    expect(message.model).toBe(MODEL);
    expect(message.role).toBe('assistant');
    expect(message.content).toEqual([{ type: 'text', text: 'Hello there' }]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.stop_sequence).toBeNull();
    expect(message.stop_details).toBeNull();
    expect(message.usage).toMatchObject({
      input_tokens: 86,
      output_tokens: 300,
      cache_read_input_tokens: 1920,
      cache_creation_input_tokens: 512,
      service_tier: 'standard',
    });
    expect(stream.request_id).toMatch(/^req_011C/);
  });

  it('when the request is sent, then the fake records its path, headers and JSON body', async () => {
    fake.script({ type: 'stream', text: 'ok' });

    await streamMessage().stream.finalMessage();

    const [request] = fake.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/v1/messages');
    // SDK 1.x sends the API key as a bearer token, not in x-api-key.
    expect(request?.headers.authorization).toBe('Bearer test-key');
    expect(request?.headers['anthropic-version']).toBeTruthy();
    expect(request?.body).toMatchObject({ ...PARAMS, stream: true });
    expect(fake.unexpected).toEqual([]);
  });

  it('when the raw stream is read, then events come in the order Anthropic sends them, pings hidden by the SDK', async () => {
    fake.script({ type: 'stream', chunks: ['a', 'b'], usage: { inputTokens: 5, outputTokens: 2 } });

    const stream = await client.messages.create({ ...PARAMS, stream: true });
    const events: RawMessageStreamEvent[] = [];
    for await (const event of stream) events.push(event);

    expect(events.map((event) => event.type)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(events[0]).toMatchObject({
      message: { content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } },
    });
    expect(events[5]).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null, stop_details: null },
      usage: {
        input_tokens: 5,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: 2,
      },
    });
  });

  it('when text is scripted, then it arrives in pieces of about four characters', async () => {
    fake.script({ type: 'stream', text: 'The quick brown fox 🦊', pings: false });

    const { stream, texts } = streamMessage();
    const text = await stream.finalText();

    expect(text).toBe('The quick brown fox 🦊');
    expect(texts.length).toBeGreaterThan(1);
    expect(texts.every((piece) => Array.from(piece).length <= 4)).toBe(true);
  });

  it('when max_tokens is the stop reason, then finalMessage() reports it', async () => {
    fake.script({ type: 'stream', text: 'cut sh', stopReason: 'max_tokens' });

    const message = await streamMessage().stream.finalMessage();

    expect(message.stop_reason).toBe('max_tokens');
  });

  it('when refusal is the stop reason, then finalMessage() reports it with refusal stop details', async () => {
    fake.script({ type: 'stream', text: '', stopReason: 'refusal' });

    const message = await streamMessage().stream.finalMessage();

    expect(message.stop_reason).toBe('refusal');
    expect(message.stop_details).toEqual({ type: 'refusal', category: null, explanation: null });
  });

  it('when the stop reason is null, then the stream has no message_stop and finalMessage() rejects', async () => {
    fake.script({ type: 'stream', text: 'unfinished', stopReason: null });

    const { stream, texts } = streamMessage();

    // The SDK only keeps a message once message_stop arrives.
    await expect(stream.finalMessage()).rejects.toThrow(
      'stream ended without producing a Message with role=assistant',
    );
    expect(texts.join('')).toBe('unfinished');
  });

  it('when the stream is cut after two chunks, then finalMessage() rejects after the text so far', async () => {
    fake.script({ type: 'stream', chunks: ['a', 'b', 'c', 'd'], cutAfterChunks: 2 });

    const { stream, texts } = streamMessage();

    // MessageStream wraps undici's `TypeError: terminated` in a plain AnthropicError with the same message.
    const error = await stream.finalMessage().catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(AnthropicError);
    expect(error).not.toBeInstanceOf(APIError);
    expect((error as Error).message).toBe('terminated');
    expect(texts).toEqual(['a', 'b']);
    expect(fake.closedEarly).toBe(0);
  });

  it('when the stream hangs and the caller aborts, then the fake counts a response closed early', async () => {
    fake.script({ type: 'stream', hang: true });
    const controller = new AbortController();

    const { stream } = streamMessage(controller.signal);
    await new Promise((resolve) => stream.on('connect', () => resolve(undefined)));
    controller.abort();

    await expect(stream.finalMessage()).rejects.toBeInstanceOf(APIUserAbortError);
    await vi.waitFor(() => expect(fake.closedEarly).toBe(1));
  });

  it('when the caller aborts during a chunk delay, then the fake stops writing and counts it', async () => {
    fake.script({ type: 'stream', chunks: ['first', 'never'], chunkDelayMs: 30_000 });

    const { stream, texts } = streamMessage();
    stream.on('text', () => stream.abort());

    await expect(stream.finalMessage()).rejects.toBeInstanceOf(APIUserAbortError);
    expect(texts).toEqual(['first']);
    await vi.waitFor(() => expect(fake.closedEarly).toBe(1));
  });
});

describe('non-streaming messages', () => {
  it('when a message is scripted, then messages.create() returns it', async () => {
    fake.script({
      type: 'message',
      text: '{"isGoodEnough":true}',
      usage: { inputTokens: 40, outputTokens: 9, cacheReadInputTokens: 1024 },
    });

    const message = await client.messages.create(PARAMS);

    expect(message.type).toBe('message');
    expect(message.model).toBe(MODEL);
    expect(message.content).toEqual([{ type: 'text', text: '{"isGoodEnough":true}' }]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.usage).toMatchObject({
      input_tokens: 40,
      output_tokens: 9,
      cache_read_input_tokens: 1024,
      cache_creation_input_tokens: 0,
    });
    expect(message._request_id).toMatch(/^req_011C/);
  });

  it('when the caller aborts during the delay, then the SDK throws an abort error and the fake counts it', async () => {
    fake.script({ type: 'message', text: 'late', delayMs: 30_000 });
    const controller = new AbortController();

    const request = client.messages.create(PARAMS, { signal: controller.signal });
    await vi.waitFor(() => expect(fake.requests).toHaveLength(1));
    controller.abort();

    await expect(request).rejects.toBeInstanceOf(APIUserAbortError);
    await vi.waitFor(() => expect(fake.closedEarly).toBe(1));
  });
});

describe('errors', () => {
  it('when overloaded() is scripted, then the SDK throws an APIError with status 529 and type overloaded_error', async () => {
    fake.script(anthropicErrors.overloaded());

    const error = await client.messages.create(PARAMS).catch((thrown: unknown) => thrown);

    expect(error).toBeInstanceOf(APIError);
    expect(error).toBeInstanceOf(OverloadedError);
    const apiError = error as OverloadedError;
    expect(apiError.status).toBe(529);
    expect(apiError.type).toBe('overloaded_error');
    expect(apiError.error).toMatchObject({
      type: 'error',
      error: { type: 'overloaded_error', message: 'Overloaded' },
    });
    expect(apiError.requestID).toBe((apiError.error as { request_id: string }).request_id);
  });

  it('when overloaded() is scripted for messages.stream(), then finalMessage() rejects with the 529', async () => {
    fake.script(anthropicErrors.overloaded());

    const { stream } = streamMessage();

    await expect(stream.finalMessage()).rejects.toMatchObject({ status: 529, type: 'overloaded_error' });
  });

  const cases = [
    {
      name: 'rateLimited(9)',
      script: anthropicErrors.rateLimited(9),
      errorClass: RateLimitError,
      status: 429,
      type: 'rate_limit_error',
      retryAfter: '9',
    },
    {
      name: 'spendLimit()',
      script: anthropicErrors.spendLimit(),
      errorClass: RateLimitError,
      status: 429,
      type: 'rate_limit_error',
      retryAfter: null,
    },
    {
      name: 'server()',
      script: anthropicErrors.server(),
      errorClass: InternalServerError,
      status: 500,
      type: 'api_error',
      retryAfter: null,
    },
    {
      name: "badRequest('max_tokens: too large')",
      script: anthropicErrors.badRequest('max_tokens: too large'),
      errorClass: BadRequestError,
      status: 400,
      type: 'invalid_request_error',
      retryAfter: null,
    },
    {
      name: 'creditBalance()',
      script: anthropicErrors.creditBalance(),
      errorClass: BadRequestError,
      status: 400,
      type: 'invalid_request_error',
      retryAfter: null,
    },
  ];

  for (const expected of cases) {
    it(`when ${expected.name} is scripted, then the SDK throws ${expected.errorClass.name} ${expected.status} with type ${expected.type}`, async () => {
      fake.script(expected.script);

      const error = await client.messages.create(PARAMS).catch((thrown: unknown) => thrown);

      expect(error).toBeInstanceOf(expected.errorClass);
      const apiError = error as APIError;
      expect(apiError.status).toBe(expected.status);
      expect(apiError.type).toBe(expected.type);
      expect(apiError.apiMessage).toBe(expected.script.error.message);
      expect(apiError.headers?.get('retry-after') ?? null).toBe(expected.retryAfter);
      expect(apiError.requestID).toMatch(/^req_011C/);
    });
  }

  it('when spendLimit() is scripted, then the SDK picks its error class from details.error_code', async () => {
    fake.script(anthropicErrors.spendLimit());

    const error = await client.messages.create(PARAMS).catch((thrown: unknown) => thrown);

    expect((error as Error).constructor.name).toBe('EnforcedSpendLimitReachedError');
    expect((error as APIError).errorCode).toBe('enforced_spend_limit_reached');
  });

  it('when rateLimited is scripted, then the anthropic-ratelimit headers come with it', async () => {
    fake.script(anthropicErrors.rateLimited(3));

    const error = (await client.messages.create(PARAMS).catch((thrown: unknown) => thrown)) as RateLimitError;

    expect(error.headers.get('anthropic-ratelimit-requests-remaining')).toBe('0');
    expect(Date.parse(error.headers.get('anthropic-ratelimit-requests-reset') ?? '')).toBeGreaterThan(
      Date.now(),
    );
  });

  it('when a reset is scripted, then the SDK throws a connection error', async () => {
    fake.script({ type: 'reset' });

    await expect(client.messages.create(PARAMS)).rejects.toBeInstanceOf(APIConnectionError);
    expect(fake.closedEarly).toBe(0);
  });
});

describe('unscripted calls', () => {
  it('when a request arrives with nothing scripted, then it is recorded as unexpected and answered 500', async () => {
    const error = await client.messages.create(PARAMS).catch((thrown: unknown) => thrown);

    expect(error).toBeInstanceOf(InternalServerError);
    expect((error as APIError).apiMessage).toBe('fake: no scripted response for POST /v1/messages');
    expect(fake.unexpected).toHaveLength(1);
    expect(fake.requests).toHaveLength(1);
  });

  it('when a message is scripted but the request streams, then the call fails loudly', async () => {
    fake.script({ type: 'message', text: 'hi' });

    await expect(streamMessage().stream.finalMessage()).rejects.toThrow(
      'fake: scripted a message but the request asked for stream: true',
    );
    expect(fake.unexpected).toHaveLength(1);
  });
});

describe('PDFs: token counts and bills', () => {
  const document = (pdf: Uint8Array) => ({
    type: 'document' as const,
    source: { type: 'base64' as const, media_type: 'application/pdf' as const, data: base64Of(pdf) },
  });
  /** "Summarise" (3 tokens) and a PDF, in one user message (4), the document framed (8). */
  const aboutPdf = (pdf: Uint8Array) => [
    { role: 'user' as const, content: [{ type: 'text' as const, text: 'Summarise' }, document(pdf)] },
  ];

  it('when a PDF the fake knows is counted, then messages.countTokens() gets its real pages at the per-page figure, with the text and framing', async () => {
    const pdf = escapedNamePdf(50);
    fake.knowPdf(pdf, 50);

    const count = await client.messages.countTokens({ model: MODEL, messages: aboutPdf(pdf) });

    expect(count).toEqual({ input_tokens: 50 * PDF_PAGE_TOKENS + 3 + 4 + 8 });
    expect(fake.requests[0]?.path).toBe('/v1/messages/count_tokens');
    expect(fake.unexpected).toEqual([]);
  });

  it('when a PDF is longer than the context window, then its count says so, as Anthropic counts past the window', async () => {
    const pdf = plainPdf(100);
    fake.knowPdf(pdf, 100);

    const count = await client.messages.countTokens({ model: MODEL, messages: aboutPdf(pdf) });

    expect(count.input_tokens).toBeGreaterThan(CONTEXT_WINDOW_TOKENS);
  });

  it('when a message carries a PDF and no usage is scripted, then it is billed the PDF’s real pages', async () => {
    const pdf = plainPdf(3);
    fake.knowPdf(pdf, 3);
    fake.script({ type: 'stream', text: 'Three pages.' });

    const message = await client.messages.stream({ ...PARAMS, messages: aboutPdf(pdf) }).finalMessage();

    expect(message.usage.input_tokens).toBe(3 * PDF_PAGE_TOKENS + 3 + 4 + 8);
  });

  it('when a message’s input is over the context window, then it is refused with Anthropic’s 400 "prompt is too long"', async () => {
    const pdf = plainPdf(100);
    fake.knowPdf(pdf, 100);
    fake.script({ type: 'message', text: 'never' });

    const error = await client.messages
      .create({ ...PARAMS, messages: aboutPdf(pdf) })
      .catch((thrown: unknown) => thrown);

    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as APIError).apiMessage).toBe(
      `prompt is too long: ${100 * PDF_PAGE_TOKENS + 15} tokens > ${CONTEXT_WINDOW_TOKENS} maximum`,
    );
    expect((error as APIError).error).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error' },
    });
  });

  it('when a count failure is scripted, then the SDK throws it, and the next count is worked out again', async () => {
    const pdf = plainPdf(3);
    fake.knowPdf(pdf, 3);
    fake.scriptCount(anthropicErrors.overloaded());

    await expect(
      client.messages.countTokens({ model: MODEL, messages: aboutPdf(pdf) }),
    ).rejects.toBeInstanceOf(OverloadedError);
    await expect(client.messages.countTokens({ model: MODEL, messages: aboutPdf(pdf) })).resolves.toEqual({
      input_tokens: 3 * PDF_PAGE_TOKENS + 15,
    });
  });

  it('when a count carries a PDF the fake was not told about, or no PDF at all, then it fails loudly', async () => {
    await expect(
      client.messages.countTokens({ model: MODEL, messages: aboutPdf(plainPdf(2)) }),
    ).rejects.toThrow('fake: a PDF the test did not tell the fake about (knowPdf)');
    await expect(client.messages.countTokens({ model: MODEL, messages: PARAMS.messages })).rejects.toThrow(
      'fake: a token count without a PDF',
    );
    expect(fake.unexpected).toHaveLength(2);
  });

  it('when a message carries a PDF the fake was not told about and no usage is scripted, then it fails loudly', async () => {
    fake.script({ type: 'message', text: 'hi' });

    await expect(client.messages.create({ ...PARAMS, messages: aboutPdf(plainPdf(2)) })).rejects.toThrow(
      'fake: a PDF the test did not tell the fake about (knowPdf)',
    );
    expect(fake.unexpected).toHaveLength(1);
  });
});
