import {
  type BudgetDenial,
  findDenial,
  type LimitKind,
  type LimitStanding,
  usageCeiling,
} from '../core/budget.js';
import type { ReserveRequest, ReserveResult, SettleResult } from '../core/ledger.js';
import type { Micros } from '../core/money.js';
import type { Member, UsageLedger } from '../core/ports.js';
import {
  costMicros,
  NO_USAGE,
  type PriceTable,
  type TokenUsage,
  worstCaseCostMicros,
} from '../core/pricing.js';
import {
  concerns,
  type DefaultBudgets,
  limitsOf,
  type PendingCharge,
  standingsOf,
  windowStartsAt,
} from './standings.js';
import type {
  BudgetRow,
  CallOutcome,
  Charge,
  CloseRequest,
  CounterOwner,
  LedgerStore,
  LimitCeiling,
  ReservationRow,
} from './store.js';
import { WriteBehind } from './write-behind.js';

/** A reservation outlives any model call (whose deadline is a minute or so) by a wide margin. */
export const DEFAULT_RESERVATION_TTL_MS = 15 * 60_000;

export interface LedgerOptions extends DefaultBudgets {
  prices: PriceTable;
  /** The model a turn would have used alone: every row also records what its tokens would cost there. */
  smartModel: string;
  reservationTtlMs?: number;
  now?: () => number;
  /**
   * Hears of a settle that could not be written after the call that needed it (it is tried again with
   * the next one; until then its reservation holds the worst case). By default the error is thrown.
   */
  onWriteError?: (error: unknown) => void;
}

/** Who holds this process's reservations: its instance, under a lease (see leases.ts). */
export interface LeaseHolder {
  readonly instanceId: string;
  /**
   * True when the lease is fresh for sure without asking the database: renewed less than half a lease
   * ago by this process's monotonic clock (which runs on while a process is stopped).
   */
  isSurelyFresh(): boolean;
  /** Resolves once the lease is fresh (renewing it, after writing what waits, if it had lapsed). */
  ready(): Promise<void>;
  /** The store found the lease lapsed: the next ready() recovers it. */
  lapsed(): void;
}

/** A reservation this process made and has not closed: what settling it needs, without reading its row. */
interface HeldReservation {
  userId: string;
  guildId: string | null;
  model: string;
  amountMicros: Micros;
  createdAt: number;
}

/** A settle whose cost is known and reported, waiting to be written. */
interface PendingSettle extends PendingCharge {
  usage: TokenUsage;
}

/**
 * The money rules, for every database: reserve a call's worst case before it runs, settle its real cost
 * after, release a failed one; charge reservations left behind at their worst case. A reservation is
 * granted only if spent + reserved + its amount fits every limit that applies, decided inside the store's
 * transaction with the limits' counter rows locked; as long as a call costs no more than it reserved
 * (callers reserve conservative input estimates and the max_tokens they send), settled spend cannot pass a
 * budget, whatever the interleaving of processes and hosts. Settle still records the real cost when it is
 * higher: the ledger never hides money that was spent.
 */
export class Ledger implements UsageLedger {
  private readonly now: () => number;
  private readonly ttlMs: number;
  private readonly held = new Map<string, HeldReservation>();
  /**
   * Per limit, the share of its budget that was spent or held, this call included, at this process's
   * latest reserve: an upper bound on what its spending can have reached since (a call costs at most its
   * reservation), which spares the standings read after most turns.
   */
  private readonly shareBounds = new Map<string, number>();
  private readonly settles: WriteBehind<PendingSettle>;

  constructor(
    private readonly store: LedgerStore,
    private readonly lease: LeaseHolder,
    private readonly options: LedgerOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.ttlMs = options.reservationTtlMs ?? DEFAULT_RESERVATION_TTL_MS;
    this.priceOf(options.smartModel);
    this.settles = new WriteBehind(
      async (settles) => {
        if (this.store.settleHeld) {
          await this.store.settleHeld(
            settles.map((settle) => ({
              ...settle,
              smartCostMicros: costMicros(settle.usage, this.priceOf(this.options.smartModel)),
              windows: windowStartsAt(settle.createdAt),
            })),
          );
          return;
        }
        await this.store.close(
          settles.map(({ requestId, usage }) => ({ requestId, outcome: 'settled', usage })),
          (reservation, request) => this.charge(reservation, request),
        );
      },
      options.onWriteError ??
        ((error) => {
          throw error;
        }),
    );
  }

