import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decode, encode } from 'gpt-tokenizer/encoding/o200k_base';
import { loadConfig } from '../src/config.js';
import { registerCommands } from '../src/discord/commands/register.js';
import { type AnthropicScript, startFakeAnthropic } from '../test/fakes/anthropic.js';
import { type FakeDiscord, type RecordedRequest, startFakeDiscord } from '../test/fakes/discord/index.js';
import { type OpenAIScript, startFakeOpenAI } from '../test/fakes/openai.js';
import { startOpenAIRouter } from '../test/fakes/openai-router.js';
import { buildForStart } from '../test/support/process.js';
import { type BotProcess, startBotProcess } from './discord-bot-process.js';
import { type Benchmark, type Figure, item, progress } from './support.js';

/*
 * What the router does to the wait, through the real bot: the bot as `npm start` runs it (its own process,
 * configured by environment), the loopback Discord, and loopback providers paced at the vendors' published
 * speeds — GPT-4o Mini's first token after 300 ms then 100 tokens/s, Claude Haiku's after 450 ms then
 * 90 tokens/s, one token per chunk, each chunk due at an absolute time so that pacing does not drift; a
 * structured answer (the triage, the check) arrives whole once its last token would have been written.
 * OpenAI calls reach a fake per kind (drafts streamed, triages and checks by schema name).
 *
 * In one run, one bot with ROUTER=off (today's cascade) and then one with ROUTER=on:
 * - an escalated question (code), its answer 400 tokens: with the router off, the draft, the check and
 *   Claude's refinement; with it on, the triage sends it to Claude and the draft is aborted; and beside
 *   them Claude alone, asked with `/ask model:smart`. Timed from the question to the final answer's last
 *   edit reaching Discord.
 * - an accepted question (a short factual answer): timed from the question to the first text reaching
 *   Discord, which with the router on waits for the triage.
 */

const MINI = { firstTokenMs: 300, tokensPerSecond: 100 };
const HAIKU = { firstTokenMs: 450, tokensPerSecond: 90 };
const ANSWER_TOKENS = 400;
const SHORT_ANSWER_TOKENS = 60;
const WARM_UP = 1;
const MEASURED = 5;
const WAIT_LIMIT_MS = 60_000;

const ROUTED_TARGET_RATIO = 1.15;
const SOONER_TARGET_MS = 4_000;
const FIRST_TEXT_DELAY_TARGET_MS = 150;

/** Short English words, so that 400 tokens (one a word) fit one Discord message with the footer. */
const WORDS = 'so it is a way to do it as we go on and up to the top of it by now'.split(' ');

/** An answer of exactly `tokens` o200k tokens, and its tokens as text pieces, one per chunk. */
function answerOf(tokens: number): string[] {
  const words: string[] = [];
  for (let index = 0; encode(words.join(' ')).length < tokens + 8; index += 1) {
    words.push(item(WORDS, index % WORDS.length));
  }
  return encode(words.join(' '))
    .slice(0, tokens)
    .map((token) => decode([token]));
}

const LONG_ANSWER = answerOf(ANSWER_TOKENS);
/** A draft told apart from Claude's answer by its first token, to check it never reaches Discord. */
const DRAFT_MARK = 'Draftmark';
const MARKED_DRAFT = [DRAFT_MARK, ...LONG_ANSWER.slice(1)];
const SHORT_ANSWER = answerOf(SHORT_ANSWER_TOKENS);

function miniStream(chunks: readonly string[]): OpenAIScript {
  return {
    type: 'stream',
    chunks: [...chunks],
    firstChunkDelayMs: MINI.firstTokenMs,
    chunkDelayMs: 1_000 / MINI.tokensPerSecond,
    usage: { promptTokens: 120, completionTokens: chunks.length },
  };
}

function haikuStream(chunks: readonly string[]): AnthropicScript {
  return {
    type: 'stream',
    chunks: [...chunks],
    firstChunkDelayMs: HAIKU.firstTokenMs,
    chunkDelayMs: 1_000 / HAIKU.tokensPerSecond,
    usage: { inputTokens: 120, outputTokens: chunks.length },
  };
}

/** A structured answer from GPT-4o Mini: whole, once its last token is written. */
function miniStructured(value: unknown): OpenAIScript {
  const content = JSON.stringify(value);
  const tokens = encode(content).length;
  return {
    type: 'completion',
    content,
    delayMs: MINI.firstTokenMs + ((tokens - 1) * 1_000) / MINI.tokensPerSecond,
  };
}

const TRIAGE_SMART = miniStructured({ route: 'smart code', confidence: 92 });
const TRIAGE_FAST = miniStructured({ route: 'fast factual', confidence: 95 });
const CHECK_REFINE = miniStructured({
  verdict: 'refine',
  reason: 'contains code',
  category: 'code',
  confidence: 0.9,
});
const CHECK_ACCEPT = miniStructured({
  verdict: 'accept',
  reason: 'correct and complete',
  category: 'factual',
  confidence: 0.95,
});

