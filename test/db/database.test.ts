import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, MIGRATIONS_FOLDER, migrate, openDatabase } from '../../src/db/database.js';
import { runEntryPoint } from '../support/process.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function freshPath(): string {
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-db-'));
  directories.push(directory);
  return join(directory, 'nested', 'dir', 'tierbot.db');
}

const MIGRATION_COUNT = readdirSync(MIGRATIONS_FOLDER).filter((name) => name.endsWith('.sql')).length;

describe('openDatabase and migrate', () => {
  it('when a database is opened, then its directory is created and WAL, a busy timeout and foreign keys are on', () => {
    const db = openDatabase(freshPath());
    try {
      expect(db.$client.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.$client.pragma('busy_timeout', { simple: true })).toBeGreaterThanOrEqual(5_000);
      expect(db.$client.pragma('foreign_keys', { simple: true })).toBe(1);
    } finally {
      closeDatabase(db);
    }
  });

  it('when migrated twice, then every migration is applied once', () => {
    const db = openDatabase(freshPath());
    try {
      expect(migrate(db)).toEqual({ applied: MIGRATION_COUNT });
      expect(migrate(db)).toEqual({ applied: 0 });
      const tables = db.$client
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .pluck()
        .all();
      expect(tables).toEqual(
        expect.arrayContaining(['budget_audit', 'budgets', 'reservations', 'spend_counters', 'usage_ledger']),
      );
    } finally {
      closeDatabase(db);
    }
  });

  it('when four processes start together on a new file, then the migrations are applied exactly once', async () => {
    const path = freshPath();
    const worker = join(import.meta.dirname, 'fixtures/migrate-worker.ts');
    const results = await Promise.all(Array.from({ length: 4 }, () => runEntryPoint(worker, [path])));
    for (const result of results) expect(result).toMatchObject({ code: 0, stderr: '' });
    const applied = results.map((result) => JSON.parse(result.stdout).applied as number);
    expect(applied.reduce((sum, count) => sum + count, 0)).toBe(MIGRATION_COUNT);
    const db = openDatabase(path);
    try {
      expect(db.$client.prepare('SELECT COUNT(*) FROM __drizzle_migrations').pluck().get()).toBe(
        MIGRATION_COUNT,
      );
    } finally {
      closeDatabase(db);
    }
  });

  it('when a ledger row is updated or deleted, then SQLite refuses: the ledger is append-only', () => {
    const db = openDatabase(freshPath());
    try {
      migrate(db);
      db.$client
        .prepare(
          `INSERT INTO usage_ledger (request_id, turn_id, user_id, provider, model, purpose, outcome, input_tokens,
             cached_input_tokens, cache_write_tokens, output_tokens, cost_micros, smart_cost_micros, reserved_micros,
             charged_at, created_at)
           VALUES ('r', 't', 'u', 'openai', 'gpt-4o-mini', 'draft', 'settled', 1, 0, 0, 1, 1, 6, 10, 0, 0)`,
        )
        .run();
      expect(() => db.$client.prepare('UPDATE usage_ledger SET cost_micros = 0').run()).toThrow(
        /append-only/,
      );
      expect(() => db.$client.prepare('DELETE FROM usage_ledger').run()).toThrow(/append-only/);
    } finally {
      closeDatabase(db);
    }
  });
});
