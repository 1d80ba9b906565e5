import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CORE = join(import.meta.dirname, '../../src/core');
const FORBIDDEN = ['discord.js', 'openai', '@anthropic-ai/sdk', 'better-sqlite3', 'drizzle-orm', 'pino'];

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
  it('when any core module is read, then it imports no SDK, Discord library or database driver', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(CORE)) {
      const imports = [...readFileSync(file, 'utf8').matchAll(/from\s+['"]([^'"]+)['"]/g)].map(
        (match) => match[1],
      );
      for (const specifier of imports) {
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
