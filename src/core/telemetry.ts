import type { CallPurpose, ReserveRequest, ReserveResult, SettleResult } from './ledger.js';
import type { Micros } from './money.js';
import { NO_TELEMETRY, type Telemetry, type TurnRoute, type UsageLedger } from './ports.js';
import { NO_USAGE, type TokenUsage } from './pricing.js';
import type { TurnResult } from './turn.js';

/** Which way an ended turn went, for the turns metric: the fast model alone, or why the smart one. */
export function routeOf(result: TurnResult): TurnRoute {
  return result.escalation?.source ?? 'fast';
}

/** What a granted reservation is for, kept until it closes: the ledger row's labels. */
interface OpenCall {
  model: string;
  purpose: CallPurpose;
}

/**
 * The ledger, reporting to the operator's metrics what passes through it: how long each reservation
 * took and whether a budget denied it, the reservations open, and every call charged (one per ledger
 * row this process writes), with its tokens and cost as the row holds them. With metrics off the ledger
 * is used as it is: see {@link meteredLedger}.
 */
export class MeteredLedger implements UsageLedger {
  readonly #open = new Map<string, OpenCall>();

  constructor(
    private readonly ledger: UsageLedger,
    private readonly telemetry: Telemetry,
  ) {}

  worstCaseMicros(model: string, estimatedInputTokens: number, maxOutputTokens: number): Micros {
    return this.ledger.worstCaseMicros(model, estimatedInputTokens, maxOutputTokens);
  }

  async reserve(request: ReserveRequest): Promise<ReserveResult> {
    const startedAt = performance.now();
    const result = await this.ledger.reserve(request);
    const latencyMs = performance.now() - startedAt;
    if (!result.ok) {
      const { kind, source } = result.denial.limit;
      this.telemetry.reserved({ latencyMs, denial: { kind, source } });
      return result;
    }
    this.#open.set(request.requestId, { model: request.model, purpose: request.purpose });
    this.telemetry.reserved({ latencyMs });
    const cap = result.standings?.find((standing) => standing.kind === 'server');
    if (cap && request.guildId !== null) {
      const { amountMicros } = cap.budget;
      const committed = cap.spentMicros + cap.reservedMicros + request.amountMicros;
      this.telemetry.serverCapShare({
        guildId: request.guildId,
        share: amountMicros === 0 ? 1 : committed / amountMicros,
        windowEndMs: cap.window.endMs,
      });
    }
    return result;
  }

  settle(requestId: string, usage: TokenUsage): Promise<SettleResult> {
    return this.#close(requestId, 'settled', usage, () => this.ledger.settle(requestId, usage));
  }

  release(requestId: string, reportedUsage?: TokenUsage): Promise<SettleResult> {
    return this.#close(requestId, 'failed', reportedUsage ?? NO_USAGE, () =>
      this.ledger.release(requestId, reportedUsage),
    );
  }

  async cancel(requestId: string): Promise<void> {
    try {
      await this.ledger.cancel(requestId);
    } finally {
      this.#forget(requestId);
    }
  }

  async #close(
    requestId: string,
    outcome: 'settled' | 'failed',
    usage: TokenUsage,
    close: () => Promise<SettleResult>,
  ): Promise<SettleResult> {
    try {
      const result = await close();
      const call = this.#open.get(requestId);
      // A duplicate or unknown close wrote no row: nothing to count.
      if (call && result.status === 'settled') {
        this.telemetry.callCharged({ ...call, outcome, usage, costMicros: result.costMicros });
      }
      return result;
    } finally {
      this.#forget(requestId);
    }
  }

  /**
   * The reservation is no longer this process's to close, whether or not the ledger managed to: one the
   * ledger threw on (the database dropped) stays in the database until the sweep charges it, and the sweep
   * does not pass through here, so waiting for it would leave the gauge counting it for ever.
   */
  #forget(requestId: string): void {
    if (this.#open.delete(requestId)) this.telemetry.reservationClosed();
  }
}

/** The ledger with its reports to `telemetry`; the ledger itself when metrics are off (no cost at all). */
export function meteredLedger(ledger: UsageLedger, telemetry: Telemetry): UsageLedger {
  return telemetry === NO_TELEMETRY ? ledger : new MeteredLedger(ledger, telemetry);
}
