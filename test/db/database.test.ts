import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  migrate as migratePostgres,
  openPool,
  POSTGRES_MIGRATIONS_FOLDER,
} from '../../src/db/postgres/database.js';
import {
  closeDatabase,
  MIGRATIONS_FOLDER,
  migrate as migrateSqlite,
  openDatabase,
} from '../../src/db/sqlite/database.js';
import { type TemporaryDatabase, temporaryDatabase } from '../support/databases.js';
import { HOST_ISOLATION, startSimulatedHosts } from '../support/hosts.js';
import { PROJECT_ROOT } from '../support/process.js';
import { reportOf, runWorkersTogether, type WorkerSpec } from '../support/workers.js';
import type { MigrateReport } from './fixtures/migrate-worker.js';

const MIGRATE_WORKER = join(import.meta.dirname, 'fixtures/migrate-worker.ts');
const TABLES = ['budget_audit', 'budgets', 'reservations', 'spend_counters', 'usage_ledger'];
const LEDGER_ROW = `INSERT INTO usage_ledger (request_id, turn_id, user_id, provider, model, purpose, outcome,
    input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros, smart_cost_micros,
    reserved_micros, charged_at, created_at)
  VALUES ('r', 't', 'u', 'openai', 'gpt-4o-mini', 'draft', 'settled', 1, 0, 0, 1, 1, 6, 10, 0, 0)`;

const migrationCount = (folder: string) => readdirSync(folder).filter((name) => name.endsWith('.sql')).length;

/** Starts migrate-worker.ts processes together on one database and returns what each applied. */
async function migrateTogether(location: string, launchers: string[][]): Promise<MigrateReport[]> {
  const specs: WorkerSpec[] = launchers.map((launcher, index) => ({
    name: `migrate-worker-${index + 1}`,
    entryPoint: MIGRATE_WORKER,
    argument: location,
    cwd: PROJECT_ROOT,
    launcher,
  }));
  const outcomes = await runWorkersTogether(specs);
  for (const outcome of outcomes) expect(outcome, outcome.stderr).toMatchObject({ exitCode: 0, stderr: '' });
  return outcomes.map((outcome) => reportOf<MigrateReport>(outcome));
}

describe('SQLite: openDatabase and migrate', () => {
  const MIGRATION_COUNT = migrationCount(MIGRATIONS_FOLDER);
  const directories: string[] = [];
  afterEach(() => {
    for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
  });

  function freshPath(): string {
    const directory = mkdtempSync(join(tmpdir(), 'tierbot-db-'));
    directories.push(directory);
    return join(directory, 'nested', 'dir', 'tierbot.db');
  }

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
      expect(migrateSqlite(db)).toEqual({ applied: MIGRATION_COUNT });
      expect(migrateSqlite(db)).toEqual({ applied: 0 });
      const tables = db.$client
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .pluck()
        .all();
      expect(tables).toEqual(expect.arrayContaining(TABLES));
    } finally {
      closeDatabase(db);
    }
  });

  it('when four processes start together on a new file, then the migrations are applied exactly once', async () => {
    const path = freshPath();
    const reports = await migrateTogether(path, [[], [], [], []]);
    expect(reports.reduce((sum, report) => sum + report.applied, 0)).toBe(MIGRATION_COUNT);
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
      migrateSqlite(db);
      db.$client.prepare(LEDGER_ROW).run();
      expect(() => db.$client.prepare('UPDATE usage_ledger SET cost_micros = 0').run()).toThrow(
        /append-only/,
      );
      expect(() => db.$client.prepare('DELETE FROM usage_ledger').run()).toThrow(/append-only/);
    } finally {
      closeDatabase(db);
    }
  });
});

describe('PostgreSQL: migrate', () => {
  const MIGRATION_COUNT = migrationCount(POSTGRES_MIGRATIONS_FOLDER);
  let database: TemporaryDatabase | undefined;
  afterEach(async () => {
    await database?.cleanup();
    database = undefined;
  });

  const appliedMigrations = () =>
    database?.value('SELECT COUNT(*) FROM drizzle.__drizzle_migrations') ?? Promise.resolve(-1);
  const publicTables = async () =>
    (
      (await database?.query<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
      )) ?? []
    ).map((row) => row.name);

  it('when an empty database is migrated twice, then every migration is applied once', async () => {
    database = await temporaryDatabase('postgres', { empty: true });
    const pool = openPool(database.location.databaseUrl ?? '', () => {});
    try {
      expect(await migratePostgres(pool)).toEqual({ applied: MIGRATION_COUNT });
      expect(await migratePostgres(pool)).toEqual({ applied: 0 });
    } finally {
      await pool.end();
    }
    expect(await appliedMigrations()).toBe(MIGRATION_COUNT);
    expect(await publicTables()).toEqual(expect.arrayContaining(TABLES));
  });

  it('when a ledger row is updated or deleted, then PostgreSQL refuses: the ledger is append-only', async () => {
    database = await temporaryDatabase('postgres');
    await database.query(LEDGER_ROW);
    await expect(database.query('UPDATE usage_ledger SET cost_micros = 0')).rejects.toThrow(/append-only/);
    await expect(database.query('DELETE FROM usage_ledger')).rejects.toThrow(/append-only/);
    expect(await database.query('SELECT cost_micros FROM usage_ledger')).toEqual([{ cost_micros: 1 }]);
  });

  it(`when four processes on two hosts (${HOST_ISOLATION}) start together on an empty database, then each migration is applied exactly once`, async () => {
    database = await temporaryDatabase('postgres', { empty: true });
    const { hosts, close } = await startSimulatedHosts(2);
    let reports: MigrateReport[];
    try {
      const launchers = [0, 1, 2, 3].map((index) => hosts[index % hosts.length]!.launcher(PROJECT_ROOT));
      reports = await migrateTogether(database.location.databaseUrl ?? '', launchers);
    } finally {
      await close();
    }
    expect(reports.reduce((sum, report) => sum + report.applied, 0)).toBe(MIGRATION_COUNT);
    expect(await appliedMigrations()).toBe(MIGRATION_COUNT);
    expect(await publicTables()).toEqual(expect.arrayContaining(TABLES));
    if (HOST_ISOLATION === 'PID namespaces') {
      // Two hosts as tierbot tells them apart, two processes on each.
      const hostKeys = reports.map((report) => report.host);
      expect(new Set(hostKeys).size).toBe(2);
      expect(hostKeys.filter((host) => host === hostKeys[0])).toHaveLength(2);
    }
  });
});
