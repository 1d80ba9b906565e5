import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { anthropicErrors } from '../fakes/anthropic.js';
import { SMART_MODEL } from '../support/ledger.js';
import { OWNER, type ProviderHarness, startProviderHarness } from '../support/providers.js';

/*
 * What the circuit-state metric reads (the gateway's circuitStates()), against the real gateway, SDKs and
 * loopback providers: cockatiel leaves a breaker "open" until a call is tried, but once its rest is over
 * the next call is a trial, and an operator should see half-open, not open.
 */

let harness: ProviderHarness;
beforeEach(async () => {
  harness = await startProviderHarness();
});
afterEach(async () => {
  vi.useRealTimers();
  await harness.close();
});

const direct = () => ({
  owner: OWNER,
  purpose: 'direct' as const,
  request: {
    model: SMART_MODEL,
    system: 'You are tierbot.',
    messages: [{ role: 'user' as const, content: 'What is a monad?' }],
    maxOutputTokens: 64,
  },
});

describe("a provider's circuit, as the metric reads it", () => {
  it('when a provider fails five times, then it reads open; once its 30 s rest is over, half-open; after a good trial, closed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    expect(harness.gateway.circuitStates()).toEqual({ openai: 'closed', anthropic: 'closed' });
    harness.anthropic.script(...Array.from({ length: 5 }, () => anthropicErrors.server()));
    harness.openai.script({ type: 'stream', text: 'Mini instead.', finishReason: 'stop' });
    await harness.gateway.stream(direct());
    expect(harness.gateway.circuitStates()).toEqual({ openai: 'closed', anthropic: 'open' });

    vi.advanceTimersByTime(30_001);
    expect(harness.gateway.circuitStates()).toEqual({ openai: 'closed', anthropic: 'half-open' });

    harness.anthropic.script({ type: 'stream', text: 'Back.', stopReason: 'end_turn' });
    await harness.gateway.stream(direct());
    expect(harness.gateway.circuitStates()).toEqual({ openai: 'closed', anthropic: 'closed' });
  });
});
