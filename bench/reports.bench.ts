import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type pg from 'pg';
import { BUDGET_PERIODS, DAY_MS, periodWindow } from '../src/core/budget.js';
import { botView, serverView, usageWindow } from '../src/core/reports.js';
import { migrate as migratePostgres, openPool } from '../src/db/postgres/database.js';
import { closeDatabase, migrate as migrateSqlite, openDatabase } from '../src/db/sqlite/database.js';
import { type AppStorage, openStorage } from '../src/db/storage.js';
import { renderSpendChart } from '../src/discord/usage-chart.js';
import { hoursOf, serverSumsQueries } from '../src/db/usage-by-hour.js';
import { createLogger } from '../src/log.js';
import { collectCsv } from '../src/usage-csv.js';
import { startEmbeddedPostgres, withDatabase } from '../test/setup/postgres.js';
import { defaultPrices } from '../test/support/ledger.js';
import {
  type Benchmark,
  elapsedNs,
  type Figure,
  item,
  NS_PER_MS,
  nowNs,
  percentile,
  progress,
  seededRandom,
} from './support.js';

/*
 * The /usage reports on both databases, each seeded with a quarter of history (a million ledger rows from
 * 2,000 members in 20 servers, and their turns), viewed at the end of its last full month: /usage server
 * for the busiest server (the figures, then with the chart), /usage bot, and /usage export of another
 * server's month of 100,000 calls.
 */

const LEDGER_ROWS = 1_000_000;
const USER_COUNT = 2_000;
const GUILD_COUNT = 20;
const HISTORY_DAYS = 90;
/** Activity falls off as 1 / rank^0.6; servers' sizes as 1 / rank (the largest has about a quarter). */
const USER_ACTIVITY_EXPONENT = 0.6;
const DIRECT_MESSAGE_TURN_SHARE = 0.05;
const REFINE_TURN_SHARE = 0.25;
const EXPORT_ROWS = 100_000;
const EXPORT_MEMBERS = 50;
const SEED = 20_261_206;
const ESCALATION_SOURCES = ['router', 'rule', 'check', 'signal', 'user', 'pdf', 'fallback'];
const FAST_MODEL = 'gpt-4o-mini';
const SMART_MODEL = 'claude-haiku-4-5';
const BENCH_DATABASE = 'tierbot_reports_bench';
const SEEDING_CACHE_KIB = 512 * 1024;
const POSTGRES_SEED_BATCH_ROWS = 10_000;

const WARM_UP = 3;
const REPEATS = 20;
const EXPORT_REPEATS = 3;
const HEAP_SAMPLE_MS = 2;

const SERVER_FIGURES_TARGET_MS = 20;
const SERVER_WITH_CHART_TARGET_MS = 150;
const EXPORT_TARGET_MS = 2_000;
const EXPORT_HEAP_TARGET_MB = 50;
const BYTES_PER_MB = 2 ** 20;

type Dialect = 'sqlite' | 'postgres';
const LABEL: Record<Dialect, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

export const reportsBenchmark: Benchmark = {
  name: 'reports',
  async run(): Promise<Figure[]> {
    const nowMs = viewMoment();
    return [...(await benchSqlite(nowMs)), ...(await benchPostgres(nowMs))];
  },
};

/** A moment near the end of the last full month: the views see a whole month of history. */
function viewMoment(): number {
  return periodWindow('month', Date.now()).startMs - 3_600_000;
}

/** What the seeded history holds beside its rows: the servers, and the running totals it makes. */
interface Seeded {
  guildIds: string[];
  exportGuildId: string;
  /** spend_counters rows (COUNTER_COLUMNS), for the windows current at the view's moment. */
  counters: unknown[][];
}

const LEDGER_COLUMNS = `request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose, outcome,
  input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros, smart_cost_micros,
  reserved_micros, charged_at, created_at`;
const TURN_COLUMNS = `turn_id, user_id, guild_id, channel_id, status, models, final_model, escalation_source, tokens,
  cost_micros, smart_only_cost_micros, question, answer, created_at`;
const COUNTER_COLUMNS = `kind, guild_key, user_key, ${BUDGET_PERIODS.map(
  (period) => `${period}_start, ${period}_spent_micros, ${period}_reserved_micros`,
).join(', ')}`;

