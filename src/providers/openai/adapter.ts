import type OpenAI from 'openai';
import { APIUserAbortError } from 'openai/error';
import {
  type ChatModel,
  type ChatRequest,
  type ChatResult,
  ProviderError,
  type StructuredRequest,
  type StructuredResult,
} from '../../core/chat.js';
import type { TokenUsage } from '../../core/pricing.js';
import { countOpenAITokens, estimateOpenAIInputTokens } from '../estimate.js';
import {
  type AdapterOptions,
  clampOutputTokens,
  contextWindowIn,
  DEFAULT_ABORT_MARGIN_TOKENS,
  maxOutputTokensIn,
  parseJsonOrUndefined,
  usageOfAbort,
} from '../limits.js';
import { startFirstTokenTimer } from '../timer.js';
import { convertOpenAIUsage, mapOpenAIError, mapOpenAIFinishReason, toOpenAIMessages } from './mappers.js';

/** Output limits of the models tierbot knows. */
const MAX_OUTPUT_TOKENS: Readonly<Record<string, number>> = {
  'gpt-4o-mini': 16_384,
  'gpt-4o': 16_384,
  'gpt-4.1-mini': 32_768,
  'gpt-4.1-nano': 32_768,
};

/** Input limits (context windows) of the models tierbot knows. https://platform.openai.com/docs/models */
const CONTEXT_WINDOW_TOKENS: Readonly<Record<string, number>> = {
  'gpt-4o-mini': 128_000,
  'gpt-4o': 128_000,
  'gpt-4.1-mini': 1_047_576,
  'gpt-4.1-nano': 1_047_576,
};

/** GPT models over the official `openai` SDK (chat.completions, streamed with usage). */
export class OpenAIChatModel implements ChatModel {
  readonly provider = 'openai' as const;
  private readonly now: () => number;

