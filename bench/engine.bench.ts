import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { loadModelConfig } from '../src/config.js';
import type {
  ChatMessage,
  ChatModel,
  ChatRequest,
  ChatResult,
  StructuredRequest,
  StructuredResult,
} from '../src/core/chat.js';
import { CHECK_SCHEMA, CHECK_SYSTEM_PROMPT, checkPrompt, refineInstruction } from '../src/core/escalation.js';
import { newId } from '../src/core/ids.js';
import { modelLabel } from '../src/core/models.js';
import { answerTurn, type TurnDependencies, type TurnEvent, type TurnRequest } from '../src/core/turn.js';
import { openStorage } from '../src/db/storage.js';
import { createLogger } from '../src/log.js';
import { AnthropicChatModel } from '../src/providers/anthropic/adapter.js';
import { countOpenAITokens } from '../src/providers/estimate.js';
import { ModelGateway } from '../src/providers/gateway.js';
import { OpenAIChatModel } from '../src/providers/openai/adapter.js';
import { type FakeAnthropic, startFakeAnthropic } from '../test/fakes/anthropic.js';
import { type FakeOpenAI, startFakeOpenAI } from '../test/fakes/openai.js';
import { CASCADE_FIXTURES, type CascadeFixture } from './fixtures/cascade-prompts.js';
import {
  type Benchmark,
  elapsedNs,
  type Figure,
  item,
  NS_PER_MS,
  nowNs,
  percentile,
  progress,
} from './support.js';

/*
 * The engine's own cost per turn: a whole answerTurn() with providers that answer instantly (loopback
 * fakes, no scripted delays), minus the time spent inside provider calls. Three measures, from the
 * engine's edge inwards:
 * - engine overhead (the figure with the target): minus the time inside the provider adapters' `stream`
 *   and `structured` (the ChatModel port), that is inside the official SDKs' calls. What is left is the
 *   engine: the ledger (a reserve transaction per call on a real SQLite file, and the standings read for a
 *   budget notice when one may be due; settles and the turn log are written behind, in one transaction on
 *   the event loop's next turn, which comes while the next call is on the wire), token estimation for each
 *   reservation (gpt-tokenizer's o200k_base for OpenAI, UTF-8 byte counts for Anthropic), the gateway
 *   (circuit breakers, retry bookkeeping) and the turn's own logic;
 * - with the SDKs' own work counted as ours: minus only the time from each fetch to the end of its
 *   response body, so the SDKs building requests (message mapping, JSON bodies, headers, their logging
 *   hooks) and finishing their parsing count too — work we cannot change short of leaving the SDKs;
 * - with stream reading counted as ours too: minus only the time a fetch or a read of its body is pending.
 * The fakes run in this process, so their own work (building SSE frames) lands inside provider time.
 */

const WARM_UP_TURNS = 30;
const MEASURED_TURNS = 300;
/** Earlier exchanges sent with each question: the bot answers in a conversation, not a vacuum. */
const HISTORY_EXCHANGES = 2;
const OVERHEAD_P50_TARGET_MS = 1;
const OVERHEAD_P99_TARGET_MS = 5;

const FAST_MODEL = 'gpt-4o-mini';
const SMART_MODEL = 'claude-haiku-4-5';
/** The production configuration's defaults, with a budget nothing in the run comes near. */
const ENVIRONMENT = {
  OPENAI_API_KEY: 'sk-bench-openai',
  ANTHROPIC_API_KEY: 'sk-ant-bench',
  FAST_MODEL,
  SMART_MODEL,
  DEFAULT_USER_BUDGET_USD: '10000',
  // The cascade's own overhead, call by call as scripted here; the router's latency is router.bench.ts's.
  ROUTER: 'off',
};
const PERSON = {
  userId: '284735639562371072',
  guildId: '912334873425612830',
  channelId: '912334873916338216',
};

type Path = 'accepted' | 'refined';
const PATHS: readonly Path[] = ['accepted', 'refined'];
const CALLS_PER_TURN: Record<Path, number> = { accepted: 2, refined: 3 };

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * A `fetch` for the SDK clients that times every provider call on the wire, without touching the SDKs:
 * `spanNs` runs from the request's start until its response body has been read to the end (or cancelled),
 * `waitingNs` only while the fetch itself or a read of its body is pending. The difference is the time
 * the SDK and our code spend on chunks while the stream is still open.
 */
