import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import {
  inBatchedTransaction,
  inTransaction,
  MIGRATION_LOCK,
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

/** History written before the per-hour sums existed: calls in two servers and DMs, hours and models apart. */
const HISTORY = `INSERT INTO usage_ledger (request_id, turn_id, user_id, guild_id, provider, model, purpose, outcome,
    input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros, smart_cost_micros,
    reserved_micros, charged_at, created_at)
  VALUES ('r1', 't1', 'u1', 'g1', 'openai', 'gpt-4o-mini', 'draft', 'settled', 10, 2, 0, 5, 7, 40, 50, 3600000, 0),
    ('r2', 't1', 'u1', 'g1', 'openai', 'gpt-4o-mini', 'check', 'settled', 20, 0, 0, 1, 3, 20, 50, 7199999, 0),
    ('r3', 't2', 'u2', 'g1', 'anthropic', 'claude-haiku-4-5', 'refine', 'settled', 30, 0, 4, 9, 90, 90, 99, 7000000, 0),
    ('r4', 't3', 'u2', 'g1', 'openai', 'gpt-4o-mini', 'draft', 'swept', 0, 0, 0, 0, 50, 50, 50, 7200000, 0),
    ('r5', 't4', 'u3', 'g2', 'openai', 'gpt-4o-mini', 'draft', 'settled', 1, 0, 0, 1, 1, 6, 10, 3600000, 0),
    ('r6', 't5', 'u3', NULL, 'openai', 'gpt-4o-mini', 'draft', 'settled', 2, 0, 0, 2, 2, 12, 10, 3600001, 0)`;
const HISTORY_TURNS = `INSERT INTO turns (turn_id, user_id, guild_id, status, models, final_model, escalation_source,
    tokens, cost_micros, smart_only_cost_micros, question, answer, created_at)
  VALUES ('t1', 'u1', 'g1', 'answered', 'gpt-4o-mini', 'gpt-4o-mini', NULL, 36, 10, 60, 'q', 'a', 3600000),
    ('t2', 'u2', 'g1', 'answered', 'claude-haiku-4-5', 'claude-haiku-4-5', 'router', 43, 90, 90, 'q', 'a', 7000000),
    ('t6', 'u2', 'g1', 'answered', 'claude-haiku-4-5', 'claude-haiku-4-5', 'router', 43, 80, 80, 'q', 'a', 7100000),
    ('t3', 'u2', 'g1', 'denied', 'gpt-4o-mini', 'gpt-4o-mini', NULL, 0, 50, 50, 'q', '', 7200000),
    ('t5', 'u3', NULL, 'answered', 'gpt-4o-mini', 'gpt-4o-mini', NULL, 4, 2, 12, 'q', 'a', 3600001)`;
const HOUR_SUMS = `SELECT guild_key AS "guildKey", hour, model, calls, input_tokens AS "inputTokens",
    cached_input_tokens AS "cachedInputTokens", cache_write_tokens AS "cacheWriteTokens",
    output_tokens AS "outputTokens", cost_micros AS "costMicros", smart_cost_micros AS "smartCostMicros"
  FROM usage_by_hour ORDER BY guild_key, hour, model`;
const ANSWER_SUMS = `SELECT guild_key AS "guildKey", hour, reason, answers, cost_micros AS "costMicros",
    smart_only_cost_micros AS "smartOnlyCostMicros" FROM answers_by_hour ORDER BY guild_key, hour, reason`;
/** What HISTORY and HISTORY_TURNS sum to: answered turns only, '' for DMs and for no escalation. */
const HISTORY_SUMS = {
  hours: [
    {
      guildKey: '',
      hour: 1,
      model: 'gpt-4o-mini',
      calls: 1,
      inputTokens: 2,
      cachedInputTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 2,
      costMicros: 2,
      smartCostMicros: 12,
    },
    {
      guildKey: 'g1',
      hour: 1,
      model: 'claude-haiku-4-5',
      calls: 1,
      inputTokens: 30,
      cachedInputTokens: 0,
      cacheWriteTokens: 4,
      outputTokens: 9,
      costMicros: 90,
      smartCostMicros: 90,
    },
    {
      guildKey: 'g1',
      hour: 1,
      model: 'gpt-4o-mini',
      calls: 2,
      inputTokens: 30,
      cachedInputTokens: 2,
      cacheWriteTokens: 0,
      outputTokens: 6,
      costMicros: 10,
      smartCostMicros: 60,
    },
    {
      guildKey: 'g1',
      hour: 2,
      model: 'gpt-4o-mini',
      calls: 1,
      inputTokens: 0,
      cachedInputTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 0,
      costMicros: 50,
      smartCostMicros: 50,
    },
    {
      guildKey: 'g2',
      hour: 1,
      model: 'gpt-4o-mini',
      calls: 1,
      inputTokens: 1,
      cachedInputTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 1,
      costMicros: 1,
      smartCostMicros: 6,
    },
  ],
  answers: [
    { guildKey: '', hour: 1, reason: '', answers: 1, costMicros: 2, smartOnlyCostMicros: 12 },
    { guildKey: 'g1', hour: 1, reason: '', answers: 1, costMicros: 10, smartOnlyCostMicros: 60 },
    { guildKey: 'g1', hour: 1, reason: 'router', answers: 2, costMicros: 170, smartOnlyCostMicros: 170 },
  ],
};

/**
 * A copy of a migrations folder that holds only its first `count` migrations, to build a database as an
 * older release left it.
 */
function firstMigrations(folder: string, count: number, into: string): string {
  const copy = join(into, 'migrations');
  cpSync(folder, copy, { recursive: true });
  const journalPath = join(copy, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: unknown[] };
  writeFileSync(journalPath, JSON.stringify({ ...journal, entries: journal.entries.slice(0, count) }));
  return copy;
}

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

  it('when a database with history is migrated to the per-hour sums, then they hold its history, and go on adding up', () => {
    const path = freshPath();
    const db = openDatabase(path);
    try {
      const before = firstMigrations(MIGRATIONS_FOLDER, MIGRATION_COUNT - 1, join(path, '..'));
      expect(migrateSqlite(db, before)).toEqual({ applied: MIGRATION_COUNT - 1 });
      db.$client.exec(HISTORY);
      db.$client.exec(HISTORY_TURNS);
      expect(migrateSqlite(db)).toEqual({ applied: 1 });
      expect(db.$client.prepare(HOUR_SUMS).all()).toEqual(HISTORY_SUMS.hours);
      expect(db.$client.prepare(ANSWER_SUMS).all()).toEqual(HISTORY_SUMS.answers);
      // From now on the triggers add each new row.
      db.$client.prepare(LEDGER_ROW).run();
      expect(
        db.$client
          .prepare("SELECT calls, cost_micros FROM usage_by_hour WHERE guild_key = '' AND hour = 0")
          .get(),
      ).toEqual({
        calls: 1,
        cost_micros: 1,
      });
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

  it("when another process holds the migration lock longer than the pool's statement timeout, then migrate waits for it and applies the migrations", async () => {
    database = await temporaryDatabase('postgres', { empty: true });
    const url = database.location.databaseUrl ?? '';
    const holder = openPool(url, () => {});
    // The bot's pools stop a statement after 15 s; this one after 100 ms, so the wait below outlasts it.
    const pool = new pg.Pool({ connectionString: url, max: 1, statement_timeout: 100 });
    try {
      const lockHolder = await holder.connect();
      await lockHolder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      const migrating = migratePostgres(pool);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await lockHolder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      lockHolder.release();

      expect(await migrating).toEqual({ applied: MIGRATION_COUNT });
      // The connection goes back to the pool with its own timeout.
      expect(await pool.query('SHOW statement_timeout')).toMatchObject({
        rows: [{ statement_timeout: '100ms' }],
      });
    } finally {
      await pool.end();
      await holder.end();
    }
    expect(await appliedMigrations()).toBe(MIGRATION_COUNT);
  });

  it('when a database with history is migrated to the per-hour sums, then they hold its history, and go on adding up', async () => {
    database = await temporaryDatabase('postgres', { empty: true });
    const directory = mkdtempSync(join(tmpdir(), 'tierbot-migrations-'));
    const pool = openPool(database.location.databaseUrl ?? '', () => {});
    try {
      const before = firstMigrations(POSTGRES_MIGRATIONS_FOLDER, MIGRATION_COUNT - 1, directory);
      expect(await migratePostgres(pool, before)).toEqual({ applied: MIGRATION_COUNT - 1 });
      await pool.query(HISTORY);
      await pool.query(HISTORY_TURNS);
      expect(await migratePostgres(pool)).toEqual({ applied: 1 });
    } finally {
      await pool.end();
      rmSync(directory, { recursive: true, force: true });
    }
    expect(await database.query(HOUR_SUMS)).toEqual(HISTORY_SUMS.hours);
    expect(await database.query(ANSWER_SUMS)).toEqual(HISTORY_SUMS.answers);
    await database.query(LEDGER_ROW);
    expect(
      await database.query("SELECT calls, cost_micros FROM usage_by_hour WHERE guild_key = '' AND hour = 0"),
    ).toEqual([{ calls: 1, cost_micros: 1 }]);
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

describe('PostgreSQL: a connection dropped while checked out', () => {
  let database: TemporaryDatabase | undefined;
  afterEach(async () => {
    await database?.cleanup();
    database = undefined;
  });

  it('when the server drops a connection between two statements of a transaction, then the transaction fails, the process goes on, and the pool serves the next query', async () => {
    database = await temporaryDatabase('postgres');
    const pool = openPool(database.location.databaseUrl ?? '', () => {});
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const transaction = inTransaction(pool, async (client) => {
        const [{ pid }] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [
          { pid: number },
        ];
        await database?.query(`SELECT pg_terminate_backend(${pid})`);
        // The termination reaches the connection while no statement of it runs.
        await new Promise((resolve) => setTimeout(resolve, 200));
        await client.query('SELECT 1');
      });

      await expect(transaction).rejects.toThrow();
      expect(uncaught).toEqual([]);
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await pool.end();
    }
  });
});

describe('PostgreSQL: inBatchedTransaction (BEGIN with the first statement, COMMIT with the last)', () => {
  let database: TemporaryDatabase | undefined;
  afterEach(async () => {
    await database?.cleanup();
    database = undefined;
  });
  const INSERT_BUDGET = `INSERT INTO budgets (guild_id, scope, user_id, amount_micros, period, set_by, set_at)
    VALUES ($1, 'user', $2, $3, 'month', 'admin', 0) RETURNING amount_micros AS "amountMicros"`;
  const amounts = () =>
    database?.query<{ user_id: string; amount_micros: number }>(
      'SELECT user_id, amount_micros FROM budgets ORDER BY user_id',
    );

  it('when the work writes, reads, writes and commits, then each statement gives its own rows and all of it is committed, in one transaction', async () => {
    database = await temporaryDatabase('postgres');
    const pool = openPool(database.location.databaseUrl ?? '', () => {});
    try {
      const seen = await inBatchedTransaction(pool, async (transaction) => {
        const first = await transaction.query<{ xid: string; amountMicros: number }>({
          text: `WITH b AS (${INSERT_BUDGET}) SELECT pg_current_xact_id()::text AS xid, (SELECT "amountMicros" FROM b)`,
          values: ['g', 'a', 5],
        });
        const middle = await transaction.query<{ xid: string }>({
          text: 'SELECT pg_current_xact_id()::text AS xid',
        });
        expect(middle.rows).toEqual([{ xid: first.rows[0]?.xid }]);
        const last = await transaction.queryAndCommit<{ xid: string; amountMicros: number }>({
          name: 'test_batched_last',
          text: `WITH b AS (${INSERT_BUDGET}) SELECT pg_current_xact_id()::text AS xid, (SELECT "amountMicros" FROM b)`,
          values: ['g', 'b', 7],
        });
        return [first.rows, last.rows];
      });
      expect(seen[0]?.[0]?.amountMicros).toBe(5);
      expect(seen[1]?.[0]?.amountMicros).toBe(7);
      // Both statements ran in one transaction: the same transaction id.
      expect(seen[0]?.[0]?.xid).toBe(seen[1]?.[0]?.xid);
      expect(await amounts()).toEqual([
        { user_id: 'a', amount_micros: 5 },
        { user_id: 'b', amount_micros: 7 },
      ]);
    } finally {
      await pool.end();
    }
  });

  it("when statements run in it, then they run on generic plans that find rows by their keys, and the connection's next statements as before", async () => {
    database = await temporaryDatabase('postgres');
    // One connection, so the statement after the transaction runs where the setting was made.
    const pool = openPool(database.location.databaseUrl ?? '', () => {}, 1);
    const PLANNING = `SELECT current_setting('plan_cache_mode') AS mode, current_setting('enable_seqscan') AS scans`;
    try {
      const inside = await inBatchedTransaction(pool, async (transaction) => {
        const first = await transaction.query<{ mode: string; scans: string }>({ text: PLANNING });
        const last = await transaction.queryAndCommit<{ mode: string; scans: string }>({ text: PLANNING });
        return [first.rows[0], last.rows[0]];
      });
      const hot = { mode: 'force_generic_plan', scans: 'off' };
      expect(inside).toEqual([hot, hot]);
      expect((await pool.query(PLANNING)).rows).toEqual([{ mode: 'auto', scans: 'on' }]);
    } finally {
      await pool.end();
    }
  });

  it('when the first statement of a batch fails before it is prepared, then the next use of that statement prepares it again', async () => {
    database = await temporaryDatabase('postgres');
    // One connection: without the fix, pg counts the statement as prepared on it (BEGIN's ParseComplete came
    // first) and never sends its Parse again, so every later use fails with "does not exist".
    const pool = openPool(database.location.databaseUrl ?? '', () => {}, 1);
    const NAMED = { name: 'test_not_yet', text: 'SELECT count(*)::int AS n FROM not_yet', values: [] };
    try {
      await expect(
        inBatchedTransaction(pool, (transaction) => transaction.queryAndCommit(NAMED)),
      ).rejects.toThrow(/not_yet/);
      await pool.query('CREATE TABLE not_yet (id int)');
      const rows = await inBatchedTransaction(pool, async (transaction) => {
        return (await transaction.queryAndCommit<{ n: number }>(NAMED)).rows;
      });
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await pool.end();
    }
  });

  it('when the last statement fails, then COMMIT does not run, nothing is kept, and the connection serves the next transaction', async () => {
    database = await temporaryDatabase('postgres');
    // One connection, so the next transaction runs on the one the failure left behind.
    const pool = openPool(database.location.databaseUrl ?? '', () => {}, 1);
    try {
      await expect(
        inBatchedTransaction(pool, async (transaction) => {
          await transaction.query({ text: INSERT_BUDGET, values: ['g', 'a', 5] });
          await transaction.queryAndCommit({ text: INSERT_BUDGET, values: ['g', 'b', 'not a number'] });
        }),
      ).rejects.toThrow(/invalid input syntax/);
      expect(await amounts()).toEqual([]);
      await inBatchedTransaction(pool, async (transaction) => {
        await transaction.queryAndCommit({ text: INSERT_BUDGET, values: ['g', 'c', 9] });
      });
      expect(await amounts()).toEqual([{ user_id: 'c', amount_micros: 9 }]);
    } finally {
      await pool.end();
    }
  });

  it('when the work returns before a last statement, then what it wrote is committed; when it throws, rolled back', async () => {
    database = await temporaryDatabase('postgres');
    const pool = openPool(database.location.databaseUrl ?? '', () => {}, 1);
    try {
      await inBatchedTransaction(pool, (transaction) =>
        transaction.query({ text: INSERT_BUDGET, values: ['g', 'a', 5] }),
      );
      await expect(
        inBatchedTransaction(pool, async (transaction) => {
          await transaction.query({ text: INSERT_BUDGET, values: ['g', 'b', 6] });
          throw new Error('the decision failed');
        }),
      ).rejects.toThrow('the decision failed');
      expect(await amounts()).toEqual([{ user_id: 'a', amount_micros: 5 }]);
    } finally {
      await pool.end();
    }
  });
});
