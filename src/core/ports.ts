/**
 * The ports: every interface the engine and the Discord layer depend on, in one place. Adapters implement
 * them (src/providers/ for model calls, src/db/ for storage, one store per database dialect) and the
 * composition roots (src/main.ts, src/chat.ts) are the only code that sees the concrete pieces.
 *
 * Storage ports are asynchronous: SQLite answers them on the spot, PostgreSQL over the network. Writes
 * nobody waits for (settles, turn records) are taken at once and written behind; `flush` makes them
 * durable before something that depends on them is shown.
 */
import type {
  AuditEntry,
  Budget,
  BudgetChange,
  BudgetScope,
  LimitKind,
  LimitSource,
  LimitStanding,
} from './budget.js';
import type { CallOutcome, CallSpec } from './calls.js';
import type { ProviderErrorKind, ProviderName, StructuredRequest, StructuredResult } from './chat.js';
import type { CallPurpose, ReserveRequest, ReserveResult, SettleResult } from './ledger.js';
import type { Micros } from './money.js';
import type { TokenUsage } from './pricing.js';
import type { ServerSettings } from './settings.js';
import type { EscalationSource, TurnRecord, TurnResult } from './turn.js';
import type { CallRecord, CallsQuery, ModelUsage, OverviewQuery, UsageOverview } from './usage.js';
import type { PeriodWindow } from './budget.js';

/**
 * How the engine calls models: every call reserves its worst case, is retried or sent to the other
 * provider when one fails, and is settled in the ledger. Implemented by the gateway in src/providers/.
 */
export interface ModelCaller {
  stream(spec: CallSpec, onDelta?: (text: string) => void): Promise<CallOutcome>;
  structured(spec: CallSpec<StructuredRequest>): Promise<CallOutcome<StructuredResult>>;
}

/**
 * The ledger as the gateway sees it: reserve a call's worst case before it starts, settle its real usage
 * after, release it if it failed. A reservation is granted only if every limit that applies can hold it.
 */
export interface UsageLedger {
  /** The most a call can cost; throws for a model without a price (never charge $0). */
  worstCaseMicros(model: string, estimatedInputTokens: number, maxOutputTokens: number): Micros;
  reserve(request: ReserveRequest): Promise<ReserveResult>;
  /** Records what the call really used and frees its reservation. Idempotent per request id. */
  settle(requestId: string, usage: TokenUsage): Promise<SettleResult>;
  /** Frees the reservation of a failed call, charging only what the provider reported it used. */
  release(requestId: string, reportedUsage?: TokenUsage): Promise<SettleResult>;
  /** Frees a reservation whose call was never sent (nothing reached a provider): no ledger row. */
  cancel(requestId: string): Promise<void>;
}

/** Where turns are kept: for /escalate (a user's latest question here) and /usage (answers by reason). */
export interface TurnLog {
  /** Written behind: taken at once, durable after the next flush. */
  record(turn: TurnRecord): void;
  /** The user's latest answered turn in a channel (or DM channel). */
  latest(userId: string, channelId: string | null): Promise<TurnRecord | undefined>;
  byId(turnId: string): Promise<TurnRecord | undefined>;
  /**
   * Takes the right to have the smart model improve an answer: true for the first asker only, so a
   * second click (or a second /escalate) charges nothing. Given back if the escalation did not happen.
   */
  claimEscalation(turnId: string, userId: string): Promise<boolean>;
  releaseEscalation(turnId: string): Promise<void>;
}

/** Who is asking, for the limits that apply: a member of a server (with their roles) or a DM user. */
export interface Member {
  userId: string;
  /** null: direct messages. */
  guildId: string | null;
  /** The member's role ids in that server, from the message or interaction payload. */
  roleIds?: readonly string[] | undefined;
}

/** Budgets as admins set them and people see them: the limits that apply and how each stands. */
export interface Budgets {
  /** The limits that apply to a member right now and how each stands (spent and held this period). */
  standings(member: Member): Promise<LimitStanding[]>;
  /** The standings of several members, read at one moment, in their order. */
  standingsOfMembers(members: readonly Member[]): Promise<LimitStanding[][]>;
  /** Sets a budget and audits the change; returns the budget it replaced. */
  setBudget(change: BudgetChange, budget: Budget): Promise<Budget | undefined>;
  /** Removes a budget and audits it; clearing an unset budget changes nothing. */
  clearBudget(change: BudgetChange): Promise<Budget | undefined>;
  budgetOf(guildId: string, scope: BudgetScope, subjectId?: string): Promise<Budget | undefined>;
  auditLog(guildId: string, limit?: number): Promise<AuditEntry[]>;
  /** Every role budget of a server. */
  roleBudgets(guildId: string): Promise<{ roleId: string; budget: Budget }[]>;
}

/** Per-server settings and the channels answered without a mention: read on every message, so cached. */
export interface SettingsStore {
  of(guildId: string | null): Promise<ServerSettings>;
  update(guildId: string, change: Partial<ServerSettings>, updatedBy: string): Promise<ServerSettings>;
  isAnsweredChannel(guildId: string | null, channelId: string): Promise<boolean>;
  addAnsweredChannel(guildId: string, channelId: string, addedBy: string): Promise<void>;
  removeAnsweredChannel(guildId: string, channelId: string): Promise<void>;
  answeredChannelsOf(guildId: string): Promise<string[]>;
}

