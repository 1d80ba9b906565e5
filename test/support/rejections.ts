import { afterAll, beforeAll, expect } from 'vitest';

/**
 * Collects the promise rejections nobody handled while a test file runs (call at the top level of the
 * file); `expectNone()` after each test fails it if there was one.
 */
export function watchUnhandledRejections(): { expectNone(): Promise<void> } {
  const seen: unknown[] = [];
  const collect = (reason: unknown) => seen.push(reason);
  beforeAll(() => {
    process.on('unhandledRejection', collect);
  });
  afterAll(() => {
    process.off('unhandledRejection', collect);
  });
  return {
    async expectNone() {
      // A rejection nobody handled is reported once the microtask queue drains.
      await new Promise((resolve) => setImmediate(resolve));
      expect(seen).toEqual([]);
      seen.length = 0;
    },
  };
}
