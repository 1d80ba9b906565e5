import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, loadOrExit } from './config.js';
import { loginBackoffMs } from './core/restarts.js';
import { EXIT_CODES } from './exit-codes.js';
import { createLogger } from './log.js';

/**
 * The composition root of the bot: configuration, the app's pieces, and the Discord client.
 *
 * The configuration is checked first, with only what reading it needs loaded: discord.js, the two SDKs and
 * the tokenizer take a second or more to load, which a mistake in .env should not wait for.
 */
async function main(): Promise<void> {
  const config = loadOrExit(() => loadConfig());
  const [
    { createApp },
    { startBot },
    { ShardConfigError },
    { DiscordLoginError, retryTransientLogin },
    { warmUpTokenizer },
  ] = await Promise.all([
    import('./app.js'),
    import('./discord/bot.js'),
    import('./discord/client.js'),
    import('./discord/login.js'),
    import('./providers/estimate.js'),
  ]);
  const log = createLogger(config.logLevel);
  // prom-client is loaded only when the operator asked for metrics.
  const metricsModule = config.metrics && (await import('./metrics/index.js'));
  const metrics = config.metrics && metricsModule && new metricsModule.Metrics(config.metrics);
  const app = await createApp(config, log, metrics ? metrics.telemetry : undefined);
  let bot: Awaited<ReturnType<typeof startBot>> | undefined;
  if (metrics) {
    try {
      const url = await metrics.start({
        storage: app.storage,
        gateway: () => bot?.gateway(),
        circuits: () => app.gateway.circuitStates(),
        onError: (error) => log.error({ err: error }, 'could not serve the metrics'),
      });
      log.info({ url }, `metrics at ${url}/metrics, health at ${url}/healthz and ${url}/readyz`);
    } catch (error) {
      // The port is taken, or the address is not this host's: the configuration must change.
      if (!(metricsModule && error instanceof metricsModule.MetricsListenError)) throw error;
      await app.close();
      process.stderr.write(`tierbot cannot start: ${(error as Error).message}\n`);
      process.exit(EXIT_CODES.configuration);
    }
  }

  // A process that keeps crashing at start-up backs off before it logs in to Discord again (counting
  // the starts of this host's process for these shards: another host's deploy, or another process of this
  // one, is not this one crashing).
  const earlierStarts = await app.storage.recordStart(Date.now(), config.discord.shardIds?.join(',') ?? '');
  const backoffMs = loginBackoffMs(earlierStarts, Date.now());
  if (backoffMs > 0) {
    log.warn(
      { startsInLastFiveMinutes: earlierStarts.length, waitMs: backoffMs },
      'restarting often: waiting before logging in',
    );
    await sleep(backoffMs);
  }

  try {
    // A dropped connection, a timeout or a 5xx is tried again; a refused token or intent, or a Discord
    // that cannot be reached at all, ends the process with one line saying what to do.
    bot = await retryTransientLogin(
      () => startBot(config, app, log),
      (error, waitMs) => log.warn({ waitMs }, `${error.message}: trying again in ${waitMs / 1000} s`),
    );
  } catch (error) {
    // Shards that do not fit the count Discord recommends: the configuration must change.
    const exitCode =
      error instanceof ShardConfigError
        ? EXIT_CODES.configuration
        : error instanceof DiscordLoginError
          ? error.exitCode
          : undefined;
    if (exitCode === undefined) throw error;
    await metrics?.close();
    await app.close();
    process.stderr.write(`tierbot cannot start: ${(error as Error).message}\n`);
    process.exit(exitCode);
  }

  // The tokenizer the reservations count with loads now, just after "ready" rather than before it.
  setImmediate(() => warmUpTokenizer());

  const shutdown = async (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down: finishing answers in progress');
    await bot?.stop();
    await metrics?.close();
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', (signal) => void shutdown(signal));
  process.once('SIGTERM', (signal) => void shutdown(signal));
}

await main();
