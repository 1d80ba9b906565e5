import { setTimeout as sleep } from 'node:timers/promises';
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  IsolatedCircuitError,
} from 'cockatiel';
import {
  type Answered,
  CallAbortedError,
  type CallOutcome,
  type CallSpec,
  ProvidersUnavailableError,
} from '../core/calls.js';
import {
  type ChatModel,
  type ChatRequest,
  type ChatResult,
  ProviderError,
  type ProviderName,
  providerLabel,
  type StructuredRequest,
  type StructuredResult,
} from '../core/chat.js';
import { newId } from '../core/ids.js';
import type { CallPurpose } from '../core/ledger.js';
import {
  type CircuitStateName,
  type ModelCaller,
  NO_TELEMETRY,
  type Telemetry,
  type UsageLedger,
} from '../core/ports.js';
import type { Micros } from '../core/money.js';
import { NO_USAGE } from '../core/pricing.js';

/** Retries and circuit breaking, tunable per deployment (defaults from the issue that asked for them). */
export interface GatewayOptions {
  /** No retry starts after this long from the first attempt (a fallback still gets one attempt). */
  deadlineMs: number;
  /** A `retry-after` longer than this is capped: we would rather fall back than keep a user waiting. */
  retryAfterCapMs: number;
  /** Exponential backoff for retries without a hint: base × 2^(attempt−1), with full jitter. */
  backoffBaseMs: number;
  /** Consecutive server-side failures that open a provider's circuit, and how long it stays open. */
  breakerThreshold: number;
  halfOpenAfterMs: number;
}

export const DEFAULT_GATEWAY_OPTIONS: GatewayOptions = {
  deadlineMs: 60_000,
  retryAfterCapMs: 10_000,
  backoffBaseMs: 500,
  breakerThreshold: 5,
  halfOpenAfterMs: 30_000,
};

function costsOf(spend: Spend): { costMicros: Micros; smartCostMicros: Micros; providerMs: number } {
  return {
    costMicros: spend.costMicros,
    smartCostMicros: spend.smartCostMicros,
    providerMs: spend.providerMs,
  };
}

/** A stream that broke after its text began to show: never restarted (the person saw it begin). */
function isCutShort(error: unknown): error is ProviderError {
  return error instanceof ProviderError && error.kind !== 'aborted' && Boolean(error.details.partialText);
}

/**
 * A cut stream as an answer that ended in error: the text shown so far, charged what the provider
 * reported using (the ledger has it already), for the engine to refine or to keep with a warning.
 * Only streamed calls deliver text as it comes, so only they can be cut short.
 */
function cutShort<Result extends ChatResult>(
  error: ProviderError,
  model: string,
  spend: Spend,
): Answered<Result> {
  const result: ChatResult = {
    text: error.details.partialText ?? '',
    finishReason: 'error',
    usage: error.details.usage ?? NO_USAGE,
    model,
    provider: error.provider,
    timeToFirstTokenMs: null,
  };
  return { ok: true, result: result as Result, ...costsOf(spend) };
}

/** An estimate the provider counted: the wait is provider time, like the call's own. */
async function providerCounted(estimate: Promise<number>, spend: Spend): Promise<number> {
  const startedAt = performance.now();
  try {
    return await estimate;
  } finally {
    spend.providerMs += performance.now() - startedAt;
  }
}

/**
 * The caller aborted (in an attempt, or in a retry's wait): the error says what the call's attempts were
 * charged, so that a turn can count an aborted draft's honest charge (see the adapters' usageOfAbort).
 */
function abortedCall(error: unknown, provider: ProviderName, spend: Spend): CallAbortedError {
  const details = error instanceof ProviderError ? error.details : {};
  return new CallAbortedError(
    error instanceof ProviderError ? error.provider : provider,
    spend.costMicros,
    spend.providerMs,
    { usage: details.usage, partialText: details.partialText, cause: error },
  );
}

/** The requested provider's circuit is open: it failed repeatedly and is being given a rest. */
class CircuitOpen extends ProviderError {
  constructor(provider: ProviderName) {
    super(provider, 'overloaded', `${providerLabel(provider)} is failing; skipping it for now`);
  }
}

type Attempt<Result extends ChatResult> = (model: ChatModel, request: ChatRequest) => Promise<Result>;

interface Spend {
  costMicros: Micros;
  smartCostMicros: Micros;
  /** Time inside the adapters' calls, summed over attempts (sub-millisecond: performance.now). */
  providerMs: number;
  /** Whether onStarted was called (once per call, whatever the retries and fallbacks). */
  started?: boolean;
}

/**
 * Every model call goes through here: each attempt reserves its worst case, runs under the provider's
 * circuit breaker, and is settled (or released, charging what the provider reported); retryable failures
 * are retried with backoff before the first token only (a half-shown answer is never silently restarted);
 * and when the requested provider fails, the other provider's model answers, recorded as `fallback`.
 */
