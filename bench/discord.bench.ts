import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Routes } from 'discord.js';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startBot } from '../src/discord/bot.js';
import { EDIT_INTERVAL_MS } from '../src/discord/live-reply.js';
import { createLogger } from '../src/log.js';
import { startFakeAnthropic } from '../test/fakes/anthropic.js';
import { type FakeDiscord, type RecordedRequest, startFakeDiscord } from '../test/fakes/discord/index.js';
import { startFakeOpenAI } from '../test/fakes/openai.js';
import { type Benchmark, elapsedNs, type Figure, NS_PER_MS, nowNs, percentile, progress } from './support.js';

/*
 * The real bot (loadConfig → createApp → startBot, production edit interval) against the loopback Discord
 * and OpenAI fakes, with issue 7's pacing: the first token 300 ms after the request, then 100 tokens/s
 * (a ~4-character chunk every 40 ms). Everything runs in this process: the fakes' work lands in the same
 * event loop and the same RSS as the bot's.
 *
 * Provider time is measured by wrapping globalThis.fetch before the app is built (the OpenAI SDK takes
 * the global fetch when its client is constructed). The wrapper also sends streaming requests (drafts) to
 * one fake and plain completions (checks) to another, so concurrent turns never take each other's script.
 */

const SEQUENTIAL_WARM_UP = 3;
const SEQUENTIAL_MESSAGES = 30;
const CONCURRENT_CONVERSATIONS = 200;
const MEMORY_CONVERSATIONS = 1_000;
const RTT_SAMPLES = 20;
const RSS_SAMPLE_INTERVAL_MS = 50;
/** After the last check call, how long RSS is still sampled while answers queue for Discord. */
const RSS_TAIL_MS = 3_000;
const WAIT_LIMIT_MS = 60_000;
/** The 200-conversation burst is cut off here: what is answered by then is the throughput. */
const BURST_LIMIT_MS = 30_000;

const FIRST_CHUNK_DELAY_MS = 300;
const CHUNK_DELAY_MS = 40;
/** ~30 tokens: 1.2 s of streaming, so that a sequential run still sees interim edits. */
const ANSWER =
  'A monad is a way to chain computations that carry context along with their values, such as failure or state.';

const OVERHEAD_P99_TARGET_MS = 20;
const FIRST_TEXT_MARGIN_MS = 50;
const RSS_TARGET_MB = 200;

const ACCEPT = JSON.stringify({
  verdict: 'accept',
  reason: 'complete',
  category: 'factual',
  confidence: 0.95,
});
const MARKER = /bench question (\d+):/;
const question = (index: number) => `bench question ${index}: what is a monad?`;

type Fetch = typeof globalThis.fetch;

/** Per question: provider time and when its first content token reached the bot. */
interface ProviderRecord {
  spanNs: number;
  firstContentAt?: number;
  checksDone: number;
}

/** A fetch that times provider calls per question (by the marker in the body) and routes them. */
function providerClock(original: Fetch, openaiUrl: string, draftsUrl: string, checksUrl: string) {
  const records = new Map<number, ProviderRecord>();
  let checksDone = 0;
  const recordOf = (index: number) => {
    let record = records.get(index);
    if (!record) {
      record = { spanNs: 0, checksDone: 0 };
      records.set(index, record);
    }
    return record;
  };
  const fetch: Fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const body = typeof init?.body === 'string' ? init.body : '';
    if (!url.startsWith(openaiUrl)) return original(input, init);
    const isStream = body.includes('"stream":true');
    const routed = url.replace(openaiUrl, isStream ? draftsUrl : checksUrl);
    const index = Number(MARKER.exec(body)?.[1] ?? -1);
    const record = recordOf(index);
    const startNs = nowNs();
    let isOver = false;
    const over = () => {
      if (isOver) return;
      isOver = true;
      record.spanNs += elapsedNs(startNs);
      if (!isStream) {
        record.checksDone += 1;
        checksDone += 1;
      }
    };
    let response: Response;
    try {
      response = await original(routed, init);
    } catch (error) {
      over();
      throw error;
    }
    const source = response.body;
    if (source === null) {
      over();
      return response;
    }
    const reader = source.getReader();
    const decoder = new TextDecoder();
    const body$ = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            const { done, value } = await reader.read();
            if (done) {
              over();
              controller.close();
              return;
            }
            // The role delta carries `"content":""`; the first real token is the first non-empty one.
            if (isStream && record.firstContentAt === undefined) {
              if (/"delta":\{"content":"[^"]/.test(decoder.decode(value, { stream: true }))) {
                record.firstContentAt = Date.now();
              }
            }
            controller.enqueue(value);
          } catch (error) {
            over();
            controller.error(error);
          }
        },
        cancel: (reason) => {
          over();
          return reader.cancel(reason);
        },
      },
      { highWaterMark: 0 },
    );
    return new Response(body$, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
  return { fetch, records, checksDone: () => checksDone };
}

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

