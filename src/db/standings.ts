import {
  applicableLimits,
  type ApplicableLimit,
  type Budget,
  type BudgetPeriod,
  type BudgetSettings,
  type LimitStanding,
  periodWindow,
} from '../core/budget.js';
import type { Micros } from '../core/money.js';
import type { BudgetRow, CounterOwner, CounterRow, LimitSnapshot, WindowStarts } from './store.js';

/**
 * How counter rows become standings, for every dialect. A counter row keeps what is spent and held in
 * the *current* day, week and month of a member (or a server); a row still holding an ended window
 * counts as empty for the new one, so budgets reset by time alone.
 */

export function windowStartsAt(atMs: number): WindowStarts {
  return {
    day: periodWindow('day', atMs).startMs,
    week: periodWindow('week', atMs).startMs,
    month: periodWindow('month', atMs).startMs,
  };
}

/** A settle this process knows the cost of but has not written yet. */
export interface PendingCharge {
  requestId: string;
  userId: string;
  guildId: string | null;
  amountMicros: Micros;
  costMicros: Micros;
  createdAt: number;
}

/** The budgets from configuration, under the ones a server stored. */
export interface DefaultBudgets {
  defaultUserBudget: Budget;
  defaultServerCap?: Budget | undefined;
}

/** Which limits apply to a member, from the stored budget rows that may concern them and the defaults. */
export function limitsOf(owner: CounterOwner, rows: readonly BudgetRow[], defaults: DefaultBudgets) {
  const settings: BudgetSettings = {
    botDefault: defaults.defaultUserBudget,
    botServerCap: defaults.defaultServerCap,
    isDirectMessage: owner.guildId === null,
  };
  const roles: { roleId: string; budget: Budget }[] = [];
  for (const { scope, subjectId, amountMicros, period } of rows) {
    const budget = { amountMicros, period };
    if (scope === 'user' && subjectId === owner.userId) settings.own = budget;
    else if (scope === 'role' && owner.roleIds.includes(subjectId)) roles.push({ roleId: subjectId, budget });
    else if (scope === 'server-default') settings.serverDefault = budget;
    else if (scope === 'server-total') settings.serverTotal = budget;
  }
  settings.roles = roles;
  return applicableLimits(settings);
}

/**
 * The standings at a moment that is never behind the newest window already counted: a process whose
 * clock lags (skew between hosts, a clock stepped back at midnight) would otherwise read the counters'
 * newer window as empty and have its own charges dropped as belonging to an ended one. Settles waiting
 * to be written count as they will once written.
 */
export function standingsOf(
  owner: CounterOwner,
  snapshot: LimitSnapshot,
  defaults: DefaultBudgets,
  clockMs: number,
  pending: readonly PendingCharge[],
): { standings: LimitStanding[]; atMs: number } {
  const atMs = Math.max(clockMs, snapshot.user?.dayStart ?? 0, snapshot.server?.dayStart ?? 0);
  const standings = limitsOf(owner, snapshot.budgets, defaults).map((limit) =>
    withPendingCharges(standingOf(limit, snapshot[limit.kind], atMs), pending, owner),
  );
  return { standings, atMs };
}

function standingOf(limit: ApplicableLimit, row: CounterRow | undefined, atMs: number): LimitStanding {
  const window = periodWindow(limit.budget.period, atMs);
  const counted = row && windowTotals(row, limit.budget.period);
  const isCurrent = counted?.startMs === window.startMs;
  return {
    ...limit,
    window,
    spentMicros: isCurrent ? counted.spentMicros : 0,
    reservedMicros: isCurrent ? counted.reservedMicros : 0,
  };
}

/**
 * A standing as it will be once the settles waiting to be written are: each moves its call's cost into
 * spent and frees its reservation, in the window it was reserved in (as the counters will count it).
 */
function withPendingCharges(
  standing: LimitStanding,
  pending: readonly PendingCharge[],
  owner: Pick<CounterOwner, 'userId' | 'guildId'>,
): LimitStanding {
  let { spentMicros, reservedMicros } = standing;
  for (const charge of pending) {
    const isCounted =
      charge.guildId === owner.guildId && (standing.kind === 'server' || charge.userId === owner.userId);
    const isInWindow =
      charge.createdAt >= standing.window.startMs && charge.createdAt < standing.window.endMs;
    if (!isCounted || !isInWindow) continue;
    spentMicros += charge.costMicros;
    reservedMicros -= charge.amountMicros;
  }
  return { ...standing, spentMicros, reservedMicros };
}

/** Whether a pending charge moves money in a member's (or their server's) counters. */
export function concerns(charge: PendingCharge, owner: Pick<CounterOwner, 'userId' | 'guildId'>): boolean {
  return charge.guildId === owner.guildId && (owner.guildId !== null || charge.userId === owner.userId);
}

function windowTotals(row: CounterRow, period: BudgetPeriod) {
  switch (period) {
    case 'day':
      return {
        startMs: row.dayStart,
        spentMicros: row.daySpentMicros,
        reservedMicros: row.dayReservedMicros,
      };
    case 'week':
      return {
        startMs: row.weekStart,
        spentMicros: row.weekSpentMicros,
        reservedMicros: row.weekReservedMicros,
      };
    case 'month':
      return {
        startMs: row.monthStart,
        spentMicros: row.monthSpentMicros,
        reservedMicros: row.monthReservedMicros,
      };
  }
}

/** Sorted so that every transaction locks counter rows in the same order (no deadlocks between them). */
export function counterKeys(owner: Pick<CounterOwner, 'userId' | 'guildId'>) {
  const guildKey = owner.guildId ?? '';
  const keys: { kind: 'user' | 'server'; guildKey: string; userKey: string }[] = [
    { kind: 'user', guildKey, userKey: owner.userId },
  ];
  // 'server' sorts before 'user': the server's row is always locked first.
  if (owner.guildId !== null) keys.unshift({ kind: 'server', guildKey, userKey: '' });
  return keys;
}
