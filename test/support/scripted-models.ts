import type { BudgetDenial } from '../../src/core/budget.js';
import {
  CallAbortedError,
  type CallOutcome,
  type CallSpec,
  ProvidersUnavailableError,
} from '../../src/core/calls.js';
import type { ModelCaller } from '../../src/core/ports.js';
import {
  type ChatRequest,
  type FinishReason,
  ProviderError,
  type StructuredRequest,
  type StructuredResult,
} from '../../src/core/chat.js';
import type { CallPurpose } from '../../src/core/ledger.js';

/**
 * A ModelCaller for the engine's decision rules, keyed by what each call is for (its purpose), with no
 * network, ledger or SDK: which route, when the check runs, when a draft is refined. A call whose purpose
 * the test did not script fails loudly, and so does a test that scripted a call the engine never made
 * (see {@link ScriptedModels.unused}). The end-to-end tests over the real SDKs stand beside these.
 */
export type ScriptedCall = (
  | { text: string; finishReason?: FinishReason }
  | { value: unknown }
  | { denied: true }
  /** Both providers down (or, with fallback off, the one asked). */
  | { unavailable: true }
  /** The provider refused the request (a 4xx). */
  | { refused: true }
  /** Streams `text` (if any), then waits for its signal and ends as an aborted call. */
  | { untilAborted: true; text?: string }
) & {
  /** Answers only once this settles (to order calls that run side by side). */
  after?: Promise<unknown>;
};

/** What each answered call costs here: small round numbers, so sums are easy to read. */
export const SCRIPTED_COST_MICROS = 10;
export const SCRIPTED_SMART_COST_MICROS = 50;
/** What an aborted call is charged here. */
export const SCRIPTED_ABORT_COST_MICROS = 3;

export interface MadeCall {
  purpose: CallPurpose;
  request: ChatRequest;
  /** Whether its signal had been aborted by the time it ended. */
  wasAborted: boolean;
}

export class ScriptedModels implements ModelCaller {
  /** Every call made, in the order made. */
  readonly calls: MadeCall[] = [];
  private readonly scripts = new Map<CallPurpose, ScriptedCall[]>();

  constructor(scripts: Partial<Record<CallPurpose, ScriptedCall | ScriptedCall[]>>) {
    for (const [purpose, script] of Object.entries(scripts)) {
      this.scripts.set(purpose as CallPurpose, Array.isArray(script) ? [...script] : [script]);
    }
  }

  /** Purposes scripted but never called. */
  unused(): CallPurpose[] {
    return [...this.scripts].filter(([, scripts]) => scripts.length > 0).map(([purpose]) => purpose);
  }

  purposes(): CallPurpose[] {
    return this.calls.map((call) => call.purpose);
  }

  stream(spec: CallSpec, onDelta?: (text: string) => void): Promise<CallOutcome> {
    return this.answer(spec, onDelta);
  }

  structured(spec: CallSpec<StructuredRequest>): Promise<CallOutcome<StructuredResult>> {
    return this.answer(spec) as Promise<CallOutcome<StructuredResult>>;
  }

  private async answer(spec: CallSpec, onDelta?: (text: string) => void): Promise<CallOutcome> {
    const made: MadeCall = { purpose: spec.purpose, request: spec.request, wasAborted: false };
    this.calls.push(made);
    const script = this.scripts.get(spec.purpose)?.shift();
    if (!script) throw new Error(`scripted models: no call scripted for purpose "${spec.purpose}"`);
    await script.after;
    const signal = spec.request.signal;
    if ('denied' in script)
      return { ok: false, denial: DENIAL, costMicros: 0, smartCostMicros: 0, providerMs: 0 };
    if ('unavailable' in script) {
      throw new ProvidersUnavailableError([new ProviderError('openai', 'server', 'down')], 0);
    }
    if ('refused' in script) throw new ProviderError('anthropic', 'invalid_request', 'refused (400)');
    spec.onStarted?.();
    if ('untilAborted' in script) {
      if (script.text) onDelta?.(script.text);
      await new Promise<void>((resolve) => {
        if (signal?.aborted) resolve();
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
      made.wasAborted = true;
      throw new CallAbortedError('openai', SCRIPTED_ABORT_COST_MICROS, 0, {
        usage: { inputTokens: 20, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 40 },
      });
    }
    const text = 'text' in script ? script.text : JSON.stringify(script.value);
    if ('text' in script && text !== '') onDelta?.(text);
    made.wasAborted = signal?.aborted ?? false;
    return {
      ok: true,
      result: {
        text,
        finishReason: 'text' in script ? (script.finishReason ?? 'stop') : 'stop',
        usage: { inputTokens: 20, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 10 },
        model: spec.request.model,
        provider: spec.request.model.startsWith('claude') ? 'anthropic' : 'openai',
        timeToFirstTokenMs: 1,
        ...('value' in script ? { value: script.value } : {}),
      },
      costMicros: SCRIPTED_COST_MICROS,
      smartCostMicros: SCRIPTED_SMART_COST_MICROS,
      providerMs: 0,
    };
  }
}

const RESETS_AT_MS = Date.UTC(2030, 0, 1);
const DENIAL: BudgetDenial = {
  limit: {
    kind: 'user',
    source: 'bot-default',
    budget: { amountMicros: 100, period: 'month' },
    window: { startMs: Date.UTC(2029, 11, 1), endMs: RESETS_AT_MS },
    spentMicros: 100,
    reservedMicros: 0,
  },
  requestedMicros: 10,
  remainingMicros: 0,
  resetsAtMs: RESETS_AT_MS,
};

/** A promise and its resolver, to hold a scripted call back until the test lets it go. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}
