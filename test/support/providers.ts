import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { ProviderName } from '../../src/core/chat.js';
import type { Ledger } from '../../src/db/ledger.js';
import type { AppStorage } from '../../src/db/storage.js';
import { AnthropicChatModel } from '../../src/providers/anthropic/adapter.js';
import { type GatewayOptions, ModelGateway } from '../../src/providers/gateway.js';
import { OpenAIChatModel } from '../../src/providers/openai/adapter.js';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { type FakeOpenAI, startFakeOpenAI } from '../fakes/openai.js';
import type { Backend, TemporaryDatabase } from './databases.js';
import { FAST_MODEL, SMART_MODEL, temporaryStorage } from './ledger.js';

export interface ProviderHarness {
  openai: FakeOpenAI;
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
 * The real SDK clients pointed at the loopback fakes, the real adapters, a real ledger on a temporary
 * SQLite file, and the gateway over them. Retries do not really sleep: their delays are recorded.
 */
export async function startProviderHarness(
  options: {
    gateway?: Partial<GatewayOptions>;
    firstTokenTimeoutMs?: number;
    userBudgetMicros?: number;
    backend?: Backend;
  } = {},
): Promise<ProviderHarness> {
  const [openai, anthropic] = await Promise.all([startFakeOpenAI(), startFakeAnthropic()]);
  const firstTokenTimeoutMs = options.firstTokenTimeoutMs ?? 5_000;
  // maxRetries 0: retries are ours, each under its own reservation.
  const openaiModel = new OpenAIChatModel(
    new OpenAI({ apiKey: 'sk-test-openai', baseURL: openai.url, maxRetries: 0 }),
    {
      firstTokenTimeoutMs,
    },
  );
  const anthropicModel = new AnthropicChatModel(
    new Anthropic({ apiKey: 'sk-ant-test', baseURL: anthropic.url, maxRetries: 0 }),
    { firstTokenTimeoutMs },
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
