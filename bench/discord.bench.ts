import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REST, Routes } from 'discord.js';
import { startFakeAnthropic } from '../test/fakes/anthropic.js';
import { buildForStart } from '../test/support/process.js';
import { type FakeDiscord, type RecordedRequest, startFakeDiscord } from '../test/fakes/discord/index.js';
import { startFakeOpenAI } from '../test/fakes/openai.js';
import { type BotProcess, type LoggedTurn, RssSampler, startBotProcess } from './discord-bot-process.js';
import { startProviderRouter } from './discord-provider-router.js';
import { PrometheusTelemetry } from '../src/metrics/prometheus.js';
import {
  type Benchmark,
  elapsedNs,
  type Figure,
  NS_PER_MS,
  NS_PER_US,
  nowNs,
  percentile,
  progress,
} from './support.js';

/*
 * The real bot against the loopback Discord and OpenAI fakes, with issue 7's pacing: the first token
 * 300 ms after the request, then 100 tokens/s (a ~4-character chunk every 40 ms).
 *
 * The bot is src/main.ts in its own process (discord-bot-process.ts), configured through the environment
 * with production defaults (edit interval, caches, log level info). The fakes, the router in front of the
 * OpenAI fakes (discord-provider-router.ts) and this benchmark share the other process, so the RSS figures
 * are the bot's alone. Dispatch and Discord's receipt of each request are read on this process's clock, by
 * the fake Discord.
 *
 * Bot overhead is dispatch → final edit minus the time inside model calls. The bot's gateway times each call
 * to a provider adapter (the SDK call, until its result) and logs the turn's total with its "turn done"
 * line, as the engine benchmark times calls at the same edge. Beside it, the same overhead with provider
 * time read at the wire instead: by the router, from a request's arrival to its response's last byte
 * handed back, so that the SDKs' and HTTP clients' work on either side (and the loopback hops between the
 * two processes) counts as the bot's.
 *
 * The measured bot is built and run as `npm start` builds and runs it: dist/ from tsc, on node with the
 * start script's flags (--optimize-for-size: V8 collects sooner instead of growing the heap).
 */

const SEQUENTIAL_WARM_UP = 3;
/** 100, so that p99 is a percentile (the 99th of 100), not the slowest of a few. */
const SEQUENTIAL_MESSAGES = 100;
const CONCURRENT_CONVERSATIONS = 200;
const MEMORY_CONVERSATIONS = 1_000;
const RTT_SAMPLES = 20;
const RSS_SAMPLE_INTERVAL_MS = 50;
/** After login, how long the bot is left alone before its idle RSS is read, and how long it is sampled. */
const IDLE_SETTLE_MS = 2_000;
const IDLE_SAMPLE_MS = 1_000;
/** After the last check call, how long RSS is still sampled while answers queue for Discord. */
/** The 1,000-conversation burst is delivered at Discord's pace (~16 answers/s): about a minute. */
const MEMORY_LIMIT_MS = 180_000;
const WAIT_LIMIT_MS = 60_000;
/** The 200-conversation burst is cut off here: what is answered by then is the throughput. */
const BURST_LIMIT_MS = 30_000;

const FIRST_CHUNK_DELAY_MS = 300;
const CHUNK_DELAY_MS = 40;
/** ~30 tokens: 1.2 s of streaming, so that a sequential run still sees interim edits. */
const ANSWER =
  'A monad is a way to chain computations that carry context along with their values, such as failure or state.';

const OVERHEAD_P99_TARGET_MS = 20;
/**
 * While the bot with METRICS_PORT set answers, /metrics is scraped this often: far more often than a
 * Prometheus server would (15 s to 1 min), so that whatever a scrape costs the bot shows in the figures.
 */
const SCRAPE_INTERVAL_MS = 1_000;
const FIRST_TEXT_MARGIN_MS = 50;
const RSS_TARGET_MB = 200;
const BYTES_PER_MB = 2 ** 20;
const BYTES_PER_KB = 2 ** 10;

const ACCEPT = JSON.stringify({
  verdict: 'accept',
  reason: 'complete',
  category: 'factual',
  confidence: 0.95,
});
const MARKER = /bench question (\d+):/;
const question = (index: number) => `bench question ${index}: what is a monad?`;
const questionOf = (body: string) => Number(MARKER.exec(body)?.[1] ?? -1);

