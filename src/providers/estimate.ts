import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { TextDecoder } from 'node:util';
import type * as Encoding from 'gpt-tokenizer/GptEncoding';
import type { ChatRequest, ContentPart } from '../core/chat.js';

/**
 * Input-token estimates for reservations. They must never be below what a provider bills, so each is an
 * upper bound by construction, paid for by holding a little more budget while a call runs. Nothing here
 * reads an attachment's bytes: what a file costs is never taken from what the file says of itself.
 */

export type PdfPart = Extract<ContentPart, { type: 'pdf' }>;

/** Chat formatting around each message (role markers, separators); OpenAI's cookbook counts 3–4. */
const TOKENS_PER_MESSAGE = 8;
/** The reply primer and the system prompt's own framing. */
const TOKENS_PER_REQUEST = 16;

/**
 * gpt-4o-mini bills an image at 2,833 tokens plus 5,667 per 512-pixel tile (at high detail, after fitting
 * it in 2048×2048 and scaling its short side down to 768). Without dimensions, the most tiles an image
 * can make is 8 (768×2048).
 * https://platform.openai.com/docs/guides/images-vision#calculating-costs
 */
export function openAIImageTokens(width?: number, height?: number): number {
  const BASE = 2_833;
  const PER_TILE = 5_667;
  if (!width || !height) return BASE + 8 * PER_TILE;
  let scaledWidth = width;
  let scaledHeight = height;
  const fit = Math.min(1, 2048 / Math.max(scaledWidth, scaledHeight));
  scaledWidth *= fit;
  scaledHeight *= fit;
  const shortSide = Math.min(scaledWidth, scaledHeight);
  if (shortSide > 768) {
    scaledWidth *= 768 / shortSide;
    scaledHeight *= 768 / shortSide;
  }
  return BASE + PER_TILE * Math.ceil(scaledWidth / 512) * Math.ceil(scaledHeight / 512);
}

/**
 * Claude bills about width × height / 750 tokens for an image, after scaling it down to fit 1568 pixels on
 * its long side and about 1.15 megapixels, which caps an image near 1,600 tokens.
 * https://docs.anthropic.com/en/docs/build-with-claude/vision#calculate-image-costs
 */
export function anthropicImageTokens(width?: number, height?: number): number {
  const CAP = 1_800;
  if (!width || !height) return CAP;
  return Math.min(CAP, Math.ceil((width * height) / 750));
}

/**
 * The o200k_base tokenizer, loaded on first use: its 200,000-token table is the largest thing the bot
 * loads (about 20 MB of heap and a third of a second of a start), and nothing before the first message
 * needs it. The bot warms it up just after it is ready ({@link warmUpTokenizer}), so a first message rarely
 * waits. The table is read from the package's own `data/o200k_base.tiktoken` rather than by importing its
 * 2.4 MB JavaScript module of the same ranks: V8's parse of that array literal leaves its memory behind
 * (a process holding only the tokenizer: 113 MB of RSS through the module, 68 MB through the file).
 */
type Tokenizer = Pick<Encoding.GptEncoding, 'countTokens'>;
let tokenizer: Tokenizer | undefined;
function o200k(): Tokenizer {
  if (!tokenizer) {
    const require = createRequire(import.meta.url);
    const { GptEncoding } = require('gpt-tokenizer/GptEncoding') as typeof Encoding;
    const ranks = readTiktokenRanks(
      readFileSync(require.resolve('gpt-tokenizer/data/o200k_base.tiktoken'), 'latin1'),
    );
    tokenizer = GptEncoding.getEncodingApi('o200k_base', () => ranks);
  }
  return tokenizer;
}

/**
 * The ranks of a `.tiktoken` file (a line per token: its bytes in base64, a space, its rank), as
 * gpt-tokenizer's modules hold them: a token's text when its bytes are UTF-8 that decodes and encodes
 * back to the same bytes, else the bytes themselves.
 */
export function readTiktokenRanks(file: string): (string | number[])[] {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const ranks: (string | number[])[] = [];
  for (let start = 0; start < file.length;) {
    const newline = file.indexOf('\n', start);
    const end = newline === -1 ? file.length : newline;
    if (end > start) {
      const space = file.indexOf(' ', start);
      const rank = Number(file.slice(space + 1, end));
      if (space === -1 || space > end || rank !== ranks.length) {
        throw new Error(`not a .tiktoken file: line ${ranks.length + 1} is not rank ${ranks.length}`);
      }
      const bytes = Buffer.from(file.slice(start, space), 'base64');
      ranks.push(asText(utf8, bytes) ?? Array.from(bytes));
    }
    start = end + 1;
  }
  return ranks;
}

