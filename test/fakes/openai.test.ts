import OpenAI, {
  APIConnectionError,
  APIUserAbortError,
  BadRequestError,
  InternalServerError,
  RateLimitError,
} from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type FakeOpenAI, openaiErrors, startFakeOpenAI } from './openai.js';

let fake: FakeOpenAI;
let client: OpenAI;

beforeEach(async () => {
  fake = await startFakeOpenAI();
  client = new OpenAI({ apiKey: 'test-key', baseURL: fake.url, maxRetries: 0 });
});

afterEach(async () => {
  await fake.close();
});

const MODEL = 'gpt-4o-mini';
const MESSAGES = [{ role: 'user' as const, content: 'Hi' }];

function streamWithUsage(signal?: AbortSignal) {
  return client.chat.completions.create(
    { model: MODEL, messages: MESSAGES, stream: true, stream_options: { include_usage: true } },
    { signal },
  );
}

async function collect(stream: AsyncIterable<ChatCompletionChunk>) {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return {
    chunks,
    deltas: chunks.flatMap((chunk) => chunk.choices.flatMap((choice) => choice.delta.content || [])),
    refusals: chunks.flatMap((chunk) => chunk.choices.flatMap((choice) => choice.delta.refusal || [])),
    finishReasons: chunks.flatMap((chunk) => chunk.choices.flatMap((choice) => choice.finish_reason ?? [])),
    usage: chunks.at(-1)?.usage,
  };
}

