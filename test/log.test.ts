import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactSecrets } from '../src/log.js';

const DISCORD_TOKEN = `${Buffer.from('123456789012345678').toString('base64url')}.GabcDE.${'x'.repeat(38)}`;
const OPENAI_KEY = 'sk-proj-abcdefghijklmnopqrstuvwxyz0123';
const ANTHROPIC_KEY = 'sk-ant-api03-abcdefghijklmnopqrstuvwxyz';
const WEBHOOK = `https://discord.com/api/v10/webhooks/123456789012345678/${'t'.repeat(68)}`;

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, stream };
}

describe('redactSecrets', () => {
  it.each([
    ['a Discord bot token', DISCORD_TOKEN],
    ['an OpenAI key', OPENAI_KEY],
    ['an Anthropic key', ANTHROPIC_KEY],
  ])('when text contains %s, then it is replaced', (_name, secret) => {
    const redacted = redactSecrets(`failed with ${secret} in it`);
    expect(redacted).toBe('failed with [redacted] in it');
  });

  it('when text contains a webhook URL, then its token part is replaced and the id kept', () => {
    expect(redactSecrets(`POST ${WEBHOOK}/messages/@original`)).toBe(
      'POST https://discord.com/api/v10/webhooks/123456789012345678/[redacted]/messages/@original',
    );
  });

  it('when text has no secret, then it is unchanged', () => {
    const text = 'user 123456789012345678 spent $0.0031 on gpt-4o-mini';
    expect(redactSecrets(text)).toBe(text);
  });
});

describe('createLogger', () => {
  it('when an object or an error message carries a secret, then the written line does not', () => {
    const { lines, stream } = capture();
    const log = createLogger('info', stream);
    log.info({ token: 'plain-field-secret', config: { apiKey: 'nested-secret' } }, 'starting');
    log.error({ err: new Error(`401 from api with key ${OPENAI_KEY}`) }, `request to ${WEBHOOK} failed`);
    const output = lines.join('');
    expect(lines).toHaveLength(2);
    for (const secret of ['plain-field-secret', 'nested-secret', OPENAI_KEY, WEBHOOK]) {
      expect(output).not.toContain(secret);
    }
    expect(output).toContain('[redacted]');
  });
});
