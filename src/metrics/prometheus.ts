import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ProviderName } from '../core/chat.js';
import { MICROS_PER_USD } from '../core/money.js';
import type { CircuitStateName, Telemetry } from '../core/ports.js';
import type { TokenUsage } from '../core/pricing.js';

/*
 * The operator's metrics in Prometheus's terms, from what the bot reports through the Telemetry port.
 * Labels are bounded sets the bot chooses (routes, outcomes, the configured models, call purposes, limit
 * kinds, providers, error kinds): never a person, a server, a channel, or anything a person wrote.
 */

/** Reservations take a fraction of a millisecond on SQLite and a round trip or two on PostgreSQL. */
const RESERVATION_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

/**
 * The shares of a server's cap the near-cap gauge counts servers at. A server below the lowest is not
 * remembered at all, so what is kept is bounded by the servers close to their cap.
 */
export const CAP_SHARE_THRESHOLDS = [0.8, 0.9, 1] as const;

const CIRCUIT_VALUE: Record<CircuitStateName, number> = { closed: 0, 'half-open': 1, open: 2 };

/** The token buckets of a ledger row, by the label value they are counted under. */
const TOKEN_KINDS: readonly [string, keyof TokenUsage][] = [
  ['input', 'inputTokens'],
  ['cached_input', 'cachedInputTokens'],
  ['cache_write', 'cacheWriteTokens'],
  ['output', 'outputTokens'],
];

/** What is read when Prometheus scrapes rather than reported as it happens. */
export interface ScrapeSources {
  /** Each provider's circuit breaker. */
  circuits(): Record<ProviderName, CircuitStateName>;
}

/**
 * The metrics, in a registry of their own (the process-wide default registry is left alone, so two bots
 * in one process — tests — never collide): Node's default process metrics, and the bot's.
 */
export class PrometheusTelemetry implements Telemetry {
  readonly registry = new Registry();
  readonly #turns: Counter<'route' | 'outcome'>;
  readonly #calls: Counter<'model' | 'purpose' | 'outcome'>;
  readonly #tokens: Counter<'model' | 'purpose' | 'kind'>;
  readonly #cost: Counter<'model' | 'purpose'>;
  readonly #denials: Counter<'limit' | 'source'>;
  readonly #providerErrors: Counter<'provider' | 'kind'>;
  readonly #rateLimits: Counter<'scope'>;
  readonly #reservationSeconds: Histogram<'outcome'>;
  readonly #openReservations: Gauge;
  /** Servers at or above the lowest threshold of their cap, until their window ends. */
  readonly #nearCap = new Map<string, { share: number; windowEndMs: number }>();
  #sources: ScrapeSources | undefined;

