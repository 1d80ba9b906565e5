import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProvidersUnavailableError } from '../../src/core/calls.js';
import type { ChatRequest } from '../../src/core/chat.js';
import { ProviderError } from '../../src/core/chat.js';
import { anthropicErrors } from '../fakes/anthropic.js';
import { openaiErrors } from '../fakes/openai.js';
import { FAST_MODEL, SMART_MODEL } from '../support/ledger.js';
import { ledgerRows, OWNER, type ProviderHarness, startProviderHarness } from '../support/providers.js';

let harness: ProviderHarness;
beforeEach(async () => {
  harness = await startProviderHarness({ firstTokenTimeoutMs: 300 });
});
afterEach(async () => {
  vi.useRealTimers();
  expect(await harness.ledger.openReservationCount()).toBe(0);
  expect([...harness.openai.unexpected, ...harness.anthropic.unexpected]).toEqual([]);
  await harness.close();
});

const ask = (model: string, text = 'What is a monad?'): ChatRequest => ({
  model,
  system: 'You are tierbot.',
  messages: [{ role: 'user', content: text }],
  maxOutputTokens: 256,
});

const draft = (model = FAST_MODEL) => ({ owner: OWNER, purpose: 'draft' as const, request: ask(model) });

describe('retries', () => {
  it('when OpenAI answers 429 once, then the call waits the retry-after and succeeds on a second, separately charged attempt', async () => {
    harness.openai.script(openaiErrors.rateLimited(2), {
      type: 'stream',
      text: 'A monad is a monoid.',
      finishReason: 'stop',
    });
    const deltas: string[] = [];
    const outcome = await harness.gateway.stream(draft(), (delta) => deltas.push(delta));

    expect(outcome).toMatchObject({
      ok: true,
      result: { text: 'A monad is a monoid.', finishReason: 'stop' },
    });
    expect(deltas.join('')).toBe('A monad is a monoid.');
    expect(harness.openai.requests).toHaveLength(2);
    expect(harness.waits).toEqual([2_000]);
    expect((await ledgerRows(harness)).map((row) => [row.purpose, row.outcome])).toEqual([
      ['draft', 'failed'],
      ['draft', 'settled'],
    ]);
  });

  it('when retry-after is longer than the cap, then the wait is capped at 10 s', async () => {
    harness.openai.script(openaiErrors.rateLimited(120), {
      type: 'stream',
      text: 'ok',
      finishReason: 'stop',
    });
    await harness.gateway.stream(draft());
    expect(harness.waits).toEqual([10_000]);
  });

  it('when the account is out of quota, then OpenAI sees exactly one request and the other provider answers', async () => {
    harness.openai.script(openaiErrors.insufficientQuota());
    harness.anthropic.script({ type: 'stream', text: 'Haiku here.', stopReason: 'end_turn' });
    const outcome = await harness.gateway.stream(draft());

    expect(harness.openai.requests).toHaveLength(1);
    expect(outcome).toMatchObject({
      ok: true,
      result: { text: 'Haiku here.', provider: 'anthropic', model: SMART_MODEL },
      fallback: { from: 'openai', reason: 'OpenAI is unavailable' },
    });
    expect(harness.waits).toEqual([]);
  });

  it('when a request is refused as invalid (4xx), then it is neither retried nor sent elsewhere', async () => {
    harness.openai.script(openaiErrors.badRequest('messages: too long'));
    await expect(harness.gateway.stream(draft())).rejects.toMatchObject({
      kind: 'invalid_request',
      status: 400,
    });
    expect(harness.openai.requests).toHaveLength(1);
    expect(harness.anthropic.requests).toHaveLength(0);
  });
});