export class ModelGateway implements ModelCaller {
  private readonly breakers: Record<ProviderName, ReturnType<typeof circuitBreaker>>;
  /** When each circuit last opened (cockatiel's clock: Date.now). */
  private readonly openedAt: Record<ProviderName, number> = { openai: 0, anthropic: 0 };
  private readonly options: GatewayOptions;
  private readonly now: () => number;
  private readonly wait: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly telemetry: Telemetry;

  constructor(
    private readonly dependencies: {
      models: Record<ProviderName, ChatModel>;
      ledger: UsageLedger;
      /** The model each provider answers with when the other one fails. */
      fallbackModels: Record<ProviderName, string>;
      options?: Partial<GatewayOptions>;
      /** The operator's metrics: failed attempts by kind. */
      telemetry?: Telemetry;
      now?: () => number;
      sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
    },
  ) {
    this.options = { ...DEFAULT_GATEWAY_OPTIONS, ...dependencies.options };
    this.now = dependencies.now ?? Date.now;
    this.telemetry = dependencies.telemetry ?? NO_TELEMETRY;
    this.wait = dependencies.sleep ?? ((ms, signal) => sleep(ms, undefined, { signal }));
    const breaker = () =>
      circuitBreaker(
        // Only server-side failures count: budget denials never reach it, and 4xx pass through untouched.
        handleWhen((error) => error instanceof ProviderError && error.isServerSide),
        {
          halfOpenAfter: this.options.halfOpenAfterMs,
          breaker: new ConsecutiveBreaker(this.options.breakerThreshold),
        },
      );
    this.breakers = { openai: breaker(), anthropic: breaker() };
    for (const provider of ['openai', 'anthropic'] as const) {
      this.breakers[provider].onBreak(() => {
        this.openedAt[provider] = Date.now();
      });
    }
  }

  /** Which provider serves a model: the one whose fallback model it is, else by its name. */
  providerOf(model: string): ProviderName {
    const { fallbackModels } = this.dependencies;
    if (model === fallbackModels.openai) return 'openai';
    if (model === fallbackModels.anthropic) return 'anthropic';
    return model.startsWith('claude') ? 'anthropic' : 'openai';
  }

  /**
   * False while a provider's circuit is open. cockatiel moves an open circuit to half-open only when a
   * call is tried, so availability also comes back once the half-open delay has passed.
   */
  isAvailable(provider: ProviderName): boolean {
    return (
      this.breakers[provider].state !== CircuitState.Open ||
      Date.now() - this.openedAt[provider] >= this.options.halfOpenAfterMs
    );
  }

  /**
   * Each provider's breaker as callers meet it: open while calls are skipped; half-open once a trial call
   * may go through (cockatiel leaves the state open until a call is tried, so the delay is read here too).
   */
  circuitStates(): Record<ProviderName, CircuitStateName> {
    const stateOf = (provider: ProviderName): CircuitStateName => {
      const { state } = this.breakers[provider];
      if (state === CircuitState.Closed) return 'closed';
      if (state === CircuitState.HalfOpen) return 'half-open';
      return state === CircuitState.Open && this.isAvailable(provider) ? 'half-open' : 'open';
    };
    return { openai: stateOf('openai'), anthropic: stateOf('anthropic') };
  }

  stream(spec: CallSpec, onDelta?: (text: string) => void): Promise<CallOutcome> {
    return this.call(spec, (model, request) => model.stream(request, onDelta));
  }

  structured(spec: CallSpec<StructuredRequest>): Promise<CallOutcome<StructuredResult>> {
    return this.call(spec, (model, request) => model.structured({ ...spec.request, ...request }));
  }

  private async call<Result extends ChatResult>(
    spec: CallSpec,
    attempt: Attempt<Result>,
  ): Promise<CallOutcome<Result>> {
    const deadline = this.now() + this.options.deadlineMs;
    const provider = this.providerOf(spec.request.model);
    const spend: Spend = { costMicros: 0, smartCostMicros: 0, providerMs: 0 };
    let failure: ProviderError;
    try {
      return await this.withRetries(provider, spec, spec.purpose, attempt, deadline, spend);
    } catch (error) {
      if (spec.request.signal?.aborted) throw abortedCall(error, provider, spend);
      if (isCutShort(error)) return cutShort<Result>(error, spec.request.model, spend);
      if (!(error instanceof ProviderError) || !error.warrantsFallback) throw error;
      if (spec.fallback === false)
        throw new ProvidersUnavailableError([error], spend.costMicros, spend.providerMs);
      failure = error;
    }
    const other: ProviderName = provider === 'openai' ? 'anthropic' : 'openai';
    const fallbackSpec = {
      ...spec,
      request: { ...spec.request, model: this.dependencies.fallbackModels[other] },
    };
    const fallback = { from: provider, reason: `${providerLabel(provider)} is unavailable` };
    try {
      const outcome = await this.withRetries(other, fallbackSpec, 'fallback', attempt, deadline, spend);
      return outcome.ok ? { ...outcome, fallback } : outcome;
    } catch (error) {
      if (spec.request.signal?.aborted) throw abortedCall(error, other, spend);
      if (isCutShort(error)) {
        return { ...cutShort<Result>(error, fallbackSpec.request.model, spend), fallback };
      }
      if (error instanceof ProviderError && error.kind !== 'aborted') {
        throw new ProvidersUnavailableError([failure, error], spend.costMicros, spend.providerMs);
      }
      throw error;
    }
  }