  constructor(private readonly now: () => number = Date.now) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#turns = new Counter({
      name: 'tierbot_turns_total',
      help: 'Turns ended, by route (fast, or why the smart model: router, rule, check, signal, user, pdf, fallback; none when failed) and outcome (answered, denied, refused, failed, cancelled).',
      labelNames: ['route', 'outcome'],
      registers,
    });
    this.#calls = new Counter({
      name: 'tierbot_model_calls_total',
      help: 'Model calls charged in the ledger by this process (one per ledger row), by model, purpose and outcome (settled, failed).',
      labelNames: ['model', 'purpose', 'outcome'],
      registers,
    });
    this.#tokens = new Counter({
      name: 'tierbot_model_tokens_total',
      help: 'Tokens of the calls charged, by model, purpose and kind (input, cached_input, cache_write, output; disjoint).',
      labelNames: ['model', 'purpose', 'kind'],
      registers,
    });
    this.#cost = new Counter({
      name: 'tierbot_model_cost_usd_total',
      help: 'What the calls charged cost, in US dollars, by model and purpose.',
      labelNames: ['model', 'purpose'],
      registers,
    });
    this.#denials = new Counter({
      name: 'tierbot_budget_denials_total',
      help: 'Reservations a budget refused, by limit (user, server) and where its amount came from (own, role, server-default, bot-default, server-cap, bot-cap).',
      labelNames: ['limit', 'source'],
      registers,
    });
    this.#providerErrors = new Counter({
      name: 'tierbot_provider_errors_total',
      help: 'Failed attempts at a model provider, by provider and kind (rate_limited, overloaded, server, connection, timeout, truncated, quota, auth, invalid_request; circuit_open: skipped by the breaker).',
      labelNames: ['provider', 'kind'],
      registers,
    });
    this.#rateLimits = new Counter({
      name: 'tierbot_discord_rate_limits_total',
      help: "Discord REST requests discord.js held back for a rate limit, by scope (route: one route's bucket; global).",
      labelNames: ['scope'],
      registers,
    });
    this.#reservationSeconds = new Histogram({
      name: 'tierbot_reservation_duration_seconds',
      help: "How long a reservation against the budgets took (the ledger's transaction), by outcome (granted, denied).",
      labelNames: ['outcome'],
      buckets: RESERVATION_BUCKETS_SECONDS,
      registers,
    });
    this.#openReservations = new Gauge({
      name: 'tierbot_open_reservations',
      help: 'Reservations this process holds for model calls in progress.',
      registers,
    });
    const circuits = new Gauge({
      name: 'tierbot_provider_circuit_state',
      help: "Each provider's circuit breaker: 0 closed, 1 half-open (a trial call may go), 2 open (calls are skipped).",
      labelNames: ['provider'],
      registers,
      collect: () => {
        const states = this.#sources?.circuits();
        if (!states) return;
        for (const [provider, state] of Object.entries(states))
          circuits.set({ provider }, CIRCUIT_VALUE[state]);
      },
    });
    const nearCap = new Gauge({
      name: 'tierbot_servers_near_cap',
      help: 'Servers whose spending this period, held answers included, reached this share of their cap, as of their latest reservation through this process.',
      labelNames: ['threshold'],
      registers,
      collect: () => {
        const counts = this.#serversNearCap();
        CAP_SHARE_THRESHOLDS.forEach((threshold, index) =>
          nearCap.set({ threshold: String(threshold) }, counts[index] ?? 0),
        );
      },
    });
  }

  /** Where the scrape-time figures come from, once the parts that hold them exist. */
  watch(sources: ScrapeSources): void {
    this.#sources = sources;
  }

  turnEnded(turn: Parameters<Telemetry['turnEnded']>[0]): void {
    this.#turns.inc({ route: turn.route, outcome: turn.outcome });
  }

  reserved(reservation: Parameters<Telemetry['reserved']>[0]): void {
    const { denial } = reservation;
    this.#reservationSeconds.observe(
      { outcome: denial ? 'denied' : 'granted' },
      reservation.latencyMs / 1_000,
    );
    if (denial) this.#denials.inc({ limit: denial.kind, source: denial.source });
    else this.#openReservations.inc();
  }

  reservationClosed(): void {
    this.#openReservations.dec();
  }

  callCharged(call: Parameters<Telemetry['callCharged']>[0]): void {
    const { model, purpose } = call;
    this.#calls.inc({ model, purpose, outcome: call.outcome });
    for (const [kind, field] of TOKEN_KINDS) {
      const tokens = call.usage[field];
      if (tokens > 0) this.#tokens.inc({ model, purpose, kind }, tokens);
    }
    this.#cost.inc({ model, purpose }, call.costMicros / MICROS_PER_USD);
  }

  serverCapShare(standing: Parameters<Telemetry['serverCapShare']>[0]): void {
    if (standing.share >= CAP_SHARE_THRESHOLDS[0]) {
      this.#nearCap.set(standing.guildId, { share: standing.share, windowEndMs: standing.windowEndMs });
    } else this.#nearCap.delete(standing.guildId);
  }

  providerFailed(failure: Parameters<Telemetry['providerFailed']>[0]): void {
    this.#providerErrors.inc({ provider: failure.provider, kind: failure.kind });
  }

  discordRateLimited(scope: 'route' | 'global'): void {
    this.#rateLimits.inc({ scope });
  }

  /** How many servers are at each threshold; servers whose window has ended are forgotten. */
  #serversNearCap(): number[] {
    const nowMs = this.now();
    const counts = CAP_SHARE_THRESHOLDS.map(() => 0);
    for (const [guildId, { share, windowEndMs }] of this.#nearCap) {
      if (windowEndMs <= nowMs) {
        this.#nearCap.delete(guildId);
        continue;
      }
      CAP_SHARE_THRESHOLDS.forEach((threshold, index) => {
        if (share >= threshold) counts[index] = (counts[index] ?? 0) + 1;
      });
    }
    return counts;
  }
}