describe('fallback and circuit breaking', () => {
  it('when Claude is overloaded (529) five times, then its circuit opens and GPT-4o Mini answers as a fallback', async () => {
    harness.anthropic.script(...Array.from({ length: 5 }, () => anthropicErrors.overloaded()));
    harness.openai.script({ type: 'stream', text: 'Mini here.', finishReason: 'stop' });
    const outcome = await harness.gateway.stream({
      owner: OWNER,
      purpose: 'direct',
      request: ask(SMART_MODEL),
    });

    expect(outcome).toMatchObject({
      ok: true,
      result: { text: 'Mini here.', provider: 'openai' },
      fallback: { from: 'anthropic', reason: 'Anthropic is unavailable' },
    });
    expect(harness.anthropic.requests).toHaveLength(5);
    expect(harness.gateway.isAvailable('anthropic')).toBe(false);
    expect((await ledgerRows(harness)).map((row) => row.purpose)).toEqual([
      'direct',
      'direct',
      'direct',
      'direct',
      'direct',
      'fallback',
    ]);
  });

  it('when a circuit is open, then calls skip that provider until 30 s have passed, then one trial goes through', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    harness.anthropic.script(...Array.from({ length: 5 }, () => anthropicErrors.server()));
    harness.openai.script(
      { type: 'stream', text: 'one', finishReason: 'stop' },
      { type: 'stream', text: 'two', finishReason: 'stop' },
    );
    await harness.gateway.stream({ owner: OWNER, purpose: 'direct', request: ask(SMART_MODEL) });
    const skipped = await harness.gateway.stream({
      owner: OWNER,
      purpose: 'direct',
      request: ask(SMART_MODEL),
    });
    expect(skipped).toMatchObject({ ok: true, result: { text: 'two' }, fallback: { from: 'anthropic' } });
    expect(harness.anthropic.requests).toHaveLength(5);

    vi.advanceTimersByTime(30_001);
    harness.anthropic.script({ type: 'stream', text: 'back', stopReason: 'end_turn' });
    const trial = await harness.gateway.stream({
      owner: OWNER,
      purpose: 'direct',
      request: ask(SMART_MODEL),
    });
    expect(trial).toMatchObject({ ok: true, result: { text: 'back', provider: 'anthropic' } });
    expect(harness.gateway.isAvailable('anthropic')).toBe(true);
  });

  it('when requests fail with 4xx, then the circuit never opens', async () => {
    for (let index = 0; index < 6; index += 1) {
      harness.anthropic.script(anthropicErrors.badRequest('bad'));
      await expect(
        harness.gateway.stream({ owner: OWNER, purpose: 'direct', request: ask(SMART_MODEL) }),
      ).rejects.toBeInstanceOf(ProviderError);
    }
    expect(harness.gateway.isAvailable('anthropic')).toBe(true);
  });

  it('when both providers are down, then the caller gets a typed error and nothing is charged', async () => {
    harness.openai.script(...Array.from({ length: 5 }, () => openaiErrors.server()));
    harness.anthropic.script(...Array.from({ length: 5 }, () => anthropicErrors.overloaded()));
    const failure = await harness.gateway.stream(draft()).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(ProvidersUnavailableError);
    expect((failure as ProvidersUnavailableError).failures.map((error) => error.provider)).toEqual([
      'openai',
      'anthropic',
    ]);
    expect((failure as ProvidersUnavailableError).costMicros).toBe(0);
    expect((await ledgerRows(harness)).every((row) => row.cost_micros === 0)).toBe(true);
    expect(harness.openai.requests).toHaveLength(5);
    expect(harness.anthropic.requests).toHaveLength(5);
  });
});

describe('streams that go wrong', () => {
  it('when a stream is cut mid-answer, then it is not restarted: the caller gets the text shown, ending in error, and the reported usage is charged', async () => {
    harness.anthropic.script({
      type: 'stream',
      chunks: ['The answer ', 'is ', 'forty', '-two'],
      cutAfterChunks: 2,
      usage: { inputTokens: 1_000, outputTokens: 40 },
    });
    const deltas: string[] = [];
    const outcome = await harness.gateway.stream(
      { owner: OWNER, purpose: 'direct', request: ask(SMART_MODEL) },
      (delta) => deltas.push(delta),
    );

    expect(outcome).toMatchObject({
      ok: true,
      result: { text: 'The answer is ', finishReason: 'error', provider: 'anthropic', model: SMART_MODEL },
    });
    expect(deltas.join('')).toBe('The answer is ');
    // message_start reported 1,000 input tokens: $1.00/M on Haiku 4.5 → 1,000 micro-USD.
    expect(await ledgerRows(harness)).toEqual([
      expect.objectContaining({ outcome: 'failed', input_tokens: 1_000, cost_micros: expect.any(Number) }),
    ]);
    expect(outcome.costMicros).toBe(Number((await ledgerRows(harness))[0]?.cost_micros));
    expect(outcome.costMicros).toBeGreaterThanOrEqual(1_000);
    expect(harness.anthropic.requests).toHaveLength(1);
    expect(harness.openai.requests).toHaveLength(0);
  });

  it('when an OpenAI stream ends without a finish reason, then it ends in error with its text, charged an estimate (OpenAI bills what it streamed but reports usage only at the end)', async () => {
    harness.openai.script({ type: 'stream', chunks: ['half an'], finishReason: null });
    const outcome = await harness.gateway.stream(draft());
    expect(outcome).toMatchObject({
      ok: true,
      result: { text: 'half an', finishReason: 'error', provider: 'openai' },
    });
    expect(outcome.costMicros).toBeGreaterThan(0);
    expect(await ledgerRows(harness)).toEqual([
      expect.objectContaining({ outcome: 'failed', output_tokens: expect.any(Number) }),
    ]);
    expect(Number((await ledgerRows(harness))[0]?.output_tokens)).toBeGreaterThan(0);
  });

  it('when no first token comes in time, then the HTTP request is aborted (the fake sees it closed) and retried', async () => {
    harness.openai.script(
      { type: 'stream', hang: true },
      { type: 'stream', text: 'late but here', finishReason: 'stop' },
    );
    const outcome = await harness.gateway.stream(draft());

    expect(outcome).toMatchObject({ ok: true, result: { text: 'late but here' } });
    expect(harness.openai.closedEarly).toBe(1);
    expect(harness.openai.requests).toHaveLength(2);
  });

  it('when the caller aborts, then the request is closed, nothing falls back and nothing stays reserved', async () => {
    harness.openai.script({ type: 'stream', hang: true });
    const controller = new AbortController();
    const pending = harness.gateway.stream({
      ...draft(),
      request: { ...ask(FAST_MODEL), signal: controller.signal },
    });
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toMatchObject({ kind: 'aborted' });
    expect(harness.anthropic.requests).toHaveLength(0);
  });
});

