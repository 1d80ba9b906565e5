import { formatUsd, type Micros } from './money.js';

/**
 * Budgets run over calendar windows in UTC. A charge lands in the window its reservation was made in,
 * so a period "resets" simply by time moving into the next window: no reset job is needed.
 */
export const BUDGET_PERIODS = ['day', 'week', 'month'] as const;
export type BudgetPeriod = (typeof BUDGET_PERIODS)[number];

export interface PeriodWindow {
  startMs: number;
  endMs: number;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

export function periodWindow(period: BudgetPeriod, atMs: number): PeriodWindow {
  const at = new Date(atMs);
  const dayStartMs = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  switch (period) {
    case 'day':
      return { startMs: dayStartMs, endMs: dayStartMs + DAY_MS };
    case 'week': {
      // ISO weeks start on Monday; getUTCDay() counts from Sunday = 0.
      const daysSinceMonday = (at.getUTCDay() + 6) % 7;
      const startMs = dayStartMs - daysSinceMonday * DAY_MS;
      return { startMs, endMs: startMs + 7 * DAY_MS };
    }
    case 'month':
      return {
        startMs: Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1),
        endMs: Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1),
      };
  }
}

export interface Budget {
  amountMicros: Micros;
  period: BudgetPeriod;
}

/**
 * How a budget is stored: a member's own, a role's (for members with that role), the default for a
 * server's members, or a cap on a whole server.
 */
export const BUDGET_SCOPES = ['user', 'role', 'server-default', 'server-total'] as const;
export type BudgetScope = (typeof BUDGET_SCOPES)[number];

/** A change to a budget, for the audit log: which scope, whose (a member or a role), and by whom. */
export interface BudgetChange {
  guildId: string;
  scope: BudgetScope;
  /** The member, for scope 'user'. */
  userId?: string;
  /** The role, for scope 'role'. */
  roleId?: string;
  changedBy: string;
}

/** One audited budget change: who, when, old → new (null: not set, or cleared). */
export interface AuditEntry {
  scope: BudgetScope;
  /** The member or role the budget is for; '' for the server-wide scopes. */
  subjectId: string;
  oldBudget: Budget | null;
  newBudget: Budget | null;
  changedBy: string;
  changedAt: number;
}

/** The member or role a budget change is about ('' for the server-wide scopes); throws when it is missing. */
export function subjectOf(change: BudgetChange): string {
  if (change.scope === 'user') {
    if (!change.userId) throw new Error('a user budget needs a user');
    return change.userId;
  }
  if (change.scope === 'role') {
    if (!change.roleId) throw new Error('a role budget needs a role');
    return change.roleId;
  }
  return '';
}

/** What a limit is counted against: the asking user's spend in a server (or in DMs), or the whole server's. */
export type LimitKind = 'user' | 'server';
/** Where the amount of a limit came from, so people can be told which setting to change. */
export type LimitSource = 'own' | 'role' | 'server-default' | 'bot-default' | 'server-cap' | 'bot-cap';

export interface ApplicableLimit {
  kind: LimitKind;
  source: LimitSource;
  budget: Budget;
  /** For a role's budget: the role it came from. */
  roleId?: string;
}

export interface BudgetSettings {
  /** Budgets set by the server's admins (absent in DMs or when unset). */
  own?: Budget | undefined;
  /** The budgets of the member's roles that have one. */
  roles?: readonly { roleId: string; budget: Budget }[] | undefined;
  serverDefault?: Budget | undefined;
  serverTotal?: Budget | undefined;
  /** The operator's defaults from configuration. */
  botDefault: Budget;
  botServerCap?: Budget | undefined;
  isDirectMessage: boolean;
}

/**
 * The limits a call is held to: always one for the user (their own budget, else the highest of their
 * roles' budgets, else the server's default, else the bot's default), and in a server also the server's
 * total cap when one is set.
 */
export function applicableLimits(settings: BudgetSettings): ApplicableLimit[] {
  if (settings.isDirectMessage) {
    return [{ kind: 'user', source: 'bot-default', budget: settings.botDefault }];
  }
  const limits: ApplicableLimit[] = [userLimit(settings)];
  if (settings.serverTotal) {
    limits.push({ kind: 'server', source: 'server-cap', budget: settings.serverTotal });
  } else if (settings.botServerCap) {
    limits.push({ kind: 'server', source: 'bot-cap', budget: settings.botServerCap });
  }
  return limits;
}

