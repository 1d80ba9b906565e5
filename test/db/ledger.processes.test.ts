import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BUDGET_PERIODS, periodWindow } from '../../src/core/budget.js';
import type { AppDatabase } from '../../src/db/database.js';
import { createLedger, FAST_MODEL, temporaryDatabase } from '../support/ledger.js';
import { reportOf, runWorkersTogether } from '../support/workers.js';
import type { HammerConfiguration, HammerReport } from './fixtures/hammer-worker.js';

const WORKER_PATH = fileURLToPath(new URL('./fixtures/hammer-worker.ts', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const WORKER_COUNT = 4;
const ITERATIONS_PER_WORKER = 150;
const USER_ID = 'user-1';
const GUILD_ID = 'guild-1';
/** Each call reserves 2,000 input and 500 output tokens of GPT-4o Mini: a 600 micro worst case. */
const INPUT_TOKENS = 2_000;
const OUTPUT_TOKENS = 500;
/**
 * The budget holds 30 worst cases; calls cost about half their worst case on average, so some tens of
 * the 600 attempts are granted and the rest meet the edge.
 */
const BUDGET_IN_WORST_CASES = 30;
/** A fixed clock shared by every worker, so a round never straddles two windows. */
const NOW_MS = Date.UTC(2025, 5, 18, 12);

function bookedTotals(db: AppDatabase) {
  const sqlite = db.$client;
  const ledger = sqlite
    .prepare<[string, string], { rows: number; spent: number }>(
      `SELECT COUNT(*) AS rows, COALESCE(SUM(cost_micros), 0) AS spent FROM usage_ledger
       WHERE guild_id = ? AND user_id = ?`,
    )
    .get(GUILD_ID, USER_ID);
  const openReservations = sqlite
    .prepare<[], { open: number }>('SELECT COUNT(*) AS open FROM reservations')
    .get();
  const counters = sqlite
    .prepare<[], Record<string, string | number>>(
      `SELECT * FROM spend_counters WHERE guild_key = '${GUILD_ID}' ORDER BY kind, user_key`,
    )
    .all();
  return {
    ledgerRows: ledger?.rows ?? 0,
    spentMicros: ledger?.spent ?? 0,
    openReservations: openReservations?.open ?? 0,
    counters,
  };
}

describe('Ledger shared by several processes', () => {
  it.each(BUDGET_PERIODS)(
    'when four processes hammer one user at the edge of a %s budget on one file, then none hits SQLITE_BUSY, spend stays within the budget and the counters agree with the ledger',
    async (period) => {
      const { db, path, cleanup } = temporaryDatabase();
      try {
        const worstCaseMicros = createLedger(db).worstCaseMicros(FAST_MODEL, INPUT_TOKENS, OUTPUT_TOKENS);
        const budget = { amountMicros: BUDGET_IN_WORST_CASES * worstCaseMicros, period };
        const configurations: HammerConfiguration[] = Array.from({ length: WORKER_COUNT }, (_, index) => ({
          databasePath: path,
          workerName: `${period}-worker-${index + 1}`,
          iterations: ITERATIONS_PER_WORKER,
          seed: BUDGET_PERIODS.indexOf(period) * WORKER_COUNT + index + 1,
          userId: USER_ID,
          guildId: GUILD_ID,
          budget,
          nowMs: NOW_MS,
          inputTokens: INPUT_TOKENS,
          outputTokens: OUTPUT_TOKENS,
        }));

        const outcomes = await runWorkersTogether(
          configurations.map((configuration) => ({
            name: configuration.workerName,
            entryPoint: WORKER_PATH,
            argument: configuration,
            cwd: PROJECT_ROOT,
          })),
        );

        for (const outcome of outcomes) {
          expect(outcome.stderr).not.toContain('SQLITE_BUSY');
          expect(outcome.exitCode, outcome.stderr).toBe(0);
        }
        const reports = outcomes.map((outcome) => reportOf<HammerReport>(outcome));
        const sum = (field: 'grants' | 'denials' | 'errors' | 'chargedMicros') =>
          reports.reduce((total, report) => total + report[field], 0);
        expect(sum('errors')).toBe(0);
        expect(sum('grants') + sum('denials')).toBe(WORKER_COUNT * ITERATIONS_PER_WORKER);
        // The edge was really reached: some calls got through and some were turned away.
        expect(sum('grants')).toBeGreaterThan(0);
        expect(sum('denials')).toBeGreaterThan(0);

        const totals = bookedTotals(db);
        expect(totals.spentMicros).toBeLessThanOrEqual(budget.amountMicros);
        expect(totals.openReservations).toBe(0);
        // Every grant was closed exactly once, for what its worker was told it cost.
        expect(totals.ledgerRows).toBe(sum('grants'));
        expect(totals.spentMicros).toBe(sum('chargedMicros'));
        // The running totals of the user and of the server hold the round's day, week and month, each
        // with everything the ledger charged and nothing still held.
        const expectedWindows = Object.fromEntries(
          BUDGET_PERIODS.flatMap((counterPeriod) => [
            [`${counterPeriod}_start`, periodWindow(counterPeriod, NOW_MS).startMs],
            [`${counterPeriod}_spent_micros`, totals.spentMicros],
            [`${counterPeriod}_reserved_micros`, 0],
          ]),
        );
        expect(totals.counters).toEqual([
          { kind: 'server', guild_key: GUILD_ID, user_key: '', ...expectedWindows },
          { kind: 'user', guild_key: GUILD_ID, user_key: USER_ID, ...expectedWindows },
        ]);
      } finally {
        cleanup();
      }
    },
  );
});