/** What the fake Discord saw per question: the first text shown and the final (footed) edit. */
class AnswerTracker {
  readonly firstTextAt = new Map<string, number>();
  readonly finalAt = new Map<string, number>();
  readonly #questionByReply = new Map<string, string>();
  #cursor = 0;

  constructor(private readonly discord: FakeDiscord) {}

  update(): void {
    const { requests } = this.discord;
    for (; this.#cursor < requests.length; this.#cursor += 1) this.#see(requests[this.#cursor]!);
  }

  #see(request: RecordedRequest): void {
    if (request.status >= 300) return;
    const content = String(request.body?.content ?? '');
    if (request.route === 'POST /channels/:channel_id/messages') {
      const questionId = request.body?.message_reference?.message_id;
      if (typeof questionId !== 'string') return;
      this.#questionByReply.set(String(request.responseBody?.id), questionId);
      if (content !== '' && !this.firstTextAt.has(questionId))
        this.firstTextAt.set(questionId, request.receivedAt);
      if (content.includes('\n-# ')) this.finalAt.set(questionId, request.receivedAt);
    } else if (request.route === 'PATCH /channels/:channel_id/messages/:message_id') {
      const questionId = this.#questionByReply.get(request.params.message_id ?? '');
      if (questionId !== undefined && content.includes('\n-# '))
        this.finalAt.set(questionId, request.receivedAt);
    }
  }

  /** Waits for every final edit; with `limitMs`, at most that long, returning how many came. */
  async waitForFinals(questionIds: readonly string[], limitMs?: number): Promise<number> {
    const deadline = Date.now() + (limitMs ?? WAIT_LIMIT_MS);
    for (;;) {
      this.update();
      const answered = questionIds.filter((id) => this.finalAt.has(id)).length;
      if (answered === questionIds.length) return answered;
      if (Date.now() > deadline) {
        if (limitMs !== undefined) return answered;
        const missing = questionIds.filter((id) => !this.finalAt.has(id)).length;
        throw new Error(
          `${missing} of ${questionIds.length} answers had no final edit after ${WAIT_LIMIT_MS} ms`,
        );
      }
      await sleep(10);
    }
  }
}

/** The bot's own account of a turn (its "turn done" log line), which it writes just after the final edit. */
async function loggedTurn(bot: BotProcess, questionId: string): Promise<LoggedTurn> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  for (;;) {
    const logged = bot.turns.get(questionId);
    if (logged) return logged;
    if (Date.now() > deadline)
      throw new Error(`the bot logged no "turn done" line for message ${questionId}`);
    await sleep(5);
  }
}

/** Telemetry reports of an accepted turn (a draft and a check): in-process, without any I/O. */
const TELEMETRY_TURNS = 100_000;
const SCRAPES_IN_PROCESS = 200;

/**
 * What metrics cost the bot's own thread, measured in this process on the real adapter: the reports an
 * accepted turn makes (two reservations, two charges, the turn), and the rendering of a scrape.
 */
async function telemetryCost(): Promise<{ perTurnUs: number; scrapeP50Ms: number }> {
  const telemetry = new PrometheusTelemetry();
  telemetry.watch({ circuits: () => ({ openai: 'closed', anthropic: 'closed' }) });
  const usage = { inputTokens: 900, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 30 };
  const turn = () => {
    for (const purpose of ['draft', 'check'] as const) {
      telemetry.reserved({ latencyMs: 0.2 });
      telemetry.serverCapShare({ guildId: '1', share: 0.1, windowEndMs: Date.now() + 60_000 });
      telemetry.reservationClosed();
      telemetry.callCharged({ model: 'gpt-4o-mini', purpose, outcome: 'settled', usage, costMicros: 153 });
    }
    telemetry.turnEnded({ route: 'fast', outcome: 'answered' });
  };
  for (let warm = 0; warm < 1_000; warm += 1) turn();
  const startNs = nowNs();
  for (let index = 0; index < TELEMETRY_TURNS; index += 1) turn();
  const perTurnUs = elapsedNs(startNs) / TELEMETRY_TURNS / NS_PER_US;
  const scrapesMs = new Float64Array(SCRAPES_IN_PROCESS);
  for (let index = 0; index < SCRAPES_IN_PROCESS; index += 1) {
    const scrapeNs = nowNs();
    await telemetry.registry.metrics();
    scrapesMs[index] = elapsedNs(scrapeNs) / NS_PER_MS;
  }
  return { perTurnUs, scrapeP50Ms: percentile(scrapesMs, 50) };
}

