import {
  BUDGET_PERIODS,
  type BudgetPeriod,
  DAY_MS,
  formatResetTime,
  HOUR_MS,
  type LimitSource,
  type LimitStanding,
  type PeriodWindow,
  periodWindow,
  remainingMicros,
} from './budget.js';
import { type Forecast, forecastSpend, type SpendChartData, spendChartData } from './forecast.js';
import { formatUsd, type Micros } from './money.js';
import type { Budgets, Member, UsageReports } from './ports.js';
import type { EscalationSource } from './turn.js';
import type { AnswersByRoute, BucketUsage, ModelUsage, Spender, UsagePeriod, UsageScope } from './usage.js';

/**
 * The /usage views (a member, a server, the whole bot) as figures: read through the ports, folded, with
 * the forecast and the chart's data. Discord (src/discord/commands/usage*.ts) and the terminal
 * (src/report.ts) show the same figures in the same sentences, from here.
 */

export const USAGE_PERIODS = [...BUDGET_PERIODS, 'all'] as const;
/** How many of the biggest spenders a server's (members) or the bot's (servers) view lists. */
export const TOP_SPENDERS = 10;

/** What the views read: the bot's storage, or `npm run report`'s read-only view of the same database. */
export interface ReportSources {
  usage: Pick<UsageReports, 'overview'>;
  budgets: Pick<Budgets, 'standings' | 'standingsOfMembers' | 'roleBudgets'>;
}

/** The window a view covers: the period's current window, or all time up to the end of today (UTC). */
export function usageWindow(period: UsagePeriod, nowMs: number): PeriodWindow {
  return period === 'all'
    ? { startMs: 0, endMs: periodWindow('day', nowMs).endMs }
    : periodWindow(period, nowMs);
}

/** The cumulative chart's step: hours for a day, days for anything longer. */
export function chartStepMs(period: UsagePeriod): number {
  return period === 'day' ? HOUR_MS : DAY_MS;
}

/** A chart step as the stores write it into their SQL: an hour or a day, nothing else. */
export function checkedChartStep(bucketMs: number): number {
  if (bucketMs !== HOUR_MS && bucketMs !== DAY_MS) throw new RangeError(`not a chart step: ${bucketMs} ms`);
  return bucketMs;
}

/** Answers, how many went to the smart model and why, and what the cascade saved against it alone. */
export interface AnswerSummary {
  answers: number;
  escalations: number;
  /** Escalated answers by reason, most first. */
  byReason: { reason: string; answers: number }[];
  costMicros: Micros;
  smartOnlyCostMicros: Micros;
  /** What sending every answer to the smart model would have cost more (never below 0). */
  savedMicros: Micros;
}

export function summarizeAnswers(routes: readonly AnswersByRoute[]): AnswerSummary {
  const byReason = new Map<string, number>();
  let answers = 0;
  let costMicros = 0;
  let smartOnlyCostMicros = 0;
  for (const route of routes) {
    answers += route.answers;
    costMicros += route.costMicros;
    smartOnlyCostMicros += route.smartOnlyCostMicros;
    if (route.reason !== null) byReason.set(route.reason, (byReason.get(route.reason) ?? 0) + route.answers);
  }
  const escalated = [...byReason]
    .map(([reason, count]) => ({ reason, answers: count }))
    .sort((a, b) => b.answers - a.answers || a.reason.localeCompare(b.reason));
  return {
    answers,
    escalations: escalated.reduce((sum, route) => sum + route.answers, 0),
    byReason: escalated,
    costMicros,
    smartOnlyCostMicros,
    savedMicros: Math.max(0, smartOnlyCostMicros - costMicros),
  };
}

/** The biggest spenders first (ties by id, so the order is stable), at most `count`, none at $0. */
export function rankSpenders(spentById: ReadonlyMap<string | null, Micros>, count: number): Spender[] {
  return [...spentById]
    .filter(([, spentMicros]) => spentMicros > 0)
    .map(([id, spentMicros]) => ({ id, spentMicros }))
    .sort((a, b) => b.spentMicros - a.spentMicros || String(a.id).localeCompare(String(b.id)))
    .slice(0, count);
}

