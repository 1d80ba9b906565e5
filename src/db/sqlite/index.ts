import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import type { DialectStores, ReadOnlyStores } from '../store.js';
import { SqliteClaimStore } from './claims.js';
import { type AppDatabase, closeDatabase, migrate, openDatabase } from './database.js';
import * as schema from './schema.js';
import { SqliteInstanceStore } from './instances.js';
import { SqliteLedgerStore } from './ledger-store.js';
import { SqliteSettingsRecords } from './settings.js';
import { SqliteTurnStore } from './turns.js';
import { SqliteUsageStore } from './usage.js';

/**
 * Opens the SQLite file (creating it and its directory if missing), applies the migrations not applied
 * yet (once, however many processes start together) and builds its stores.
 */
export async function openSqlite(path: string): Promise<{ stores: DialectStores; applied: number }> {
  const db = openDatabase(path);
  try {
    const { applied } = migrate(db);
    const stores: DialectStores = {
      dialect: 'sqlite',
      ledger: new SqliteLedgerStore(db),
      instances: new SqliteInstanceStore(db),
      turns: new SqliteTurnStore(db),
      settings: new SqliteSettingsRecords(db),
      claims: new SqliteClaimStore(db),
      usage: new SqliteUsageStore(db),
      ping: async () => {
        db.$client.prepare('SELECT 1').get();
      },
      close: async () => closeDatabase(db),
    };
    return { stores, applied };
  } catch (error) {
    closeDatabase(db);
    throw error;
  }
}

/**
 * Opens an existing SQLite file read-only, for `npm run report`: nothing is migrated or written (SQLite
 * itself refuses any write), and WAL lets it read while the bot writes.
 */
export function openSqliteReadOnly(path: string): ReadOnlyStores {
  const db = drizzle(new Database(path, { readonly: true, fileMustExist: true }), { schema }) as AppDatabase;
  return {
    dialect: 'sqlite',
    ledger: new SqliteLedgerStore(db),
    usage: new SqliteUsageStore(db),
    close: async () => closeDatabase(db),
  };
}
