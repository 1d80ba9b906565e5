import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordStart } from '../../src/db/starts.js';
import { temporaryDatabase } from '../support/ledger.js';

let database: ReturnType<typeof temporaryDatabase>;
beforeEach(() => {
  database = temporaryDatabase();
});
afterEach(() => database.cleanup());

describe('recordStart', () => {
  it('when the bot starts again, then it learns its recent starts, and starts older than five minutes are forgotten', () => {
    const minute = 60_000;
    const start = Date.parse('2026-11-24T12:00:00Z');
    expect(recordStart(database.db, start)).toEqual([]);
    expect(recordStart(database.db, start + minute)).toEqual([start]);
    expect(recordStart(database.db, start + 2 * minute)).toEqual([start, start + minute]);
    expect(recordStart(database.db, start + 6 * minute + 1)).toEqual([start + 2 * minute]);
    expect(database.db.$client.prepare('SELECT COUNT(*) FROM bot_starts').pluck().get()).toBe(2);
  });
});