  worstCaseMicros(model: string, estimatedInputTokens: number, maxOutputTokens: number): Micros {
    return worstCaseCostMicros(this.priceOf(model), estimatedInputTokens, maxOutputTokens);
  }

  async reserve(request: ReserveRequest): Promise<ReserveResult> {
    this.priceOf(request.model);
    const owner = ownerOf(request);
    for (;;) {
      if (!this.lease.isSurelyFresh()) await this.lease.ready();
      const pending = this.settles.pending.filter((settle) => concerns(settle, owner));
      const clockMs = this.now();
      let checked: LimitStanding[] | undefined;
      const outcome = await this.store.reserve<BudgetDenial>(
        {
          requestId: request.requestId,
          turnId: request.turnId,
          userId: request.userId,
          guildId: request.guildId,
          channelId: request.channelId,
          provider: request.provider,
          model: request.model,
          purpose: request.purpose,
          amountMicros: request.amountMicros,
          instanceId: this.lease.instanceId,
          checkLease: !this.lease.isSurelyFresh(),
          owner,
          ttlMs: this.ttlMs,
          clockMs,
          createWindows: windowStartsAt(clockMs),
          ...(pending.length === 0 && {
            ceilingsOf: (budgets: readonly BudgetRow[]) =>
              limitsOf(owner, budgets, this.options).map(({ kind, budget }): LimitCeiling => ({
                kind,
                period: budget.period,
                maxUsedMicros: usageCeiling(budget, request.amountMicros),
              })),
          }),
        },
        pending.map((settle) => settle.requestId),
        (snapshot, openIds) => {
          const unwritten = pending.filter((settle) => openIds.has(settle.requestId));
          const { standings, atMs } = standingsOf(owner, snapshot, this.options, clockMs, unwritten);
          const denial = findDenial(standings, request.amountMicros);
          if (denial) return { ok: false, denied: denial };
          checked = standings;
          this.rememberBounds(standings, request, owner);
          return { ok: true, atMs, windows: windowStartsAt(atMs) };
        },
      );
      if ('lapsed' in outcome) {
        this.lease.lapsed();
        continue;
      }
      if (!outcome.ok) return { ok: false, denial: outcome.denied };
      this.held.set(request.requestId, {
        userId: request.userId,
        guildId: request.guildId,
        model: request.model,
        amountMicros: request.amountMicros,
        createdAt: outcome.atMs,
      });
      return {
        ok: true,
        requestId: request.requestId,
        amountMicros: request.amountMicros,
        standings: checked,
      };
    }
  }

  /**
   * Records what the call really used and frees its reservation. Idempotent per request id.
   *
   * A reservation this process holds is settled write-behind: its cost is known at once and counts in
   * every later reserve and standing of this process, and the row is written after the current piece of
   * work (with other settles, in one transaction), so nobody waits for the commit. Until then other
   * processes see the reservation's worst case, which only errs on the safe side.
   */
  async settle(requestId: string, usage: TokenUsage): Promise<SettleResult> {
    const held = this.held.get(requestId);
    if (!held) return this.closeNow(requestId, 'settled', usage);
    this.held.delete(requestId);
    const cost = costMicros(usage, this.priceOf(held.model));
    if (cost > held.amountMicros) this.forgetBounds(held.userId, held.guildId);
    this.settles.add({ ...held, requestId, usage, costMicros: cost });
    return {
      status: 'settled',
      costMicros: cost,
      smartCostMicros: costMicros(usage, this.priceOf(this.options.smartModel)),
      reservedMicros: held.amountMicros,
    };
  }

  /**
   * Frees the reservation of a call that failed, charging only what the provider reported it used (a
   * stream cut mid-answer still bills its tokens), or nothing.
   */
  release(requestId: string, reportedUsage: TokenUsage = NO_USAGE): Promise<SettleResult> {
    return this.closeNow(requestId, 'failed', reportedUsage);
  }

  /** Frees a reservation whose call never reached a provider (a circuit opened in between): no ledger row. */
  async cancel(requestId: string): Promise<void> {
    this.held.delete(requestId);
    await this.store.cancel(requestId, windowStartsAt);
  }

  /** Writes the settles still waiting; call it before reading the ledger's tables directly. */
  flush(): Promise<void> {
    return this.settles.flush();
  }