type SeededRow = { table: 'usage_ledger' | 'turns'; row: unknown[] };

/**
 * The history, row by row (the same rows every time: a seeded generator), in time order as the bot
 * appends them: the quarter across 20 servers and DMs, then the export server's month. `seeded` is filled
 * in as it goes; its running totals once it is done.
 */
function* seededHistory(nowMs: number, seeded: Seeded): Generator<SeededRow> {
  const random = seededRandom(SEED);
  const snowflake = () => String(1_000_000_000_000_000_000n + BigInt(Math.floor(random() * 1e15)));
  seeded.guildIds = Array.from({ length: GUILD_COUNT }, snowflake);
  seeded.exportGuildId = snowflake();
  const pickGuild = weighted(
    Array.from({ length: GUILD_COUNT }, (_, rank) => 1 / (rank + 1)),
    random,
  );
  const users = Array.from({ length: USER_COUNT }, () => ({ userId: snowflake(), guild: pickGuild() }));
  const pickUser = weighted(
    Array.from({ length: USER_COUNT }, (_, rank) => 1 / (rank + 1) ** USER_ACTIVITY_EXPONENT),
    random,
  );
  const windows = BUDGET_PERIODS.map((period) => periodWindow(period, nowMs));
  const totals = new Map<string, unknown[]>();
  const charge = (kind: 'user' | 'server', guildKey: string, userKey: string, at: number, cost: number) => {
    const key = `${kind}/${guildKey}/${userKey}`;
    let counter = totals.get(key);
    if (!counter) {
      counter = [kind, guildKey, userKey, ...windows.flatMap((window) => [window.startMs, 0, 0])];
      totals.set(key, counter);
    }
    windows.forEach((window, index) => {
      if (at >= window.startMs && at < window.endMs) (counter[4 + index * 3] as number) += cost;
    });
  };
  let rows = 0;
  function* turn(
    userId: string,
    guildId: string | null,
    startedAt: number,
    turnId: string,
  ): Generator<SeededRow> {
    const isRefined = random() < REFINE_TURN_SHARE;
    const calls = isRefined
      ? [
          ['draft', FAST_MODEL],
          ['check', FAST_MODEL],
          ['refine', SMART_MODEL],
        ]
      : [
          ['draft', FAST_MODEL],
          ['check', FAST_MODEL],
        ];
    let turnCost = 0;
    let smartOnly = 0;
    for (const [index, [purpose, model]] of calls.entries()) {
      const input = 250 + Math.round(6_000 * random() ** 3);
      const output = 20 + Math.round(700 * random() ** 2);
      // Micro-dollars at the list prices: $0.15 and $0.60 per million tokens on Mini, $1 and $5 on Haiku.
      const smartCost = input + output * 5;
      const cost = model === FAST_MODEL ? Math.ceil(input * 0.15 + output * 0.6) : smartCost;
      const at = startedAt + index * 2_000;
      turnCost += cost;
      smartOnly += smartCost;
      rows += 1;
      yield {
        table: 'usage_ledger',
        row: [
          `request-${rows}`,
          turnId,
          userId,
          guildId,
          'channel',
          model === FAST_MODEL ? 'openai' : 'anthropic',
          model,
          purpose,
          'settled',
          input,
          0,
          0,
          output,
          cost,
          smartCost,
          cost * 2,
          at,
          at + 1_500,
        ],
      };
      charge('user', guildId ?? '', userId, at, cost);
      if (guildId !== null) charge('server', guildId, '', at, cost);
    }
    const source = isRefined
      ? item(ESCALATION_SOURCES, Math.floor(random() * ESCALATION_SOURCES.length))
      : null;
    yield {
      table: 'turns',
      row: [
        turnId,
        userId,
        guildId,
        'channel',
        'answered',
        calls.map((call) => call[1]).join(','),
        calls.at(-1)?.[1],
        source,
        100,
        turnCost,
        smartOnly,
        'question',
        'answer',
        startedAt,
      ],
    };
  }

  const historyStart = nowMs - HISTORY_DAYS * DAY_MS;
  for (let index = 0; rows < LEDGER_ROWS; index++) {
    const user = item(users, pickUser());
    const guildId = random() < DIRECT_MESSAGE_TURN_SHARE ? null : item(seeded.guildIds, user.guild);
    const startedAt = historyStart + Math.floor((rows / LEDGER_ROWS) * HISTORY_DAYS * DAY_MS);
    yield* turn(user.userId, guildId, startedAt, `turn-${index}`);
  }
  // The export's server: a month of 100,000 calls (give or take the last turn's) by 50 members.
  const month = periodWindow('month', nowMs);
  const exporters = Array.from({ length: EXPORT_MEMBERS }, snowflake);
  const first = rows;
  for (let index = 0; rows - first < EXPORT_ROWS; index++) {
    const startedAt = month.startMs + Math.floor(((rows - first) / EXPORT_ROWS) * (nowMs - month.startMs));
    yield* turn(
      item(exporters, index % EXPORT_MEMBERS),
      seeded.exportGuildId,
      startedAt,
      `export-turn-${index}`,
    );
  }
  seeded.counters = [...totals.values()];
}

