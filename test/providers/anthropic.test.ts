import Anthropic from '@anthropic-ai/sdk';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ChatMessage, type ChatRequest, ProviderError } from '../../src/core/chat.js';
import { AnthropicChatModel } from '../../src/providers/anthropic/adapter.js';
import { CACHEABLE_PREFIX_CHARACTERS } from '../../src/providers/anthropic/mappers.js';
import { estimateAnthropicInputTokens } from '../../src/providers/estimate.js';
import { anthropicErrors, isCountRequest, PDF_PAGE_TOKENS } from '../fakes/anthropic.js';
import { base64Of, escapedNamePdf, objectStreamPdf, plainPdf } from '../support/pdfs.js';
import { type ProviderHarness, startProviderHarness } from '../support/providers.js';

/**
 * The Anthropic adapter driven through the real `@anthropic-ai/sdk` against the loopback fake: what goes on
 * the wire (system block, cache breakpoints, attachments), and what a caller gets back.
 */

let harness: ProviderHarness;
beforeEach(async () => {
  harness = await startProviderHarness();
});
afterEach(async () => {
  expect(harness.anthropic.unexpected).toEqual([]);
  await harness.close();
});

const MODEL = 'claude-haiku-4-5';
const SYSTEM = 'You are tierbot, a helpful assistant in a Discord server.';

const ask = (overrides: Partial<ChatRequest> = {}): ChatRequest => ({
  model: MODEL,
  system: SYSTEM,
  messages: [{ role: 'user', content: 'What is a monad?' }],
  maxOutputTokens: 256,
  ...overrides,
});

const failureOf = (pending: Promise<unknown>): Promise<unknown> =>
  pending.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error,
  );

/** Sends one streamed call that answers "ok" and returns the body the fake received. */
async function bodySentFor(request: ChatRequest) {
  harness.anthropic.script({ type: 'stream', text: 'ok', usage: { inputTokens: 10, outputTokens: 1 } });
  await harness.anthropicModel.stream(request);
  return harness.anthropic.requests.at(-1)?.body;
}

describe('what a streamed call sends', () => {
  it('when a question is streamed, then the system prompt is one text block with a cache breakpoint, max_tokens is sent and no temperature is', async () => {
    const body = await bodySentFor(ask());

    expect(harness.anthropic.requests[0]?.path).toBe('/v1/messages');
    expect(body).toMatchObject({ model: MODEL, stream: true, max_tokens: 256 });
    expect(body.system).toEqual([{ type: 'text', text: SYSTEM, cache_control: { type: 'ephemeral' } }]);
    expect(body).not.toHaveProperty('temperature');
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'What is a monad?' }] }]);
  });

  it('when more output is asked for than Claude 3.5 Haiku allows, then max_tokens is clamped to 8,192', async () => {
    const body = await bodySentFor(ask({ model: 'claude-3-5-haiku', maxOutputTokens: 50_000 }));

    expect(body.max_tokens).toBe(8_192);
  });

  it('when the history before the newest message is long, then its last block carries a second cache breakpoint', async () => {
    const longAnswer = 'A monad is a way of sequencing computations. '.repeat(
      Math.ceil(CACHEABLE_PREFIX_CHARACTERS / 40),
    );
    const body = await bodySentFor(
      ask({
        messages: [
          { role: 'user', content: 'Explain monads in depth.' },
          { role: 'assistant', content: longAnswer },
          { role: 'user', content: 'Shorter, please.' },
        ],
      }),
    );

    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Explain monads in depth.' }] },
      {
        role: 'assistant',
        content: [{ type: 'text', text: longAnswer, cache_control: { type: 'ephemeral' } }],
      },
      { role: 'user', content: [{ type: 'text', text: 'Shorter, please.' }] },
    ]);
  });

  it('when the history is short, then only the system prompt has a cache breakpoint', async () => {
    const body = await bodySentFor(
      ask({
        messages: [
          { role: 'user', content: 'Hi!' },
          { role: 'assistant', content: 'Hello! How can I help?' },
          { role: 'user', content: 'What is a monad?' },
        ],
      }),
    );

    expect(JSON.stringify(body.messages)).not.toContain('cache_control');
    expect(body.system[0].cache_control).toEqual({ type: 'ephemeral' });
  });

  it('when two messages of one role follow each other, then they are merged into one turn', async () => {
    const body = await bodySentFor(
      ask({
        messages: [
          { role: 'user', content: 'alice: what is a monad?' },
          { role: 'user', content: 'bob: and a functor?' },
          { role: 'assistant', content: 'Both are patterns.' },
          { role: 'assistant', content: 'Let me explain.' },
          { role: 'user', content: 'alice: go on' },
        ],
      }),
    );

    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'alice: what is a monad?' },
          { type: 'text', text: 'bob: and a functor?' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Both are patterns.' },
          { type: 'text', text: 'Let me explain.' },
        ],
      },
      { role: 'user', content: [{ type: 'text', text: 'alice: go on' }] },
    ]);
  });

  it('when the user attaches an image and a PDF, then they go as a base64 image block and a base64 document block', async () => {
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const pdf = new TextEncoder().encode('%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n');
    const attachments: ChatMessage = {
      role: 'user',
      content: [
        { type: 'text', text: 'Does the chart match the report?' },
        { type: 'image', mediaType: 'image/png', data: png, width: 800, height: 600 },
        { type: 'pdf', data: pdf, name: 'report.pdf' },
      ],
    };
    const body = await bodySentFor(ask({ messages: [attachments] }));

    expect(body.messages[0].content).toEqual([
      { type: 'text', text: 'Does the chart match the report?' },
      {
        type: 'image',
        source: { type: 'base64', media_type: 'image/png', data: Buffer.from(png).toString('base64') },
      },
      {
        type: 'document',
        source: { type: 'base64', media_type: 'application/pdf', data: Buffer.from(pdf).toString('base64') },
        title: 'report.pdf',
      },
    ]);
  });
});

