import { Writable } from 'node:stream';
import type { ReserveRequest } from '../../src/core/ledger.js';
import { buildPriceTable, DEFAULT_PRICES, type PriceTable } from '../../src/core/pricing.js';
import { type AppStorage, openStorage, type StorageOptions } from '../../src/db/storage.js';
import { createLogger } from '../../src/log.js';
import { type Backend, type TemporaryDatabase, temporaryDatabase } from './databases.js';

export const SMART_MODEL = 'claude-haiku-4-5';
export const FAST_MODEL = 'gpt-4o-mini';

export function defaultPrices(): PriceTable {
  const built = buildPriceTable(DEFAULT_PRICES);
  if (!built.ok) throw new Error(built.problems.join('; '));
  return built.table;
}

export interface StorageHarness {
  storage: AppStorage;
  database: TemporaryDatabase;
  /** What storage logged, parsed. */
  logs: Record<string, unknown>[];
  /** Closes storage (writing what waits) and removes the database. */
  cleanup(): Promise<void>;
}

/**
 * Storage as the bot opens it (migrated, its instance under a lease, left-behind reservations swept) on a
 * fresh database of one backend, with a $1.00 monthly user budget unless told otherwise.
 */
export async function temporaryStorage(
  backend: Backend = 'sqlite',
  options: Partial<Omit<StorageOptions, 'log' | 'databaseUrl' | 'databasePath'>> = {},
  database?: TemporaryDatabase,
): Promise<StorageHarness> {
  const target = database ?? (await temporaryDatabase(backend));
  const logs: Record<string, unknown>[] = [];
  const log = createLogger(
    'info',
    new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n')) if (line !== '') logs.push(JSON.parse(line));
        done();
      },
    }),
  );
  const storage = await openStorage({
    ...target.location,
    prices: defaultPrices(),
    smartModel: SMART_MODEL,
    defaultUserBudget: { amountMicros: 1_000_000, period: 'month' },
    log,
    ...options,
  });
  return {
    storage,
    database: target,
    logs,
    async cleanup() {
      await storage.close();
      if (!database) await target.cleanup();
    },
  };
}

let requestCounter = 0;

/** A reservation request with sensible defaults: a fast-model draft by `user-1` in `guild-1`. */
export function callRequest(overrides: Partial<ReserveRequest> = {}): ReserveRequest {
  requestCounter += 1;
  return {
    requestId: `request-${requestCounter}`,
    turnId: `turn-${requestCounter}`,
    userId: 'user-1',
    guildId: 'guild-1',
    channelId: 'channel-1',
    provider: 'openai',
    model: FAST_MODEL,
    purpose: 'draft',
    amountMicros: 1_000,
    ...overrides,
  };
}
