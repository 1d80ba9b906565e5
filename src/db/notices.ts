import { NOTICE_PERCENTS, describeNotice, dueNotice } from '../core/notices.js';
import type { LimitKind, Member, Notices } from '../core/ports.js';
import type { Ledger } from './ledger.js';
import type { ClaimStore } from './store.js';

/**
 * Budget notices, for every dialect: a limit whose spending just reached 80% or 100% is told once per
 * period, whichever process notices first. The standings read is skipped when this process's latest
 * reserve bounds the spending below the first threshold.
 */
export class BudgetNotices implements Notices {
  constructor(
    private readonly ledger: Ledger,
    private readonly claims: ClaimStore,
    private readonly now: () => number = Date.now,
  ) {}

  forUser(member: Member): Promise<string | undefined> {
    return this.due('user', member);
  }

  forServer(guildId: string): Promise<string | undefined> {
    return this.due('server', { userId: '', guildId });
  }

  private async due(kind: LimitKind, member: Member): Promise<string | undefined> {
    const { userId, guildId } = member;
    if (!this.ledger.mayHaveReached(kind, userId, guildId, NOTICE_PERCENTS[0] / 100)) return undefined;
    const standing = (await this.ledger.standings(member)).find((limit) => limit.kind === kind);
    if (!standing) return undefined;
    const percent = await dueNotice(standing, { userId, guildId }, (key) =>
      this.claims.claimNotice(key, this.now()),
    );
    return percent === undefined ? undefined : describeNotice(percent, standing);
  }
}
