import { describe, expect, it } from 'vitest';
import { MESSAGE_LIMIT, splitMessage } from '../../src/discord/split.js';

const words = (count: number, word = 'word') => Array.from({ length: count }, () => word).join(' ');

/** Every piece fits, none is empty, and joining them gives back every word in order. */
function expectFaithful(text: string, pieces: string[], limit = MESSAGE_LIMIT) {
  for (const piece of pieces) {
    expect(piece.length).toBeLessThanOrEqual(limit);
    expect(piece.trim()).not.toBe('');
  }
  const withoutFences = (value: string) =>
    value
      .replace(/^```\w*$/gm, '')
      .split(/\s+/)
      .filter(Boolean);
  expect(withoutFences(pieces.join('\n'))).toEqual(withoutFences(text));
}

describe('splitMessage', () => {
  it('when an answer fits in one message, then it is sent as it is', () => {
    expect(splitMessage('Hello there.')).toEqual(['Hello there.']);
    expect(splitMessage('x'.repeat(MESSAGE_LIMIT))).toHaveLength(1);
  });

  it('when an answer is long, then it is cut at a paragraph break before a line break or a space', () => {
    const first = words(150);
    const second = words(150);
    const pieces = splitMessage(`${first}\n\n${second}`, 1_000);
    expect(pieces).toEqual([first, second]);
  });

  it('when there is no paragraph break, then it is cut at a line break, else between words, never inside one', () => {
    const pieces = splitMessage(words(1_000, 'antidisestablishment'));
    expectFaithful(words(1_000, 'antidisestablishment'), pieces);
    for (const piece of pieces)
      expect(piece.split(' ').every((word) => word === 'antidisestablishment')).toBe(true);
  });

  it('when a code block is open at a cut, then it is closed there and reopened with its language', () => {
    const code = Array.from({ length: 200 }, (_, line) => `const value${line} = ${line};`).join('\n');
    const text = `Here is the code:\n\n\`\`\`ts\n${code}\n\`\`\`\n\nThat is all.`;
    const pieces = splitMessage(text);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces[0]?.endsWith('\n```')).toBe(true);
    for (const piece of pieces.slice(1, -1)) {
      expect(piece.startsWith('```ts\n')).toBe(true);
      expect(piece.endsWith('\n```')).toBe(true);
    }
    expect(pieces.at(-1)).toMatch(/^```ts\n[\s\S]*\n```\n\nThat is all\.$/);
    // Every piece has balanced fences, so Discord renders each one as code.
    for (const piece of pieces) expect((piece.match(/^```/gm) ?? []).length % 2).toBe(0);
    expectFaithful(text, pieces);
  });

  it('when a 6,000-character answer has a code fence across a boundary, then order and content are kept', () => {
    const prose = words(300);
    const code = Array.from({ length: 120 }, (_, line) => `print("line ${line}")`).join('\n');
    const text = `${prose}\n\n\`\`\`python\n${code}\n\`\`\`\n\n${words(150)}`;
    expect(text.length).toBeGreaterThan(4_000);
    const pieces = splitMessage(text);
    expectFaithful(text, pieces);
    expect(pieces.filter((piece) => piece.startsWith('```python'))).not.toHaveLength(0);
  });

  it('when a single word is longer than a message, then it alone is cut', () => {
    const pieces = splitMessage('x'.repeat(4_500));
    expect(pieces.map((piece) => piece.length)).toEqual([1_996, 1_996, 508]);
  });

  it('when the answer is only whitespace, then there is nothing to send', () => {
    expect(splitMessage('  \n\n ')).toEqual([]);
  });
});
