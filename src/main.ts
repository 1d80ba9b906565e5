import { createApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { loginBackoffMs } from './core/restarts.js';
import { startBot } from './discord/bot.js';
import { createLogger } from './log.js';

/** sysexits' EX_CONFIG: the configuration is wrong, and restarting will not help. */
const EXIT_CONFIG = 78;

/** The composition root of the bot: configuration, the app's pieces, and the Discord client. */
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
  const app = await createApp(config, log);

  // A process that keeps crashing at start-up backs off before it logs in to Discord again (counting
  // this host's starts: another host's deploy is not this one crashing).
  const earlierStarts = await app.storage.recordStart(Date.now());
  const backoffMs = loginBackoffMs(earlierStarts, Date.now());
  if (backoffMs > 0) {
    log.warn(
      { startsInLastFiveMinutes: earlierStarts.length, waitMs: backoffMs },
      'restarting often: waiting before logging in',
    );
    await sleep(backoffMs);
  }
  const bot = await startBot(config, app, log);

  const shutdown = async (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down: finishing answers in progress');
    await bot.stop();
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', (signal) => void shutdown(signal));
  process.once('SIGTERM', (signal) => void shutdown(signal));
}

await main();
