import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadModelConfig } from '../../src/config.js';
import { periodWindow } from '../../src/core/budget.js';
import { MIGRATIONS_FOLDER } from '../../src/db/database.js';
import { createLogger } from '../../src/log.js';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { reportOf, runWorkersTogether } from '../support/workers.js';
import { type SplitOpenAI, startSplitOpenAI } from '../fakes/openai-router.js';
import { runTurns, type TurnsPlan, type TurnsReport } from './fixtures/turns.js';
import { loopbackEnvironment } from '../support/environment.js';
import { ACCEPT, REFINE } from '../support/verdicts.js';

/*
 * One user at the edge of their budget, asking many questions at once: in one process, and from four
 * processes sharing the database file. Whatever the interleaving, settled spend stays within the budget,
 * a turn that was turned away costs nothing, and nothing is left reserved.
 *
 * The providers bill close to the worst case each call reserved (a draft uses 90% of its output tokens),
 * so the budget is really reached; and they never bill more than it, as the promise assumes of them.
 */

const MAX_OUTPUT_TOKENS = 400;
const BILLED_OUTPUT_TOKENS = 360;
const OWNER = { userId: 'user-1', guildId: 'guild-1', channelId: 'channel-1' };
const WORKER_PATH = join(import.meta.dirname, 'fixtures/turn-worker.ts');

let openai: SplitOpenAI;
let anthropic: FakeAnthropic;
let directory: string;

beforeEach(async () => {
  [openai, anthropic] = await Promise.all([startSplitOpenAI(), startFakeAnthropic()]);
  directory = mkdtempSync(join(tmpdir(), 'tierbot-concurrency-'));
});

afterEach(async () => {
  await Promise.all([openai.close(), anthropic.close()]);
  rmSync(directory, { recursive: true, force: true });
});

/** Enough responses for `turns` turns, whatever order they come in; every third check asks for Haiku. */
function scriptProviders(turns: number): void {
  for (let index = 0; index < turns; index += 1) {
    openai.drafts.script({
      type: 'stream',
      chunks: ['A monad ', 'is a ', 'monoid in ', 'the category ', 'of endofunctors.'],
      chunkDelayMs: 3,
      usage: { promptTokens: 20, completionTokens: BILLED_OUTPUT_TOKENS },
    });
    openai.checks.script({
      type: 'completion',
      content: index % 3 === 2 ? REFINE : ACCEPT,
      usage: { promptTokens: 40, completionTokens: 30 },
    });
    anthropic.script({
      type: 'stream',
      text: 'A monad wraps values and sequences computations on them.',
      chunkDelayMs: 3,
      usage: { inputTokens: 200, outputTokens: BILLED_OUTPUT_TOKENS },
    });
  }
}

function environment(budgetMicros: number): Record<string, string> {
  return {
    ...loopbackEnvironment({ openai, anthropic, databasePath: join(directory, 'tierbot.db') }),
    DEFAULT_USER_BUDGET_USD: String(budgetMicros / 1_000_000),
    MAX_OUTPUT_TOKENS: String(MAX_OUTPUT_TOKENS),
  };
}

interface LedgerTotals {
  rows: number;
  spentMicros: number;
  /** What a draft reserved (its worst case): the same for every draft here. */
  draftReservationMicros: number;
  openReservations: number;
  /** Ledger rows of turns that were denied: each would be a charge for nothing. */
  rowsOfDeniedTurns: number;
  /** The user's and the server's running totals for the month, as the budget checks read them. */
  counters: { kind: string; spentMicros: number; reservedMicros: number }[];
}

function ledgerTotals(path: string, deniedTurnIds: readonly string[]): LedgerTotals {
  const sqlite = new Database(path, { readonly: true });
  try {
    const month = periodWindow('month', Date.now());
    const totals = sqlite
      .prepare(
        `SELECT COUNT(*) AS rows, COALESCE(SUM(cost_micros), 0) AS spentMicros,
                MIN(CASE WHEN purpose = 'draft' THEN reserved_micros END) AS draftReservationMicros
         FROM usage_ledger WHERE user_id = ? AND guild_id = ?`,
      )
      .get(OWNER.userId, OWNER.guildId) as Pick<
      LedgerTotals,
      'rows' | 'spentMicros' | 'draftReservationMicros'
    >;
    const rowsOf = sqlite.prepare('SELECT COUNT(*) FROM usage_ledger WHERE turn_id = ?').pluck();
    return {
      ...totals,
      openReservations: sqlite.prepare('SELECT COUNT(*) FROM reservations').pluck().get() as number,
      rowsOfDeniedTurns: deniedTurnIds.reduce((total, turnId) => total + (rowsOf.get(turnId) as number), 0),
      counters: sqlite
        .prepare(
          `SELECT kind, month_spent_micros AS spentMicros, month_reserved_micros AS reservedMicros
           FROM spend_counters WHERE guild_key = ? AND month_start = ? ORDER BY kind`,
        )
        .all(OWNER.guildId, month.startMs) as LedgerTotals['counters'],
    };
  } finally {
    sqlite.close();
  }
}

