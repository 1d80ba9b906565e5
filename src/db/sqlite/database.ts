import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { type BetterSQLite3Database, drizzle } from 'drizzle-orm/better-sqlite3';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import * as schema from './schema.js';

export type AppDatabase = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

/** How long a writer waits for another process's write transaction before SQLite reports SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 15_000;

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../../migrations/sqlite', import.meta.url));

/** The bookkeeping table drizzle-kit and drizzle's own migrator use, kept as they create it. */
const MIGRATIONS_TABLE = '__drizzle_migrations';

/**
 * Opens (creating its directory if needed) the SQLite file shared by every process of the bot.
 * WAL lets readers run beside the one writer; synchronous=NORMAL is durable against a crashed or killed
 * process (a committed transaction is in the WAL) and only a power loss can lose the last commits.
 */
export function openDatabase(path: string): AppDatabase {
  if (path !== ':memory:' && !path.startsWith('file:')) {
    mkdirSync(dirname(path), { recursive: true });
  }
  const sqlite = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  whenNotBusy(() => sqlite.pragma('journal_mode = WAL'));
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  return drizzle(sqlite, { schema });
}

/**
 * Runs a statement SQLite may refuse with SQLITE_BUSY without waiting on the busy timeout: switching to
 * WAL takes an exclusive lock, and while another process opening the same file holds its WAL index lock
 * (several bot processes starting together), SQLite reports busy at once instead of calling its busy
 * handler. Tried again every 20 ms, for as long as any other write would wait.
 */
function whenNotBusy<Result>(statement: () => Result): Result {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return statement();
    } catch (error) {
      const isBusy = error instanceof Database.SqliteError && error.code === 'SQLITE_BUSY';
      if (!isBusy || Date.now() >= deadline) throw error;
      // Start-up code, synchronous like the rest of better-sqlite3: a blocking pause is the honest wait.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/**
 * Applies the SQL migrations that drizzle-kit generated into `migrations/`, once, even when several
 * processes start together on one file. drizzle's own `migrate()` reads which migrations ran before it
 * opens its transaction, so two processes starting at once can both apply the same one; here the check
 * and the changes share one BEGIN IMMEDIATE transaction, so the second process waits and then finds
 * nothing to do. The bookkeeping table is drizzle's, so drizzle-kit sees the same history.
 */
export function migrate(db: AppDatabase, migrationsFolder = MIGRATIONS_FOLDER): { applied: number } {
  const migrations = readMigrationFiles({ migrationsFolder });
  const sqlite = db.$client;
  const apply = sqlite.transaction(() => {
    sqlite.exec(
      `CREATE TABLE IF NOT EXISTS "${MIGRATIONS_TABLE}" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`,
    );
    const last = sqlite
      .prepare(`SELECT created_at FROM "${MIGRATIONS_TABLE}" ORDER BY created_at DESC LIMIT 1`)
      .get() as { created_at: number } | undefined;
    const record = sqlite.prepare(`INSERT INTO "${MIGRATIONS_TABLE}" (hash, created_at) VALUES (?, ?)`);
    let applied = 0;
    for (const migration of migrations) {
      if (last && Number(last.created_at) >= migration.folderMillis) continue;
      for (const statement of migration.sql) {
        if (statement.trim() !== '') sqlite.exec(statement);
      }
      record.run(migration.hash, migration.folderMillis);
      applied += 1;
    }
    return applied;
  });
  return { applied: apply.immediate() };
}

/** One better-sqlite3 transaction wrapper per database (building one per call costs more than the work). */
const transactions = new WeakMap<AppDatabase, { immediate: (work: () => unknown) => unknown }>();

/**
 * Runs `work` in one BEGIN IMMEDIATE transaction: the write lock is taken first, so what the work reads
 * cannot change under it in any process sharing the file.
 */
export function immediate<T>(db: AppDatabase, work: () => T): T {
  let transaction = transactions.get(db);
  if (!transaction) {
    const wrapper = db.$client.transaction((run: () => unknown) => run());
    transaction = { immediate: (run) => wrapper.immediate(run) };
    transactions.set(db, transaction);
  }
  return transaction.immediate(work) as T;
}

export function closeDatabase(db: AppDatabase): void {
  if (db.$client.open) db.$client.close();
}