describe('what a streamed call returns', () => {
  it('when the stream finishes, then usage joins message_start (input side) and message_delta (output)', async () => {
    harness.anthropic.script({
      type: 'stream',
      chunks: ['A monad ', 'is a ', 'monoid.'],
      stopReason: 'end_turn',
      usage: {
        inputTokens: 25,
        outputTokens: 503,
        cacheReadInputTokens: 1_800,
        cacheCreationInputTokens: 400,
      },
    });
    const deltas: string[] = [];
    const result = await harness.anthropicModel.stream(ask(), (delta) => deltas.push(delta));

    expect(deltas).toEqual(['A monad ', 'is a ', 'monoid.']);
    expect(result).toEqual({
      text: 'A monad is a monoid.',
      finishReason: 'stop',
      // Anthropic's three input counts are disjoint; the normalised shape keeps them apart.
      usage: { inputTokens: 25, cachedInputTokens: 1_800, cacheWriteTokens: 400, outputTokens: 503 },
      provider: 'anthropic',
      model: MODEL,
      timeToFirstTokenMs: expect.any(Number),
    });
  });

  it.each([
    ['max_tokens', 'length'],
    ['refusal', 'refusal'],
    ['stop_sequence', 'stop'],
  ] as const)("when Claude stops with '%s', then the finish reason is '%s'", async (wire, expected) => {
    harness.anthropic.script({ type: 'stream', text: 'Once upon a time', stopReason: wire });
    const result = await harness.anthropicModel.stream(ask());

    expect(result).toMatchObject({ text: 'Once upon a time', finishReason: expected });
  });

  it('when the stream ends with no message_delta stop reason, then it is a truncation with the text and usage so far', async () => {
    harness.anthropic.script({
      type: 'stream',
      chunks: ['The answer ', 'is '],
      stopReason: null,
      usage: { inputTokens: 1_000, outputTokens: 40 },
    });
    const failure = await failureOf(harness.anthropicModel.stream(ask()));

    expect(failure).toBeInstanceOf(ProviderError);
    expect(failure).toMatchObject({
      provider: 'anthropic',
      kind: 'truncated',
      details: { partialText: 'The answer is ', usage: { inputTokens: 1_000 } },
    });
  });
});

