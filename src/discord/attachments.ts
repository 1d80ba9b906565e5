import type { Attachment } from 'discord.js';
import type { ContentPart, ImageMediaType } from '../core/chat.js';

/** Anthropic takes images up to 5 MB (OpenAI more): one limit that both accept. */
export const IMAGE_LIMIT_BYTES = 5 * 1024 * 1024;
/** Anthropic takes PDFs up to 32 MB (and 100 pages). */
export const PDF_LIMIT_BYTES = 32 * 1024 * 1024;
/** Text files are inlined into the prompt; beyond this they would crowd out the conversation. */
export const TEXT_LIMIT_BYTES = 100 * 1024;
/** Anthropic refuses images over 8,000 pixels on a side, and any answer may go to Claude. */
export const IMAGE_MAX_SIDE_PIXELS = 8_000;
/**
 * The longest one attachment may take to download, from the request to its last byte. Discord's CDN
 * sends the largest file taken (a 32 MB PDF) in about 3 s at 100 Mbit/s; a download still going after
 * this has stalled, and the person is waiting meanwhile with no answer begun.
 */
export const DOWNLOAD_TIMEOUT_MS = 30_000;

const KIND_NAMES = { image: 'images', pdf: 'PDFs', text: 'text files' } as const;

const TEXT_EXTENSIONS = new Set([
  'txt', 'md', 'markdown', 'csv', 'tsv', 'json', 'jsonl', 'yaml', 'yml', 'toml', 'xml', 'html', 'css', 'log',
  'js', 'mjs', 'cjs', 'ts', 'tsx', 'jsx', 'py', 'rb', 'go', 'rs', 'java', 'kt', 'c', 'h', 'cpp', 'hpp', 'cs',
  'php', 'swift', 'sh', 'bash', 'sql', 'lua', 'r', 'scala', 'dart', 'ini', 'cfg', 'conf', 'diff', 'patch',
]); // prettier-ignore

/** The first bytes each format must start with: a file whose bytes disagree with its name is not sent. */
const SIGNATURES: ReadonlyArray<
  readonly [ImageMediaType | 'application/pdf', (bytes: Uint8Array) => boolean]
