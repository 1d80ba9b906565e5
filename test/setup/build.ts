import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * The checkout's dist/, built once for the whole run (scripts/build.mjs builds only when src/ changed:
 * after `npm ci`, whose prepare script built it, this is a check of a few milliseconds). Tests that run
 * the compiled entry points as `npm start` does copy it (test/support/process.ts: buildProject) instead
 * of each running tsc again.
 */
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], {
    cwd: join(import.meta.dirname, '../..'),
    stdio: 'inherit',
  });
}
