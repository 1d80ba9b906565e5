import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/core/chat.js';
import { CONVERSATION_TOKEN_BUDGET, fitConversation, roughTokens } from '../../src/core/history.js';

const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });
/** A message worth `tokens` rough tokens (its 4 framing tokens included). */
const sized = (tokens: number, role: ChatMessage['role'] = 'user'): ChatMessage => ({
  role,
  content: 'x'.repeat((tokens - 4) * 3),
});

describe('roughTokens', () => {
  it('when text is English, then it counts a third of its bytes, on the safe side of ~4 bytes a token', () => {
    expect(roughTokens(user('a'.repeat(300)))).toBe(4 + 100);
  });

  it('when text is Chinese, then each 3-byte character counts as a token', () => {
    expect(roughTokens(user('你好世界'))).toBe(4 + 4);
  });

  it('when a message carries an image, then only its text counts (attachments are priced by the adapters)', () => {
    const withImage: ChatMessage = {
      role: 'user',
      content: [
        { type: 'text', text: 'abc' },
        { type: 'image', mediaType: 'image/png', data: new Uint8Array(3_000) },
      ],
    };
    expect(roughTokens(withImage)).toBe(4 + 1);
  });
});

describe('fitConversation', () => {
  it('when the conversation fits, then nothing is dropped', () => {
    const messages = [user('hi'), assistant('hello'), user('how are you?')];
    expect(fitConversation(messages)).toEqual({ messages, dropped: 0 });
  });

  it('when it is over the budget, then the oldest messages go first and the newest that fit stay', () => {
    const messages = [
      sized(3_000),
      sized(3_000, 'assistant'),
      sized(3_000),
      sized(2_000, 'assistant'),
      sized(1_000),
    ];
    const fitted = fitConversation(messages, 6_500);
    expect(fitted.dropped).toBe(2);
    expect(fitted.messages).toEqual(messages.slice(2));
  });

  it('when the newest kept message would be an answer with no question before it, then it goes too', () => {
    const messages = [sized(3_000), sized(3_000, 'assistant'), sized(3_000)];
    const fitted = fitConversation(messages, 6_500);
    expect(fitted.messages).toEqual([messages[2]]);
    expect(fitted.dropped).toBe(2);
  });

  it('when a conversation that fits opens with an answer of the bot (a reply to it), then that answer stays', () => {
    const messages = [assistant('Paris.'), user('and its population?')];
    expect(fitConversation(messages)).toEqual({ messages, dropped: 0 });
  });

  it('when there is nothing, then nothing is dropped', () => {
    expect(fitConversation([])).toEqual({ messages: [], dropped: 0 });
  });

  it('when the question alone is over the budget, then it is still sent, alone', () => {
    const messages = [user('earlier'), sized(CONVERSATION_TOKEN_BUDGET + 1)];
    expect(fitConversation(messages)).toEqual({ messages: [messages[1]], dropped: 1 });
  });
});
