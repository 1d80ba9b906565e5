import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests spawn processes and run loopback servers; a generous timeout keeps a slow CI machine honest
    // without any test asserting on time.
    testTimeout: 60_000,
    // Two files at a time on a 2-core machine: most of a test's time is spent waiting on child processes
    // and loopback servers. Vitest's default here (cores - 1) runs one at a time.
    maxWorkers: 2,
    hookTimeout: 60_000,
    // Fails a test file whose stdout or stderr carried a secret-shaped string.
    setupFiles: ['test/setup/no-secrets.ts'],
    // One real PostgreSQL server for the run (or TEST_DATABASE_URL's): tests make their databases on it.
    globalSetup: ['test/setup/postgres.ts', 'test/setup/build.ts'],
  },
});