  /**
   * Attempts on one provider until one answers, a failure is final, or the deadline passes. The first
   * attempt always runs (if the circuit allows); retries only start before the deadline.
   */
  private async withRetries<Result extends ChatResult>(
    provider: ProviderName,
    spec: CallSpec,
    purpose: CallPurpose,
    attempt: Attempt<Result>,
    deadline: number,
    spend: Spend,
  ): Promise<CallOutcome<Result>> {
    for (let attemptNumber = 1; ; attemptNumber += 1) {
      try {
        const outcome = await this.attemptOnce(provider, spec, purpose, attempt, spend);
        return outcome;
      } catch (error) {
        if (!(error instanceof ProviderError) || !error.retryable || error instanceof CircuitOpen)
          throw error;
        if (spec.retry === false) throw error;
        if (error.details.partialText) throw error;
        const delay = this.retryDelay(attemptNumber, error.details.retryAfterMs);
        if (this.now() + delay >= deadline) throw error;
        await this.wait(delay, spec.request.signal);
      }
    }
  }

  private async attemptOnce<Result extends ChatResult>(
    provider: ProviderName,
    spec: CallSpec,
    purpose: CallPurpose,
    attempt: Attempt<Result>,
    spend: Spend,
  ): Promise<CallOutcome<Result>> {
    const { ledger } = this.dependencies;
    const model = this.dependencies.models[provider];
    const request = {
      ...spec.request,
      maxOutputTokens: Math.min(spec.request.maxOutputTokens, model.maxOutputTokensOf(spec.request.model)),
    };
    if (!this.isAvailable(provider)) {
      this.telemetry.providerFailed({ provider, kind: 'circuit_open' });
      throw new CircuitOpen(provider);
    }

    const estimate = model.estimateInputTokens(spec.request);
    // Only a request the provider must count first (a PDF to Anthropic) waits; the rest goes on at once.
    const inputTokens = typeof estimate === 'number' ? estimate : await providerCounted(estimate, spend);
    const requestId = newId();
    const reservation = await ledger.reserve({
      ...spec.owner,
      requestId,
      provider,
      model: request.model,
      purpose,
      amountMicros: ledger.worstCaseMicros(request.model, inputTokens, request.maxOutputTokens),
    });
    if (!reservation.ok) return { ok: false, denial: reservation.denial, ...costsOf(spend) };
    if (!spend.started) {
      spend.started = true;
      spec.onStarted?.();
    }

    let result: Result;
    // Provider time: from the adapter's call to its result or error, the breaker's bookkeeping aside.
    let startedAt: number | undefined;
    const timed = () => {
      startedAt = performance.now();
      return attempt(model, request);
    };
    const addProviderTime = () => {
      if (startedAt !== undefined) spend.providerMs += performance.now() - startedAt;
    };
    try {
      result = await this.breakers[provider].execute(timed);
    } catch (error) {
      addProviderTime();
      if (error instanceof BrokenCircuitError || error instanceof IsolatedCircuitError) {
        this.telemetry.providerFailed({ provider, kind: 'circuit_open' });
        await ledger.cancel(requestId);
        throw new CircuitOpen(provider);
      }
      // The caller's own abort (a cancelled turn, a draft the router replaced) is no provider failure.
      if (error instanceof ProviderError && error.kind !== 'aborted') {
        this.telemetry.providerFailed({ provider: error.provider, kind: error.kind });
      }
      const released = await ledger.release(
        requestId,
        error instanceof ProviderError ? error.details.usage : undefined,
      );
      if (released.status === 'settled') {
        spend.costMicros += released.costMicros;
        spend.smartCostMicros += released.smartCostMicros;
      }
      throw error;
    }
    addProviderTime();
    const settled = await ledger.settle(requestId, result.usage);
    if (settled.status === 'settled') {
      spend.costMicros += settled.costMicros;
      spend.smartCostMicros += settled.smartCostMicros;
    }
    return { ok: true, result, ...costsOf(spend) };
  }

  /** Honour the provider's hint, capped; otherwise exponential backoff with full jitter. */
  private retryDelay(attemptNumber: number, retryAfterMs: number | undefined): number {
    if (retryAfterMs !== undefined) return Math.min(retryAfterMs, this.options.retryAfterCapMs);
    const ceiling = Math.min(
      this.options.retryAfterCapMs,
      this.options.backoffBaseMs * 2 ** (attemptNumber - 1),
    );
    return Math.round(Math.random() * ceiling);
  }
}