/** Calls, tokens and cost by model over every step (the store may give a model once per step and server). */
export function foldByModel(buckets: readonly BucketUsage[]): ModelUsage[] {
  const byModel = new Map<string, ModelUsage>();
  for (const { startMs: _startMs, ...usage } of buckets) {
    const total = byModel.get(usage.model);
    if (!total) {
      byModel.set(usage.model, { ...usage });
      continue;
    }
    total.calls += usage.calls;
    total.inputTokens += usage.inputTokens;
    total.cachedInputTokens += usage.cachedInputTokens;
    total.cacheWriteTokens += usage.cacheWriteTokens;
    total.outputTokens += usage.outputTokens;
    total.costMicros += usage.costMicros;
    total.smartCostMicros += usage.smartCostMicros;
  }
  return [...byModel.values()].sort((a, b) => b.costMicros - a.costMicros || a.model.localeCompare(b.model));
}

/** What every view has: the period, what was spent on what, the answers, the forecast and the chart. */
export interface ViewFigures {
  period: UsagePeriod;
  window: PeriodWindow;
  nowMs: number;
  spentMicros: Micros;
  byModel: ModelUsage[];
  answers: AnswerSummary;
  /** Undefined for all time (no end to forecast to). */
  forecast: Forecast | undefined;
  chart: SpendChartData;
}

export interface MemberView extends ViewFigures {
  /** The member's budget, whatever its period (its line and forecast only when it runs over the period shown). */
  limit: LimitStanding | undefined;
}

export interface TopMember {
  userId: string;
  spentMicros: Micros;
  /** Their own budget, as it applies to them now (their own, a role's, the server's default or the bot's). */
  budget: LimitStanding | undefined;
  /**
   * False when a role's budget might apply instead of the one shown: the server has role budgets, the
   * member has no budget of their own, and their roles were not known to the caller.
   */
  isBudgetCertain: boolean;
}

export interface ServerView extends ViewFigures {
  /** The server's cap, whatever its period. */
  cap: LimitStanding | undefined;
  /** Whether the cap runs over the period shown (its line, its forecast). */
  doesCapApply: boolean;
  top: TopMember[];
}

export interface BotView extends ViewFigures {
  /** The biggest servers (id null: direct messages). */
  top: Spender[];
}

interface ViewInput {
  /** Undefined: the period of the limit that applies, else `defaultPeriod`. */
  period?: UsagePeriod | undefined;
  defaultPeriod: BudgetPeriod;
  nowMs: number;
  smartModel: string;
}

/** One member: their spending against their own budget. */
export async function memberView(
  sources: ReportSources,
  input: ViewInput & { member: Member },
): Promise<MemberView> {
  const { member } = input;
  const standings = await sources.budgets.standings(member);
  const limit = standings.find((standing) => standing.kind === 'user');
  const period = input.period ?? limit?.budget.period ?? input.defaultPeriod;
  const scope: UsageScope = { kind: 'member', userId: member.userId, guildId: member.guildId };
  const figures = await readFigures(sources, scope, period, input, 0, limit, 'budget');
  return { ...figures, limit };
}

/** A server: its spending against its cap, its biggest spenders against their own budgets. */
export async function serverView(
  sources: ReportSources,
  input: ViewInput & {
    guildId: string;
    /** Who asks ('' for nobody): the server's cap is read with their standings. */
    askerId: string;
    /** A member's role ids when the caller knows them (Discord's member cache), else undefined. */
    rolesOf: (userId: string) => readonly string[] | undefined;
  },
): Promise<ServerView> {
  const { guildId } = input;
  const [standings, roleBudgets] = await Promise.all([
    sources.budgets.standings({ userId: input.askerId, guildId, roleIds: [] }),
    sources.budgets.roleBudgets(guildId),
  ]);
  const cap = standings.find((standing) => standing.kind === 'server');
  const period = input.period ?? cap?.budget.period ?? input.defaultPeriod;
  const figures = await readFigures(
    sources,
    { kind: 'server', guildId },
    period,
    input,
    TOP_SPENDERS,
    cap,
    'cap',
  );
  const members = figures.top.map(({ id }) => {
    const userId = id ?? '';
    return { userId, guildId, roleIds: input.rolesOf(userId) };
  });
  // One read for every member listed, not one each.
  const memberStandings = await sources.budgets.standingsOfMembers(
    members.map((member) => ({ ...member, roleIds: member.roleIds ?? [] })),
  );
  const top = figures.top.map(({ spentMicros }, index): TopMember => {
    const { userId, roleIds } = members[index] ?? { userId: '', roleIds: undefined };
    const budget = memberStandings[index]?.find((standing) => standing.kind === 'user');
    const isBudgetCertain = roleIds !== undefined || roleBudgets.length === 0 || budget?.source === 'own';
    return { userId, spentMicros, budget, isBudgetCertain };
  });
  return { ...figures, cap, doesCapApply: cap?.budget.period === period, top };
}

