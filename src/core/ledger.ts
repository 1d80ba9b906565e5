import type { BudgetDenial } from './budget.js';
import type { Micros } from './money.js';
import type { TokenUsage } from './pricing.js';

/** Why a model call was made; every ledger row records it. */
export const CALL_PURPOSES = ['draft', 'check', 'refine', 'direct', 'fallback', 'triage'] as const;
export type CallPurpose = (typeof CALL_PURPOSES)[number];

/** Who is asking, where, and for which model call. `guildId` is null in direct messages. */
export interface CallContext {
  requestId: string;
  turnId: string;
  userId: string;
  guildId: string | null;
  channelId: string | null;
  provider: string;
  model: string;
  purpose: CallPurpose;
}

export interface ReserveRequest extends CallContext {
  /** The worst case of the call, from {@link UsageLedger.worstCaseMicros}. */
  amountMicros: Micros;
}

export type ReserveResult =
  { ok: true; requestId: string; amountMicros: Micros } | { ok: false; denial: BudgetDenial };

export type SettleResult =
  | { status: 'settled'; costMicros: Micros; smartCostMicros: Micros; reservedMicros: Micros }
  /** Already settled, released or swept: settling twice changes nothing. */
  | { status: 'duplicate' }
  | { status: 'unknown' };

/**
 * The ledger as the engine and the provider gateway see it: reserve a call's worst case before it
 * starts, settle its real usage after, release it if it failed. Implemented on SQLite in src/db/.
 */
export interface UsageLedger {
  worstCaseMicros(model: string, estimatedInputTokens: number, maxOutputTokens: number): Micros;
  reserve(request: ReserveRequest): ReserveResult;
  settle(requestId: string, usage: TokenUsage): SettleResult;
  release(requestId: string, reportedUsage?: TokenUsage): SettleResult;
  /** Frees a reservation whose call was never sent (nothing reached a provider): no ledger row. */
  cancel(requestId: string): void;
}
