import { ConfigError, loadConfig } from './config.js';
import { formatUsd } from './core/money.js';
import { closeDatabase, migrate, openDatabase } from './db/database.js';
import { Ledger } from './db/ledger.js';
import { createLogger } from './log.js';
import { createModelGateway } from './providers/index.js';

/** How often reservations held past their TTL are charged and freed. */
const SWEEP_INTERVAL_MS = 60_000;

/** The composition root: the one place that knows every concrete piece. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const log = createLogger(config.logLevel);

  const db = openDatabase(config.databasePath);
  const { applied } = migrate(db);
  const ledger = new Ledger(db, {
    prices: config.prices,
    smartModel: config.smartModel,
    defaultUserBudget: config.defaultUserBudget,
    defaultServerCap: config.defaultServerCap,
  });
  const gateway = createModelGateway(config, ledger);
  const swept = ledger.sweepOrphans();
  if (swept > 0)
    log.warn({ swept }, 'charged reservations left open by a previous crash at their reserved amount');
  const sweeper = setInterval(() => ledger.sweepExpired(), SWEEP_INTERVAL_MS);
  sweeper.unref();

  log.info(
    {
      database: config.databasePath,
      migrationsApplied: applied,
      fastModel: config.fastModel,
      smartModel: config.smartModel,
      userBudget: `${formatUsd(config.defaultUserBudget.amountMicros)}/${config.defaultUserBudget.period}`,
      serverCap: config.defaultServerCap
        ? `${formatUsd(config.defaultServerCap.amountMicros)}/${config.defaultServerCap.period}`
        : 'none',
    },
    'tierbot ready',
  );

  void gateway;

  const shutdown = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down');
    clearInterval(sweeper);
    closeDatabase(db);
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

await main();