/** The bytes as text, if they are UTF-8 that encodes back to themselves (a leading BOM would not). */
function asText(utf8: TextDecoder, bytes: Buffer): string | undefined {
  try {
    const text = utf8.decode(bytes);
    return Buffer.byteLength(text) === bytes.length ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Loads the tokenizer now, off the path of any message (called once the bot is ready). */
export function warmUpTokenizer(): void {
  o200k();
}

/** Special-token text a user types ("<|endoftext|>") is billed as ordinary text; counting must not throw. */
const AS_ORDINARY_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * Counts already made, by text. Most of what a call sends was counted before: the system prompt, the
 * check's prompt and schema, and the conversation's history, which every turn sends again. Bounded, oldest
 * first out.
 */
const countCache = new Map<string, number>();
const COUNT_CACHE_ENTRIES = 2_000;
/** Short texts are cheaper to count than to keep. */
const CACHED_MIN_CHARACTERS = 64;

/** OpenAI's models use the o200k_base tokenizer: text is counted exactly. */
export function countOpenAITokens(text: string): number {
  if (text.length < CACHED_MIN_CHARACTERS) return o200k().countTokens(text, AS_ORDINARY_TEXT);
  const cached = countCache.get(text);
  if (cached !== undefined) return cached;
  const count = o200k().countTokens(text, AS_ORDINARY_TEXT);
  if (countCache.size >= COUNT_CACHE_ENTRIES) {
    const oldest = countCache.keys().next().value;
    if (oldest !== undefined) countCache.delete(oldest);
  }
  countCache.set(text, count);
  return count;
}

/**
 * OpenAI has no endpoint to count a request. What a PDF costs there (the text of its pages and an image of
 * each) cannot be read off its bytes without parsing the whole file as OpenAI does, and a file can say
 * whatever it likes of itself: its pages may spell their type with escapes, hide in compressed object
 * streams, or be a few bytes each. So a request with a PDF reserves the model's whole context window, the
 * most any request can be billed (OpenAI refuses a longer one): 128,000 tokens on GPT-4o Mini, about 2
 * cents, held only while the call runs. PDFs reach OpenAI only with escalation off or as a fallback.
 */
export function estimateOpenAIInputTokens(request: ChatRequest, contextWindowTokens: number): number {
  const estimate = estimateWith(
    request,
    countOpenAITokens,
    (part) => openAIImageTokens(part.width, part.height),
    () => contextWindowTokens,
  );
  return Math.min(estimate, contextWindowTokens);
}

/**
 * Anthropic publishes no tokenizer. A token always stands for at least one byte of UTF-8, so the byte
 * length of the text is an upper bound that holds for any language or code (an English prompt uses
 * about a quarter of it; the difference is only held while the call runs). A PDF costs what
 * `pdfTokens` says Anthropic counted of it (see anthropic/pdf-counts.ts); a PDF it has no count for costs
 * the whole context window. The sum is bounded by the window: Anthropic refuses a longer request.
 */
export function estimateAnthropicInputTokens(
  request: ChatRequest,
  contextWindowTokens: number,
  pdfTokens: (part: PdfPart) => number | undefined = () => undefined,
): number {
  const estimate = estimateWith(
    request,
    (text) => Buffer.byteLength(text, 'utf8'),
    (part) => anthropicImageTokens(part.width, part.height),
    (part) => pdfTokens(part) ?? contextWindowTokens,
  );
  return Math.min(estimate, contextWindowTokens);
}

/** The PDFs a request carries, in order. */
export function pdfPartsOf(request: ChatRequest): PdfPart[] {
  const pdfs: PdfPart[] = [];
  for (const message of request.messages) {
    if (typeof message.content === 'string') continue;
    for (const part of message.content) if (part.type === 'pdf') pdfs.push(part);
  }
  return pdfs;
}

function estimateWith(
  request: ChatRequest,
  countText: (text: string) => number,
  countImage: (part: Extract<ContentPart, { type: 'image' }>) => number,
  countPdf: (part: PdfPart) => number,
): number {
  let total = TOKENS_PER_REQUEST + countText(request.system);
  // A structured call's JSON schema is sent to the model as part of its input.
  if ('schema' in request) total += countText(JSON.stringify(request.schema));
  for (const message of request.messages) {
    total += TOKENS_PER_MESSAGE;
    if (typeof message.content === 'string') {
      total += countText(message.content);
      continue;
    }
    for (const part of message.content) {
      if (part.type === 'text') total += countText(part.text);
      else if (part.type === 'image') total += countImage(part);
      else total += countPdf(part);
    }
  }
  return total;
}
