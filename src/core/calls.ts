import type { BudgetDenial } from './budget.js';
import { type ChatRequest, type ChatResult, ProviderError, type ProviderName } from './chat.js';
import type { CallPurpose } from './ledger.js';
import type { Micros } from './money.js';
import type { TokenUsage } from './pricing.js';

/** Who a model call is for: every attempt is charged to them under this turn. */
export interface CallOwner {
  turnId: string;
  userId: string;
  guildId: string | null;
  channelId: string | null;
  /** The member's roles in the server (from the message or interaction), for role budgets. */
  roleIds?: readonly string[] | undefined;
}

export interface CallSpec<Request extends ChatRequest = ChatRequest> {
  owner: CallOwner;
  purpose: CallPurpose;
  request: Request;
  /** Called once, when the first attempt's reservation is granted and the call is about to be sent. */
  onStarted?: () => void;
  /**
   * false: when the provider fails, do not ask the other provider's model (a refinement has the draft to
   * fall back on; the fast model rewriting its own draft would add cost and nothing else).
   */
  fallback?: boolean;
  /**
   * false: a failed attempt is not retried (the router's triage: a retry would hold the draft back longer
   * than the answer is worth).
   */
  retry?: boolean;
}

/** A call that was answered, possibly by the other provider. */
export interface Answered<Result extends ChatResult = ChatResult> {
  ok: true;
  result: Result;
  /** What all attempts of this call cost (failed attempts that billed tokens included). */
  costMicros: Micros;
  /** What the same tokens would have cost on the smart model. */
  smartCostMicros: Micros;
  /** Time spent inside the providers' calls (every attempt, from the SDK call to its result), in ms. */
  providerMs: number;
  /** Set when the other provider answered because the requested one failed. */
  fallback?: { from: ProviderName; reason: string } | undefined;
}

export interface Denied {
  ok: false;
  denial: BudgetDenial;
  costMicros: Micros;
  smartCostMicros: Micros;
  providerMs: number;
}

export type CallOutcome<Result extends ChatResult = ChatResult> = Answered<Result> | Denied;

/**
 * Neither provider could answer (or the one asked, when fallback was off). Nothing was charged beyond what
 * a provider reported using.
 */
export class ProvidersUnavailableError extends Error {
  constructor(
    readonly failures: readonly ProviderError[],
    readonly costMicros: Micros,
    /** Time the failed attempts spent inside the providers' calls, in ms. */
    readonly providerMs = 0,
  ) {
    super(`both model providers are unavailable: ${failures.map((failure) => failure.message).join('; ')}`);
    this.name = 'ProvidersUnavailableError';
  }
}

/**
 * The caller aborted the call through its request's signal (a turn cancelled, or a draft the router
 * replaced): what its attempts were charged travels with it. An `aborted` ProviderError like any other.
 */
export class CallAbortedError extends ProviderError {
  constructor(
    provider: ProviderName,
    readonly costMicros: Micros,
    /** Time the attempts spent inside the providers' calls, in ms. */
    readonly providerMs: number,
    details: { usage?: TokenUsage | undefined; partialText?: string | undefined; cause?: unknown },
  ) {
    super(provider, 'aborted', 'the request was cancelled', details);
    this.name = 'CallAbortedError';
  }
}