export const discordBenchmark: Benchmark = {
  name: 'discord',
  async run(): Promise<Figure[]> {
    const [discord, openai, drafts, checks, anthropic] = await Promise.all([
      startFakeDiscord(),
      startFakeOpenAI(),
      startFakeOpenAI(),
      startFakeOpenAI(),
      startFakeAnthropic(),
    ]);
    const directory = mkdtempSync(join(tmpdir(), 'tierbot-bench-discord-'));
    const originalFetch = globalThis.fetch;
    const clock = providerClock(originalFetch, openai.url, drafts.url, checks.url);
    globalThis.fetch = clock.fetch;
    const config = loadConfig({
      DISCORD_TOKEN: discord.token,
      DISCORD_API_URL: discord.apiUrl,
      OPENAI_API_KEY: 'sk-bench-openai-key-0000000000',
      ANTHROPIC_API_KEY: 'sk-ant-bench-key-0000000000',
      OPENAI_BASE_URL: openai.url,
      ANTHROPIC_BASE_URL: anthropic.url,
      DATABASE_PATH: join(directory, 'tierbot.db'),
      DEFAULT_USER_BUDGET_USD: '10000',
    });
    const log = createLogger('silent');
    const app = createApp(config, log);
    const bot = await startBot(config, app, log, { editIntervalMs: EDIT_INTERVAL_MS });
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
    const inGeneral = (content: string) =>
      discord.messageCreate({ content: `<@${discord.bot.id}> ${content}` });
    const directUsers = (count: number) =>
      Array.from({ length: count }, (_, user) => discord.addUser({ username: `bench-${nextIndex}-${user}` }));

    try {
      // One REST round trip as the bot pays it: through its own REST client (queue, global limiter).
      const rttMs = new Float64Array(RTT_SAMPLES);
      for (let sample = 0; sample < RTT_SAMPLES; sample += 1) {
        const startNs = nowNs();
        await bot.client.rest.get(Routes.user());
        rttMs[sample] = elapsedNs(startNs) / NS_PER_MS;
      }
      const rttP50Ms = percentile(rttMs, 50);

      progress(`discord: ${SEQUENTIAL_WARM_UP} + ${SEQUENTIAL_MESSAGES} sequential mentions in #general…`);
      const overheadMs = new Float64Array(SEQUENTIAL_MESSAGES);
      const firstTextMs = new Float64Array(SEQUENTIAL_MESSAGES);
      for (let turn = 0; turn < SEQUENTIAL_WARM_UP + SEQUENTIAL_MESSAGES; turn += 1) {
        scriptTurns(1);
        const asked = ask(inGeneral);
        await tracker.waitForFinals([asked.id]);
        if (turn < SEQUENTIAL_WARM_UP) continue;
        const record = clock.records.get(asked.index);
        const finalAt = tracker.finalAt.get(asked.id);
        const firstTextAt = tracker.firstTextAt.get(asked.id);
        if (!record?.firstContentAt || finalAt === undefined || firstTextAt === undefined) {
          throw new Error(`question ${asked.index} left no provider record or no visible text`);
        }
        const sample = turn - SEQUENTIAL_WARM_UP;
        overheadMs[sample] = finalAt - asked.dispatchedAt - record.spanNs / NS_PER_MS;
        firstTextMs[sample] = firstTextAt - record.firstContentAt;
      }

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
      // Drain the burst's backlog before the next phase (see the teardown note below).
      const globalLimit = bot.client.rest.options.globalRequestsPerSecond;
      bot.client.rest.options.globalRequestsPerSecond = 100_000;
      await tracker.waitForFinals(burst.map((asked) => asked.id));
      const restPerAnswer = (discord.requests.length - requestsBefore) / CONCURRENT_CONVERSATIONS;
      bot.client.rest.options.globalRequestsPerSecond = globalLimit;
      await sleep(1_100);

      progress(
        `discord: ${MEMORY_CONVERSATIONS} conversations at once, sampling RSS every ${RSS_SAMPLE_INTERVAL_MS} ms…`,
      );
      const memoryUsers = directUsers(MEMORY_CONVERSATIONS);
      scriptTurns(MEMORY_CONVERSATIONS);
      const checksBefore = clock.checksDone();
      let peakRss = process.memoryUsage().rss;
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }, RSS_SAMPLE_INTERVAL_MS);
      const memoryBurst = memoryUsers.map((user) =>
        ask((content) => discord.directMessageCreate({ content, authorId: user.id })),
      );
      // Every turn is past its model calls once its check is done; the rest is waiting for Discord's REST
      // queue (discord.js's 50 requests/s global limit), which holds little. Sample a while longer, then stop.
      const deadline = Date.now() + WAIT_LIMIT_MS;
      while (clock.checksDone() - checksBefore < MEMORY_CONVERSATIONS && Date.now() < deadline)
        await sleep(20);
      await sleep(RSS_TAIL_MS);
      clearInterval(sampler);
      const peakRssMb = peakRss / 2 ** 20;
      // Teardown only, after the measurement: lift the client's global limit so the backlog drains in seconds.
      bot.client.rest.options.globalRequestsPerSecond = 100_000;
      await tracker.waitForFinals(memoryBurst.map((asked) => asked.id));

      const unexpected = drafts.unexpected.length + checks.unexpected.length + openai.requests.length;
      if (unexpected > 0) throw new Error(`${unexpected} provider requests went astray`);
      discord.assertNothingUnexpected();

      return [
        {
          name: 'bot overhead per message (dispatch → final edit − provider time) p50',
          value: percentile(overheadMs, 50),
          unit: 'ms',
        },
        {
          name: 'bot overhead per message (dispatch → final edit − provider time) p99',
          value: percentile(overheadMs, 99),
          unit: 'ms',
          target: { atMost: OVERHEAD_P99_TARGET_MS },
        },
        { name: 'REST round trip (GET /users/@me via the bot’s client) p50', value: rttP50Ms, unit: 'ms' },
        {
          name: 'first token at the bot → first text at Discord p50',
          value: percentile(firstTextMs, 50),
          unit: 'ms',
          target: { atMost: rttP50Ms + FIRST_TEXT_MARGIN_MS },
        },
        {
          name: 'first token at the bot → first text at Discord p99',
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
          name: `peak RSS, ${MEMORY_CONVERSATIONS} concurrent conversations (bench process, fakes included)`,
          value: peakRssMb,
          unit: 'MB',
          target: { atMost: RSS_TARGET_MB },
        },
      ];
    } finally {
      await bot.stop();
      app.close();
      globalThis.fetch = originalFetch;
      await Promise.all([discord.close(), openai.close(), drafts.close(), checks.close(), anthropic.close()]);
      rmSync(directory, { recursive: true, force: true });
    }
  },
};