/** What /usage shows, from the ledger and the turns, with every row written behind so far included. */
export interface UsageReports {
  /** A member's calls, tokens and cost by model in a server (or in DMs) over a window. */
  byModel(userId: string, guildId: string | null, window: PeriodWindow): Promise<ModelUsage[]>;
  /** Spend by chart step and model, the biggest spenders and answers by reason, for a member, server or the bot. */
  overview(query: OverviewQuery): Promise<UsageOverview>;
  /**
   * A server's calls in a window, oldest first, read a page at a time as they are consumed (never all in
   * memory): for /usage export. Stopping early (a `break`) ends the read.
   */
  calls(query: CallsQuery): AsyncIterable<CallRecord>;
}

/** Budget notices: each threshold (80%, 100%) of each limit is told once per period, by any process. */
export interface Notices {
  /** The notice for the person's own budget, if their spending just reached a threshold. */
  forUser(member: Member): Promise<string | undefined>;
  /** The notice for a server's cap, if its spending just reached a threshold. */
  forServer(guildId: string): Promise<string | undefined>;
}

/**
 * Events answered once across every process: a message or interaction that Discord delivers twice, or to
 * two processes running the same shard during a deploy, is claimed by exactly one.
 */
export interface EventClaims {
  claim(eventId: string): Promise<boolean>;
}

/** Everything the bot keeps, behind the ports above; one per process. */
export interface Storage {
  readonly dialect: 'sqlite' | 'postgres';
  ledger: UsageLedger;
  budgets: Budgets;
  turns: TurnLog;
  settings: SettingsStore;
  usage: UsageReports;
  notices: Notices;
  events: EventClaims;
  /** Writes everything written behind so far (settles, turns): before an answer is shown as done. */
  flush(): Promise<void>;
  /** Whether the database answers and this process's lease is fresh: for /readyz. */
  health(): Promise<Health>;
  /**
   * Starts within the restart window (this one recorded) of the bot on this host running these shards
   * (`shards`: their list, or '' for all), for the crash-loop backoff: several processes of one host, each
   * with shards of its own, restarting in one deploy are not one process crashing.
   */
  recordStart(nowMs: number, shards: string): Promise<number[]>;
  close(): Promise<void>;
}

/** Whether a part of the bot can do its job, and if not, why (one line for the operator). */
export type Health = { ok: true } | { ok: false; reason: string };

/** Which way a turn went: the fast model alone, or why it went to the smart one; `none` when it failed. */
export type TurnRoute = 'fast' | EscalationSource | 'none';
/** How a turn ended: answered, denied by a budget, refused, failed (both providers down) or cancelled. */
export type TurnOutcome = TurnResult['status'] | 'failed' | 'cancelled';
/** A provider's circuit breaker: closed (calls go through), half-open (a trial call may), open (skipped). */
export type CircuitStateName = 'closed' | 'half-open' | 'open';

/**
 * What the bot tells the operator's metrics as it works: turns, model calls and their cost, budget
 * denials, provider failures, Discord's rate limits. Called on the hot path, so an implementation counts
 * in memory and returns at once (no I/O); {@link NO_TELEMETRY} when metrics are off. Nothing here names a
 * person: a server's id is passed only so that servers near their cap can be counted, never as a label.
 */
export interface Telemetry {
  turnEnded(turn: { route: TurnRoute; outcome: TurnOutcome }): void;
  /** A reservation was asked for: how long the ledger took, and the limit that denied it, if one did. */
  reserved(reservation: { latencyMs: number; denial?: { kind: LimitKind; source: LimitSource } }): void;
  /** A granted reservation ended (settled, released or cancelled). */
  reservationClosed(): void;
  /** A model call closed in the ledger: one ledger row, with its tokens and cost. */
  callCharged(call: {
    model: string;
    purpose: CallPurpose;
    outcome: 'settled' | 'failed';
    usage: TokenUsage;
    costMicros: Micros;
  }): void;
  /**
   * How much of a server's cap was spent or held once a reservation in it was granted (that call
   * included), and until when that window runs.
   */
  serverCapShare(standing: { guildId: string; share: number; windowEndMs: number }): void;
  /** An attempt at a provider failed (a caller's own abort is not a failure), or was skipped by its breaker. */
  providerFailed(failure: { provider: ProviderName; kind: ProviderErrorKind | 'circuit_open' }): void;
  /** discord.js held a request back for a rate limit: one route's bucket, or the global limit. */
  discordRateLimited(scope: 'route' | 'global'): void;
}

/** Metrics off: every report is dropped. */
export const NO_TELEMETRY: Telemetry = {
  turnEnded: () => {},
  reserved: () => {},
  reservationClosed: () => {},
  callCharged: () => {},
  serverCapShare: () => {},
  providerFailed: () => {},
  discordRateLimited: () => {},
};

export type { LimitKind };
