import { createApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { formatUsd } from './core/money.js';
import { createLogger } from './log.js';

/** sysexits' EX_CONFIG: the configuration is wrong, and restarting will not help. */
const EXIT_CONFIG = 78;

/** The composition root of the bot: configuration, the app's pieces, and (soon) the Discord client. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const app = createApp(config, log);

  log.info(
    {
      database: config.databasePath,
      fastModel: config.fastModel,
      smartModel: config.smartModel,
      userBudget: `${formatUsd(config.defaultUserBudget.amountMicros)}/${config.defaultUserBudget.period}`,
      serverCap: config.defaultServerCap
        ? `${formatUsd(config.defaultServerCap.amountMicros)}/${config.defaultServerCap.period}`
        : 'none',
    },
    'tierbot ready',
  );

  const shutdown = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down');
    app.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

await main();
