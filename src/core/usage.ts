import type { BudgetPeriod, PeriodWindow } from './budget.js';
import type { Micros } from './money.js';

/** A member's (or a server's) calls on one model over a window: what /usage lists by model. */
export interface ModelUsage {
  model: string;
  calls: number;
  inputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  costMicros: Micros;
  /** What the same tokens would have cost on the smart model. */
  smartCostMicros: Micros;
}

/** Answers that went one way, and why: a turn's escalation source, or null for answers not escalated. */
export interface AnswersByRoute {
  /** The turn's escalation source (router, rule, check, signal, user, pdf, fallback), or null. */
  reason: string | null;
  answers: number;
  costMicros: Micros;
  smartOnlyCostMicros: Micros;
}

/** Whose spending a view covers: one member in a server (or in DMs), a whole server, or every server. */
export type UsageScope =
  | { kind: 'member'; userId: string; guildId: string | null }
  | { kind: 'server'; guildId: string }
  | { kind: 'bot' };

/** The periods a view can cover: a budget period's current window, or all time. */
export type UsagePeriod = BudgetPeriod | 'all';

export interface OverviewQuery {
  scope: UsageScope;
  /** Whole UTC days (every budget period's window is; "all" runs from 0 to the end of today). */
  window: PeriodWindow;
  period: UsagePeriod;
  /** The chart's step: an hour for a day's view, a day otherwise. */
  bucketMs: number;
  /** How many of the biggest spenders to list: members of a server, servers of the bot (0: none). */
  topCount: number;
}

/** Calls on one model in one step of the chart. */
export interface BucketUsage extends ModelUsage {
  startMs: number;
}

/** One of the biggest spenders of a view: a member (server view) or a server (bot view; null: DMs). */
export interface Spender {
  id: string | null;
  spentMicros: Micros;
}

/**
 * What the /usage views are drawn from, as the database answers it: spend by step and model (a key may
 * come more than once, e.g. once per server in the bot's view: src/core/reports.ts folds them), the
 * biggest spenders, and answers by why they escalated.
 */
export interface UsageOverview {
  buckets: BucketUsage[];
  top: Spender[];
  routes: AnswersByRoute[];
}

/** A server's calls in a window, for /usage export. */
export interface CallsQuery {
  guildId: string;
  /** Whole UTC days. */
  window: PeriodWindow;
}

/** One model call as /usage export writes it. */
export interface CallRecord {
  chargedAt: number;
  userId: string;
  channelId: string | null;
  model: string;
  purpose: string;
  inputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  costMicros: Micros;
  /** Why the call's turn went to the smart model (its escalation source); null: it did not, or no turn. */
  routeReason: string | null;
}
