import { format } from 'node:util';
import { afterAll } from 'vitest';
import { assertNoSecrets } from '../support/secrets.js';

/**
 * Every test file: what is written to stdout and stderr while it runs (process writes, and console calls,
 * which vitest routes around process.stdout) is kept, and the file fails if any of it holds a
 * secret-shaped string (src/log.ts scrubs the bot's log lines; this catches whatever gets past it).
 */

const written: { where: string; text: string }[] = [];
const restores: (() => void)[] = [];

for (const [name, stream] of [
  ['stdout', process.stdout],
  ['stderr', process.stderr],
] as const) {
  const write = stream.write;
  stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
    written.push({
      where: name,
      text: typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString(),
    });
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof stream.write;
  restores.push(() => {
    stream.write = write;
  });
}

for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
  const original = console[method];
  console[method] = (...args: unknown[]) => {
    written.push({ where: `console.${method}`, text: format(...args) });
    original.apply(console, args);
  };
  restores.push(() => {
    console[method] = original;
  });
}

afterAll(() => {
  for (const restore of restores.splice(0)) restore();
  assertNoSecrets(written.splice(0));
});
