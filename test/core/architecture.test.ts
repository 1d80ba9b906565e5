import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SOURCE = join(import.meta.dirname, '../../src');
const CORE = join(SOURCE, 'core');
const FORBIDDEN = [
  'discord.js',
  'openai',
  '@anthropic-ai/sdk',
  'better-sqlite3',
  'pg',
  'drizzle-orm',
  'pino',
  'prom-client',
];

/** Every import and export-from specifier of a module (type-only ones too: they couple as much). */
function importsOf(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map(
    (match) => match[1] ?? '',
  );
}

function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(directory, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(directory, entry.name)]
        : [],
  );
}

describe('src/core', () => {
  it('when any core module is read, then it imports no SDK, Discord library, database driver or metrics library', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(CORE)) {
      for (const specifier of importsOf(file)) {
        if (FORBIDDEN.some((name) => specifier === name || specifier?.startsWith(`${name}/`))) {
          offenders.push(`${file}: ${specifier}`);
        }
        if (specifier?.startsWith('.') && /\/(db|discord|providers)\//.test(`/${specifier}`)) {
          offenders.push(`${file}: ${specifier}`);
        }
      }
    }
    expect(sourceFiles(CORE).length).toBeGreaterThan(0);
    expect(offenders).toEqual([]);
  });
});

describe('src/discord', () => {
  it('when any Discord module is read, then it reaches storage through the ports only: no src/db import, no database driver', () => {
    const offenders: string[] = [];
    const files = sourceFiles(join(SOURCE, 'discord'));
    for (const file of files) {
      for (const specifier of importsOf(file)) {
        const isDatabaseDriver = ['better-sqlite3', 'pg', 'drizzle-orm'].some(
          (name) => specifier === name || specifier.startsWith(`${name}/`),
        );
        // src/app.ts wires concrete stores: the Discord layer gets them through its BotServices instead.
        const isConcrete = specifier.startsWith('.') && /\/(db\/|app\.js$)/.test(specifier);
        if (isDatabaseDriver || isConcrete) offenders.push(`${file}: ${specifier}`);
      }
    }
    expect(files.length).toBeGreaterThan(0);
    expect(offenders).toEqual([]);
  });
});
