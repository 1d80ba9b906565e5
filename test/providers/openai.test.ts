import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ChatRequest, ProviderError, type StructuredRequest } from '../../src/core/chat.js';
import { type ProviderHarness, startProviderHarness } from '../support/providers.js';

/**
 * The OpenAI adapter driven through the real `openai` SDK against the loopback fake: what goes on the wire,
 * and what a caller gets back for each way a stream or a completion can end.
 */

let harness: ProviderHarness;
beforeEach(async () => {
  harness = await startProviderHarness();
});
afterEach(async () => {
  expect(harness.openai.unexpected).toEqual([]);
  await harness.close();
});

const MODEL = 'gpt-4o-mini';
const SYSTEM = 'You are tierbot, a helpful assistant in a Discord server.';

const ask = (text = 'What is a monad?', overrides: Partial<ChatRequest> = {}): ChatRequest => ({
  model: MODEL,
  system: SYSTEM,
  messages: [{ role: 'user', content: text }],
  maxOutputTokens: 256,
  ...overrides,
});

const VERDICT_SCHEMA = {
  type: 'object',
  properties: { isGoodEnough: { type: 'boolean' }, reason: { type: 'string' } },
  required: ['isGoodEnough', 'reason'],
  additionalProperties: false,
};

const check = (overrides: Partial<StructuredRequest> = {}): StructuredRequest => ({
  ...ask('Is this draft good enough? Draft: "A monad is a monoid in the category of endofunctors."'),
  schemaName: 'draft_verdict',
  schema: VERDICT_SCHEMA,
  ...overrides,
});

const failureOf = (pending: Promise<unknown>): Promise<unknown> =>
  pending.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error,
  );

describe('what a streamed call sends', () => {
  it('when a conversation is streamed, then the request asks for a stream with usage and leads with the system prompt', async () => {
    harness.openai.script({ type: 'stream', text: 'A monad is a monoid.' });
    await harness.openaiModel.stream(
      ask('And a functor?', {
        messages: [
          { role: 'user', content: 'What is a monad?' },
          { role: 'assistant', content: 'A monad is a monoid.' },
          { role: 'user', content: 'And a functor?' },
        ],
      }),
    );

    const [request] = harness.openai.requests;
    expect(request?.path).toBe('/v1/chat/completions');
    expect(request?.body).toMatchObject({
      model: MODEL,
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: 256,
    });
    expect(request?.body.messages).toEqual([
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'What is a monad?' },
      { role: 'assistant', content: 'A monad is a monoid.' },
      { role: 'user', content: 'And a functor?' },
    ]);
  });

  it('when more output is asked for than gpt-4o-mini allows, then max_completion_tokens is clamped to 16,384', async () => {
    harness.openai.script({ type: 'stream', text: 'ok' });
    await harness.openaiModel.stream(ask('Write a novel.', { maxOutputTokens: 50_000 }));

    expect(harness.openai.requests[0]?.body.max_completion_tokens).toBe(16_384);
  });

  it('when the user attaches an image, then it goes as an image_url part with a data: URL of its media type', async () => {
    const webp = Uint8Array.from([0x52, 0x49, 0x46, 0x46, 0x24, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50]);
    harness.openai.script({ type: 'stream', text: 'A cat.' });
    await harness.openaiModel.stream(
      ask('', {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is in this picture?' },
              { type: 'image', mediaType: 'image/webp', data: webp, width: 640, height: 480 },
            ],
          },
        ],
      }),
    );

    expect(harness.openai.requests[0]?.body.messages[1]).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this picture?' },
        {
          type: 'image_url',
          image_url: {
            url: `data:image/webp;base64,${Buffer.from(webp).toString('base64')}`,
            detail: 'auto',
          },
        },
      ],
    });
  });
});