describe('streaming chat completions', () => {
  it('when a stream is scripted, then the SDK yields its deltas, finish reason and usage', async () => {
    fake.script({
      type: 'stream',
      chunks: ['Hel', 'lo', ' there'],
      finishReason: 'stop',
      usage: { promptTokens: 2006, completionTokens: 300, cachedTokens: 1920 },
    });

    const { chunks, deltas, finishReasons, usage } = await collect(await streamWithUsage());

    expect(deltas).toEqual(['Hel', 'lo', ' there']);
    expect(finishReasons).toEqual(['stop']);
    expect(usage).toEqual({
      prompt_tokens: 2006,
      completion_tokens: 300,
      total_tokens: 2306,
      prompt_tokens_details: { cached_tokens: 1920, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    });
    // role chunk, three content chunks, finish chunk, usage chunk
    expect(chunks).toHaveLength(6);
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '', refusal: null });
    expect(chunks.at(-1)?.choices).toEqual([]);
    for (const chunk of chunks) {
      expect(chunk.id).toMatch(/^chatcmpl-/);
      expect(chunk.id).toBe(chunks[0]?.id);
      expect(chunk.object).toBe('chat.completion.chunk');
      expect(chunk.model).toBe(MODEL);
    }
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
  });

  it('when the request is sent, then the fake records its path, headers and JSON body', async () => {
    fake.script({ type: 'stream', text: 'ok' });

    await collect(await streamWithUsage());

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/v1/chat/completions');
    expect(request?.headers.authorization).toBe('Bearer test-key');
    expect(request?.body).toMatchObject({ model: MODEL, messages: MESSAGES, stream: true });
    expect(fake.unexpected).toEqual([]);
  });

  it('when text is scripted, then it arrives in pieces of about four characters', async () => {
    fake.script({ type: 'stream', text: 'The quick brown fox 🦊' });

    const { deltas, usage } = await collect(await streamWithUsage());

    expect(deltas.join('')).toBe('The quick brown fox 🦊');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.every((delta) => Array.from(delta).length <= 4)).toBe(true);
    expect(usage?.completion_tokens).toBe(deltas.length);
  });

  it('when the request does not ask for usage, then no chunk carries a usage field', async () => {
    fake.script({ type: 'stream', text: 'Hello', usage: { promptTokens: 5, completionTokens: 2 } });

    const stream = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true });
    const { chunks, deltas } = await collect(stream);

    expect(deltas.join('')).toBe('Hello');
    expect(chunks.every((chunk) => !('usage' in chunk))).toBe(true);
  });

  it('when a refusal is scripted, then it arrives as delta.refusal and no content', async () => {
    fake.script({ type: 'stream', refusal: "I can't help with that." });

    const { deltas, refusals } = await collect(await streamWithUsage());

    expect(refusals.join('')).toBe("I can't help with that.");
    expect(deltas).toEqual([]);
  });

  it('when the finish reason is length, then the SDK reports length', async () => {
    fake.script({ type: 'stream', text: 'cut sh', finishReason: 'length' });

    const { finishReasons } = await collect(await streamWithUsage());

    expect(finishReasons).toEqual(['length']);
  });

  it('when the finish reason is null, then the stream ends without one', async () => {
    fake.script({ type: 'stream', text: 'no reason', finishReason: null });

    const { deltas, finishReasons, usage } = await collect(await streamWithUsage());

    expect(deltas.join('')).toBe('no reason');
    expect(finishReasons).toEqual([]);
    expect(usage).toBeTruthy();
  });

  it('when the finish reason is null, then the SDK stream() helper rejects finalChatCompletion()', async () => {
    fake.script({ type: 'stream', text: 'no reason', finishReason: null });

    const stream = client.chat.completions.stream({ model: MODEL, messages: MESSAGES });

    await expect(stream.finalChatCompletion()).rejects.toThrow('missing finish_reason for choice 0');
  });

  it('when noChoices is scripted, then every chunk has empty choices', async () => {
    fake.script({ type: 'stream', noChoices: true, usage: { promptTokens: 3, completionTokens: 0 } });

    const { chunks, usage } = await collect(await streamWithUsage());

    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.every((chunk) => chunk.choices.length === 0)).toBe(true);
    expect(usage?.prompt_tokens).toBe(3);
  });

  it('when the stream is cut after two chunks, then the SDK iteration throws after yielding them', async () => {
    fake.script({ type: 'stream', chunks: ['a', 'b', 'c', 'd'], cutAfterChunks: 2 });

    const stream = await streamWithUsage();
    const deltas: string[] = [];
    const iterate = async () => {
      for await (const chunk of stream) deltas.push(chunk.choices[0]?.delta.content ?? '');
    };

    // Mid-stream, the SDK does not wrap the failure: it is undici's own `TypeError: terminated`
    // (cause: SocketError UND_ERR_SOCKET), not an APIConnectionError.
    await expect(iterate()).rejects.toThrow(new TypeError('terminated'));
    expect(deltas.join('')).toBe('ab');
    expect(fake.closedEarly).toBe(0);
  });

  it('when the stream hangs and the caller aborts, then the fake counts a response closed early', async () => {
    fake.script({ type: 'stream', hang: true });
    const controller = new AbortController();

    const stream = await streamWithUsage(controller.signal);
    const iterate = (async () => {
      for await (const _chunk of stream) {
        // nothing ever arrives
      }
    })();
    controller.abort();

    // The SDK ends a stream aborted by its caller quietly rather than throwing.
    await iterate;
    await vi.waitFor(() => expect(fake.closedEarly).toBe(1));
  });

  it('when the caller aborts during a chunk delay, then the fake stops writing and counts it', async () => {
    fake.script({ type: 'stream', chunks: ['first', 'never'], chunkDelayMs: 30_000 });
    const controller = new AbortController();

    const stream = await streamWithUsage(controller.signal);
    const deltas: string[] = [];
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content;
      if (content) deltas.push(content);
      if (content === 'first') controller.abort();
    }

    expect(deltas).toEqual(['first']);
    await vi.waitFor(() => expect(fake.closedEarly).toBe(1));
  });

  it('when a completion is delayed and the caller aborts, then the SDK throws an abort error and the fake counts it', async () => {
    fake.script({ type: 'completion', content: '{}', delayMs: 30_000 });
    const controller = new AbortController();

    const request = client.chat.completions.create(
      { model: MODEL, messages: MESSAGES },
      { signal: controller.signal },
    );
    await vi.waitFor(() => expect(fake.requests).toHaveLength(1));
    controller.abort();

    await expect(request).rejects.toBeInstanceOf(APIUserAbortError);
    await vi.waitFor(() => expect(fake.closedEarly).toBe(1));
  });
});