/** Every server: what the bot's operator pays for. */
export async function botView(sources: ReportSources, input: ViewInput): Promise<BotView> {
  const period = input.period ?? input.defaultPeriod;
  const figures = await readFigures(sources, { kind: 'bot' }, period, input, TOP_SPENDERS, undefined, '');
  return { ...figures };
}

async function readFigures(
  sources: ReportSources,
  scope: UsageScope,
  period: UsagePeriod,
  input: ViewInput,
  topCount: number,
  limit: LimitStanding | undefined,
  limitLabel: string,
): Promise<ViewFigures & { top: Spender[] }> {
  const { nowMs, smartModel } = input;
  const window = usageWindow(period, nowMs);
  const bucketMs = chartStepMs(period);
  const overview = await sources.usage.overview({ scope, window, period, bucketMs, topCount });
  const byModel = foldByModel(overview.buckets);
  const spentMicros = byModel.reduce((sum, row) => sum + row.costMicros, 0);
  const applies = limit?.budget.period === period ? limit : undefined;
  const forecast =
    period === 'all'
      ? undefined
      : forecastSpend({ window, nowMs, spentMicros, limitMicros: applies?.budget.amountMicros });
  const chart = spendChartData({
    buckets: overview.buckets,
    bucketMs,
    window: period === 'all' ? null : window,
    nowMs,
    smartModel,
    limit: applies && { micros: applies.budget.amountMicros, label: limitLabel },
    forecast,
  });
  return {
    period,
    window,
    nowMs,
    spentMicros,
    byModel,
    answers: summarizeAnswers(overview.routes),
    forecast,
    chart,
    top: overview.top,
  };
}

// ── What the views say, in the same words on Discord and in the terminal ─────────────────────────────

/** "this month", or "all time". */
export function periodPhrase(period: UsagePeriod): string {
  return period === 'all' ? 'all time' : `this ${period}`;
}

/**
 * The first line of a view: "Server spent $1.2000 of $5.0000 this month" ("of no cap" when the view has
 * a kind of limit but none is set; the limit's own period when it runs over another: "Spent $0.1000 this
 * day (the budget is $1.0000 a month)"). A view without limits, or all time: "Bot spent $12.0000 this week".
 */
export function spentLine(
  who: string,
  spentMicros: Micros,
  period: UsagePeriod,
  limit?: { noun: string; standing: LimitStanding | undefined },
): string {
  const spent = `${who} ${formatUsd(spentMicros)}`;
  if (!limit || period === 'all') return `${spent} ${periodPhrase(period)}`;
  const { noun, standing } = limit;
  if (!standing) return `${spent} of no ${noun} ${periodPhrase(period)}`;
  if (standing.budget.period !== period) {
    return `${spent} ${periodPhrase(period)} (the ${noun} is ${describeBudget(standing)})`;
  }
  return `${spent} of ${formatUsd(standing.budget.amountMicros)} ${periodPhrase(period)}`;
}

/** "$0.9995 left ($0.0100 held by answers in progress); resets Jan 1, 00:00 UTC". */
export function leftLine(standing: LimitStanding): string {
  const held =
    standing.reservedMicros > 0 ? ` (${formatUsd(standing.reservedMicros)} held by answers in progress)` : '';
  return `${formatUsd(remainingMicros(standing))} left${held}; resets ${formatResetTime(standing.window.endMs)}`;
}

const PER_PERIOD: Record<BudgetPeriod, string> = { day: 'a day', week: 'a week', month: 'a month' };

/** "$5.0000 a month". */
export function describeBudget(standing: LimitStanding): string {
  return `${formatUsd(standing.budget.amountMicros)} ${PER_PERIOD[standing.budget.period]}`;
}

