import type { LimitStanding } from '../core/budget.js';
import type { Member, UsageReports } from '../core/ports.js';
import type { ReportSources } from '../core/reports.js';
import { type DefaultBudgets, standingsOf } from './standings.js';
import type { DatabaseLocation } from './storage.js';
import type { ReadOnlyStores } from './store.js';

/** The database as `npm run report` reads it: the reports' sources, and nothing that writes. */
export interface ReportDatabase extends ReportSources {
  readonly dialect: 'sqlite' | 'postgres';
  usage: Pick<UsageReports, 'overview' | 'calls'>;
  close(): Promise<void>;
}

/**
 * Opens the bot's database read-only, beside a running bot: no migration (the bot applies them), no lease,
 * no sweep of reservations, no write of any kind, so the report changes nothing the bot relies on. The
 * budgets' standings are read as the bot reads them, without the settles a bot process has not written
 * yet (a fraction of a second's worth).
 */
export async function openReportDatabase(
  options: DatabaseLocation & DefaultBudgets & { now?: () => number },
): Promise<ReportDatabase> {
  const stores = await openReadOnly(options);
  const now = options.now ?? Date.now;
  const standingsOfMembers = async (members: readonly Member[]): Promise<LimitStanding[][]> => {
    const owners = members.map((member) => ({
      userId: member.userId,
      guildId: member.guildId,
      roleIds: member.roleIds ?? [],
    }));
    const { snapshots } = await stores.ledger.snapshots(owners, []);
    const nowMs = now();
    return owners.map((owner, index) => {
      const snapshot = snapshots[index];
      if (!snapshot) throw new Error('the store returned fewer snapshots than members');
      return standingsOf(owner, snapshot, options, nowMs, []).standings;
    });
  };
  return {
    dialect: stores.dialect,
    usage: stores.usage,
    budgets: {
      standingsOfMembers,
      standings: async (member) => (await standingsOfMembers([member]))[0] ?? [],
      roleBudgets: (guildId) => stores.ledger.roleBudgets(guildId),
    },
    close: () => stores.close(),
  };
}

async function openReadOnly(location: DatabaseLocation): Promise<ReadOnlyStores> {
  if (location.databaseUrl) {
    const { openPostgresReadOnly } = await import('./postgres/index.js');
    return openPostgresReadOnly(location.databaseUrl);
  }
  const { openSqliteReadOnly } = await import('./sqlite/index.js');
  return openSqliteReadOnly(location.databasePath);
}