const isWrite = (request: RecordedRequest) =>
  request.route === 'POST /channels/:channel_id/messages' ||
  request.route === 'PATCH /channels/:channel_id/messages/:message_id' ||
  request.route === 'PATCH /webhooks/:application_id/:interaction_token/messages/:message_id';

/** When Discord received an answer's first text and its final (footed) edit, per question or interaction. */
function answerTimes(discord: FakeDiscord, from: number, belongsTo: (request: RecordedRequest) => boolean) {
  const writes = discord.requests
    .slice(from)
    .filter((request) => request.status < 300 && isWrite(request) && belongsTo(request));
  const withText = writes.filter((request) => String(request.body?.content ?? '') !== '');
  const final = writes.find((request) => String(request.body?.content ?? '').includes('\n-# '));
  return { firstTextAt: withText[0]?.receivedAt, finalAt: final?.receivedAt, writes };
}

async function until<T>(read: () => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${WAIT_LIMIT_MS} ms`);
    await sleep(10);
  }
}

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? item(sorted, middle)
    : (item(sorted, middle - 1) + item(sorted, middle)) / 2;
}

export const routerBenchmark: Benchmark = {
  name: 'router',
  async run(): Promise<Figure[]> {
    const [discord, drafts, checks, triages, anthropic] = await Promise.all([
      startFakeDiscord(),
      startFakeOpenAI(),
      startFakeOpenAI(),
      startFakeOpenAI(),
      startFakeAnthropic(),
    ]);
    const openai = await startOpenAIRouter({
      urls: { draft: drafts.url, check: checks.url, triage: triages.url },
    });
    const directory = mkdtempSync(join(tmpdir(), 'tierbot-bench-router-'));
    const environment = (router: 'on' | 'off') => ({
      DISCORD_TOKEN: discord.token,
      DISCORD_API_URL: discord.apiUrl,
      OPENAI_API_KEY: 'sk-bench-openai-key-0000000000',
      ANTHROPIC_API_KEY: 'sk-ant-bench-key-0000000000',
      OPENAI_BASE_URL: openai.url,
      ANTHROPIC_BASE_URL: anthropic.url,
      DATABASE_PATH: join(directory, `router-${router}.db`),
      DEFAULT_USER_BUDGET_USD: '10000',
      LOG_LEVEL: 'info',
      ROUTER: router,
    });
    let bot: BotProcess | undefined;
    let questionNumber = 0;

    /** Mentions the bot; resolves with the dispatch time and when its first text and final edit arrived. */
    const mention = async (question: string) => {
      questionNumber += 1;
      const from = discord.requests.length;
      const askedAt = Date.now();
      const { id } = discord.messageCreate({
        content: `<@${discord.bot.id}> ${question} (bench ${questionNumber})`,
      });
      const replies = new Set<string>();
      const belongsTo = (request: RecordedRequest) => {
        if (request.route === 'POST /channels/:channel_id/messages') {
          // The reply to the question, or a further message of the answer (a reply to the one before).
          const repliedTo = request.body?.message_reference?.message_id;
          if (repliedTo !== id && !replies.has(String(repliedTo))) return false;
          replies.add(String(request.responseBody?.id));
          return true;
        }
        return replies.has(request.params.message_id ?? '');
      };
      const finalAt = await until(() => answerTimes(discord, from, belongsTo).finalAt, 'final edit');
      const times = answerTimes(discord, from, belongsTo);
      return { askedAt, finalAt, firstTextAt: times.firstTextAt ?? finalAt, writes: times.writes };
    };

    /** `/ask model:smart`: Claude Haiku alone, timed the same way. */
    const askSmart = async (question: string) => {
      questionNumber += 1;
      const from = discord.requests.length;
      const askedAt = Date.now();
      const interaction = discord.chatInputCommand({
        commandName: 'ask',
        options: { prompt: `${question} (bench ${questionNumber})`, model: 'smart' },
      });
      const belongsTo = (request: RecordedRequest) => request.params.interaction_token === interaction.token;
      const finalAt = await until(() => answerTimes(discord, from, belongsTo).finalAt, 'final edit of /ask');
      return { askedAt, finalAt };
    };

    const repeat = async <T>(times: number, once: () => Promise<T>): Promise<T[]> => {
      const results: T[] = [];
      for (let index = 0; index < times; index += 1) {
        results.push(await once());
        // The turn's settles and log line land before the next question.
        await sleep(100);
      }
      return results;
    };

    const escalatedQuestion = 'how do I debounce a search box in javascript?';
    const acceptedQuestion = 'when did the berlin wall fall?';

    try {
      progress('router: building the bot (npm run build)…');
      const args = buildForStart(join(directory, 'build'));
      await registerCommands(loadConfig(environment('off')).discord);

      progress(
        `router: ROUTER=off, ${WARM_UP + MEASURED} escalated and ${WARM_UP + MEASURED} accepted turns…`,
      );
      bot = await startBotProcess({ args, environment: environment('off'), cwd: directory });
      const cascade = await repeat(WARM_UP + MEASURED, () => {
        drafts.script(miniStream(LONG_ANSWER));
        checks.script(CHECK_REFINE);
        anthropic.script(haikuStream(LONG_ANSWER));
        return mention(escalatedQuestion);
      });
      const acceptedOff = await repeat(WARM_UP + MEASURED, () => {
        drafts.script(miniStream(SHORT_ANSWER));
        checks.script(CHECK_ACCEPT);
        return mention(acceptedQuestion);
      });
      assertNoErrors(bot);
      await bot.stop('SIGTERM');
      bot = undefined;

      progress(
        `router: ROUTER=on, ${WARM_UP + MEASURED} routed, ${WARM_UP + MEASURED} accepted and ${WARM_UP + MEASURED} /ask model:smart…`,
      );
      bot = await startBotProcess({ args, environment: environment('on'), cwd: directory });
      const abortedBefore = drafts.closedEarly;
      const routed = await repeat(WARM_UP + MEASURED, () => {
        drafts.script(miniStream(MARKED_DRAFT));
        triages.script(TRIAGE_SMART);
        anthropic.script(haikuStream(LONG_ANSWER));
        return mention(escalatedQuestion);
      });
      const abortedDrafts = drafts.closedEarly - abortedBefore;
      const draftShown = routed.some((turn) =>
        turn.writes.some((write) => String(write.body?.content ?? '').includes(DRAFT_MARK)),
      );
      const acceptedOn = await repeat(WARM_UP + MEASURED, () => {
        drafts.script(miniStream(SHORT_ANSWER));
        triages.script(TRIAGE_FAST);
        checks.script(CHECK_ACCEPT);
        return mention(acceptedQuestion);
      });
      const smartAlone = await repeat(WARM_UP + MEASURED, () => {
        anthropic.script(haikuStream(LONG_ANSWER));
        return askSmart(escalatedQuestion);
      });
      assertNoErrors(bot);

      const unexpected = [drafts, checks, triages, anthropic].flatMap((fake) => fake.unexpected);
      if (unexpected.length > 0) throw new Error(`${unexpected.length} provider requests went astray`);
      discord.assertNothingUnexpected();

      const measured = <T>(samples: T[]) => samples.slice(WARM_UP);
      const finalMs = (turns: { askedAt: number; finalAt: number }[]) =>
        median(measured(turns).map((turn) => turn.finalAt - turn.askedAt));
      const firstTextMs = (turns: { askedAt: number; firstTextAt: number }[]) =>
        median(measured(turns).map((turn) => turn.firstTextAt - turn.askedAt));
      const cascadeMs = finalMs(cascade);
      const routedMs = finalMs(routed);
      const smartMs = finalMs(smartAlone);
      const acceptedOffMs = firstTextMs(acceptedOff);
      const acceptedOnMs = firstTextMs(acceptedOn);

      return [
        {
          name: `escalated turn, ${ANSWER_TOKENS}-token answer, question → final edit, ROUTER=off (draft + check + refine), p50`,
          value: cascadeMs,
          unit: 'ms',
        },
        {
          name: `routed turn, question → final edit, ROUTER=on (triage + Claude Haiku directly), p50`,
          value: routedMs,
          unit: 'ms',
        },
        {
          name: 'Claude Haiku alone (/ask model:smart), question → final edit, p50',
          value: smartMs,
          unit: 'ms',
        },
        {
          name: 'routed turn ÷ Claude Haiku alone',
          value: routedMs / smartMs,
          unit: '×',
          target: { atMost: ROUTED_TARGET_RATIO },
        },
        {
          name: 'routed turn sooner than ROUTER=off by',
          value: cascadeMs - routedMs,
          unit: 'ms',
          target: { atLeast: SOONER_TARGET_MS },
        },
        {
          name: `routed turns whose draft was aborted (the fake saw it closed), of ${WARM_UP + MEASURED}`,
          value: abortedDrafts,
          unit: '',
          target: { atLeast: WARM_UP + MEASURED },
        },
        {
          name: 'routed turns whose draft text reached Discord',
          value: draftShown,
          unit: '',
          target: { equals: false },
        },
        {
          name: `accepted turn, question → first text at Discord, ROUTER=off, p50`,
          value: acceptedOffMs,
          unit: 'ms',
        },
        {
          name: `accepted turn, question → first text at Discord, ROUTER=on (held for the triage), p50`,
          value: acceptedOnMs,
          unit: 'ms',
        },
        {
          name: 'accepted turn, first text later with ROUTER=on by',
          value: acceptedOnMs - acceptedOffMs,
          unit: 'ms',
          target: { atMost: FIRST_TEXT_DELAY_TARGET_MS },
        },
      ];
    } catch (error) {
      if (bot && bot.errors.length > 0) {
        throw new Error(`${String(error)}\nthe bot logged:\n${bot.errors.join('\n')}`, { cause: error });
      }
      throw error;
    } finally {
      await bot?.stop('SIGKILL');
      await Promise.all([
        discord.close(),
        drafts.close(),
        checks.close(),
        triages.close(),
        anthropic.close(),
        openai.close(),
      ]);
      rmSync(directory, { recursive: true, force: true });
    }
  },
};

function assertNoErrors(bot: BotProcess): void {
  if (bot.errors.length > 0) throw new Error(`the bot logged errors:\n${bot.errors.join('\n')}`);
}
