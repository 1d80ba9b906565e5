import pg from 'pg';
import type { DialectStores, ReadOnlyStores } from '../store.js';
import { PostgresClaimStore } from './claims.js';
import { acknowledgeErrorsWhileCheckedOut, migrate, openDatabase, openPool, PG_TYPES } from './database.js';
import { PostgresInstanceStore } from './instances.js';
import { PostgresLedgerStore } from './ledger-store.js';
import { PostgresSettingsRecords } from './settings.js';
import { PostgresTurnStore } from './turns.js';
import { PostgresUsageStore } from './usage.js';

/**
 * Connects to PostgreSQL, applies the migrations not applied yet (once, however many hosts start
 * together) and builds its stores.
 */
export async function openPostgres(
  url: string,
  onError: (error: Error) => void = () => {},
): Promise<{ stores: DialectStores; applied: number }> {
  const pool = openPool(url, onError);
  try {
    const { applied } = await migrate(pool);
    const db = openDatabase(pool);
    const settings = new PostgresSettingsRecords(db, url, onError);
    const stores: DialectStores = {
      dialect: 'postgres',
      ledger: new PostgresLedgerStore(db, pool),
      instances: new PostgresInstanceStore(db),
      turns: new PostgresTurnStore(db),
      settings,
      claims: new PostgresClaimStore(db),
      usage: new PostgresUsageStore(pool),
      ping: async () => {
        await pool.query('SELECT 1');
      },
      close: async () => {
        await settings.close();
        await pool.end();
      },
    };
    return { stores, applied };
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }
}

/**
 * Connects read-only, for `npm run report`: nothing is migrated, and every transaction of its connections
 * is read-only (the server refuses any write).
 */
export function openPostgresReadOnly(url: string): ReadOnlyStores {
  const pool = new pg.Pool({
    connectionString: url,
    max: 2,
    types: PG_TYPES,
    options: '-c default_transaction_read_only=on',
    application_name: 'tierbot-report',
  });
  // An idle connection the server drops ends nothing here: the next query reconnects or fails, and says so.
  pool.on('error', () => {});
  acknowledgeErrorsWhileCheckedOut(pool);
  return {
    dialect: 'postgres',
    ledger: new PostgresLedgerStore(openDatabase(pool), pool),
    usage: new PostgresUsageStore(pool),
    close: () => pool.end(),
  };
}
