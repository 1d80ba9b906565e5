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

  async settle(requestId: string, usage: TokenUsage): Promise<SettleResult> {
    const result = await this.ledger.settle(requestId, usage);
    this.#closed(requestId, result, 'settled', usage);
    return result;
  }

  async release(requestId: string, reportedUsage?: TokenUsage): Promise<SettleResult> {
    const result = await this.ledger.release(requestId, reportedUsage);
    this.#closed(requestId, result, 'failed', reportedUsage ?? NO_USAGE);
    return result;
  }

  async cancel(requestId: string): Promise<void> {
    await this.ledger.cancel(requestId);
    if (this.#open.delete(requestId)) this.telemetry.reservationClosed();
  }

  #closed(requestId: string, result: SettleResult, outcome: 'settled' | 'failed', usage: TokenUsage): void {
    const call = this.#open.get(requestId);
    if (!call) return;
    this.#open.delete(requestId);
    this.telemetry.reservationClosed();
    // A duplicate or unknown close wrote no row: nothing to count.
    if (result.status === 'settled') {
      this.telemetry.callCharged({ ...call, outcome, usage, costMicros: result.costMicros });
    }
  }
}

/** The ledger with its reports to `telemetry`; the ledger itself when metrics are off (no cost at all). */
export function meteredLedger(ledger: UsageLedger, telemetry: Telemetry): UsageLedger {
  return telemetry === NO_TELEMETRY ? ledger : new MeteredLedger(ledger, telemetry);
}