class ProviderClock {
  spanNs = 0;
  waitingNs = 0;
  adapterNs = 0;
  calls = 0;

  reset(): void {
    this.spanNs = 0;
    this.waitingNs = 0;
    this.adapterNs = 0;
    this.calls = 0;
  }

  readonly fetch: Fetch = async (input, init) => {
    this.calls += 1;
    const startNs = nowNs();
    let isOver = false;
    const over = () => {
      if (isOver) return;
      isOver = true;
      this.spanNs += elapsedNs(startNs);
    };
    let response: Response;
    try {
      response = await globalThis.fetch(input, init);
    } catch (error) {
      over();
      throw error;
    } finally {
      this.waitingNs += elapsedNs(startNs);
    }
    const source = response.body;
    if (source === null) {
      over();
      return response;
    }
    const reader = source.getReader();
    const body = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const readNs = nowNs();
          try {
            const { done, value } = await reader.read();
            this.waitingNs += elapsedNs(readNs);
            if (done) {
              over();
              controller.close();
            } else controller.enqueue(value);
          } catch (error) {
            this.waitingNs += elapsedNs(readNs);
            over();
            controller.error(error);
          }
        },
        cancel: (reason) => {
          over();
          return reader.cancel(reason);
        },
      },
      // Pull only when the SDK reads: the body counts as consumed when the SDK has asked for its end.
      { highWaterMark: 0 },
    );
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

/**
 * A provider adapter as the engine sees it (the ChatModel port), timed: the time inside `stream` and
 * `structured` is the time inside provider calls as the engine makes them — the SDK building the request,
 * the HTTP exchange, and the SDK reading the answer. Token estimates stay outside, counted as the engine's.
 */
class TimedModel implements ChatModel {
  readonly provider: ChatModel['provider'];

  constructor(
    private readonly inner: ChatModel,
    private readonly clock: { adapterNs: number },
  ) {
    this.provider = inner.provider;
  }

  async stream(request: ChatRequest, onDelta?: (text: string) => void): Promise<ChatResult> {
    const startNs = nowNs();
    try {
      return await this.inner.stream(request, onDelta);
    } finally {
      this.clock.adapterNs += elapsedNs(startNs);
    }
  }

  async structured(request: StructuredRequest): Promise<StructuredResult> {
    const startNs = nowNs();
    try {
      return await this.inner.structured(request);
    } finally {
      this.clock.adapterNs += elapsedNs(startNs);
    }
  }

  estimateInputTokens(request: ChatRequest): number | Promise<number> {
    return this.inner.estimateInputTokens(request);
  }

  maxOutputTokensOf(model: string): number {
    return this.inner.maxOutputTokensOf(model);
  }
}

/** One turn as scripted: the request, and what the fakes answer with (token counts from the tokenizer). */
interface ScriptedTurn {
  conversation: ChatMessage[];
  fixture: CascadeFixture;
  draftUsage: { promptTokens: number; completionTokens: number };
  checkUsage: { promptTokens: number; completionTokens: number };
  refineUsage: { inputTokens: number; outputTokens: number };
}

interface Samples {
  turnNs: Float64Array;
  engineOverheadNs: Float64Array;
  spanOverheadNs: Float64Array;
  waitingOverheadNs: Float64Array;
}