describe('non-streaming chat completions', () => {
  const responseFormat = {
    type: 'json_schema' as const,
    json_schema: {
      name: 'draft_check',
      strict: true,
      schema: {
        type: 'object',
        properties: { isGoodEnough: { type: 'boolean' } },
        required: ['isGoodEnough'],
        additionalProperties: false,
      },
    },
  };

  it('when a completion is scripted for a json_schema request, then the SDK returns its content', async () => {
    fake.script({
      type: 'completion',
      content: '{"isGoodEnough":true}',
      usage: { promptTokens: 120, completionTokens: 7, cachedTokens: 64 },
    });

    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      response_format: responseFormat,
    });

    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(MODEL);
    expect(completion.choices[0]?.message).toEqual({
      role: 'assistant',
      content: '{"isGoodEnough":true}',
      refusal: null,
      annotations: [],
    });
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(JSON.parse(completion.choices[0]?.message.content ?? '')).toEqual({ isGoodEnough: true });
    expect(completion.usage).toMatchObject({
      prompt_tokens: 120,
      completion_tokens: 7,
      total_tokens: 127,
      prompt_tokens_details: { cached_tokens: 64 },
    });
    expect(completion._request_id).toMatch(/^req_[0-9a-f]{32}$/);
    expect(fake.requests[0]?.body.response_format).toEqual(responseFormat);
  });

  it('when the same completion is read through parse(), then the SDK parses the JSON', async () => {
    fake.script({ type: 'completion', content: '{"isGoodEnough":false}' });

    const completion = await client.chat.completions.parse({
      model: MODEL,
      messages: MESSAGES,
      response_format: responseFormat,
    });

    expect(completion.choices[0]?.message.parsed).toEqual({ isGoodEnough: false });
  });

  it('when a refusal is scripted, then content is null and refusal holds the text', async () => {
    fake.script({ type: 'completion', refusal: 'No.' });

    const completion = await client.chat.completions.create({ model: MODEL, messages: MESSAGES });

    expect(completion.choices[0]?.message.content).toBeNull();
    expect(completion.choices[0]?.message.refusal).toBe('No.');
  });

  it('when noChoices is scripted, then the SDK returns an empty choices list', async () => {
    fake.script({ type: 'completion', noChoices: true });

    const completion = await client.chat.completions.create({ model: MODEL, messages: MESSAGES });

    expect(completion.choices).toEqual([]);
  });
});

describe('errors', () => {
  const cases = [
    {
      name: 'rateLimited(7)',
      script: openaiErrors.rateLimited(7),
      errorClass: RateLimitError,
      status: 429,
      type: 'requests',
      code: 'rate_limit_exceeded',
      retryAfter: '7',
    },
    {
      name: 'insufficientQuota()',
      script: openaiErrors.insufficientQuota(),
      errorClass: RateLimitError,
      status: 429,
      type: 'insufficient_quota',
      code: 'insufficient_quota',
      retryAfter: null,
    },
    {
      name: 'spendLimit()',
      script: openaiErrors.spendLimit(),
      errorClass: RateLimitError,
      status: 429,
      type: 'insufficient_quota',
      code: 'enforced_spend_limit_reached',
      retryAfter: null,
    },
    {
      name: 'server()',
      script: openaiErrors.server(),
      errorClass: InternalServerError,
      status: 500,
      type: 'server_error',
      code: null,
      retryAfter: null,
    },
    {
      name: 'server(502)',
      script: openaiErrors.server(502),
      errorClass: InternalServerError,
      status: 502,
      type: 'server_error',
      code: null,
      retryAfter: null,
    },
    {
      name: 'unavailable()',
      script: openaiErrors.unavailable(),
      errorClass: InternalServerError,
      status: 503,
      type: 'server_error',
      code: null,
      retryAfter: null,
    },
    {
      name: "badRequest('Invalid schema')",
      script: openaiErrors.badRequest('Invalid schema'),
      errorClass: BadRequestError,
      status: 400,
      type: 'invalid_request_error',
      code: null,
      retryAfter: null,
    },
  ];

  for (const expected of cases) {
    it(`when ${expected.name} is scripted, then a streaming request throws ${expected.errorClass.name} ${expected.status} with type ${expected.type}`, async () => {
      fake.script(expected.script);

      const error = await streamWithUsage().then(
        () => undefined,
        (thrown: unknown) => thrown,
      );

      expect(error).toBeInstanceOf(expected.errorClass);
      const apiError = error as InstanceType<typeof expected.errorClass>;
      expect(apiError.status).toBe(expected.status);
      expect(apiError.type).toBe(expected.type);
      expect(apiError.code).toBe(expected.code);
      expect(apiError.headers?.get('retry-after') ?? null).toBe(expected.retryAfter);
      expect(apiError.requestID).toMatch(/^req_[0-9a-f]{32}$/);
      expect(apiError.message).toContain(expected.script.error.message);
    });
  }

  it('when rateLimited is scripted, then the x-ratelimit headers come with it', async () => {
    fake.script(openaiErrors.rateLimited(2));

    const error = await client.chat.completions.create({ model: MODEL, messages: MESSAGES }).catch((e) => e);

    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect((error as RateLimitError).headers.get('x-ratelimit-reset-requests')).toBe('2s');
  });

  it('when a custom error is scripted, then its status, body and headers reach the SDK', async () => {
    fake.script({
      type: 'error',
      status: 401,
      error: {
        message: 'Incorrect API key provided',
        type: 'invalid_request_error',
        code: 'invalid_api_key',
      },
      headers: { 'x-custom': 'yes' },
    });

    const error = await client.chat.completions.create({ model: MODEL, messages: MESSAGES }).catch((e) => e);

    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(error.code).toBe('invalid_api_key');
    expect(error.param).toBeNull();
    expect(error.headers.get('x-custom')).toBe('yes');
  });

  it('when a reset is scripted, then the SDK throws a connection error', async () => {
    fake.script({ type: 'reset' });

    await expect(streamWithUsage()).rejects.toBeInstanceOf(APIConnectionError);
    expect(fake.closedEarly).toBe(0);
  });
});