  /**
   * Charges reservations left behind at their reserved amount: their call may well have been billed,
   * and the worst case is the only safe figure. Returns how many were swept.
   */
  async sweep(which: { deadInstanceIds: readonly string[] }): Promise<number> {
    await this.flush();
    const stale = await this.store.staleReservations({
      nowMs: this.now(),
      ownInstanceId: this.lease.instanceId,
      deadInstanceIds: which.deadInstanceIds,
    });
    if (stale.length === 0) return 0;
    for (const requestId of stale) this.held.delete(requestId);
    const results = await this.store.close(
      stale.map((requestId) => ({ requestId, outcome: 'swept', usage: NO_USAGE })),
      (reservation, request) => this.charge(reservation, request),
    );
    return results.filter((result) => result.status === 'settled').length;
  }

  /** `standings` of several members, read at one moment in one query (/usage server's top members). */
  async standingsOfMembers(members: readonly Member[]): Promise<LimitStanding[][]> {
    const owners = members.map(ownerOf);
    const pending = this.settles.pending.filter((settle) => owners.some((owner) => concerns(settle, owner)));
    const { snapshots, openIds } = await this.store.snapshots(
      owners,
      pending.map((settle) => settle.requestId),
    );
    const nowMs = this.now();
    return owners.map((owner, index) => {
      // A settle written while the snapshot was read is in the rows, and its reservation gone.
      const unwritten = pending.filter((settle) => concerns(settle, owner) && openIds.has(settle.requestId));
      const snapshot = snapshots[index];
      if (!snapshot) throw new Error('the store returned fewer snapshots than members');
      return standingsOf(owner, snapshot, this.options, nowMs, unwritten).standings;
    });
  }

  /** The limits that apply to a member and how each stands right now (for /usage and /budget show). */
  async standings(member: Member): Promise<LimitStanding[]> {
    const [standings] = await this.standingsOfMembers([member]);
    return standings ?? [];
  }

  /**
   * Whether a member's (or their server's) spending may have reached `share` of its budget: false only
   * when this process's latest reserve for that limit, its call included, stayed below it. Other
   * processes' spending since is not counted, so the answer can come one call late, never wrong.
   */
  mayHaveReached(kind: LimitKind, userId: string, guildId: string | null, share: number): boolean {
    const bound = this.shareBounds.get(boundKey(kind, userId, guildId));
    return bound === undefined || bound >= share;
  }

  /** Reservations still open, of every process (tests and the operator's health view). */
  async openReservationCount(): Promise<number> {
    await this.flush();
    return this.store.openReservationCount();
  }

  /** What closing a reservation charges: the reported usage's cost, or, swept, its reserved worst case. */
  private charge(reservation: ReservationRow, request: CloseRequest): Charge {
    const isSwept = request.outcome === 'swept';
    const cost = isSwept
      ? reservation.amountMicros
      : costMicros(request.usage, this.priceOf(reservation.model));
    if (cost > reservation.amountMicros) this.forgetBounds(reservation.userId, reservation.guildId);
    return {
      costMicros: cost,
      smartCostMicros: isSwept ? cost : costMicros(request.usage, this.priceOf(this.options.smartModel)),
      windows: windowStartsAt(reservation.createdAt),
    };
  }

  private async closeNow(requestId: string, outcome: CallOutcome, usage: TokenUsage): Promise<SettleResult> {
    this.held.delete(requestId);
    await this.flush();
    const [result] = await this.store.close([{ requestId, outcome, usage }], (reservation, request) =>
      this.charge(reservation, request),
    );
    return result ?? { status: 'unknown' };
  }

  private rememberBounds(standings: readonly LimitStanding[], request: ReserveRequest, owner: CounterOwner) {
    for (const standing of standings) {
      const { amountMicros } = standing.budget;
      const committed = standing.spentMicros + standing.reservedMicros + request.amountMicros;
      this.shareBounds.set(
        boundKey(standing.kind, owner.userId, owner.guildId),
        amountMicros === 0 ? 1 : committed / amountMicros,
      );
    }
  }

  /** A call cost more than it reserved (its estimate fell short): the bounds no longer hold. */
  private forgetBounds(userId: string, guildId: string | null): void {
    this.shareBounds.delete(boundKey('user', userId, guildId));
    this.shareBounds.delete(boundKey('server', userId, guildId));
  }

  private priceOf(model: string) {
    const price = this.options.prices.get(model);
    if (!price) throw new Error(`no price for model ${model}: refusing to run it unbilled`);
    return price;
  }
}

function ownerOf(member: Member): CounterOwner {
  return { userId: member.userId, guildId: member.guildId, roleIds: member.roleIds ?? [] };
}

function boundKey(kind: LimitKind, userId: string, guildId: string | null): string {
  return kind === 'user' ? `user|${guildId ?? ''}|${userId}` : `server|${guildId ?? ''}`;
}