export const engineBenchmark: Benchmark = {
  name: 'engine',
  async run(): Promise<Figure[]> {
    const configuration = loadModelConfig(ENVIRONMENT);
    const clock = new ProviderClock();
    const timed = (model: ChatModel) => new TimedModel(model, clock);
    const [openai, anthropic] = await Promise.all([startFakeOpenAI(), startFakeAnthropic()]);
    const directory = mkdtempSync(join(tmpdir(), 'tierbot-engine-bench-'));
    const storage = await openStorage({
      databasePath: join(directory, 'tierbot.db'),
      prices: configuration.prices,
      smartModel: configuration.smartModel,
      defaultUserBudget: configuration.defaultUserBudget,
      defaultServerCap: configuration.defaultServerCap,
      log: createLogger('warn'),
    });
    const { ledger } = storage;
    try {
      // As src/app.ts and src/providers/index.ts wire them, but with the timing fetch and the fakes' URLs.
      const adapterOptions = { firstTokenTimeoutMs: configuration.providers.firstTokenTimeoutMs };
      const gateway = new ModelGateway({
        models: {
          openai: timed(
            new OpenAIChatModel(
              new OpenAI({
                apiKey: configuration.openai.apiKey,
                baseURL: openai.url,
                maxRetries: 0,
                fetch: clock.fetch,
              }),
              adapterOptions,
            ),
          ),
          anthropic: timed(
            new AnthropicChatModel(
              new Anthropic({
                apiKey: configuration.anthropic.apiKey,
                baseURL: anthropic.url,
                maxRetries: 0,
                fetch: clock.fetch,
              }),
              adapterOptions,
            ),
          ),
        },
        ledger,
        fallbackModels: { openai: configuration.fastModel, anthropic: configuration.smartModel },
        options: {
          deadlineMs: configuration.providers.deadlineMs,
          retryAfterCapMs: configuration.providers.retryAfterCapMs,
        },
      });
      const dependencies: TurnDependencies = {
        models: gateway,
        fastModel: configuration.fastModel,
        smartModel: configuration.smartModel,
        modelLabel,
        systemPrompt: configuration.systemPrompt,
        maxOutputTokens: configuration.maxOutputTokens,
        policy: configuration.policy,
        budgetNotice: (member) => storage.notices.forUser(member),
        turns: storage.turns,
      };
      const turnsFor = scriptedTurns(configuration.systemPrompt);

      const runTurn = async (path: Path, index: number) => {
        const scripted = item(turnsFor[path], index % turnsFor[path].length);
        scriptFakes(openai, anthropic, path, scripted);
        const request: TurnRequest = {
          turnId: newId(),
          owner: PERSON,
          conversation: scripted.conversation,
          mode: 'auto',
          choice: 'auto',
        };
        let shown = '';
        const onEvent = (event: TurnEvent) => {
          if (event.type === 'delta') shown += event.text;
        };
        clock.reset();
        const startNs = nowNs();
        const result = await answerTurn(request, dependencies, onEvent);
        const turnNs = elapsedNs(startNs);
        const expectedModels = path === 'accepted' ? 1 : 2;
        if (result.status !== 'answered' || result.models.length !== expectedModels || !result.check) {
          throw new Error(`a ${path} turn went another way: ${JSON.stringify(result)}`);
        }
        if (clock.calls !== CALLS_PER_TURN[path] || shown.length < scripted.fixture.answer.length) {
          throw new Error(
            `a ${path} turn made ${clock.calls} provider calls and showed ${shown.length} characters`,
          );
        }
        return { turnNs, spanNs: clock.spanNs, waitingNs: clock.waitingNs, adapterNs: clock.adapterNs };
      };

      progress(`engine: ${WARM_UP_TURNS} warm-up turns of each path…`);
      for (let index = 0; index < WARM_UP_TURNS; index += 1) {
        for (const path of PATHS) await runTurn(path, index);
      }
      progress(`engine: ${MEASURED_TURNS} measured turns of each path, alternating…`);
      const samples = Object.fromEntries(
        PATHS.map((path) => [
          path,
          {
            turnNs: new Float64Array(MEASURED_TURNS),
            engineOverheadNs: new Float64Array(MEASURED_TURNS),
            spanOverheadNs: new Float64Array(MEASURED_TURNS),
            waitingOverheadNs: new Float64Array(MEASURED_TURNS),
          },
        ]),
      ) as Record<Path, Samples>;
      // Alternating, so that both paths see the same machine and the same growing database.
      for (let index = 0; index < MEASURED_TURNS; index += 1) {
        for (const path of PATHS) {
          const { turnNs, spanNs, waitingNs, adapterNs } = await runTurn(path, WARM_UP_TURNS + index);
          samples[path].turnNs[index] = turnNs;
          samples[path].engineOverheadNs[index] = turnNs - adapterNs;
          samples[path].spanOverheadNs[index] = turnNs - spanNs;
          samples[path].waitingOverheadNs[index] = turnNs - waitingNs;
        }
      }
      const unexpected = openai.unexpected.length + anthropic.unexpected.length;
      if (unexpected > 0) throw new Error(`${unexpected} provider requests found no scripted response`);

      return PATHS.flatMap((path) => figuresOf(path, samples[path]));
    } finally {
      await Promise.all([openai.close(), anthropic.close()]);
      await storage.close();
      rmSync(directory, { recursive: true, force: true });
    }
  },
};

