import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type Anthropic from '@anthropic-ai/sdk';
import type { MessageCountTokensParams } from '@anthropic-ai/sdk/resources/messages';
import type { PdfPart } from '../estimate.js';
import { mapAnthropicError, toAnthropicDocument } from './mappers.js';

/**
 * Anthropic calls its count "an estimate": what a message then bills "may differ by a small amount". A
 * tenth more covers that, and is only held while the call runs.
 * https://docs.anthropic.com/en/docs/build-with-claude/token-counting
 */
const COUNT_MARGIN = 0.1;

/** How long a count may take before the call reserves the context window instead (plus its upload). */
export const DEFAULT_COUNT_TIMEOUT_MS = 5_000;

/**
 * The count request carries the whole PDF (as base64, 4/3 of its size): a big one gets time to upload on
 * top of the timeout, at 4 MB/s (a 32 MB PDF: 11 s more), so that counting it does not fail by its size.
 */
const UPLOAD_BYTES_PER_SECOND = 4 * 1024 * 1024;

/**
 * The PDF goes into the count request's body in pieces of this many bytes (a multiple of 3, so that their
 * base64 joins up), the event loop running between pieces: each takes well under a millisecond to encode,
 * and its base64 (64 KiB) is small enough for V8 to collect young, not in a full collection.
 */
const BYTES_PER_PIECE = 3 * 16 * 1024;

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

  /** A count already made of this PDF on this model, if any (the same as its reservation used). */
  known(model: string, part: PdfPart): number | undefined {
    return this.counted.get(part.data)?.get(countKey(model, part));
  }

  /**
   * The PDF's input tokens on this model, with the margin; undefined when Anthropic could not count them in
   * time (the caller then bounds the PDF by the context window). Throws only when the caller aborted.
   */
  async tokensOf(model: string, part: PdfPart, signal?: AbortSignal): Promise<number | undefined> {
    const known = this.known(model, part);
    if (known !== undefined) return known;
    const key = countKey(model, part);
    // The params as the SDK types them, with a stand-in for the PDF's base64, which the body streams.
    const standIn = `pdf-${randomUUID()}`;
    const params: MessageCountTokensParams = {
      model,
      messages: [{ role: 'user', content: [toAnthropicDocument(part, standIn)] }],
    };
    const uploadMs = Math.ceil((((part.data.byteLength * 4) / 3) * 1000) / UPLOAD_BYTES_PER_SECOND);
    let inputTokens: number;
    try {
      ({ input_tokens: inputTokens } = await this.client.messages.countTokens(params, {
        body: jsonWithPdf(params, standIn, part.data),
        headers: { 'content-type': 'application/json' },
        // A streamed body can be sent once.
        maxRetries: 0,
        timeout: this.timeoutMs + uploadMs,
        signal,
      }));
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

function countKey(model: string, part: PdfPart): string {
  return `${model}\n${part.name ?? ''}`;
}

/**
 * The params' JSON, with the PDF's base64 written in place of the stand-in piece by piece. Given the
 * params as an object, the SDK would build the whole body at once (the base64 of the file, the JSON
 * around it, then its UTF-8 bytes): for a 31 MB PDF that held the event loop for over a second.
 */
async function* jsonWithPdf(
  params: MessageCountTokensParams,
  standIn: string,
  data: Uint8Array,
): AsyncGenerator<Uint8Array> {
  const [before, after, ...more] = JSON.stringify(params).split(JSON.stringify(standIn));
  if (before === undefined || after === undefined || more.length > 0) {
    throw new Error('the stand-in for the PDF must appear once in the count request');
  }
  yield Buffer.from(`${before}"`, 'utf8');
  for (let start = 0; start < data.byteLength; start += BYTES_PER_PIECE) {
    const length = Math.min(BYTES_PER_PIECE, data.byteLength - start);
    const piece = Buffer.from(data.buffer, data.byteOffset + start, length);
    yield Buffer.from(piece.toString('base64'), 'latin1');
    await nextTurn();
  }
  yield Buffer.from(`"${after}`, 'utf8');
}
