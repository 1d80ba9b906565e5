import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Budget } from '../../src/core/budget.js';
import type { ReserveRequest } from '../../src/core/ledger.js';
import { buildPriceTable, DEFAULT_PRICES, type PriceTable } from '../../src/core/pricing.js';
import { type AppDatabase, closeDatabase, migrate, openDatabase } from '../../src/db/database.js';
import { Ledger, type LedgerOptions } from '../../src/db/ledger.js';

export const SMART_MODEL = 'claude-haiku-4-5';
export const FAST_MODEL = 'gpt-4o-mini';

export function defaultPrices(): PriceTable {
  const built = buildPriceTable(DEFAULT_PRICES);
  if (!built.ok) throw new Error(built.problems.join('; '));
  return built.table;
}

/** A fresh, migrated SQLite file in a temp directory; `cleanup` closes and deletes it. */
export function temporaryDatabase(): { db: AppDatabase; path: string; cleanup: () => void } {
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-test-'));
  const path = join(directory, 'tierbot.db');
  const db = openDatabase(path);
  migrate(db);
  return {
    db,
    path,
    cleanup: () => {
      closeDatabase(db);
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

export function createLedger(
  db: AppDatabase,
  options: Partial<LedgerOptions> & { defaultUserBudget?: Budget } = {},
): Ledger {
  return new Ledger(db, {
    prices: defaultPrices(),
    smartModel: SMART_MODEL,
    defaultUserBudget: { amountMicros: 1_000_000, period: 'month' },
    ...options,
  });
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