describe('our own bugs', () => {
  it('when our delta callback throws, then that error surfaces unchanged, not as a ProviderError', async () => {
    const bug = new RangeError('Discord message too long');
    harness.anthropic.script({ type: 'stream', chunks: ['one ', 'two '] });
    const failure = await failureOf(
      harness.anthropicModel.stream(ask(), () => {
        throw bug;
      }),
    );

    expect(failure).toBe(bug);
  });

  // As in openai.test.ts: text deltas already received after the callback threw are not delivered, so the
  // first error, the root cause, is the one that surfaces.
  it('when our delta callback throws, then the deltas still buffered are not delivered and its first error surfaces', async () => {
    harness.anthropic.script({ type: 'stream', chunks: ['one ', 'two ', 'three ', 'four'] });
    const thrown: Error[] = [];
    const failure = await failureOf(
      harness.anthropicModel.stream(ask(), (delta) => {
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
  const VERDICT_SCHEMA = {
    type: 'object',
    properties: { isGoodEnough: { type: 'boolean' }, reason: { type: 'string' } },
    required: ['isGoodEnough', 'reason'],
    additionalProperties: false,
  };

  it('when a structured call is made, then it sends output_config.format as a JSON schema and returns the parsed value', async () => {
    harness.anthropic.script({
      type: 'message',
      text: '{"isGoodEnough":true,"reason":"Accurate and short."}',
      usage: { inputTokens: 300, outputTokens: 12 },
    });
    const result = await harness.anthropicModel.structured({
      ...ask(),
      schemaName: 'draft_verdict',
      schema: VERDICT_SCHEMA,
    });

    const [request] = harness.anthropic.requests;
    expect(request?.body.stream).toBeUndefined();
    expect(request?.body.output_config).toEqual({ format: { type: 'json_schema', schema: VERDICT_SCHEMA } });
    expect(request?.body.max_tokens).toBe(256);
    expect(result).toMatchObject({
      value: { isGoodEnough: true, reason: 'Accurate and short.' },
      finishReason: 'stop',
      usage: { inputTokens: 300, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 12 },
      provider: 'anthropic',
    });
  });

  it('when a structured answer is cut off at max_tokens, then there is no value', async () => {
    harness.anthropic.script({ type: 'message', text: '{"isGoodEnough":tr', stopReason: 'max_tokens' });
    const result = await harness.anthropicModel.structured({
      ...ask(),
      schemaName: 'draft_verdict',
      schema: VERDICT_SCHEMA,
    });

    expect(result).toMatchObject({ value: undefined, finishReason: 'length' });
  });
});

describe('what a call reserves for a PDF (estimateInputTokens)', () => {
  const CONTEXT_WINDOW = 200_000;
  const askAbout = (pdf: Uint8Array, overrides: Partial<ChatRequest> = {}): ChatRequest =>
    ask({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Summarise this' },
            { type: 'pdf', data: pdf, name: 'report.pdf' },
          ],
        },
      ],
      ...overrides,
    });
  /** The estimate of everything but the PDF: the text's byte bound. */
  const withoutPdf = (request: ChatRequest) => estimateAnthropicInputTokens(request, CONTEXT_WINDOW, () => 0);
  const countRequests = () => harness.anthropic.requests.filter(isCountRequest);

  it('when a request has no PDF, then the estimate is a number at once and Anthropic is asked nothing', () => {
    const estimate = harness.anthropicModel.estimateInputTokens(ask());

    expect(typeof estimate).toBe('number');
    expect(harness.anthropic.requests).toEqual([]);
  });

  for (const [name, pdf, pages] of [
    ['a normal 3-page PDF', plainPdf(3), 3],
    ['a 50-page PDF whose pages spell their type /P#61ge', escapedNamePdf(50), 50],
    ['a 50-page PDF whose pages sit in a predictor-encoded object stream', objectStreamPdf(50), 50],
  ] as const) {
    it(`when the request carries ${name}, then Anthropic counts the PDF alone and the estimate adds a tenth to its count`, async () => {
      harness.anthropic.knowPdf(pdf, pages);
      const request = askAbout(pdf);

      const estimate = await harness.anthropicModel.estimateInputTokens(request);

      const [count] = countRequests();
      expect(harness.anthropic.requests).toHaveLength(1);
      // Sent by the SDK (its key, as a bearer token in SDK 1.x, and version), the body streamed as JSON.
      expect(count?.headers).toMatchObject({
        'content-type': 'application/json',
        authorization: 'Bearer sk-ant-test',
        'anthropic-version': expect.any(String),
      });
      expect(count?.body).toEqual({
        model: MODEL,
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'document',
                source: { type: 'base64', media_type: 'application/pdf', data: base64Of(pdf) },
                title: 'report.pdf',
              },
            ],
          },
        ],
      });
      // The fake counts the PDF's real pages, its title and a little framing.
      const counted = pages * PDF_PAGE_TOKENS + 8 + 4 + 4;
      expect(estimate).toBe(withoutPdf(request) + Math.ceil(counted * 1.1));
      expect(estimate).toBeGreaterThan(pages * PDF_PAGE_TOKENS);
    });
  }

  // Built whole, as the SDK builds a body given as an object (base64, JSON, UTF-8), a 31 MB PDF's count
  // request held the event loop for over a second; the old page scan held it for most of one too. How long
  // the loop is held is measured outside the tests; here, what could not be true of a whole-file pass.
  it('when a 4 MB PDF is estimated, then no byte is read before the estimate returns, and the count request reads the file 48 KiB at a time', async () => {
    const bytes = Buffer.concat([plainPdf(3), Buffer.alloc(4 * 1024 * 1024, 0x20)]);
    harness.anthropic.knowPdf(bytes, 3);
    const reads: PropertyKey[] = [];
    const data = new Proxy(bytes, {
      get(target, property) {
        reads.push(property);
        return Reflect.get(target, property, target);
      },
    });

    const pending = harness.anthropicModel.estimateInputTokens(askAbout(data));
    // Its length (for the upload's timeout) is all that is read at once.
    expect(reads.filter((property) => property !== 'byteLength')).toEqual([]);
    await pending;

    // Each piece is one view of the buffer: as many as 48 KiB pieces in the file, and none larger.
    const pieces = Math.ceil(bytes.length / (48 * 1024));
    expect(reads.filter((property) => property === 'buffer')).toHaveLength(pieces);
    expect(countRequests()[0]?.body.messages[0].content[0].source.data).toBe(base64Of(bytes));
  });

  it('when the same PDF is estimated again (a retry, a refinement), then Anthropic is asked once', async () => {
    const pdf = escapedNamePdf(50);
    harness.anthropic.knowPdf(pdf, 50);
    const first = await harness.anthropicModel.estimateInputTokens(askAbout(pdf));
    const refinement = askAbout(pdf, { system: 'Improve on the draft.' });

    const second = await harness.anthropicModel.estimateInputTokens(refinement);

    expect(countRequests()).toHaveLength(1);
    expect(second - withoutPdf(refinement)).toBe(first - withoutPdf(askAbout(pdf)));
  });

  it('when the PDF goes to another model, then it is counted again (counts are per model)', async () => {
    const pdf = plainPdf(3);
    harness.anthropic.knowPdf(pdf, 3);
    await harness.anthropicModel.estimateInputTokens(askAbout(pdf));
    await harness.anthropicModel.estimateInputTokens(askAbout(pdf, { model: 'claude-3-5-haiku' }));

    expect(countRequests().map((request) => request.body.model)).toEqual([MODEL, 'claude-3-5-haiku']);
  });

  it('when the count is over the context window, then the estimate is the window', async () => {
    const pdf = plainPdf(100);
    harness.anthropic.knowPdf(pdf, 100);

    expect(await harness.anthropicModel.estimateInputTokens(askAbout(pdf))).toBe(CONTEXT_WINDOW);
  });

  it('when counting fails, then the estimate is the context window, and the next estimate asks again', async () => {
    const pdf = plainPdf(3);
    harness.anthropic.knowPdf(pdf, 3);
    harness.anthropic.scriptCount(anthropicErrors.overloaded());

    expect(await harness.anthropicModel.estimateInputTokens(askAbout(pdf))).toBe(CONTEXT_WINDOW);
    expect(await harness.anthropicModel.estimateInputTokens(askAbout(pdf))).toBeLessThan(20_000);
    expect(countRequests()).toHaveLength(2);
  });

  it('when counting takes longer than its timeout, then the request is abandoned and the estimate is the context window', async () => {
    const model = new AnthropicChatModel(
      new Anthropic({ apiKey: 'sk-ant-test', baseURL: harness.anthropic.url, maxRetries: 0 }),
      { firstTokenTimeoutMs: 5_000, countTimeoutMs: 100 },
    );
    const pdf = plainPdf(3);
    harness.anthropic.knowPdf(pdf, 3);
    harness.anthropic.scriptCount({ type: 'hang' });

    expect(await model.estimateInputTokens(askAbout(pdf))).toBe(CONTEXT_WINDOW);
    await vi.waitFor(() => expect(harness.anthropic.closedEarly).toBe(1));
  });

  it('when the caller aborts while the PDF is counted, then the estimate fails as aborted', async () => {
    const pdf = plainPdf(3);
    harness.anthropic.knowPdf(pdf, 3);
    harness.anthropic.scriptCount({ type: 'hang' });
    const controller = new AbortController();

    const estimate = harness.anthropicModel.estimateInputTokens(askAbout(pdf, { signal: controller.signal }));
    await vi.waitFor(() => expect(countRequests()).toHaveLength(1));
    controller.abort();

    const failure = await failureOf(Promise.resolve(estimate));
    expect(failure).toBeInstanceOf(ProviderError);
    expect(failure).toMatchObject({ provider: 'anthropic', kind: 'aborted' });
  });
});
