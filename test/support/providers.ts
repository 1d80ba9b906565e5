import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { ProviderName } from '../../src/core/chat.js';
import type { Ledger } from '../../src/db/ledger.js';
import type { AppStorage } from '../../src/db/storage.js';
import { AnthropicChatModel } from '../../src/providers/anthropic/adapter.js';
import { type GatewayOptions, ModelGateway } from '../../src/providers/gateway.js';
import { OpenAIChatModel } from '../../src/providers/openai/adapter.js';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { type FakeOpenAI, type RecordedRequest, startFakeOpenAI } from '../fakes/openai.js';
import { type SplitOpenAI, startSplitOpenAI } from '../fakes/openai-router.js';
import type { Backend, TemporaryDatabase } from './databases.js';
import { FAST_MODEL, SMART_MODEL, temporaryStorage } from './ledger.js';

/** What the harness needs of the OpenAI fake: one fake, or one per kind of call behind a router. */
export interface OpenAIEndpoint {
  readonly url: string;
  readonly requests: RecordedRequest[];
  readonly unexpected: RecordedRequest[];
  close(): Promise<void>;
}

export interface ProviderHarness<OpenAIFake extends OpenAIEndpoint = FakeOpenAI> {
  openai: OpenAIFake;
  anthropic: FakeAnthropic;
  openaiModel: OpenAIChatModel;
  anthropicModel: AnthropicChatModel;
  gateway: ModelGateway;
  ledger: Ledger;
  storage: AppStorage;
  database: TemporaryDatabase;
  /** Delays the gateway asked to wait, in order (the waits themselves are skipped). */
  waits: number[];
  close(): Promise<void>;
}

/**
 * The real SDK clients pointed at the loopback fakes, the real adapters, real storage on a temporary
 * database (SQLite unless told), and the gateway over them. Retries do not really sleep: their delays are recorded.
 */
export interface ProviderHarnessOptions {
  gateway?: Partial<GatewayOptions>;
  firstTokenTimeoutMs?: number;
  userBudgetMicros?: number;
  abortMarginTokens?: number;
  backend?: Backend;
}

export function startProviderHarness(options?: ProviderHarnessOptions): Promise<ProviderHarness>;
/** With `splitOpenAI`, a fake per kind of OpenAI call (drafts, checks, triages), routed by schema name. */
export function startProviderHarness(
  options: ProviderHarnessOptions & { splitOpenAI: true },
): Promise<ProviderHarness<SplitOpenAI>>;
export async function startProviderHarness(
  options: ProviderHarnessOptions & { splitOpenAI?: boolean } = {},
): Promise<ProviderHarness<FakeOpenAI | SplitOpenAI>> {
  const [openai, anthropic] = await Promise.all([
    options.splitOpenAI ? startSplitOpenAI() : startFakeOpenAI(),
    startFakeAnthropic(),
  ]);
  const adapterOptions = {
    firstTokenTimeoutMs: options.firstTokenTimeoutMs ?? 5_000,
    ...(options.abortMarginTokens === undefined ? {} : { abortMarginTokens: options.abortMarginTokens }),
  };
  // maxRetries 0: retries are ours, each under its own reservation.
  const openaiModel = new OpenAIChatModel(
    new OpenAI({ apiKey: 'sk-test-openai', baseURL: openai.url, maxRetries: 0 }),
    adapterOptions,
  );
  const anthropicModel = new AnthropicChatModel(
    new Anthropic({ apiKey: 'sk-ant-test', baseURL: anthropic.url, maxRetries: 0 }),
    adapterOptions,
  );
  const { storage, database, cleanup } = await temporaryStorage(options.backend ?? 'sqlite', {
    defaultUserBudget: { amountMicros: options.userBudgetMicros ?? 1_000_000, period: 'month' },
  });
  const { ledger } = storage;
  const waits: number[] = [];
  // Waits are skipped but the gateway's clock moves by them, so its retry deadline still arrives.
  let skippedMs = 0;
  const gateway = new ModelGateway({
    models: { openai: openaiModel, anthropic: anthropicModel } satisfies Record<ProviderName, unknown>,
    ledger,
    fallbackModels: { openai: FAST_MODEL, anthropic: SMART_MODEL },
    options: options.gateway,
    now: () => Date.now() + skippedMs,
    sleep: async (ms) => {
      waits.push(ms);
      skippedMs += ms;
    },
  });
  return {
    openai,
    anthropic,
    openaiModel,
    anthropicModel,
    gateway,
    ledger,
    storage,
    database,
    waits,
    async close() {
      await Promise.all([openai.close(), anthropic.close()]);
      await cleanup();
    },
  };
}

export const OWNER = { turnId: 'turn-1', userId: 'user-1', guildId: 'guild-1', channelId: 'channel-1' };

export async function ledgerRows(harness: ProviderHarness): Promise<Record<string, unknown>[]> {
  await harness.storage.flush();
  return harness.database.query('SELECT * FROM usage_ledger ORDER BY id');
}
