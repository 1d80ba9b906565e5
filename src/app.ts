import type { ModelConfig } from './config.js';
import type { LimitKind } from './core/budget.js';
import { modelLabel } from './core/models.js';
import { describeNotice, dueNotice, NOTICE_PERCENTS } from './core/notices.js';
import type { TurnDependencies } from './core/turn.js';
import { type AppDatabase, closeDatabase, migrate, openDatabase } from './db/database.js';
import { Ledger } from './db/ledger.js';
import { SqliteNoticeLog } from './db/notices.js';
import { SqliteSettings } from './db/settings.js';
import { SqliteTurnLog } from './db/turns.js';
import { type UsageQuery, type UsageReport, usageReport } from './db/usage.js';
import type { Logger } from './log.js';
import { createModelGateway } from './providers/index.js';
import type { ModelGateway } from './providers/gateway.js';

/** How often reservations held past their TTL are charged and freed. */
const SWEEP_INTERVAL_MS = 60_000;

export interface App {
  db: AppDatabase;
  ledger: Ledger;
  gateway: ModelGateway;
  turns: SqliteTurnLog;
  settings: SqliteSettings;
  /** Everything answerTurn() needs, wired to the real pieces. */
  engine: TurnDependencies;
  /** What /usage shows, with every row written behind so far included. */
  usageReport(query: UsageQuery): UsageReport;
  /** For the server's alerts channel: a notice if its spending just reached 80% or 100% of its cap. */
  serverBudgetNotice(guildId: string): string | undefined;
  close(): void;
}

/**
 * The pieces every entry point shares: the database (migrated once), the ledger (with reservations left
 * by a crash swept), the model gateway and the engine's dependencies. The bot (src/main.ts) adds Discord;
 * the terminal chat (src/chat.ts) adds stdin and stdout.
 */
export function createApp(config: ModelConfig, log: Logger): App {
  const db = openDatabase(config.databasePath);
  const { applied } = migrate(db);
  if (applied > 0) log.info({ applied }, 'database migrated');
  const ledger = new Ledger(db, {
    prices: config.prices,
    smartModel: config.smartModel,
    defaultUserBudget: config.defaultUserBudget,
    defaultServerCap: config.defaultServerCap,
    onWriteError: (error) => log.error({ err: error }, 'could not write settled calls; will retry'),
  });
  const swept = ledger.sweepOrphans();
  if (swept > 0) log.warn({ swept }, 'charged reservations left open by a crash at their reserved amount');
  const sweeper = setInterval(() => {
    const expired = ledger.sweepExpired();
    if (expired > 0) log.warn({ expired }, 'charged reservations held past their TTL');
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();

  const budgetNotice = budgetNotices(db, ledger);
  const gateway = createModelGateway(config, ledger);
  const turns = new SqliteTurnLog(db, (error) =>
    log.error({ err: error }, 'could not write turns; will retry'),
  );
  const engine: TurnDependencies = {
    models: gateway,
    fastModel: config.fastModel,
    smartModel: config.smartModel,
    modelLabel,
    systemPrompt: config.systemPrompt,
    maxOutputTokens: config.maxOutputTokens,
    policy: config.policy,
    budgetNotice: (userId, guildId) => budgetNotice('user', userId, guildId),
    turns,
  };
  return {
    db,
    ledger,
    gateway,
    turns,
    settings: new SqliteSettings(db),
    engine,
    serverBudgetNotice: (guildId) => budgetNotice('server', '', guildId),
    usageReport(query) {
      ledger.flush();
      turns.flush();
      return usageReport(db, query);
    },
    close() {
      clearInterval(sweeper);
      closeDatabase(db);
    },
  };
}

/**
 * The notice a user's (or a server's) limit is due after spending, if it just reached 80% or 100%:
 * each is given once per period, whichever bot process notices first.
 */
export function budgetNotices(db: AppDatabase, ledger: Ledger) {
  const notices = new SqliteNoticeLog(db);
  return (kind: LimitKind, userId: string, guildId: string | null): string | undefined => {
    if (!ledger.mayHaveReached(kind, userId, guildId, NOTICE_PERCENTS[0] / 100)) return undefined;
    const standing = ledger.standings(userId, guildId).find((limit) => limit.kind === kind);
    const percent = standing && dueNotice(standing, { userId, guildId }, (key) => notices.claim(key));
    return percent && standing ? describeNotice(percent, standing) : undefined;
  };
}
