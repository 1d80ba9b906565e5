import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import type { ModelConfig } from '../config.js';
import { NO_TELEMETRY, type Telemetry, type UsageLedger } from '../core/ports.js';
import { AnthropicChatModel } from './anthropic/adapter.js';
import { ModelGateway } from './gateway.js';
import { OpenAIChatModel } from './openai/adapter.js';

/** The official SDK clients, their adapters, and the gateway every model call goes through. */
export function createModelGateway(
  config: ModelConfig,
  ledger: UsageLedger,
  telemetry: Telemetry = NO_TELEMETRY,
): ModelGateway {
  const adapterOptions = {
    firstTokenTimeoutMs: config.providers.firstTokenTimeoutMs,
    abortMarginTokens: config.providers.abortMarginTokens,
  };
  // maxRetries 0: retries are the gateway's, each attempt under its own reservation.
  const openai = new OpenAI({
    apiKey: config.openai.apiKey,
    baseURL: config.openai.baseUrl ?? null,
    maxRetries: 0,
  });
  const anthropic = new Anthropic({
    apiKey: config.anthropic.apiKey,
    baseURL: config.anthropic.baseUrl ?? null,
    maxRetries: 0,
  });
  return new ModelGateway({
    models: {
      openai: new OpenAIChatModel(openai, adapterOptions),
      anthropic: new AnthropicChatModel(anthropic, adapterOptions),
    },
    ledger,
    fallbackModels: { openai: config.fastModel, anthropic: config.smartModel },
    options: { deadlineMs: config.providers.deadlineMs, retryAfterCapMs: config.providers.retryAfterCapMs },
    telemetry,
  });
}