function userLimit(settings: BudgetSettings): ApplicableLimit {
  if (settings.own) return { kind: 'user', source: 'own', budget: settings.own };
  const role = highestRoleBudget(settings.roles ?? []);
  if (role) return { kind: 'user', source: 'role', budget: role.budget, roleId: role.roleId };
  if (settings.serverDefault)
    return { kind: 'user', source: 'server-default', budget: settings.serverDefault };
  return { kind: 'user', source: 'bot-default', budget: settings.botDefault };
}

/**
 * The most generous of a member's role budgets: roles grant, so the member gets the best of them. Amounts
 * over different periods compare by their daily rate (a month is counted as 30 days), ties by amount.
 */
export function highestRoleBudget(
  roles: readonly { roleId: string; budget: Budget }[],
): { roleId: string; budget: Budget } | undefined {
  let best: { roleId: string; budget: Budget } | undefined;
  for (const role of roles) {
    if (!best || compareBudgets(role.budget, best.budget) > 0) best = role;
  }
  return best;
}

const DAYS_IN: Record<BudgetPeriod, number> = { day: 1, week: 7, month: 30 };

function compareBudgets(a: Budget, b: Budget): number {
  const byRate = a.amountMicros / DAYS_IN[a.period] - b.amountMicros / DAYS_IN[b.period];
  return byRate !== 0 ? byRate : a.amountMicros - b.amountMicros;
}

/** A limit together with what has been spent and is held against it in its current window. */
export interface LimitStanding extends ApplicableLimit {
  window: PeriodWindow;
  spentMicros: Micros;
  reservedMicros: Micros;
}

export function remainingMicros(standing: LimitStanding): Micros {
  return Math.max(0, standing.budget.amountMicros - standing.spentMicros - standing.reservedMicros);
}

export interface BudgetDenial {
  limit: LimitStanding;
  requestedMicros: Micros;
  remainingMicros: Micros;
  resetsAtMs: number;
}

/**
 * The most a limit's window may already hold, spent and reserved together, for a call of this size to
 * fit: spent + reserved + this call ≤ limit. A database can check this ceiling itself, row by row.
 */
export function usageCeiling(budget: Budget, requestedMicros: Micros): Micros {
  return budget.amountMicros - requestedMicros;
}

/**
 * The rule every reservation passes: for each limit, spent + reserved stays within its
 * {@link usageCeiling}. Returns the first limit that would be exceeded (the user's before the server's),
 * or undefined.
 */
export function findDenial(
  standings: readonly LimitStanding[],
  requestedMicros: Micros,
): BudgetDenial | undefined {
  for (const standing of standings) {
    if (standing.spentMicros + standing.reservedMicros > usageCeiling(standing.budget, requestedMicros)) {
      return {
        limit: standing,
        requestedMicros,
        remainingMicros: remainingMicros(standing),
        resetsAtMs: standing.window.endMs,
      };
    }
  }
  return undefined;
}

const PERIOD_NOUN: Record<BudgetPeriod, string> = { day: 'today', week: 'this week', month: 'this month' };

export function describePeriod(period: BudgetPeriod): string {
  return PERIOD_NOUN[period];
}

/** "Dec 1, 00:00 UTC": windows are UTC, so resets are told in UTC. */
export function formatResetTime(ms: number): string {
  const at = new Date(ms);
  const month = at.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  const time = `${String(at.getUTCHours()).padStart(2, '0')}:${String(at.getUTCMinutes()).padStart(2, '0')}`;
  return `${month} ${at.getUTCDate()}, ${time} UTC`;
}

/** One line for the person who was refused: which limit, spent of what, what is left, when it resets. */
export function describeDenial(denial: BudgetDenial): string {
  const { limit } = denial;
  const whose = limit.kind === 'user' ? 'your budget' : "this server's budget";
  const spent = `${formatUsd(limit.spentMicros)} of ${formatUsd(limit.budget.amountMicros)} spent ${describePeriod(limit.budget.period)}`;
  const held =
    limit.reservedMicros > 0 ? `, ${formatUsd(limit.reservedMicros)} held by answers in progress` : '';
  return (
    `Not enough left in ${whose}: ${spent}${held}; ${formatUsd(denial.remainingMicros)} left, ` +
    `and this answer could cost up to ${formatUsd(denial.requestedMicros)}. Resets ${formatResetTime(denial.resetsAtMs)}.`
  );
}
