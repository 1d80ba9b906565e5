import type { Attachment } from 'discord.js';
import type { ContentPart, ImageMediaType } from '../core/chat.js';

/** Anthropic takes images up to 5 MB (OpenAI more): one limit that both accept. */
export const IMAGE_LIMIT_BYTES = 5 * 1024 * 1024;
/** Anthropic takes PDFs up to 32 MB (and 100 pages). */
export const PDF_LIMIT_BYTES = 32 * 1024 * 1024;
/** Text files are inlined into the prompt; beyond this they would crowd out the conversation. */
export const TEXT_LIMIT_BYTES = 100 * 1024;

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
}

type Kind = 'image' | 'pdf' | 'text' | 'other';

/**
 * Turns a message's attachments into model input: images (png, jpeg, gif, webp) as vision input, PDFs as
 * documents, text-like files inlined as text. Each is checked against its size limit before it is
 * downloaded and against its real bytes after.
 */
export async function readAttachments(
  attachments: Iterable<Attachment>,
  download: (url: string) => Promise<Uint8Array> = downloadBytes,
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
    if (attachment.size > limit) {
      notes.push(
        `${name}: larger than the ${formatBytes(limit)} limit for ${kind === 'text' ? 'text files' : `${kind}s`}; not sent`,
      );
      continue;
    }
    let bytes: Uint8Array;
    try {
      bytes = await download(attachment.url);
    } catch {
      notes.push(`${name}: could not be downloaded; not sent`);
      continue;
    }
    const part = toPart(kind, bytes, attachment);
    if (typeof part === 'string') notes.push(`${name}: ${part}; not sent`);
    else parts.push(part);
  }
  return { parts, notes };
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
  return {
    type: 'image',
    mediaType: detected,
    data: bytes,
    ...(attachment.width ? { width: attachment.width } : {}),
    ...(attachment.height ? { height: attachment.height } : {}),
  };
}

async function downloadBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`download failed: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((byte, index) => bytes[index] === byte);
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MB` : `${bytes / 1024} KB`;
}