> = [
  ['image/png', (bytes) => startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
  ['image/jpeg', (bytes) => startsWith(bytes, [0xff, 0xd8, 0xff])],
  ['image/gif', (bytes) => startsWith(bytes, [0x47, 0x49, 0x46, 0x38])],
  [
    'image/webp',
    (bytes) =>
      startsWith(bytes, [0x52, 0x49, 0x46, 0x46]) && startsWith(bytes.subarray(8), [0x57, 0x45, 0x42, 0x50]),
  ],
  ['application/pdf', (bytes) => startsWith(bytes, [0x25, 0x50, 0x44, 0x46, 0x2d])],
];

export interface ReadAttachments {
  parts: ContentPart[];
  /** One line per attachment that was not sent, saying why. */
  notes: string[];
  /**
   * An attachment could not be downloaded (it stalled, or the CDN failed): the last note says which, and
   * the attachments after it were not read. The question should not be answered without it.
   */
  isDownloadFailed: boolean;
}

export interface DownloadOptions {
  /** Default {@link DOWNLOAD_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Ends a download in progress (the turn was cancelled). */
  signal?: AbortSignal;
}

/** How a download ended: its bytes, or why there are none. */
export type Download =
  | { status: 'downloaded'; bytes: Uint8Array }
  /** More bytes came than the limit: the stream was cut there. */
  | { status: 'too-large' }
  | { status: 'timed-out' }
  | { status: 'failed' };

export type Downloader = (url: string, limitBytes: number, options: DownloadOptions) => Promise<Download>;

type Kind = 'image' | 'pdf' | 'text' | 'other';

/**
 * Turns a message's attachments into model input: images (png, jpeg, gif, webp) as vision input, PDFs as
 * documents, text-like files inlined as text. Each is checked against its size limit before it is
 * downloaded (by what the message says), while it is downloaded (by the bytes that come), and against its
 * real bytes after. A download that fails stops the reading there (see `isDownloadFailed`).
 */
export async function readAttachments(
  attachments: Iterable<Attachment>,
  options: DownloadOptions = {},
  download: Downloader = downloadBytes,
): Promise<ReadAttachments> {
  const parts: ContentPart[] = [];
  const notes: string[] = [];
  for (const attachment of attachments) {
    const kind = kindOf(attachment);
    const name = attachment.name;
    if (kind === 'other') {
      notes.push(`${name}: this kind of file is not supported (images, PDFs and text files are); not sent`);
      continue;
    }
    const limit = kind === 'image' ? IMAGE_LIMIT_BYTES : kind === 'pdf' ? PDF_LIMIT_BYTES : TEXT_LIMIT_BYTES;
    const tooLarge = `${name}: larger than the ${formatBytes(limit)} limit for ${KIND_NAMES[kind]}; not sent`;
    if (attachment.size > limit) {
      notes.push(tooLarge);
      continue;
    }
    const timeoutMs = options.timeoutMs ?? DOWNLOAD_TIMEOUT_MS;
    const downloaded = await download(attachment.url, limit, { ...options, timeoutMs });
    if (downloaded.status === 'too-large') {
      notes.push(tooLarge);
      continue;
    }
    if (downloaded.status !== 'downloaded') {
      notes.push(
        downloaded.status === 'timed-out'
          ? `${name}: the download did not finish within ${formatSeconds(timeoutMs)}; not sent`
          : `${name}: could not be downloaded; not sent`,
      );
      return { parts, notes, isDownloadFailed: true };
    }
    const part = toPart(kind, downloaded.bytes, attachment);
    if (typeof part === 'string') notes.push(`${name}: ${part}; not sent`);
    else parts.push(part);
  }
  return { parts, notes, isDownloadFailed: false };
}

function kindOf(attachment: Attachment): Kind {
  const type = attachment.contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  const extension = attachment.name.split('.').pop()?.toLowerCase() ?? '';
  if (type.startsWith('image/') || ['png', 'jpg', 'jpeg', 'gif', 'webp'].includes(extension)) return 'image';
  if (type === 'application/pdf' || extension === 'pdf') return 'pdf';
  if (type.startsWith('text/') || type === 'application/json' || TEXT_EXTENSIONS.has(extension))
    return 'text';
  return 'other';
}

/** The part to send, or why the bytes cannot be sent as what the file claims to be. */
function toPart(
  kind: Exclude<Kind, 'other'>,
  bytes: Uint8Array,
  attachment: Attachment,
): ContentPart | string {
  if (kind === 'text') {
    if (bytes.includes(0)) return 'not a text file';
    const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    return { type: 'text', text: `<file name="${attachment.name}">\n${text}\n</file>` };
  }
  const detected = SIGNATURES.find(([, matches]) => matches(bytes))?.[0];
  if (kind === 'pdf')
    return detected === 'application/pdf'
      ? { type: 'pdf', data: bytes, name: attachment.name }
      : 'not a valid PDF';
  if (!detected || detected === 'application/pdf') return 'not a valid png, jpeg, gif or webp image';
  // A provider answers an image it cannot decode with a 400: a damaged or oversized one is not sent.
  const size = imageSize(detected, bytes);
  const format = detected.slice('image/'.length);
  if (!size) return `a damaged ${format} image (its header cannot be read)`;
  if (Math.max(size.width, size.height) > IMAGE_MAX_SIDE_PIXELS) {
    return (
      `${size.width.toLocaleString('en-US')}×${size.height.toLocaleString('en-US')} pixels, over the ` +
      `${IMAGE_MAX_SIDE_PIXELS.toLocaleString('en-US')}-pixel limit per side`
    );
  }
  return {
    type: 'image',
    mediaType: detected,
    data: bytes,
    ...(attachment.width ? { width: attachment.width } : {}),
    ...(attachment.height ? { height: attachment.height } : {}),
  };
}

/**
 * Downloads a file, reading no more than `limitBytes` of it: the size a message states and a
 * Content-Length are only claims, so the bytes are counted as they come and the stream is cut as soon as
 * they pass the limit. The whole download, headers to last byte, gets `timeoutMs`.
 */
export async function downloadBytes(
  url: string,
  limitBytes: number,
  options: DownloadOptions,
): Promise<Download> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DOWNLOAD_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  try {
    const response = await fetch(url, { signal });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      return { status: 'failed' };
    }
    // A length over the limit is believed at once; one under it is not believed at all.
    if (Number(response.headers.get('content-length') ?? 0) > limitBytes) {
      await response.body.cancel();
      return { status: 'too-large' };
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    // Leaving the loop early cancels the stream, which closes the connection: nothing more is read.
    for await (const chunk of response.body) {
      total += chunk.byteLength;
      if (total > limitBytes) return { status: 'too-large' };
      chunks.push(chunk);
    }
    return { status: 'downloaded', bytes: concatenate(chunks, total) };
  } catch {
    return { status: timeout.aborted ? 'timed-out' : 'failed' };
  }
}

