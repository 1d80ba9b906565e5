import { Writable } from 'node:stream';
import { afterEach, expect } from 'vitest';
import { type App, createApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { type BotOptions, type RunningBot, startBot } from '../../src/discord/bot.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/index.js';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { type FakeDiscord, startFakeDiscord } from '../fakes/discord/index.js';
import { type FakeOpenAI, startFakeOpenAI } from '../fakes/openai.js';
import { type SplitOpenAI, startSplitOpenAI } from '../fakes/openai-router.js';
import { type Backend, type TemporaryDatabase, temporaryDatabase } from './databases.js';
import type { OpenAIEndpoint } from './providers.js';
import { watchUnhandledRejections } from './rejections.js';
import { loopbackEnvironment } from './environment.js';
import { assertNoSecrets } from './secrets.js';

export interface BotHarness<OpenAIFake extends OpenAIEndpoint = FakeOpenAI> {
  database: TemporaryDatabase;
  discord: FakeDiscord;
  openai: OpenAIFake;
  anthropic: FakeAnthropic;
  config: Config;
  app: App;
  bot: RunningBot;
  /** Every log line the bot wrote, parsed. */
  logs: Record<string, unknown>[];
  environment: Record<string, string>;
  /** The operator's endpoints, when METRICS_PORT is set (as src/main.ts wires them). */
  metrics: Metrics | undefined;
  /**
   * Stops the bot and its app, then starts both again on the same database and loopback servers, as a
   * redeploy would: nothing cached in the process survives. `app`, `bot` and `metrics` are the new ones.
   */
  restart(): Promise<void>;
  /** Stops the bot, checks nothing was left open or unexpected, and removes everything. */
  close(): Promise<void>;
}

/**
 * For a test file whose tests each start their own bot (call it at the file's top level): the starter.
 * After each test its bot is closed (which checks that nothing stayed reserved) and the test fails if a
 * promise rejection went unhandled meanwhile.
 */
export function botPerTest(): (options?: BotHarnessOptions) => Promise<BotHarness>;
/** With `splitOpenAI`, each bot gets a fake per kind of OpenAI call (drafts, checks, triages). */
export function botPerTest(fakes: {
  splitOpenAI: true;
}): (options?: BotHarnessOptions) => Promise<BotHarness<SplitOpenAI>>;
export function botPerTest(
  fakes: { splitOpenAI?: boolean } = {},
): (options?: BotHarnessOptions) => Promise<BotHarness<FakeOpenAI | SplitOpenAI>> {
  const rejections = watchUnhandledRejections();
  let running: BotHarness<FakeOpenAI | SplitOpenAI> | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
    await rejections.expectNone();
  });
  return async (options) => {
    running = fakes.splitOpenAI
      ? await startBotHarness({ ...options, splitOpenAI: true })
      : await startBotHarness(options);
    return running;
  };
}

/**
 * The bot as `npm start` builds it (configuration, app, Discord), pointed at the loopback servers, with a
 * fast edit interval and a short shutdown grace. `before` runs against the fake Discord before the bot
 * logs in (e.g. to register the commands).
 */
export interface BotHarnessOptions {
  /** Over the harness's environment; a function sees the fake Discord first (for its ids). */
  environment?: Record<string, string> | ((discord: FakeDiscord) => Record<string, string>);
  before?: (discord: FakeDiscord, config: Config) => Promise<void>;
  /** Over the harness's bot options (fast edits, short shutdown grace). */
  bot?: BotOptions;
  /** The database it runs on (default SQLite). */
  backend?: Backend;
}

