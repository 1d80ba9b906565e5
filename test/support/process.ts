import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const PROJECT_ROOT = join(import.meta.dirname, '../..');

/**
 * Node arguments that run a TypeScript entry point through tsx from any working directory
 * (`--import tsx` alone resolves tsx from the child's cwd).
 */
export function tsxArguments(entryPoint: string, ...args: string[]): string[] {
  const loader = pathToFileURL(createRequire(join(PROJECT_ROOT, 'package.json')).resolve('tsx')).href;
  return ['--import', loader, entryPoint, ...args];
}