describe('what a streamed call returns', () => {
  it('when the stream finishes, then the caller gets the text, its deltas, the normalised usage and the timing', async () => {
    harness.openai.script({
      type: 'stream',
      chunks: ['A monad ', 'is a ', 'monoid.'],
      finishReason: 'stop',
      usage: { promptTokens: 2_006, completionTokens: 300, cachedTokens: 1_920 },
    });
    const deltas: string[] = [];
    const result = await harness.openaiModel.stream(ask(), (delta) => deltas.push(delta));

    expect(deltas).toEqual(['A monad ', 'is a ', 'monoid.']);
    expect(result).toEqual({
      text: 'A monad is a monoid.',
      finishReason: 'stop',
      // prompt_tokens includes the cached ones; the normalised shape separates them.
      usage: { inputTokens: 86, cachedInputTokens: 1_920, cacheWriteTokens: 0, outputTokens: 300 },
      provider: 'openai',
      model: MODEL,
      timeToFirstTokenMs: expect.any(Number),
    });
    expect(result.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
  });

  it.each([
    ['length', 'length'],
    ['content_filter', 'content_filter'],
  ] as const)("when OpenAI finishes with '%s', then the finish reason is '%s'", async (wire, expected) => {
    harness.openai.script({ type: 'stream', text: 'Once upon a time', finishReason: wire });
    const result = await harness.openaiModel.stream(ask());

    expect(result).toMatchObject({ text: 'Once upon a time', finishReason: expected });
  });

  it('when the model refuses with a refusal delta and no content, then the refusal is the text and the finish reason', async () => {
    harness.openai.script({ type: 'stream', refusal: "I'm sorry, I can't help with that." });
    const deltas: string[] = [];
    const result = await harness.openaiModel.stream(ask('How do I pick a lock?'), (delta) =>
      deltas.push(delta),
    );

    expect(result).toMatchObject({
      text: "I'm sorry, I can't help with that.",
      finishReason: 'refusal',
      timeToFirstTokenMs: null,
    });
    // Nothing was streamed as an answer: the refusal is only in the result.
    expect(deltas).toEqual([]);
  });
});

describe('streams that end badly', () => {
  it('when every chunk has no choices, then it is a truncation that still carries the reported usage', async () => {
    harness.openai.script({
      type: 'stream',
      noChoices: true,
      usage: { promptTokens: 40, completionTokens: 0 },
    });
    const failure = await failureOf(harness.openaiModel.stream(ask()));

    expect(failure).toBeInstanceOf(ProviderError);
    expect(failure).toMatchObject({
      provider: 'openai',
      kind: 'truncated',
      isServerSide: true,
      retryable: false,
      details: { usage: { inputTokens: 40, outputTokens: 0 }, partialText: '' },
    });
  });

  it('when the connection is cut mid-answer, then it is a truncation with the text delivered so far', async () => {
    harness.openai.script({
      type: 'stream',
      chunks: ['The answer ', 'is ', 'forty', '-two'],
      cutAfterChunks: 2,
    });
    const deltas: string[] = [];
    const failure = await failureOf(harness.openaiModel.stream(ask(), (delta) => deltas.push(delta)));

    expect(failure).toBeInstanceOf(ProviderError);
    expect(failure).toMatchObject({
      provider: 'openai',
      kind: 'truncated',
      details: { partialText: 'The answer is ' },
    });
    expect(deltas.join('')).toBe('The answer is ');
  });

  it('when our own delta callback throws, then that very error surfaces (it is our bug, not a provider failure) and the request is closed', async () => {
    const bug = new RangeError('Discord message too long');
    harness.openai.script({ type: 'stream', chunks: ['one ', 'two ', 'three ', 'four'], chunkDelayMs: 50 });
    const failure = await failureOf(
      harness.openaiModel.stream(ask(), () => {
        throw bug;
      }),
    );

    expect(failure).toBe(bug);
    expect(failure).not.toBeInstanceOf(ProviderError);
    // The stream was aborted at once, so the model stops generating (and billing) for nobody.
    await vi.waitFor(() => expect(harness.openai.closedEarly).toBe(1));
  });

  // Chunks already received keep arriving after the callback throws; the timer delivers none of them
  // (src/providers/timer.ts `deliver()`), so the first error, the root cause, is the one that surfaces.
  it('when our delta callback throws, then the chunks still buffered are not delivered and its first error surfaces', async () => {
    harness.openai.script({ type: 'stream', chunks: ['one ', 'two ', 'three ', 'four'] });
    const thrown: Error[] = [];
    const failure = await failureOf(
      harness.openaiModel.stream(ask(), (delta) => {
        const bug = new Error(`could not show ${JSON.stringify(delta)}`);
        thrown.push(bug);
        throw bug;
      }),
    );

    expect(thrown).toHaveLength(1);
    expect(failure).toBe(thrown[0]);
  });
});

describe('structured calls', () => {
  it('when a structured call is made, then it asks for a strict json_schema response and returns the parsed value', async () => {
    harness.openai.script({
      type: 'completion',
      content: '{"isGoodEnough":false,"reason":"It is a joke, not an explanation."}',
      usage: { promptTokens: 120, completionTokens: 14 },
    });
    const result = await harness.openaiModel.structured(check());

    const [request] = harness.openai.requests;
    expect(request?.body.stream).toBeUndefined();
    expect(request?.body.response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'draft_verdict', schema: VERDICT_SCHEMA, strict: true },
    });
    expect(request?.body.messages[0]).toEqual({ role: 'system', content: SYSTEM });
    expect(result).toMatchObject({
      value: { isGoodEnough: false, reason: 'It is a joke, not an explanation.' },
      finishReason: 'stop',
      usage: { inputTokens: 120, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 14 },
      provider: 'openai',
      model: MODEL,
    });
  });

  it('when the model refuses a structured call, then there is no value and the finish reason is refusal', async () => {
    harness.openai.script({ type: 'completion', refusal: "I'm sorry, I can't assist with that." });
    const result = await harness.openaiModel.structured(check());

    expect(result).toMatchObject({
      value: undefined,
      text: "I'm sorry, I can't assist with that.",
      finishReason: 'refusal',
    });
  });

  it('when a structured answer is cut off by the length limit, then there is no value', async () => {
    harness.openai.script({ type: 'completion', content: '{"isGoodEnough":tr', finishReason: 'length' });
    const result = await harness.openaiModel.structured(check());

    expect(result).toMatchObject({ value: undefined, finishReason: 'length' });
  });

  it('when OpenAI answers 200 with no choices, then it is a truncation carrying the usage', async () => {
    harness.openai.script({
      type: 'completion',
      noChoices: true,
      usage: { promptTokens: 120, completionTokens: 0 },
    });
    const failure = await failureOf(harness.openaiModel.structured(check()));

    expect(failure).toBeInstanceOf(ProviderError);
    expect(failure).toMatchObject({
      provider: 'openai',
      kind: 'truncated',
      details: { usage: { inputTokens: 120, outputTokens: 0 } },
    });
  });
});
