import OpenAI from 'openai';
import type {
  ChatCompletionContentPart,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import { type ChatMessage, type ContentPart, type FinishReason, ProviderError } from '../../core/chat.js';
import type { TokenUsage } from '../../core/pricing.js';
import { type ErrorContext, QUOTA_ERROR_CODES, retryAfterMs, toBase64 } from '../http.js';

/**
 * OpenAI reports `prompt_tokens` as *all* input tokens, cached ones included; `cached_tokens` is the part
 * of them read from the prompt cache (billed at the cached-input price). OpenAI has no cache-write charge.
 * https://platform.openai.com/docs/guides/prompt-caching
 */
export function convertOpenAIUsage(usage: CompletionUsage): TokenUsage {
  const cachedInputTokens = usage.prompt_tokens_details?.cached_tokens ?? 0;
  return {
    inputTokens: usage.prompt_tokens - cachedInputTokens,
    cachedInputTokens,
    cacheWriteTokens: 0,
    outputTokens: usage.completion_tokens,
  };
}

/** undefined while the stream has not said why it stopped (a stream that ends so was cut). */
export function mapOpenAIFinishReason(reason: string | null | undefined): FinishReason | undefined {
  switch (reason) {
    case null:
    case undefined:
      return undefined;
    case 'length':
      return 'length';
    case 'content_filter':
      return 'content_filter';
    default:
      // 'stop', and 'tool_calls' / 'function_call', which tierbot never asks for.
      return 'stop';
  }
}

export function toOpenAIMessages(
  system: string,
  messages: readonly ChatMessage[],
): ChatCompletionMessageParam[] {
  const converted: ChatCompletionMessageParam[] = [{ role: 'system', content: system }];
  for (const message of messages) {
    if (message.role === 'assistant') {
      const text =
        typeof message.content === 'string'
          ? message.content
          : message.content.map((part) => (part.type === 'text' ? part.text : '')).join('');
      converted.push({ role: 'assistant', content: text });
      continue;
    }
    converted.push({
      role: 'user',
      content: typeof message.content === 'string' ? message.content : message.content.map(toOpenAIPart),
    });
  }
  return converted;
}

function toOpenAIPart(part: ContentPart): ChatCompletionContentPart {
  if (part.type === 'text') return { type: 'text', text: part.text };
  if (part.type === 'image') {
    return {
      type: 'image_url',
      image_url: { url: `data:${part.mediaType};base64,${toBase64(part.data)}`, detail: 'auto' },
    };
  }
  // gpt-4o models read PDFs given as a file part (text and page images); tierbot sends PDFs to the
  // smart model first and only lands here on a fallback.
  return {
    type: 'file',
    file: {
      filename: part.name ?? 'document.pdf',
      file_data: `data:application/pdf;base64,${toBase64(part.data)}`,
    },
  };
}

export function mapOpenAIError(error: unknown, context: ErrorContext = {}): ProviderError {
  if (error instanceof ProviderError) return error;
  const details = { usage: context.usage, partialText: context.partialText, cause: error };
  if (error instanceof OpenAI.APIUserAbortError) {
    return context.timedOut
      ? new ProviderError('openai', 'timeout', 'OpenAI sent no answer in time', details)
      : new ProviderError('openai', 'aborted', 'the request was cancelled', details);
  }
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return new ProviderError('openai', 'timeout', 'OpenAI did not answer in time', details);
  }
  if (error instanceof OpenAI.APIConnectionError) {
    return new ProviderError('openai', 'connection', 'could not reach OpenAI', details);
  }
  if (error instanceof OpenAI.APIError) {
    const status = error.status;
    const code = String(error.code ?? error.type ?? '');
    const withStatus = { ...details, status };
    if (QUOTA_ERROR_CODES.has(code) || QUOTA_ERROR_CODES.has(String(error.type ?? ''))) {
      return new ProviderError(
        'openai',
        'quota',
        'the OpenAI account is out of credit or over its limit',
        withStatus,
      );
    }
    if (status === 401 || status === 403) {
      return new ProviderError('openai', 'auth', 'OpenAI refused the API key', withStatus);
    }
    if (status === 429) {
      return new ProviderError('openai', 'rate_limited', 'OpenAI is rate-limiting us', {
        ...withStatus,
        retryAfterMs: retryAfterMs(error.headers),
      });
    }
    if (status === 408) return new ProviderError('openai', 'timeout', 'OpenAI timed out', withStatus);
    if (status === 503 || status === 529) {
      return new ProviderError('openai', 'overloaded', 'OpenAI is overloaded', {
        ...withStatus,
        retryAfterMs: retryAfterMs(error.headers),
      });
    }
    if (status === 409 || (status !== undefined && status >= 500)) {
      return new ProviderError('openai', 'server', `OpenAI failed (${status})`, withStatus);
    }
    return new ProviderError(
      'openai',
      'invalid_request',
      `OpenAI refused the request (${status})`,
      withStatus,
    );
  }
  // undici reports a response body cut mid-stream as `TypeError: terminated`.
  if (error instanceof TypeError && error.message === 'terminated') {
    return new ProviderError('openai', 'truncated', 'the OpenAI stream was cut off', details);
  }
  return new ProviderError(
    'openai',
    'connection',
    `OpenAI call failed: ${(error as Error)?.message}`,
    details,
  );
}
