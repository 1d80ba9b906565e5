import type Anthropic from '@anthropic-ai/sdk';
import type { MessageDeltaUsage, StopReason, Usage } from '@anthropic-ai/sdk/resources/messages';
import {
  type ChatModel,
  type ChatRequest,
  type ChatResult,
  ProviderError,
  type StructuredRequest,
  type StructuredResult,
} from '../../core/chat.js';
import type { TokenUsage } from '../../core/pricing.js';
import { countOpenAITokens, estimateAnthropicInputTokens, type PdfPart, pdfPartsOf } from '../estimate.js';
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
import {
  convertAnthropicUsage,
  mapAnthropicError,
  mapAnthropicStopReason,
  toAnthropicMessages,
  toAnthropicSystem,
} from './mappers.js';
import { PdfTokenCounts } from './pdf-counts.js';

/** Output limits of the models tierbot knows. */
const MAX_OUTPUT_TOKENS: Readonly<Record<string, number>> = {
  'claude-haiku-4-5': 64_000,
  'claude-haiku-4-5-20251001': 64_000,
  'claude-3-5-haiku': 8_192,
  'claude-3-5-haiku-20241022': 8_192,
  'claude-sonnet-4-5': 64_000,
};

/**
 * Input limits (context windows) of the models tierbot knows. Sonnet 4.5 takes 1,000,000 only under a
 * beta header tierbot does not send. https://docs.anthropic.com/en/docs/about-claude/models/overview
 */
const CONTEXT_WINDOW_TOKENS: Readonly<Record<string, number>> = {
  'claude-haiku-4-5': 200_000,
  'claude-haiku-4-5-20251001': 200_000,
  'claude-3-5-haiku': 200_000,
  'claude-3-5-haiku-20241022': 200_000,
  'claude-sonnet-4-5': 200_000,
};

export interface AnthropicAdapterOptions extends AdapterOptions {
  /**
   * How long counting a PDF's tokens may take (plus time to upload it) before the call reserves the
   * context window instead; 5 s by default.
   */
  countTimeoutMs?: number;
}

/**
 * Claude models over the official `@anthropic-ai/sdk` (messages.stream). No sampling parameters are
 * sent: the installed SDK (1.x) has no `temperature` in its request type, and the defaults suit chat.
 */
export class AnthropicChatModel implements ChatModel {
  readonly provider = 'anthropic' as const;
  private readonly now: () => number;
  private readonly pdfCounts: PdfTokenCounts;

  constructor(
    private readonly client: Anthropic,
    private readonly options: AnthropicAdapterOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.pdfCounts = new PdfTokenCounts(client, options.countTimeoutMs);
  }

  maxOutputTokensOf(model: string): number {
    return maxOutputTokensIn(MAX_OUTPUT_TOKENS, model);
  }

  /** Counted at once, unless the request carries a PDF: Anthropic then counts the PDF first (free). */
  estimateInputTokens(request: ChatRequest): number | Promise<number> {
    const contextWindowTokens = contextWindowIn(CONTEXT_WINDOW_TOKENS, request.model);
    const pdfs = pdfPartsOf(request);
    if (pdfs.length === 0) return estimateAnthropicInputTokens(request, contextWindowTokens);
    return this.estimateWithPdfs(request, pdfs, contextWindowTokens);
  }

  private async estimateWithPdfs(
    request: ChatRequest,
    pdfs: readonly PdfPart[],
    contextWindowTokens: number,
  ): Promise<number> {
    const counted = new Map<PdfPart, number>();
    await Promise.all(
      pdfs.map(async (part) => {
        const tokens = await this.pdfCounts.tokensOf(request.model, part, request.signal);
        if (tokens !== undefined) counted.set(part, tokens);
      }),
    );
    return estimateAnthropicInputTokens(request, contextWindowTokens, (part) => counted.get(part));
  }