describe('budgets', () => {
  it('when the user cannot afford the worst case, then no model is called', async () => {
    await harness.close();
    harness = await startProviderHarness({ userBudgetMicros: 10 });
    const outcome = await harness.gateway.stream(draft());
    expect(outcome).toMatchObject({ ok: false, denial: { limit: { kind: 'user' } }, providerMs: 0 });
    expect(harness.openai.requests).toHaveLength(0);
    expect(await ledgerRows(harness)).toEqual([]);
  });
});

describe('provider time (what the bot overhead figures subtract)', () => {
  it('when the provider takes 150 ms to its first token, then the call reports at least that long inside the provider', async () => {
    harness.openai.script({ type: 'stream', text: 'slow', firstChunkDelayMs: 150, finishReason: 'stop' });
    const outcome = await harness.gateway.stream(draft());
    expect(outcome.ok).toBe(true);
    expect(outcome.providerMs).toBeGreaterThanOrEqual(150);
  });

  it('when the other provider answers after the first failed, then the time of both attempts counts', async () => {
    // OpenAI waits 100 ms, then its stream breaks before any text; Claude Haiku then waits 100 ms too.
    harness.openai.script({
      type: 'stream',
      text: 'lost',
      firstChunkDelayMs: 100,
      cutAfterChunks: 0,
      finishReason: 'stop',
    });
    harness.anthropic.script({
      type: 'stream',
      text: 'found',
      firstChunkDelayMs: 100,
      stopReason: 'end_turn',
    });
    const outcome = await harness.gateway.stream(draft());
    expect(outcome).toMatchObject({ ok: true, result: { text: 'found' }, fallback: { from: 'openai' } });
    expect(outcome.providerMs).toBeGreaterThanOrEqual(200);
  });
});

describe('cached-token accounting, from the wire to the ledger', () => {
  it('when OpenAI reports cached prompt tokens, then the row separates them and bills them at the cached rate', async () => {
    harness.openai.script({
      type: 'stream',
      text: 'cached answer',
      finishReason: 'stop',
      usage: { promptTokens: 2_006, completionTokens: 300, cachedTokens: 1_920 },
    });
    const outcome = await harness.gateway.stream(draft());
    // 86 × $0.15/M + 1,920 × $0.075/M + 300 × $0.60/M = 336.9 → 337 micro-USD
    expect(outcome).toMatchObject({ ok: true, costMicros: 337 });
    expect(await ledgerRows(harness)).toEqual([
      expect.objectContaining({
        input_tokens: 86,
        cached_input_tokens: 1_920,
        cache_write_tokens: 0,
        output_tokens: 300,
        cost_micros: 337,
      }),
    ]);
  });

  it('when Anthropic reports cache reads and writes, then each is billed at its own rate', async () => {
    harness.anthropic.script({
      type: 'stream',
      text: 'cached answer',
      stopReason: 'end_turn',
      usage: {
        inputTokens: 25,
        outputTokens: 503,
        cacheReadInputTokens: 1_800,
        cacheCreationInputTokens: 400,
      },
    });
    const outcome = await harness.gateway.stream({
      owner: OWNER,
      purpose: 'direct',
      request: ask(SMART_MODEL),
    });
    // 25 × $1 + 1,800 × $0.10 + 400 × $1.25 + 503 × $5 (per M) = 25 + 180 + 500 + 2,515
    expect(outcome).toMatchObject({ ok: true, costMicros: 3_220, smartCostMicros: 3_220 });
    expect(await ledgerRows(harness)).toEqual([
      expect.objectContaining({
        input_tokens: 25,
        cached_input_tokens: 1_800,
        cache_write_tokens: 400,
        output_tokens: 503,
      }),
    ]);
  });
});