  constructor(
    private readonly client: OpenAI,
    private readonly options: AdapterOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  maxOutputTokensOf(model: string): number {
    return maxOutputTokensIn(MAX_OUTPUT_TOKENS, model);
  }

  /** Always counted at once: OpenAI has no count endpoint (a PDF reserves the context window). */
  estimateInputTokens(request: ChatRequest): number {
    return estimateOpenAIInputTokens(request, contextWindowIn(CONTEXT_WINDOW_TOKENS, request.model));
  }

  async stream(request: ChatRequest, onDelta?: (text: string) => void): Promise<ChatResult> {
    const startedAt = this.now();
    const timer = startFirstTokenTimer(request.signal, this.options.firstTokenTimeoutMs);
    let text = '';
    let refusal = '';
    let usage: TokenUsage | undefined;
    let finishReason: ChatResult['finishReason'] | undefined;
    let firstTokenAt: number | null = null;
    try {
      const stream = await this.client.chat.completions.create(
        {
          model: request.model,
          messages: toOpenAIMessages(request.system, request.messages),
          max_completion_tokens: this.clamp(request),
          stream: true,
          stream_options: { include_usage: true },
        },
        { signal: timer.signal },
      );
      for await (const chunk of stream) {
        if (chunk.usage) usage = convertOpenAIUsage(chunk.usage);
        const choice = chunk.choices[0];
        if (!choice) continue;
        const piece = choice.delta?.content ?? '';
        refusal += choice.delta?.refusal ?? '';
        if (piece !== '') {
          if (firstTokenAt === null) {
            firstTokenAt = this.now();
            timer.firstTokenArrived();
          }
          text += piece;
          timer.deliver(() => onDelta?.(piece));
        }
        if (choice.finish_reason) finishReason = mapOpenAIFinishReason(choice.finish_reason);
      }
      // An aborted OpenAI stream ends its iteration quietly instead of throwing.
      if (timer.signal.aborted) throw new APIUserAbortError();
    } catch (error) {
      timer.rethrowCallerError();
      const isAbortedByCaller = request.signal?.aborted === true && !timer.timedOut;
      throw mapOpenAIError(error, {
        timedOut: timer.timedOut,
        usage: isAbortedByCaller
          ? (usage ?? this.usageOfAbort(request, countOpenAITokens(text)))
          : this.usageOfCut(request, usage, text),
        partialText: text,
      });
    } finally {
      timer.stop();
    }
    if (!finishReason) {
      throw new ProviderError('openai', 'truncated', 'the OpenAI stream ended without a finish reason', {
        usage: this.usageOfCut(request, usage, text),
        partialText: text,
      });
    }
    if (refusal !== '' && text === '') {
      text = refusal;
      finishReason = 'refusal';
    }
    return {
      text,
      finishReason,
      usage: usage ?? this.usageNotReported(request, text),
      model: request.model,
      provider: this.provider,
      timeToFirstTokenMs: firstTokenAt === null ? null : firstTokenAt - startedAt,
    };
  }

  /**
   * What a stream cut after text came has used: OpenAI reports usage only in its last chunk, yet bills the
   * prompt and every token it streamed, so the estimate is charged rather than nothing.
   */
  private usageOfCut(
    request: ChatRequest,
    usage: TokenUsage | undefined,
    text: string,
  ): TokenUsage | undefined {
    return usage ?? (text === '' ? undefined : this.usageNotReported(request, text));
  }

  /** What an aborted call is charged: its input, what it delivered, and the margin for tokens in flight. */
  private usageOfAbort(request: ChatRequest, deliveredOutputTokens: number): TokenUsage {
    return usageOfAbort(
      this.estimateInputTokens(request),
      deliveredOutputTokens,
      this.options.abortMarginTokens ?? DEFAULT_ABORT_MARGIN_TOKENS,
      this.clamp(request),
    );
  }

  async structured(request: StructuredRequest): Promise<StructuredResult> {
    const startedAt = this.now();
    let completion: OpenAI.Chat.Completions.ChatCompletion;
    try {
      completion = await this.client.chat.completions.create(
        {
          model: request.model,
          messages: toOpenAIMessages(request.system, request.messages),
          max_completion_tokens: this.clamp(request),
          response_format: {
            type: 'json_schema',
            json_schema: { name: request.schemaName, schema: request.schema, strict: true },
          },
        },
        { signal: request.signal, timeout: this.options.firstTokenTimeoutMs },
      );
    } catch (error) {
      // A completion that is not streamed goes on to its end after we hang up: all of it is charged.
      throw mapOpenAIError(
        error,
        request.signal?.aborted ? { usage: this.usageOfAbort(request, this.clamp(request)) } : {},
      );
    }
    const usage = completion.usage ? convertOpenAIUsage(completion.usage) : undefined;
    const choice = completion.choices[0];
    if (!choice) {
      throw new ProviderError('openai', 'truncated', 'OpenAI answered with no choices', { usage });
    }
    const text = choice.message.content ?? choice.message.refusal ?? '';
    const finishReason = choice.message.refusal
      ? 'refusal'
      : (mapOpenAIFinishReason(choice.finish_reason) ?? 'error');
    return {
      text,
      finishReason,
      value: finishReason === 'stop' ? parseJsonOrUndefined(text) : undefined,
      usage: usage ?? this.usageNotReported(request, text),
      model: request.model,
      provider: this.provider,
      timeToFirstTokenMs: this.now() - startedAt,
    };
  }

  private clamp(request: ChatRequest): number {
    return clampOutputTokens(request, this.maxOutputTokensOf(request.model));
  }

  /** With include_usage OpenAI always reports usage; if it ever does not, charge a safe upper bound. */
  private usageNotReported(request: ChatRequest, text: string): TokenUsage {
    return {
      inputTokens: this.estimateInputTokens(request),
      cachedInputTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: Math.max(this.clamp(request), countOpenAITokens(text)),
    };
  }
}