describe('unscripted calls', () => {
  it('when a request arrives with nothing scripted, then it is recorded as unexpected and answered 500', async () => {
    const error = await streamWithUsage().catch((e) => e);

    expect(error).toBeInstanceOf(InternalServerError);
    expect(error.message).toContain('fake: no scripted response for POST /v1/chat/completions');
    expect(fake.unexpected).toHaveLength(1);
    expect(fake.unexpected[0]?.body.model).toBe(MODEL);
  });

  it('when the SDK would retry an unscripted call, then it is not retried', async () => {
    const retrying = new OpenAI({ apiKey: 'test-key', baseURL: fake.url, maxRetries: 2 });

    await expect(retrying.chat.completions.create({ model: MODEL, messages: MESSAGES })).rejects.toThrow(
      'fake: no scripted response',
    );
    expect(fake.requests).toHaveLength(1);
  });

  it('when another endpoint is called, then it is recorded as unexpected', async () => {
    await expect(client.models.list()).rejects.toThrow('fake: no scripted response for GET /v1/models');
    expect(fake.unexpected[0]?.path).toBe('/v1/models');
  });

  it('when a stream is scripted but the request is not streaming, then the call fails loudly', async () => {
    fake.script({ type: 'stream', text: 'hi' });

    await expect(client.chat.completions.create({ model: MODEL, messages: MESSAGES })).rejects.toThrow(
      'fake: scripted a stream but the request did not ask for stream: true',
    );
    expect(fake.unexpected).toHaveLength(1);
  });

  it('when responses are scripted, then they are consumed in order', async () => {
    fake.script(openaiErrors.server(), { type: 'completion', content: 'second' });

    await expect(client.chat.completions.create({ model: MODEL, messages: MESSAGES })).rejects.toBeInstanceOf(
      InternalServerError,
    );
    const completion = await client.chat.completions.create({ model: MODEL, messages: MESSAGES });

    expect(completion.choices[0]?.message.content).toBe('second');
  });
});

describe('close()', () => {
  it('when a response is still hanging, then close() ends it without counting it as closed early', async () => {
    fake.script({ type: 'stream', hang: true });
    const stream = await streamWithUsage();
    const iterate = (async () => {
      for await (const _chunk of stream) {
        // nothing ever arrives
      }
    })().catch((error: unknown) => error);

    await fake.close();

    expect(await iterate).toBeInstanceOf(Error);
    expect(fake.closedEarly).toBe(0);
  });
});