function concatenate(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

interface ImageSize {
  width: number;
  height: number;
}

/**
 * An image's size as its header states it (what a decoder will use), or undefined when the header is cut
 * off or malformed. The formats' headers: PNG's IHDR chunk, GIF's logical screen, JPEG's frame (SOFn)
 * segment, WebP's VP8 / VP8L / VP8X chunk.
 */
function imageSize(mediaType: ImageMediaType, bytes: Uint8Array): ImageSize | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = (width: number, height: number) => (width > 0 && height > 0 ? { width, height } : undefined);
  const ascii = (start: number, length: number) =>
    String.fromCharCode(...bytes.subarray(start, start + length));
  switch (mediaType) {
    case 'image/png':
      if (bytes.length < 24 || ascii(12, 4) !== 'IHDR') return undefined;
      return size(view.getUint32(16), view.getUint32(20));
    case 'image/gif':
      if (bytes.length < 10 || !['GIF87a', 'GIF89a'].includes(ascii(0, 6))) return undefined;
      return size(view.getUint16(6, true), view.getUint16(8, true));
    case 'image/webp':
      return webpSize(bytes, view, ascii(12, 4), size);
    case 'image/jpeg':
      return jpegSize(bytes, view, size);
  }
}

function webpSize(
  bytes: Uint8Array,
  view: DataView,
  chunk: string,
  size: (width: number, height: number) => ImageSize | undefined,
): ImageSize | undefined {
  if (chunk === 'VP8 ' && bytes.length >= 30 && startsWith(bytes.subarray(23), [0x9d, 0x01, 0x2a])) {
    return size(view.getUint16(26, true) & 0x3fff, view.getUint16(28, true) & 0x3fff);
  }
  if (chunk === 'VP8L' && bytes.length >= 25 && bytes[20] === 0x2f) {
    const bits = view.getUint32(21, true);
    return size((bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
  }
  if (chunk === 'VP8X' && bytes.length >= 30) {
    const uint24 = (offset: number) => view.getUint16(offset, true) + ((bytes[offset + 2] ?? 0) << 16);
    return size(uint24(24) + 1, uint24(27) + 1);
  }
  return undefined;
}

/** JPEG: the segments after SOI, up to the first frame header; none before the scan starts means damaged. */
function jpegSize(
  bytes: Uint8Array,
  view: DataView,
  size: (width: number, height: number) => ImageSize | undefined,
): ImageSize | undefined {
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1] ?? 0;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      offset += 2; // markers without a length
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // the scan (or the end) before any frame
    const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (isFrame) {
      return offset + 9 <= bytes.length
        ? size(view.getUint16(offset + 7), view.getUint16(offset + 5))
        : undefined;
    }
    offset += 2 + view.getUint16(offset + 2);
  }
  return undefined;
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((byte, index) => bytes[index] === byte);
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MB` : `${bytes / 1024} KB`;
}

function formatSeconds(milliseconds: number): string {
  return `${(milliseconds / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 })} s`;
}
