import type { BudgetDenial, LimitStanding } from './budget.js';
import type { Micros } from './money.js';

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
  /** The member's roles in the server, for role budgets. */
  roleIds?: readonly string[] | undefined;
  provider: string;
  model: string;
  purpose: CallPurpose;
}

export interface ReserveRequest extends CallContext {
  /** The worst case of the call, from {@link UsageLedger.worstCaseMicros}. */
  amountMicros: Micros;
}

export type ReserveResult =
  | {
      ok: true;
      requestId: string;
      amountMicros: Micros;
      /** The limits the reservation was checked against, as they stood before it was added. */
      standings?: readonly LimitStanding[] | undefined;
    }
  | { ok: false; denial: BudgetDenial };

export type SettleResult =
  | { status: 'settled'; costMicros: Micros; smartCostMicros: Micros; reservedMicros: Micros }
  /** Already settled, released or swept: settling twice changes nothing. */
  | { status: 'duplicate' }
  | { status: 'unknown' };
