import type { PeriodWindow } from './budget.js';
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

export interface UsageQuery {
  userId: string;
  /** null: direct messages. */
  guildId: string | null;
  window: PeriodWindow;
  smartModel: string;
}

export interface DaySpend {
  /** YYYY-MM-DD, UTC. */
  day: string;
  fastMicros: Micros;
  smartMicros: Micros;
}

export interface AnswersByRoute {
  /** Why it escalated ("requested by user", "PDF", a check's category…), or null: not escalated. */
  reason: string | null;
  answers: number;
  costMicros: Micros;
  smartOnlyCostMicros: Micros;
}

export interface UsageReport {
  byModel: ModelUsage[];
  /** Only the days with spend, oldest first. */
  days: DaySpend[];
  routes: AnswersByRoute[];
  /** The first charge in the window, if any (for an open-ended window). */
  firstChargeAt: number | null;
}