/** A free loopback port, for the bot's METRICS_PORT. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Scrapes /metrics on an interval, one scrape at a time, timing each; keeps the last body. */
class Scraper {
  readonly #durationsMs: number[] = [];
  #running = true;
  /** Settles when the loop stops; a failed scrape is kept and thrown by stop(). */
  readonly #loop: Promise<unknown>;
  private readonly scrapeOnce: () => Promise<string>;

  constructor(url: string, intervalMs: number) {
    const scrapeOnce = async () => {
      const startNs = nowNs();
      const response = await fetch(url);
      if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
      const body = await response.text();
      this.#durationsMs.push(elapsedNs(startNs) / NS_PER_MS);
      return body;
    };
    this.scrapeOnce = scrapeOnce;
    this.#loop = (async () => {
      while (this.#running) {
        await scrapeOnce();
        await sleep(intervalMs);
      }
    })().catch((error: unknown) => error);
  }

  /** Stops after one last scrape, whose body it returns. */
  async stop(): Promise<{ durationsMs: Float64Array; last: string }> {
    this.#running = false;
    const failure = await this.#loop;
    if (failure instanceof Error) throw failure;
    const last = await this.scrapeOnce();
    return { durationsMs: Float64Array.from(this.#durationsMs), last };
  }
}

/** The answered turns in a scrape: the sum of tierbot_turns_total{outcome="answered"}. */
function turnsAnswered(metrics: string): number {
  return metrics
    .split('\n')
    .filter((line) => line.startsWith('tierbot_turns_total{') && line.includes('outcome="answered"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** A bot that logged errors did not answer as measured: its figures are not reported. */
function assertNoErrors(bot: BotProcess): void {
  if (bot.errors.length > 0) throw new Error(`the bot logged errors:\n${bot.errors.join('\n')}`);
}

/** The bot's RSS once it has logged in and settled: the largest sample over a short window, in bytes. */
async function idleRssBytes(bot: BotProcess): Promise<number> {
  await sleep(IDLE_SETTLE_MS);
  const sampler = new RssSampler(bot, RSS_SAMPLE_INTERVAL_MS);
  await sleep(IDLE_SAMPLE_MS);
  return sampler.stop();
}

export const discordBenchmark: Benchmark = {
  name: 'discord',
  async run(): Promise<Figure[]> {
    const [discord, drafts, checks, anthropic] = await Promise.all([
      startFakeDiscord(),
      startFakeOpenAI(),
      startFakeOpenAI(),
      startFakeAnthropic(),
    ]);
    const router = await startProviderRouter({
      urls: { draft: drafts.url, check: checks.url },
      questionOf,
    });
    const directory = mkdtempSync(join(tmpdir(), 'tierbot-bench-discord-'));
    const environment = (databaseFile: string) => ({
      DISCORD_TOKEN: discord.token,
      DISCORD_API_URL: discord.apiUrl,
      OPENAI_API_KEY: 'sk-bench-openai-key-0000000000',
      ANTHROPIC_API_KEY: 'sk-ant-bench-key-0000000000',
      OPENAI_BASE_URL: router.url,
      ANTHROPIC_BASE_URL: anthropic.url,
      DATABASE_PATH: join(directory, databaseFile),
      DEFAULT_USER_BUDGET_USD: '10000',
      LOG_LEVEL: 'info',
      // Today's cascade, as before the router: its overhead and first-text figures stay comparable, and
      // the router's own figures are the router benchmark's (router.bench.ts).
      ROUTER: 'off',
    });
    let bot: BotProcess | undefined;
    /** The side-by-side phase's bot with METRICS_PORT set, on a loopback Discord of its own. */
    let metricsBot: BotProcess | undefined;
    let metricsDiscord: FakeDiscord | undefined;
    const tracker = new AnswerTracker(discord);
    let nextIndex = 0;

    const scriptTurns = (count: number) => {
      for (let turn = 0; turn < count; turn += 1) {
        drafts.script({
          type: 'stream',
          text: ANSWER,
          firstChunkDelayMs: FIRST_CHUNK_DELAY_MS,
          chunkDelayMs: CHUNK_DELAY_MS,
          finishReason: 'stop',
        });
        checks.script({ type: 'completion', content: ACCEPT });
      }
    };
    /** Sends one question; returns its message id, index and dispatch time. */
    const ask = (send: (content: string) => { id: string }) => {
      const index = nextIndex;
      nextIndex += 1;
      const dispatchedAt = Date.now();
      const { id } = send(question(index));
      return { id, index, dispatchedAt };
    };
    /**
     * One mention, answered: the bot's overhead (without and with the clients' own work) and the first
     * text's delay after the provider's first token.
     */
    const measureMention = async (
      measured: BotProcess,
      on: { discord: FakeDiscord; tracker: AnswerTracker },
    ) => {
      scriptTurns(1);
      const asked = ask((content) =>
        on.discord.messageCreate({ content: `<@${on.discord.bot.id}> ${content}` }),
      );
      await on.tracker.waitForFinals([asked.id]);
      const logged = await loggedTurn(measured, asked.id);
      const record = router.records.get(asked.index);
      const finalAt = on.tracker.finalAt.get(asked.id);
      const firstTextAt = on.tracker.firstTextAt.get(asked.id);
      if (!record?.firstContentAt || finalAt === undefined || firstTextAt === undefined) {
        throw new Error(`question ${asked.index} left no provider record or no visible text`);
      }
      return {
        overheadMs: finalAt - asked.dispatchedAt - logged.providerMs,
        overheadWithClientsMs: finalAt - asked.dispatchedAt - record.spanMs,
        firstTextMs: firstTextAt - record.firstContentAt,
      };
    };
    /** Mentions one after another, after a warm-up: the figures of each, in arrays. */
    const sequentialOverhead = async (measured: BotProcess) => {
      const overheadMs = new Float64Array(SEQUENTIAL_MESSAGES);
      const overheadWithClientsMs = new Float64Array(SEQUENTIAL_MESSAGES);
      const firstTextMs = new Float64Array(SEQUENTIAL_MESSAGES);
      for (let turn = 0; turn < SEQUENTIAL_WARM_UP + SEQUENTIAL_MESSAGES; turn += 1) {
        const measuredTurn = await measureMention(measured, { discord, tracker });
        if (turn < SEQUENTIAL_WARM_UP) continue;
        const sample = turn - SEQUENTIAL_WARM_UP;
        overheadMs[sample] = measuredTurn.overheadMs;
        overheadWithClientsMs[sample] = measuredTurn.overheadWithClientsMs;
        firstTextMs[sample] = measuredTurn.firstTextMs;
      }
      return { overheadMs, overheadWithClientsMs, firstTextMs };
    };
    const directUsers = (count: number) =>
      Array.from({ length: count }, (_, user) => discord.addUser({ username: `bench-${nextIndex}-${user}` }));

    try {
      progress('discord: building the bot (npm run build) and starting it as npm start does…');
      const args = buildForStart(join(directory, 'build'));
      bot = await startBotProcess({ args, environment: environment('tierbot.db'), cwd: directory });
      const idleBytes = await idleRssBytes(bot);

      // One REST round trip with discord.js's REST client (its queue and limiter), from this process.
      const rest = new REST({ api: discord.apiUrl }).setToken(discord.token);
      const rttMs = new Float64Array(RTT_SAMPLES);
      for (let sample = 0; sample < RTT_SAMPLES; sample += 1) {
        const startNs = nowNs();
        await rest.get(Routes.user());
        rttMs[sample] = elapsedNs(startNs) / NS_PER_MS;
      }
      rest.clearHashSweeper();
      rest.clearHandlerSweeper();
      const rttP50Ms = percentile(rttMs, 50);

      progress(`discord: ${SEQUENTIAL_WARM_UP} + ${SEQUENTIAL_MESSAGES} sequential mentions in #general…`);
      const { overheadMs, overheadWithClientsMs, firstTextMs } = await sequentialOverhead(bot);

      progress(`discord: ${CONCURRENT_CONVERSATIONS} conversations at once (DMs from distinct users)…`);
      const concurrentUsers = directUsers(CONCURRENT_CONVERSATIONS);
      const requestsBefore = discord.requests.length;
      scriptTurns(CONCURRENT_CONVERSATIONS);
      const burstStart = Date.now();
      const burst = concurrentUsers.map((user) =>
        ask((content) => discord.directMessageCreate({ content, authorId: user.id })),
      );
      const answered = await tracker.waitForFinals(
        burst.map((asked) => asked.id),
        BURST_LIMIT_MS,
      );
      const burstEnd =
        answered === burst.length
          ? Math.max(...burst.map((asked) => tracker.finalAt.get(asked.id) ?? 0))
          : Date.now();
      const burstSeconds = (burstEnd - burstStart) / 1_000;
      const rateLimitsAfterBurst = discord.rateLimits.count;
      // The next phase starts from an empty REST queue: whatever the cut-off left is drained first.
      await tracker.waitForFinals(burst.map((asked) => asked.id));
      const restPerAnswer = (discord.requests.length - requestsBefore) / CONCURRENT_CONVERSATIONS;
      await sleep(1_100);

      progress(
        `discord: ${MEMORY_CONVERSATIONS} conversations at once, sampling the bot's RSS every ${RSS_SAMPLE_INTERVAL_MS} ms…`,
      );
      const memoryUsers = directUsers(MEMORY_CONVERSATIONS);
      scriptTurns(MEMORY_CONVERSATIONS);
      const checksBefore = router.checksDone;
      const beforeBytes = bot.rssBytes();
      // The kernel's high-water mark catches a peak between two samples; it is restarted here so that it
      // covers this phase only.
      const hasPeakMark = bot.resetPeakRss();
      const sampler = new RssSampler(bot, RSS_SAMPLE_INTERVAL_MS);
      const memoryStart = Date.now();
      const memoryQuestions = memoryUsers.map((user) =>
        ask((content) => discord.directMessageCreate({ content, authorId: user.id })),
      );
      // Sampled until the last answer's final edit: the bot writes at most TURNS_IN_FLIGHT answers at once
      // and the rest wait their turn, so the whole burst is over only when Discord has every answer.
      await tracker.waitForFinals(
        memoryQuestions.map((asked) => asked.id),
        MEMORY_LIMIT_MS,
      );
      const memorySeconds = (Date.now() - memoryStart) / 1_000;
      if (router.checksDone - checksBefore < MEMORY_CONVERSATIONS) {
        throw new Error(
          `${MEMORY_CONVERSATIONS - (router.checksDone - checksBefore)} of ${MEMORY_CONVERSATIONS} turns were not answered within ${MEMORY_LIMIT_MS} ms`,
        );
      }
      const sampledPeakBytes = sampler.stop();
      const peakBytes = Math.max(sampledPeakBytes, (hasPeakMark && bot.peakRssBytes()) || 0);

      assertNoErrors(bot);

      // Metrics on and off, side by side: two fresh bots, each on a loopback Discord of its own (one
      // with METRICS_PORT set, /metrics scraped every second), asked in turn, one mention at a time, so
      // that both meet the same machine at the same moments (on a shared VM, minutes apart differ more
      // than the metrics do).
      await bot.stop('SIGKILL');
      progress(
        `discord: metrics off and on, side by side: ${SEQUENTIAL_WARM_UP} + ${SEQUENTIAL_MESSAGES} mentions each, in turn, /metrics scraped every ${SCRAPE_INTERVAL_MS / 1_000} s…`,
      );
      metricsDiscord = await startFakeDiscord();
      const metricsPort = await freePort();
      const [plainBot, meteredBot] = await Promise.all([
        startBotProcess({ args, environment: environment('tierbot-plain.db'), cwd: directory }),
        startBotProcess({
          args,
          environment: {
            ...environment('tierbot-metrics.db'),
            DISCORD_TOKEN: metricsDiscord.token,
            DISCORD_API_URL: metricsDiscord.apiUrl,
            METRICS_PORT: String(metricsPort),
          },
          cwd: directory,
        }),
      ]);
      bot = plainBot;
      metricsBot = meteredBot;
      const metered = { discord: metricsDiscord, tracker: new AnswerTracker(metricsDiscord) };
      const scraper = new Scraper(`http://127.0.0.1:${metricsPort}/metrics`, SCRAPE_INTERVAL_MS);
      const pairedOffMs = new Float64Array(SEQUENTIAL_MESSAGES);
      const pairedOnMs = new Float64Array(SEQUENTIAL_MESSAGES);
      for (let turn = 0; turn < SEQUENTIAL_WARM_UP + SEQUENTIAL_MESSAGES; turn += 1) {
        // Which goes first alternates, so that neither always follows the other's work.
        const offFirst = turn % 2 === 0;
        const first = await measureMention(
          offFirst ? plainBot : meteredBot,
          offFirst ? { discord, tracker } : metered,
        );
        const second = await measureMention(
          offFirst ? meteredBot : plainBot,
          offFirst ? metered : { discord, tracker },
        );
        if (turn < SEQUENTIAL_WARM_UP) continue;
        pairedOffMs[turn - SEQUENTIAL_WARM_UP] = (offFirst ? first : second).overheadMs;
        pairedOnMs[turn - SEQUENTIAL_WARM_UP] = (offFirst ? second : first).overheadMs;
      }
      const scrapes = await scraper.stop();
      const inProcess = await telemetryCost();
      // What the bot counted is what it answered: the metrics were really being kept.
      const countedTurns = turnsAnswered(scrapes.last);
      assertNoErrors(plainBot);
      assertNoErrors(meteredBot);
      metered.discord.assertNothingUnexpected();

      const unexpected = drafts.unexpected.length + checks.unexpected.length;
      if (unexpected > 0) throw new Error(`${unexpected} provider requests went astray`);
      discord.assertNothingUnexpected();

      return [
        {
          name: 'bot overhead per message (dispatch → final edit − time inside provider calls) p50',
          value: percentile(overheadMs, 50),
          unit: 'ms',
        },
        {
          name: 'bot overhead per message (dispatch → final edit − time inside provider calls) p99',
          value: percentile(overheadMs, 99),
          unit: 'ms',
          target: { atMost: OVERHEAD_P99_TARGET_MS },
        },
        {
          name: 'side by side, metrics off: bot overhead per message p50',
          value: percentile(pairedOffMs, 50),
          unit: 'ms',
        },
        {
          name: 'side by side, metrics off: bot overhead per message p99',
          value: percentile(pairedOffMs, 99),
          unit: 'ms',
          target: { atMost: OVERHEAD_P99_TARGET_MS },
        },
        {
          name: `side by side, METRICS_PORT set and /metrics scraped every ${SCRAPE_INTERVAL_MS / 1_000} s: bot overhead per message p50`,
          value: percentile(pairedOnMs, 50),
          unit: 'ms',
        },
        {
          name: `side by side, METRICS_PORT set and /metrics scraped every ${SCRAPE_INTERVAL_MS / 1_000} s: bot overhead per message p99`,
          value: percentile(pairedOnMs, 99),
          unit: 'ms',
          target: { atMost: OVERHEAD_P99_TARGET_MS },
        },
        {
          name: 'metrics reports of an accepted turn, in-process (prom-client adapter, no I/O)',
          value: inProcess.perTurnUs,
          unit: 'µs',
        },
        {
          name: 'rendering one scrape, in-process (process metrics and the bot’s), p50',
          value: inProcess.scrapeP50Ms,
          unit: 'ms',
        },
        {
          name: 'a scrape of /metrics during those mentions (request → whole body), p50',
          value: percentile(scrapes.durationsMs, 50),
          unit: 'ms',
        },
        {
          name: `answered turns counted by /metrics (tierbot_turns_total) equal the mentions sent (${SEQUENTIAL_WARM_UP + SEQUENTIAL_MESSAGES})`,
          value: countedTurns === SEQUENTIAL_WARM_UP + SEQUENTIAL_MESSAGES,
          unit: '',
          target: { equals: true },
        },
        {
          name: 'same, with the SDKs and HTTP clients counted as overhead (provider time at the wire) p50',
          value: percentile(overheadWithClientsMs, 50),
          unit: 'ms',
        },
        {
          name: 'same, with the SDKs and HTTP clients counted as overhead (provider time at the wire) p99',
          value: percentile(overheadWithClientsMs, 99),
          unit: 'ms',
        },
        {
          name: 'REST round trip (GET /users/@me, discord.js REST client in the bench process) p50',
          value: rttP50Ms,
          unit: 'ms',
        },
        {
          name: 'first token sent to the bot → first text at Discord p50',
          value: percentile(firstTextMs, 50),
          unit: 'ms',
          target: { atMost: rttP50Ms + FIRST_TEXT_MARGIN_MS },
        },
        {
          name: 'first token sent to the bot → first text at Discord p99',
          value: percentile(firstTextMs, 99),
          unit: 'ms',
          target: { atMost: rttP50Ms + FIRST_TEXT_MARGIN_MS },
        },
        {
          name: `answered messages per second, ${CONCURRENT_CONVERSATIONS} concurrent conversations`,
          value: answered / burstSeconds,
          unit: 'ops/s',
        },
        {
          name: `wall time to all final edits, ${CONCURRENT_CONVERSATIONS} concurrent conversations (cut off at ${BURST_LIMIT_MS / 1_000} s)`,
          value: burstSeconds,
          unit: 's',
        },
        {
          name: `answered within the cut-off, ${CONCURRENT_CONVERSATIONS} concurrent conversations`,
          value: answered,
          unit: '',
        },
        {
          name: `Discord REST requests per answer, ${CONCURRENT_CONVERSATIONS} concurrent conversations`,
          value: restPerAnswer,
          unit: '',
        },
        {
          name: `Discord 429s, ${CONCURRENT_CONVERSATIONS} concurrent conversations`,
          value: rateLimitsAfterBurst,
          unit: '',
          target: { atMost: 0 },
        },
        {
          name: 'bot process RSS, idle 3 s after login (as npm start runs it)',
          value: idleBytes / BYTES_PER_MB,
          unit: 'MB',
        },
        {
          name: `bot process RSS before the ${MEMORY_CONVERSATIONS} conversations (after ${SEQUENTIAL_WARM_UP + SEQUENTIAL_MESSAGES + CONCURRENT_CONVERSATIONS} answers)`,
          value: beforeBytes / BYTES_PER_MB,
          unit: 'MB',
        },
        {
          name: `bot process peak RSS, ${MEMORY_CONVERSATIONS} concurrent conversations (as npm start runs it)`,
          value: peakBytes / BYTES_PER_MB,
          unit: 'MB',
          target: { atMost: RSS_TARGET_MB },
        },
        {
          name: `wall time to all final edits, ${MEMORY_CONVERSATIONS} concurrent conversations`,
          value: memorySeconds,
          unit: 's',
        },
        {
          name: `bot process RSS per concurrent conversation ((peak − before) / ${MEMORY_CONVERSATIONS})`,
          value: (peakBytes - beforeBytes) / MEMORY_CONVERSATIONS / BYTES_PER_KB,
          unit: 'kB',
        },
      ];
    } catch (error) {
      // What the bot logged is usually why.
      const logged = [...(bot?.errors ?? []), ...(metricsBot?.errors ?? [])];
      if (logged.length > 0) {
        throw new Error(`${String(error)}\nthe bot logged:\n${logged.join('\n')}`, { cause: error });
      }
      throw error;
    } finally {
      // SIGKILL: the measurement is over, and a graceful stop would wait for the answers still queued
      // behind Discord's rate limit.
      await bot?.stop('SIGKILL');
      await metricsBot?.stop('SIGKILL');
      await metricsDiscord?.close();
      await Promise.all([discord.close(), drafts.close(), checks.close(), anthropic.close(), router.close()]);
      rmSync(directory, { recursive: true, force: true });
    }
  },
};