  async stream(request: ChatRequest, onDelta?: (text: string) => void): Promise<ChatResult> {
    const startedAt = this.now();
    const timer = startFirstTokenTimer(request.signal, this.options.firstTokenTimeoutMs);
    let text = '';
    let startUsage: Usage | undefined;
    let deltaUsage: MessageDeltaUsage | undefined;
    let stopReason: StopReason | null = null;
    let firstTokenAt: number | null = null;
    const usageSoFar = () => (startUsage ? convertAnthropicUsage(startUsage, deltaUsage) : undefined);
    try {
      const stream = this.client.messages.stream(
        {
          model: request.model,
          max_tokens: this.clamp(request),
          system: toAnthropicSystem(request.system),
          messages: toAnthropicMessages(request.messages),
        },
        { signal: timer.signal },
      );
      for await (const event of stream) {
        switch (event.type) {
          case 'message_start':
            startUsage = event.message.usage;
            break;
          case 'content_block_delta':
            if (event.delta.type === 'text_delta' && event.delta.text !== '') {
              const piece = event.delta.text;
              if (firstTokenAt === null) {
                firstTokenAt = this.now();
                timer.firstTokenArrived();
              }
              text += piece;
              timer.deliver(() => onDelta?.(piece));
            }
            break;
          case 'message_delta':
            deltaUsage = event.usage;
            stopReason = event.delta.stop_reason ?? stopReason;
            break;
        }
      }
    } catch (error) {
      timer.rethrowCallerError();
      const isAbortedByCaller = request.signal?.aborted === true && !timer.timedOut;
      throw mapAnthropicError(error, {
        timedOut: timer.timedOut,
        usage: isAbortedByCaller ? this.usageOfAbort(request, usageSoFar(), text) : usageSoFar(),
        partialText: text,
      });
    } finally {
      timer.stop();
    }
    const finishReason = mapAnthropicStopReason(stopReason);
    const usage = usageSoFar();
    if (!finishReason || !usage) {
      throw new ProviderError('anthropic', 'truncated', 'the Anthropic stream ended without a stop reason', {
        usage,
        partialText: text,
      });
    }
    return {
      text,
      finishReason,
      usage,
      model: request.model,
      provider: this.provider,
      timeToFirstTokenMs: firstTokenAt === null ? null : firstTokenAt - startedAt,
    };
  }

  async structured(request: StructuredRequest): Promise<StructuredResult> {
    const startedAt = this.now();
    let message: Anthropic.Message;
    try {
      message = await this.client.messages.create(
        {
          model: request.model,
          max_tokens: this.clamp(request),
          system: toAnthropicSystem(request.system),
          messages: toAnthropicMessages(request.messages),
          output_config: { format: { type: 'json_schema', schema: request.schema } },
        },
        { signal: request.signal, timeout: this.options.firstTokenTimeoutMs },
      );
    } catch (error) {
      // A message that is not streamed goes on to its end after we hang up: all of it is charged.
      throw mapAnthropicError(
        error,
        request.signal?.aborted
          ? { usage: this.usageOfAbort(request, undefined, '', this.clamp(request)) }
          : {},
      );
    }
    const text = message.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
    const finishReason = mapAnthropicStopReason(message.stop_reason) ?? 'error';
    const usage: TokenUsage = convertAnthropicUsage(message.usage);
    return {
      text,
      finishReason,
      value: finishReason === 'stop' ? parseJsonOrUndefined(text) : undefined,
      usage,
      model: request.model,
      provider: this.provider,
      timeToFirstTokenMs: this.now() - startedAt,
    };
  }

  /**
   * What an aborted call is charged: the input `message_start` reported (else the estimate), the output it
   * delivered and the margin for tokens in flight. Anthropic counts output only at the end, and its
   * tokenizer is not public: delivered text is counted with o200k, as the benchmarks count Claude's tokens.
   */
  private usageOfAbort(
    request: ChatRequest,
    reported: TokenUsage | undefined,
    text: string,
    deliveredOutputTokens = Math.max(reported?.outputTokens ?? 0, countOpenAITokens(text)),
  ): TokenUsage {
    const charged = usageOfAbort(
      reported ? reported.inputTokens : this.knownInputTokens(request),
      deliveredOutputTokens,
      this.options.abortMarginTokens ?? DEFAULT_ABORT_MARGIN_TOKENS,
      this.clamp(request),
    );
    return reported ? { ...reported, outputTokens: charged.outputTokens } : charged;
  }

  /**
   * The input estimate without asking Anthropic again: a PDF's count was made when the call reserved (and
   * is kept), so this is what the reservation held; a PDF never counted is bounded by the context window.
   */
  private knownInputTokens(request: ChatRequest): number {
    return estimateAnthropicInputTokens(
      request,
      contextWindowIn(CONTEXT_WINDOW_TOKENS, request.model),
      (part) => this.pdfCounts.known(request.model, part),
    );
  }

  private clamp(request: ChatRequest): number {
    return clampOutputTokens(request, this.maxOutputTokensOf(request.model));
  }
}