export function startBotHarness(options?: BotHarnessOptions): Promise<BotHarness>;
/** With `splitOpenAI`, a fake per kind of OpenAI call (drafts, checks, triages), routed by schema name. */
export function startBotHarness(
  options: BotHarnessOptions & { splitOpenAI: true },
): Promise<BotHarness<SplitOpenAI>>;
export async function startBotHarness(
  options: BotHarnessOptions & { splitOpenAI?: boolean } = {},
): Promise<BotHarness<FakeOpenAI | SplitOpenAI>> {
  const [discord, openai, anthropic] = await Promise.all([
    startFakeDiscord({ heartbeatIntervalMs: 5_000 }),
    options.splitOpenAI ? startSplitOpenAI() : startFakeOpenAI(),
    startFakeAnthropic(),
  ]);
  const database = await temporaryDatabase(options.backend ?? 'sqlite');
  const environment = {
    ...loopbackEnvironment({ discord, openai, anthropic, database }),
    ...(typeof options.environment === 'function' ? options.environment(discord) : options.environment),
  };
  const config = loadConfig(environment);
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line !== '') logs.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger('info', destination);
  await options.before?.(discord, config);
  const launch = async () => {
    // Wired as src/main.ts wires them: reporting from the start, serving before Discord is connected.
    const metrics = config.metrics && new Metrics(config.metrics);
    const app = await createApp(config, log, metrics ? metrics.telemetry : undefined);
    const started: { bot?: RunningBot } = {};
    await metrics?.start({
      storage: app.storage,
      gateway: () => started.bot?.gateway(),
      circuits: () => app.gateway.circuitStates(),
      onError: (error) => log.error({ err: error }, 'could not serve the metrics'),
    });
    const bot = await startBot(config, app, log, {
      editIntervalMs: 100,
      shutdownGraceMs: 300,
      telemetry: metrics ? metrics.telemetry : undefined,
      ...options.bot,
    });
    started.bot = bot;
    return { app, bot, metrics };
  };
  const stop = async ({ app, bot, metrics }: Awaited<ReturnType<typeof launch>>) => {
    await bot.stop();
    await metrics?.close();
    await app.close();
  };
  const harness: BotHarness<FakeOpenAI | SplitOpenAI> = {
    database,
    discord,
    openai,
    anthropic,
    config,
    ...(await launch()),
    logs,
    environment,
    async restart() {
      await stop(harness);
      Object.assign(harness, await launch());
    },
    async close() {
      await stop(harness);
      expect(await database.value('SELECT COUNT(*) FROM reservations')).toBe(0);
      expect([...openai.unexpected, ...anthropic.unexpected]).toEqual([]);
      discord.assertNothingUnexpected();
      await Promise.all([discord.close(), openai.close(), anthropic.close()]);
      await database.cleanup();
      // Nothing the bot wrote carries a secret: its log lines, and what it sent to Discord (bodies and text
      // files; an interaction webhook's path holds its token by design) and to the model APIs.
      const known = [
        environment.DISCORD_TOKEN,
        environment.OPENAI_API_KEY,
        environment.ANTHROPIC_API_KEY,
        ...[...discord.world.interactions.values()].map((interaction) => interaction.token),
      ].filter((secret): secret is string => secret !== undefined);
      const sentToDiscord = discord.requests.flatMap((request, index) => [
        ...(request.body === undefined
          ? []
          : [
              {
                where: `Discord request ${index} (${request.route}) body`,
                text: JSON.stringify(request.body),
              },
            ]),
        ...request.files
          .filter((file) => /^(text\/|application\/json)/.test(file.contentType))
          .map((file) => ({
            where: `Discord request ${index} file ${file.name}`,
            text: file.data.toString(),
          })),
      ]);
      assertNoSecrets(
        [
          ...logs.map((line, index) => ({ where: `log line ${index}`, text: JSON.stringify(line) })),
          ...sentToDiscord,
        ],
        known,
      );
      // Model requests may carry secret-shaped text a person wrote; never the bot's own secrets.
      assertNoSecrets(
        [...openai.requests, ...openai.unexpected, ...anthropic.requests, ...anthropic.unexpected].map(
          (request, index) => ({ where: `model request ${index} body`, text: JSON.stringify(request.body) }),
        ),
        known,
        { shapes: false },
      );
    },
  };
  return harness;
}

/** Waits until a condition holds, checking every 10 ms (bounded by the test's own timeout). */
export async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** What the check says when a draft is fine. */
export { ACCEPT } from './verdicts.js';
