import { afterEach, describe, expect, it } from 'vitest';
import { BACKENDS } from '../support/databases.js';
import { type StorageHarness, temporaryStorage } from '../support/ledger.js';

describe.each(BACKENDS)('on %s', (backend) => {
  let harnesses: StorageHarness[] = [];
  afterEach(async () => {
    for (const harness of harnesses) await harness.cleanup();
    harnesses = [];
  });

  it("when the bot starts again, then it learns this host's recent starts, and starts older than five minutes are forgotten", async () => {
    const harness = await temporaryStorage(backend);
    harnesses.push(harness);
    const { storage, database } = harness;
    const minute = 60_000;
    const start = Date.parse('2026-11-24T12:00:00Z');
    expect(await storage.recordStart(start, '')).toEqual([]);
    expect(await storage.recordStart(start + minute, '')).toEqual([start]);
    // Another host's start does not count against this one.
    await database.query("INSERT INTO bot_starts (started_at, pid, host) VALUES ($1, 7, 'elsewhere')", [
      start + minute,
    ]);
    expect(await storage.recordStart(start + 2 * minute, '')).toEqual([start, start + minute]);
    expect(await storage.recordStart(start + 6 * minute + 1, '')).toEqual([start + 2 * minute]);
    expect(await database.value('SELECT COUNT(*) FROM bot_starts')).toBe(2);
  });

  it('when several processes of one host run shards of their own, then each counts only its own starts', async () => {
    const harness = await temporaryStorage(backend);
    harnesses.push(harness);
    const { storage } = harness;
    const start = Date.parse('2026-11-24T12:00:00Z');
    // A deploy restarts the host's three processes within a second.
    expect(await storage.recordStart(start, '0,1')).toEqual([]);
    expect(await storage.recordStart(start + 300, '2,3')).toEqual([]);
    expect(await storage.recordStart(start + 600, '4,5')).toEqual([]);
    // Then the first keeps crashing: its own starts, only.
    expect(await storage.recordStart(start + 60_000, '0,1')).toEqual([start]);
    expect(await storage.recordStart(start + 120_000, '0,1')).toEqual([start, start + 60_000]);
  });
});