function weighted(weights: number[], random: () => number): () => number {
  const cumulative: number[] = [];
  let total = 0;
  for (const weight of weights) cumulative.push((total += weight));
  return () => {
    const draw = random() * total;
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (item(cumulative, middle) < draw) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}

async function benchSqlite(nowMs: number): Promise<Figure[]> {
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-reports-bench-'));
  const path = join(directory, 'tierbot.db');
  const seeded: Seeded = { guildIds: [], exportGuildId: '', counters: [] };
  try {
    const db = openDatabase(path);
    try {
      migrateSqlite(db);
      progress('reports: seeding SQLite…');
      const sqlite = db.$client;
      const defaultCacheSize = sqlite.pragma('cache_size', { simple: true }) as number;
      sqlite.pragma(`cache_size = -${SEEDING_CACHE_KIB}`);
      const insert = (table: string, columns: string, width: number) =>
        sqlite.prepare(
          `INSERT INTO ${table} (${columns}) VALUES (${Array<string>(width).fill('?').join(', ')})`,
        );
      const statements = {
        usage_ledger: insert('usage_ledger', LEDGER_COLUMNS, 18),
        turns: insert('turns', TURN_COLUMNS, 14),
      };
      const counters = insert('spend_counters', COUNTER_COLUMNS, 12);
      sqlite.transaction(() => {
        for (const { table, row } of seededHistory(nowMs, seeded)) statements[table].run(...row);
        for (const row of seeded.counters) counters.run(...row);
      })();
      sqlite.pragma(`cache_size = ${defaultCacheSize}`);
      sqlite.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      closeDatabase(db);
    }
    const plan = planUsesIndex(path, seeded, nowMs);
    const storage = await openBenchStorage({ databasePath: path });
    try {
      return labelled('sqlite', [...(await measureViews(storage, seeded, nowMs)), plan]);
    } finally {
      await storage.close();
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Whether SQLite reads the busiest server's month from the per-hour sums by their key, not the ledger. */
function planUsesIndex(path: string, seeded: Seeded, nowMs: number): Figure {
  const db = openDatabase(path);
  try {
    const { buckets } = serverSumsQueries((name) => `@${name}`, DAY_MS);
    const rows = db.$client
      .prepare(`EXPLAIN QUERY PLAN ${buckets}`)
      .all({ guildKey: item(seeded.guildIds, 0), ...hoursOf(periodWindow('month', nowMs)) }) as {
      detail: string;
    }[];
    const details = rows.map((row) => row.detail).join(' | ');
    progress(`reports: SQLite plan: ${details}`);
    return {
      name: '/usage server reads the per-hour sums by their key',
      value: details.includes('SEARCH usage_by_hour USING PRIMARY KEY') && !details.includes('usage_ledger'),
      unit: '',
      target: { equals: true },
    };
  } finally {
    closeDatabase(db);
  }
}

async function benchPostgres(nowMs: number): Promise<Figure[]> {
  progress('reports: starting PostgreSQL…');
  const server = await startEmbeddedPostgres({ durable: false });
  const seeded: Seeded = { guildIds: [], exportGuildId: '', counters: [] };
  try {
    const admin = openPool(server.url, () => {});
    try {
      await admin.query(`CREATE DATABASE ${BENCH_DATABASE}`);
    } finally {
      await admin.end();
    }
    const databaseUrl = withDatabase(server.url, BENCH_DATABASE);
    const pool = openPool(databaseUrl, () => {});
    try {
      await migratePostgres(pool);
      progress('reports: seeding PostgreSQL…');
      await seedPostgres(pool, nowMs, seeded);
      // A production database has its statistics and visibility map (autovacuum keeps them). VACUUM marks
      // a page all-visible only once the commit that wrote its rows is flushed, and this server commits
      // without waiting for the disk: CHECKPOINT flushes it first.
      await pool.query('CHECKPOINT');
      await pool.query(
        'VACUUM (ANALYZE) usage_ledger, turns, spend_counters, usage_by_hour, answers_by_hour',
      );
    } finally {
      await pool.end();
    }
    const storage = await openBenchStorage({ databaseUrl, databasePath: '' });
    try {
      return labelled('postgres', await measureViews(storage, seeded, nowMs));
    } finally {
      await storage.close();
    }
  } finally {
    await server.stop();
  }
}

/** The same history, POSTGRES_SEED_BATCH_ROWS rows per INSERT … SELECT FROM unnest(…). */
async function seedPostgres(pool: pg.Pool, nowMs: number, seeded: Seeded): Promise<void> {
  const text = (count: number) => Array<string>(count).fill('text');
  const bigint = (count: number) => Array<string>(count).fill('bigint');
  const tables = {
    usage_ledger: { columns: LEDGER_COLUMNS, types: [...text(9), ...bigint(9)] },
    turns: { columns: TURN_COLUMNS, types: [...text(8), ...bigint(3), 'text', 'text', 'bigint'] },
    spend_counters: { columns: COUNTER_COLUMNS, types: [...text(3), ...bigint(9)] },
  };
  const insert = async (table: keyof typeof tables, rows: unknown[][]) => {
    const { columns, types } = tables[table];
    const unnest = types.map((type, index) => `$${index + 1}::${type}[]`).join(', ');
    await pool.query(
      `INSERT INTO ${table} (${columns}) SELECT * FROM unnest(${unnest})`,
      types.map((_, column) => rows.map((row) => row[column])),
    );
  };
  const batches: Record<'usage_ledger' | 'turns', unknown[][]> = { usage_ledger: [], turns: [] };
  for (const { table, row } of seededHistory(nowMs, seeded)) {
    batches[table].push(row);
    if (batches[table].length === POSTGRES_SEED_BATCH_ROWS) {
      await insert(table, batches[table]);
      batches[table] = [];
    }
  }
  for (const table of ['usage_ledger', 'turns'] as const)
    if (batches[table].length > 0) await insert(table, batches[table]);
  for (let from = 0; from < seeded.counters.length; from += POSTGRES_SEED_BATCH_ROWS) {
    await insert('spend_counters', seeded.counters.slice(from, from + POSTGRES_SEED_BATCH_ROWS));
  }
}

function openBenchStorage(location: { databasePath: string; databaseUrl?: string }): Promise<AppStorage> {
  return openStorage({
    ...location,
    prices: defaultPrices(),
    smartModel: SMART_MODEL,
    defaultUserBudget: { amountMicros: 1_000_000, period: 'month' },
    defaultServerCap: { amountMicros: 500_000_000, period: 'month' },
    log: createLogger('warn', process.stderr),
  });
}

async function measureViews(storage: AppStorage, seeded: Seeded, nowMs: number): Promise<Figure[]> {
  const busiest = item(seeded.guildIds, 0);
  const input = {
    defaultPeriod: 'month' as const,
    nowMs,
    smartModel: SMART_MODEL,
  };
  const server = () =>
    serverView(storage, { ...input, guildId: busiest, askerId: 'bench', rolesOf: () => undefined });
  const chart = async () => {
    const view = await server();
    return renderSpendChart({ title: 'bench', data: view.chart, fastLabel: 'fast', smartLabel: 'smart' });
  };
  progress(`reports: ${LABEL[storage.dialect]}: /usage server…`);
  const figures = await timeRuns(server, REPEATS);
  const withChart = await timeRuns(chart, REPEATS);
  const bot = await timeRuns(() => botView(storage, input), 5);
  const rowsInMonth = (await server()).byModel.reduce((sum, row) => sum + row.calls, 0);

  progress(
    `reports: ${LABEL[storage.dialect]}: /usage export of ${EXPORT_ROWS.toLocaleString('en-US')} calls…`,
  );
  const window = usageWindow('month', nowMs);
  const exports: { ms: number; heapMb: number; buffersMb: number; rows: number; bytes: number }[] = [];
  for (let run = 0; run < EXPORT_REPEATS; run++) {
    exports.push(
      await measureHeap(async () => {
        const result = await collectCsv(
          storage.usage.calls({ guildId: seeded.exportGuildId, window }),
          Number.MAX_SAFE_INTEGER,
        );
        if (!result.ok) throw new Error('the export was refused');
        return { rows: result.rows, bytes: result.csv.length };
      }),
    );
  }
  const exportMs = percentile(Float64Array.from(exports.map((run) => run.ms)), 50);
  return [
    {
      name: `/usage server, busiest server's month (${rowsInMonth.toLocaleString('en-US')} calls): figures, p50`,
      value: figures.p50,
      unit: 'ms',
      target: { atMost: SERVER_FIGURES_TARGET_MS },
    },
    { name: '/usage server: figures, p99', value: figures.p99, unit: 'ms' },
    {
      name: '/usage server: figures and the PNG chart, p50',
      value: withChart.p50,
      unit: 'ms',
      target: { atMost: SERVER_WITH_CHART_TARGET_MS },
    },
    { name: "/usage bot, every server's month: figures, p50", value: bot.p50, unit: 'ms' },
    {
      name: `/usage export, ${exports[0]!.rows.toLocaleString('en-US')} calls (${(exports[0]!.bytes / BYTES_PER_MB).toFixed(1)} MB of CSV): time, p50 of ${EXPORT_REPEATS}`,
      value: exportMs,
      unit: 'ms',
      target: { atMost: EXPORT_TARGET_MS },
    },
    {
      name: '/usage export: extra heap at its peak (most of 3)',
      value: Math.max(...exports.map((run) => run.heapMb)),
      unit: 'MB',
      target: { atMost: EXPORT_HEAP_TARGET_MB },
    },
    {
      name: '/usage export: extra buffers at the peak (the CSV itself, outside the heap)',
      value: Math.max(...exports.map((run) => run.buffersMb)),
      unit: 'MB',
    },
  ];
}

async function timeRuns(run: () => Promise<unknown>, repeats: number): Promise<{ p50: number; p99: number }> {
  for (let index = 0; index < WARM_UP; index++) await run();
  const samples = new Float64Array(repeats);
  for (let index = 0; index < repeats; index++) {
    const start = nowNs();
    await run();
    samples[index] = elapsedNs(start) / NS_PER_MS;
  }
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** Garbage collection on demand, for a heap baseline that is not last run's garbage. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Runs `work` and measures its time and its peak heap (and buffers) above what was in use before. */
async function measureHeap<T extends object>(work: () => Promise<T>) {
  collectGarbage();
  const before = process.memoryUsage();
  let peakHeap = before.heapUsed;
  let peakBuffers = before.arrayBuffers;
  const sampler = setInterval(() => {
    const now = process.memoryUsage();
    peakHeap = Math.max(peakHeap, now.heapUsed);
    peakBuffers = Math.max(peakBuffers, now.arrayBuffers);
  }, HEAP_SAMPLE_MS);
  const start = nowNs();
  try {
    const result = await work();
    const ms = elapsedNs(start) / NS_PER_MS;
    const after = process.memoryUsage();
    peakHeap = Math.max(peakHeap, after.heapUsed);
    peakBuffers = Math.max(peakBuffers, after.arrayBuffers);
    return {
      ...result,
      ms,
      heapMb: (peakHeap - before.heapUsed) / BYTES_PER_MB,
      buffersMb: (peakBuffers - before.arrayBuffers) / BYTES_PER_MB,
    };
  } finally {
    clearInterval(sampler);
  }
}

function labelled(dialect: Dialect, figures: Figure[]): Figure[] {
  return figures.map((figure) => ({ ...figure, name: `${LABEL[dialect]} ${figure.name}` }));
}