/** What every run must show: within the budget, nothing charged for a denial, nothing left reserved. */
function expectWithinBudget(totals: LedgerTotals, reports: TurnsReport[], budgetMicros: number): void {
  const sum = (field: 'answered' | 'denied' | 'keptDraft' | 'chargedMicros') =>
    reports.reduce((total, report) => total + report[field], 0);
  expect(reports.flatMap((report) => report.errors)).toEqual([]);
  expect(totals.spentMicros).toBeLessThanOrEqual(budgetMicros);
  expect(totals.openReservations).toBe(0);
  expect(totals.rowsOfDeniedTurns).toBe(0);
  // The turns were told what the ledger holds: nothing lost, nothing charged twice.
  expect(totals.spentMicros).toBe(sum('chargedMicros'));
  expect(totals.counters).toEqual([
    { kind: 'server', spentMicros: totals.spentMicros, reservedMicros: 0 },
    { kind: 'user', spentMicros: totals.spentMicros, reservedMicros: 0 },
  ]);
  // The edge was really reached: some turns were answered, some turned away, and refinements that the
  // check asked for were refused for want of budget.
  expect(sum('answered')).toBeGreaterThan(0);
  expect(sum('denied')).toBeGreaterThan(0);
  expect(sum('keptDraft')).toBeGreaterThan(0);
}

describe('Concurrency', () => {
  it('when 50 turns from one user at the edge of their budget run at once, then settled spend never exceeds the budget', async () => {
    const turns = 50;
    const budgetMicros = 4_000;
    scriptProviders(turns);
    const errors: string[] = [];
    // Nothing may go wrong quietly: a settle that could not be written is logged as an error.
    const log = createLogger(
      'error',
      new Writable({
        write(chunk, _encoding, done) {
          errors.push(String(chunk));
          done();
        },
      }),
    );
    const app = createApp(loadModelConfig(environment(budgetMicros)), log);
    let report: TurnsReport;
    try {
      report = await runTurns(app.engine, { name: 'one', count: turns, concurrency: turns, owner: OWNER });
    } finally {
      app.close();
    }

    const totals = ledgerTotals(environment(budgetMicros).DATABASE_PATH!, report.deniedTurnIds);
    expectWithinBudget(totals, [report], budgetMicros);
    // The budget held only some of the 50 drafts' worst cases, so most turns were turned away at once.
    expect(report.answered + report.denied).toBe(turns);
    expect(turns * totals.draftReservationMicros).toBeGreaterThan(budgetMicros);
    expect(errors).toEqual([]);
  });

  it('when 4 bot processes share one database file and one user at the edge of one budget, then migrations apply once, none hits SQLITE_BUSY, and settled spend never exceeds the budget', async () => {
    const workers = 4;
    const turnsPerWorker = 20;
    const budgetMicros = 6_000;
    scriptProviders(workers * turnsPerWorker);
    const plans: TurnsPlan[] = Array.from({ length: workers }, (_, index) => ({
      name: `worker-${index + 1}`,
      count: turnsPerWorker,
      concurrency: 3,
      owner: OWNER,
    }));

    const outcomes = await runWorkersTogether(
      plans.map((plan) => ({
        name: plan.name,
        entryPoint: WORKER_PATH,
        argument: plan,
        cwd: directory,
        env: environment(budgetMicros),
      })),
    );

    for (const outcome of outcomes) {
      expect(outcome.stderr).not.toContain('SQLITE_BUSY');
      expect(outcome.exitCode, outcome.stderr).toBe(0);
    }
    const reports = outcomes.map((outcome) => reportOf<TurnsReport>(outcome));
    const path = environment(budgetMicros).DATABASE_PATH!;
    const migrations = readdirSync(MIGRATIONS_FOLDER).filter((file) => file.endsWith('.sql')).length;
    const sqlite = new Database(path, { readonly: true });
    try {
      expect(sqlite.prepare('SELECT COUNT(*) FROM __drizzle_migrations').pluck().get()).toBe(migrations);
    } finally {
      sqlite.close();
    }
    // Every process migrated or found the work done; between them, each migration ran once.
    const applied = outcomes.flatMap((outcome) =>
      outcome.stderr
        .split('\n')
        .filter((line) => line.includes('"database migrated"'))
        .map((line) => (JSON.parse(line) as { applied: number }).applied),
    );
    expect(applied).toEqual([migrations]);
    const totals = ledgerTotals(
      path,
      reports.flatMap((report) => report.deniedTurnIds),
    );
    expectWithinBudget(totals, reports, budgetMicros);
    for (const report of reports) expect(report.answered + report.denied).toBe(turnsPerWorker);
  });
});
