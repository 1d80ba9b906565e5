/** Discord refuses message content longer than this. */
export const MESSAGE_LIMIT = 2_000;

const FENCE_LINE = /^ {0,3}(```+|~~~+)(.*)$/;
/** Room kept in every piece for the closing fence added when a code block is cut. */
const CLOSING_FENCE_ROOM = 4;

/**
 * Splits an answer into Discord messages of at most `limit` characters: at a paragraph break if there is
 * one, else at a line break, else between words (a word longer than a whole message is the only thing ever
 * cut). A code block open at a cut is closed there and reopened, with its language, in the next message.
 * No message is empty; order is kept.
 */
export function splitMessage(text: string, limit = MESSAGE_LIMIT): string[] {
  const messages: string[] = [];
  let rest = text.trim();
  let openFence: string | undefined;
  while (rest !== '') {
    const reopen = openFence ? `${openFence}\n` : '';
    if (reopen.length + rest.length <= limit) {
      messages.push(reopen + rest);
      break;
    }
    const room = limit - reopen.length - CLOSING_FENCE_ROOM;
    const { end, next } = cutPoint(rest, room);
    const piece = rest.slice(0, end).trimEnd();
    const fenceAfter = fenceStateAfter(piece, openFence);
    const closing = fenceAfter ? `\n${fenceMarker(fenceAfter)}` : '';
    if (piece.trim() !== '') messages.push(reopen + piece + closing);
    rest = rest.slice(next);
    openFence = fenceAfter;
    // A piece that ends right after a fence's opening line carries nothing: start the block in the next one.
    if (piece.trim() === '' && openFence === undefined) rest = rest.trimStart();
  }
  return messages.filter((message) => message.trim() !== '');
}

/**
 * Where to end a piece of at most `room` characters, and where the next one starts: the last paragraph
 * break in the second half of the window, else the last line break there, else the last space; a break
 * in the first half only when there is nothing better (it would leave a short message).
 */
function cutPoint(text: string, room: number): { end: number; next: number } {
  const window = text.slice(0, room + 1);
  const separators = ['\n\n', '\n', ' '];
  for (const minimum of [Math.floor(room / 2), 1]) {
    for (const separator of separators) {
      const at = window.lastIndexOf(separator, room);
      if (at >= minimum) return { end: at, next: at + separator.length };
    }
  }
  return { end: room, next: room };
}

/** The fence line (e.g. "```ts") of the code block still open after `text`, given the one open before it. */
function fenceStateAfter(text: string, openBefore: string | undefined): string | undefined {
  let open = openBefore;
  for (const line of text.split('\n')) {
    const match = FENCE_LINE.exec(line);
    if (!match) continue;
    const marker = match[1] ?? '```';
    if (open === undefined) open = `${marker}${(match[2] ?? '').trim()}`;
    else if (marker.startsWith(fenceMarker(open)[0] ?? '`') && (match[2] ?? '').trim() === '')
      open = undefined;
  }
  return open;
}

function fenceMarker(fenceLine: string): string {
  return /^(`+|~+)/.exec(fenceLine)?.[1] ?? '```';
}
