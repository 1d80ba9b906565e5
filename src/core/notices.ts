import { describePeriod, formatResetTime, type LimitStanding } from './budget.js';
import { formatUsd } from './money.js';

/** Shares of a budget at which its user (or a server's admins) are told, once per period each. */
export const NOTICE_PERCENTS = [80, 100] as const;
export type NoticePercent = (typeof NOTICE_PERCENTS)[number];

/** One notice for one limit in one window: what is given at most once. */
export interface NoticeKey {
  kind: LimitStanding['kind'];
  guildId: string | null;
  /** The user, for a user's limit; '' for a server's. */
  userId: string;
  windowStartMs: number;
  percent: NoticePercent;
}

/**
 * The notice a standing is due, if any: the highest threshold its spending has reached that was not
 * already given in this window. `claim` records a notice and says whether it was new; every reached
 * threshold is claimed, so a user who jumps from 50% to 100% hears only of the 100%, once.
 */
export async function dueNotice(
  standing: LimitStanding,
  owner: { userId: string; guildId: string | null },
  claim: (key: NoticeKey) => Promise<boolean>,
): Promise<NoticePercent | undefined> {
  const { amountMicros } = standing.budget;
  if (amountMicros === 0) return undefined;
  let due: NoticePercent | undefined;
  for (const percent of NOTICE_PERCENTS) {
    if (standing.spentMicros * 100 < amountMicros * percent) break;
    const isNew = await claim({
      kind: standing.kind,
      guildId: owner.guildId,
      userId: standing.kind === 'user' ? owner.userId : '',
      windowStartMs: standing.window.startMs,
      percent,
    });
    if (isNew) due = percent;
  }
  return due;
}

/** "80% of your budget used ($0.80 of $1.00 this month); resets Dec 1, 00:00 UTC" */
export function describeNotice(percent: NoticePercent, standing: LimitStanding): string {
  const whose = standing.kind === 'user' ? 'your budget' : "this server's budget";
  const spent = `${formatUsd(standing.spentMicros)} of ${formatUsd(standing.budget.amountMicros)} ${describePeriod(standing.budget.period)}`;
  return `${percent}% of ${whose} used (${spent}); resets ${formatResetTime(standing.window.endMs)}`;
}