/**
 * "at this pace: $4.1000 by Dec 31 — the cap is reached around Dec 19", or why there is none yet. A day's
 * view names hours ("around 17:00 UTC"), longer ones days.
 */
export function forecastLine(
  forecast: Forecast,
  period: BudgetPeriod,
  window: PeriodWindow,
  limitNoun: string,
) {
  if (!forecast.isShown) {
    return `no forecast before ${formatResetTime(forecast.fromMs)}: too early in the ${period} to tell`;
  }
  const by = period === 'day' ? 'by the end of the day' : `by ${formatDay(window.endMs - 1)}`;
  const pace = `at this pace: ${formatUsd(forecast.projectedMicros)} ${by}`;
  if (forecast.isLimitReached) return `${pace} — ${limitNoun} is reached`;
  if (forecast.limitReachedAtMs !== null) {
    const when =
      period === 'day' ? formatHour(forecast.limitReachedAtMs) : formatDay(forecast.limitReachedAtMs);
    return `${pace} — ${limitNoun} is reached around ${when}`;
  }
  return pace;
}

/** The forecast line of a view, or none: all time has no end to forecast to, and $0 no pace. */
export function viewForecastLine(view: ViewFigures, limitNoun: string): string[] {
  if (view.period === 'all' || !view.forecast || view.spentMicros === 0) return [];
  return [forecastLine(view.forecast, view.period, view.window, limitNoun)];
}

/** "Dec 19" (UTC). */
function formatDay(ms: number): string {
  return new Date(ms).toLocaleString('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
}

/** "17:00 UTC", to the hour below. */
function formatHour(ms: number): string {
  return `${String(new Date(ms).getUTCHours()).padStart(2, '0')}:00 UTC`;
}

/** Why answers went to the smart model, as /usage counts them (a turn's escalation source). */
const ESCALATION_REASONS: Record<EscalationSource, string> = {
  router: 'triage',
  rule: 'code rule',
  check: 'check',
  signal: 'draft cut off or empty',
  user: 'asked',
  pdf: 'PDF',
  fallback: 'fallback',
};

export function reasonLabel(reason: string): string {
  return ESCALATION_REASONS[reason as EscalationSource] ?? reason;
}

/** "12 · escalated to Claude Haiku: 3 (check 2, triage 1)". */
export function answersText(summary: AnswerSummary, smartLabel: string): string {
  const reasons = summary.byReason.map((route) => `${reasonLabel(route.reason)} ${route.answers}`);
  return (
    `${summary.answers.toLocaleString('en-US')} · escalated to ${smartLabel}: ${summary.escalations.toLocaleString('en-US')}` +
    (reasons.length > 0 ? ` (${reasons.join(', ')})` : '')
  );
}

/** "$0.0400 against sending every answer to Claude Haiku ($0.0500)". */
export function savingsText(summary: AnswerSummary, smartLabel: string): string {
  return `${formatUsd(summary.savedMicros)} against sending every answer to ${smartLabel} (${formatUsd(summary.smartOnlyCostMicros)})`;
}

const SOURCE_NAMES: Record<LimitSource, string> = {
  own: 'own budget',
  role: 'role',
  'server-default': 'server default',
  'bot-default': 'bot default',
  'server-cap': 'server cap',
  'bot-cap': 'bot cap',
};

/**
 * "64% of $5.0000 a month (role Pro)": a member's spending in their budget's current window as a share of
 * it. `roleName` names a role as the caller can (a mention on Discord, the id in the terminal).
 */
export function budgetShareText(standing: LimitStanding, roleName: (roleId: string) => string): string {
  const { amountMicros } = standing.budget;
  const share =
    amountMicros === 0 ? 'blocked' : `${Math.round((standing.spentMicros * 100) / amountMicros)}% of`;
  const source =
    standing.source === 'role' && standing.roleId
      ? `role ${roleName(standing.roleId)}`
      : SOURCE_NAMES[standing.source];
  return `${share} ${describeBudget(standing)} (${source})`;
}

/** "32% of all spend": a server's part of the bot's total. */
export function shareOfTotal(spentMicros: Micros, totalMicros: Micros): string {
  return totalMicros === 0 ? '0%' : `${Math.round((spentMicros * 100) / totalMicros)}% of all spend`;
}