function figuresOf(path: Path, samples: Samples): Figure[] {
  const label =
    path === 'accepted' ? 'accepted turn (draft + check)' : 'refined turn (draft + check + refine)';
  const ms = (values: Float64Array, p: number) => percentile(values, p) / NS_PER_MS;
  return [
    {
      name: `${label}, engine overhead p50`,
      value: ms(samples.engineOverheadNs, 50),
      unit: 'ms',
      target: { atMost: OVERHEAD_P50_TARGET_MS },
    },
    {
      name: `${label}, engine overhead p99`,
      value: ms(samples.engineOverheadNs, 99),
      unit: 'ms',
      target: { atMost: OVERHEAD_P99_TARGET_MS },
    },
    {
      name: `${label}, overhead p50 with the SDKs' own work counted as ours`,
      value: ms(samples.spanOverheadNs, 50),
      unit: 'ms',
    },
    {
      name: `${label}, overhead p99 with the SDKs' own work counted as ours`,
      value: ms(samples.spanOverheadNs, 99),
      unit: 'ms',
    },
    { name: `${label}, whole turn p50`, value: ms(samples.turnNs, 50), unit: 'ms' },
    {
      name: `${label}, overhead p50 with the SDKs' work and stream reading counted as ours`,
      value: ms(samples.waitingOverheadNs, 50),
      unit: 'ms',
    },
    {
      name: `${label}, overhead p99 with the SDKs' work and stream reading counted as ours`,
      value: ms(samples.waitingOverheadNs, 99),
      unit: 'ms',
    },
  ];
}

/**
 * Every fixture as a turn with the fixtures before it as history. The accepted path skips code, which
 * the escalation policy always refines.
 */
function scriptedTurns(systemPrompt: string): Record<Path, ScriptedTurn[]> {
  const count = countOpenAITokens;
  const all = CASCADE_FIXTURES.map((fixture, index): ScriptedTurn => {
    const history = Array.from({ length: HISTORY_EXCHANGES }, (_, back) => {
      const earlier = item(
        CASCADE_FIXTURES,
        (index - HISTORY_EXCHANGES + back + CASCADE_FIXTURES.length) % CASCADE_FIXTURES.length,
      );
      return [
        { role: 'user', content: earlier.prompt },
        { role: 'assistant', content: earlier.answer },
      ] satisfies ChatMessage[];
    }).flat();
    const conversation: ChatMessage[] = [...history, { role: 'user', content: fixture.prompt }];
    const conversationTokens = conversation.reduce(
      (sum, message) => sum + (typeof message.content === 'string' ? count(message.content) : 0),
      0,
    );
    const answerTokens = count(fixture.answer);
    return {
      conversation,
      fixture,
      draftUsage: { promptTokens: count(systemPrompt) + conversationTokens, completionTokens: answerTokens },
      checkUsage: {
        promptTokens:
          count(CHECK_SYSTEM_PROMPT) +
          count(checkPrompt(fixture.prompt, fixture.answer)) +
          count(JSON.stringify(CHECK_SCHEMA)),
        completionTokens: count(JSON.stringify(fixture.verdict)),
      },
      refineUsage: {
        inputTokens:
          count(systemPrompt) +
          conversationTokens +
          count(refineInstruction(fixture.answer, fixture.verdict.reason)),
        outputTokens: answerTokens,
      },
    };
  });
  return { accepted: all.filter((turn) => turn.fixture.category !== 'code'), refined: all };
}

function scriptFakes(openai: FakeOpenAI, anthropic: FakeAnthropic, path: Path, turn: ScriptedTurn): void {
  const { fixture } = turn;
  const verdict =
    path === 'accepted'
      ? {
          verdict: 'accept',
          reason: 'fully answers the question',
          category: fixture.category,
          confidence: 0.9,
        }
      : { verdict: 'refine', reason: fixture.verdict.reason, category: fixture.category, confidence: 0.8 };
  openai.script(
    { type: 'stream', text: fixture.answer, usage: turn.draftUsage },
    { type: 'completion', content: JSON.stringify(verdict), usage: turn.checkUsage },
  );
  if (path === 'refined') anthropic.script({ type: 'stream', text: fixture.answer, usage: turn.refineUsage });
}
