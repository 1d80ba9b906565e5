import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadModelConfig } from '../../src/config.js';
import { periodWindow } from '../../src/core/budget.js';
import { POSTGRES_MIGRATIONS_FOLDER } from '../../src/db/postgres/database.js';
import { MIGRATIONS_FOLDER } from '../../src/db/sqlite/database.js';
import { createLogger } from '../../src/log.js';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { reportOf, runWorkersTogether, type WorkerOutcome } from '../support/workers.js';
import { type SplitOpenAI, startSplitOpenAI } from '../fakes/openai-router.js';
import { runTurns, type TurnsPlan, type TurnsReport } from './fixtures/turns.js';
import { type Backend, BACKENDS, type TemporaryDatabase, temporaryDatabase } from '../support/databases.js';
import { loopbackEnvironment } from '../support/environment.js';
import { ACCEPT, REFINE } from '../support/verdicts.js';

/*
 * One user at the edge of their budget, asking many questions at once: in one process, and from four
 * processes sharing the database, on each backend. Whatever the interleaving, settled spend stays within
 * the budget, a turn that was turned away costs nothing, and nothing is left reserved. The four processes
 * start together on a database nobody has opened yet (a new SQLite file, an empty PostgreSQL database),
 * so they race to migrate it too.
 *
 * The providers bill close to the worst case each call reserved (a draft uses 90% of its output tokens),
 * so the budget is really reached; and they never bill more than it, as the promise assumes of them.
 */

const MAX_OUTPUT_TOKENS = 400;
const BILLED_OUTPUT_TOKENS = 360;
const OWNER = { userId: 'user-1', guildId: 'guild-1', channelId: 'channel-1' };
const WORKER_PATH = join(import.meta.dirname, 'fixtures/turn-worker.ts');
/** Each dialect's migrations, and the table that records which ran. */
const MIGRATIONS: Record<Backend, { folder: string; table: string }> = {
  sqlite: { folder: MIGRATIONS_FOLDER, table: '__drizzle_migrations' },
  postgres: { folder: POSTGRES_MIGRATIONS_FOLDER, table: 'drizzle.__drizzle_migrations' },
};
/** pino's level of error lines: nothing may go wrong quietly (a settle that could not be written). */
const ERROR_LEVEL = 50;

let openai: SplitOpenAI;
let anthropic: FakeAnthropic;
let directory: string;
let database: TemporaryDatabase | undefined;

beforeEach(async () => {
  [openai, anthropic] = await Promise.all([startSplitOpenAI(), startFakeAnthropic()]);
  directory = mkdtempSync(join(tmpdir(), 'tierbot-concurrency-'));
});

afterEach(async () => {
  await Promise.all([openai.close(), anthropic.close()]);
  await database?.cleanup();
  database = undefined;
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

function environment(budgetMicros: number, on: TemporaryDatabase): Record<string, string> {
  return {
    ...loopbackEnvironment({ openai, anthropic, database: on }),
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
  /** Denied turns with ledger rows: each would be a charge for nothing. */
  rowsOfDeniedTurns: number;
  /** The user's and the server's running totals for the month, as the budget checks read them. */
  counters: { kind: string; spentMicros: number; reservedMicros: number }[];
}

async function ledgerTotals(on: TemporaryDatabase, deniedTurnIds: readonly string[]): Promise<LedgerTotals> {
  const month = periodWindow('month', Date.now());
  const [totals] = await on.query<Pick<LedgerTotals, 'rows' | 'spentMicros' | 'draftReservationMicros'>>(
    `SELECT COUNT(*) AS rows, COALESCE(SUM(cost_micros), 0) AS "spentMicros",
            MIN(CASE WHEN purpose = 'draft' THEN reserved_micros END) AS "draftReservationMicros"
     FROM usage_ledger WHERE user_id = $1 AND guild_id = $2`,
    [OWNER.userId, OWNER.guildId],
  );
  const charged = new Set(
    (await on.query<{ turn_id: string }>('SELECT DISTINCT turn_id FROM usage_ledger')).map(
      (row) => row.turn_id,
    ),
  );
  if (!totals) throw new Error('no ledger totals');
  return {
    ...totals,
    openReservations: await on.value('SELECT COUNT(*) FROM reservations'),
    rowsOfDeniedTurns: deniedTurnIds.filter((turnId) => charged.has(turnId)).length,
    counters: await on.query<LedgerTotals['counters'][number]>(
      `SELECT kind, month_spent_micros AS "spentMicros", month_reserved_micros AS "reservedMicros"
       FROM spend_counters WHERE guild_key = $1 AND month_start = $2 ORDER BY kind`,
      [OWNER.guildId, month.startMs],
    ),
  };
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

/** The JSON log lines a worker wrote to stderr at error level or above. */
function errorLines(outcome: WorkerOutcome): string[] {
  return outcome.stderr.split('\n').filter((line) => {
    try {
      return (JSON.parse(line) as { level?: number }).level! >= ERROR_LEVEL;
    } catch {
      return false;
    }
  });
}

describe.each(BACKENDS)('Concurrency, on %s', (backend) => {
  it('when 50 turns from one user at the edge of their budget run at once, then settled spend never exceeds the budget', async () => {
    const turns = 50;
    const budgetMicros = 4_000;
    database = await temporaryDatabase(backend);
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
    const app = await createApp(loadModelConfig(environment(budgetMicros, database)), log);
    let report: TurnsReport;
    try {
      report = await runTurns(app.engine, { name: 'one', count: turns, concurrency: turns, owner: OWNER });
    } finally {
      await app.close();
    }

    const totals = await ledgerTotals(database, report.deniedTurnIds);
    expectWithinBudget(totals, [report], budgetMicros);
    // The budget held only some of the 50 drafts' worst cases, so most turns were turned away at once.
    expect(report.answered + report.denied).toBe(turns);
    expect(turns * totals.draftReservationMicros).toBeGreaterThan(budgetMicros);
    expect(errors).toEqual([]);
  });

  it(`when 4 bot processes start together on a new database and ask for one user at the edge of one budget, then migrations apply once, ${backend === 'sqlite' ? 'none hits SQLITE_BUSY, ' : ''}and settled spend never exceeds the budget`, async () => {
    const workers = 4;
    const turnsPerWorker = 20;
    const budgetMicros = 6_000;
    database = await temporaryDatabase(backend, { empty: true });
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
        env: environment(budgetMicros, database!),
      })),
    );

    for (const outcome of outcomes) {
      expect(outcome.stderr).not.toContain('SQLITE_BUSY');
      expect(errorLines(outcome)).toEqual([]);
      expect(outcome.exitCode, outcome.stderr).toBe(0);
    }
    const reports = outcomes.map((outcome) => reportOf<TurnsReport>(outcome));
    const { folder, table } = MIGRATIONS[backend];
    const migrations = readdirSync(folder).filter((file) => file.endsWith('.sql')).length;
    expect(await database.value(`SELECT COUNT(*) FROM ${table}`)).toBe(migrations);
    // Every process migrated or found the work done; between them, each migration ran once.
    const applied = outcomes.flatMap((outcome) =>
      outcome.stderr
        .split('\n')
        .filter((line) => line.includes('"database migrated"'))
        .map((line) => (JSON.parse(line) as { applied: number }).applied),
    );
    expect(applied).toEqual([migrations]);
    const totals = await ledgerTotals(
      database,
      reports.flatMap((report) => report.deniedTurnIds),
    );
    expectWithinBudget(totals, reports, budgetMicros);
    for (const report of reports) expect(report.answered + report.denied).toBe(turnsPerWorker);
  });
});
