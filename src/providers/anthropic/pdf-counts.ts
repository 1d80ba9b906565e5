import type Anthropic from '@anthropic-ai/sdk';
import type { PdfPart } from '../estimate.js';
import { mapAnthropicError, toAnthropicMessages } from './mappers.js';

/**
 * Anthropic calls its count "an estimate": what a message then bills "may differ by a small amount". A
 * tenth more covers that, and is only held while the call runs.
 * https://docs.anthropic.com/en/docs/build-with-claude/token-counting
 */
const COUNT_MARGIN = 0.1;

/** How long a count may take before the call reserves the context window instead. */
export const DEFAULT_COUNT_TIMEOUT_MS = 5_000;

/**
 * What a PDF costs on Claude, counted by Anthropic itself: each page is billed as its text plus an image
 * of it, which only a real PDF reader can know (a file can spell its page objects with escapes, or keep
 * them in compressed, predictor-encoded object streams). The count endpoint is free and generates
 * nothing; each PDF is counted alone, in a message of its own (with its title, which is billed too), so a
 * count holds wherever the PDF sits in a conversation, and is asked once per PDF and model however many
 * calls send it (retries, a refinement). https://docs.anthropic.com/en/api/messages-count-tokens
 */
export class PdfTokenCounts {
  /**
   * Counts made, by the PDF's bytes (the object, not a hash of its contents: hashing 32 MB would hold the
   * event loop for tens of milliseconds, and every call of a turn sends the same bytes). Nothing in tierbot
   * writes to an attachment's bytes once read, so a count kept here is never stale, and it goes when the
   * bytes do. Only counts are kept: a failure is asked again next time.
   */
  private readonly counted = new WeakMap<Uint8Array, Map<string, number>>();

  constructor(
    private readonly client: Anthropic,
    private readonly timeoutMs: number = DEFAULT_COUNT_TIMEOUT_MS,
  ) {}

  /**
   * The PDF's input tokens on this model, with the margin; undefined when Anthropic could not count them in
   * time (the caller then bounds the PDF by the context window). Throws only when the caller aborted.
   */
  async tokensOf(model: string, part: PdfPart, signal?: AbortSignal): Promise<number | undefined> {
    const key = `${model}\n${part.name ?? ''}`;
    const known = this.counted.get(part.data)?.get(key);
    if (known !== undefined) return known;
    let inputTokens: number;
    try {
      ({ input_tokens: inputTokens } = await this.client.messages.countTokens(
        { model, messages: toAnthropicMessages([{ role: 'user', content: [part] }]) },
        { signal, timeout: this.timeoutMs },
      ));
    } catch (error) {
      if (signal?.aborted) throw mapAnthropicError(error);
      return undefined;
    }
    // A proxy or compatible gateway answering something else is a failure to count, not a count of zero.
    if (!Number.isSafeInteger(inputTokens) || inputTokens < 0) return undefined;
    const tokens = Math.ceil(inputTokens * (1 + COUNT_MARGIN));
    const counts = this.counted.get(part.data) ?? new Map<string, number>();
    counts.set(key, tokens);
    this.counted.set(part.data, counts);
    return tokens;
  }
}
