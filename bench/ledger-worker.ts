/**
 * A process of the ledger benchmark (ledger.bench.ts), so that pairs are timed in a process shaped like
 * the bot's rather than in the one that seeded a million rows (whose large heap would bill its garbage
 * collection to every pair). It opens storage on the benchmark's database as the bot does, warms up, says
 * "ready", and on "go" runs reserve + settle pairs (the settle's write flushed, as part of the pair) one
 * at a time: either for members of one server for a fixed time (the contention figures, eight at once),
 * or a given list of calls (the one-process figures). Its report: how many pairs, in how long, and each
 * pair's time.
 *
 * Run as `node --import tsx ledger-worker.ts '<LedgerWorkerPlan as JSON>'` (see test/support/workers.ts).
 */
import { readFileSync } from 'node:fs';
import { newId } from '../src/core/ids.js';
import type { ReserveRequest } from '../src/core/ledger.js';
import { buildPriceTable, DEFAULT_PRICES, type TokenUsage } from '../src/core/pricing.js';
import { closeDatabase, openDatabase } from '../src/db/sqlite/database.js';
import { openStorage } from '../src/db/storage.js';
import { createLogger } from '../src/log.js';
import { runAsWorker, startSignal } from '../test/support/workers.js';

export type LedgerWorkerPlan = { databaseUrl: string; databasePath: string } & (TimedPlan | ListedPlan);

/** Pairs for members of one server, in turn, for a fixed time. */
interface TimedPlan {
  kind: 'timed';
  guildId: string;
  channelId: string;
  /** The members this process asks for, in turn. */
  userIds: string[];
  durationMs: number;
  seed: number;
}

/** These calls in order: the first `warmUp` before "go", the rest timed. */
interface ListedPlan {
  kind: 'listed';
  /** A JSON file of {@link ListedCall}s (too many for a command line). */
  callsPath: string;
  warmUp: number;
}

export interface ListedCall {
  request: ReserveRequest;
  usage: TokenUsage;
}

export interface LedgerWorkerReport {
  /** Run before "go", to warm the connections and caches. */
  warmUpPairs: number;
  pairs: number;
  elapsedMs: number;
  /** Each pair's time, in whole microseconds. */
  samplesUs: number[];
  /**
   * SQLite, listed plan: the p50 of a one-row INSERT committed on its own, on the same file with the bot's
   * settings, in this process after the pairs (a pair commits twice): this machine's floor, in µs.
   */
  oneRowCommitUs?: number;
}

const FAST_MODEL = 'gpt-4o-mini';
const SMART_MODEL = 'claude-haiku-4-5';
/**
 * As many as a bot makes in its first busy minutes: V8 compiles a function's optimized code only after it
 * ran hot for a while, and with 50 a third of the eight processes' processor time went to compiling and to
 * code not yet optimized (perf, 8 processes on 8 servers: 672 pairs/s after 100, 834 after 1,500).
 */
const WARM_UP_PAIRS = 1_500;
/** A typical draft's worst case and what it used: the figures do not depend on the amounts. */
const INPUT_TOKENS = 1_500;
const MAX_OUTPUT_TOKENS = 1_024;
const USAGE = { inputTokens: 1_500, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 300 };
/** Budgets so large nothing is ever denied; a server cap too, so each reserve locks both counter rows. */
const NEVER_DENY = { amountMicros: 10 ** 15, period: 'month' as const };
const FLOOR_COMMITS = 2_000;

await runAsWorker(async (plan: LedgerWorkerPlan): Promise<LedgerWorkerReport> => {
  const prices = buildPriceTable(DEFAULT_PRICES);
  if (!prices.ok) throw new Error(prices.problems.join('; '));
  const storage = await openStorage({
    databaseUrl: plan.databaseUrl,
    databasePath: plan.databasePath,
    prices: prices.table,
    smartModel: SMART_MODEL,
    defaultUserBudget: NEVER_DENY,
    defaultServerCap: NEVER_DENY,
    log: createLogger('warn', process.stderr),
  });
  try {
    const { ledger } = storage;
    const pairOf = async ({ request, usage }: ListedCall) => {
      if (!(await ledger.reserve(request)).ok) throw new Error('a reserve was denied');
      if ((await ledger.settle(request.requestId, usage)).status !== 'settled')
        throw new Error('a settle failed');
      await ledger.flush();
    };
    if (plan.kind === 'listed') {
      const calls = JSON.parse(readFileSync(plan.callsPath, 'utf8')) as ListedCall[];
      for (const call of calls.slice(0, plan.warmUp)) await pairOf(call);
      await startSignal();
      const samplesUs: number[] = [];
      const start = performance.now();
      for (const call of calls.slice(plan.warmUp)) {
        const pairStart = performance.now();
        await pairOf(call);
        samplesUs.push(Math.round((performance.now() - pairStart) * 1_000));
      }
      const elapsedMs = performance.now() - start;
      return {
        warmUpPairs: plan.warmUp,
        pairs: samplesUs.length,
        elapsedMs,
        samplesUs,
        ...(plan.databaseUrl ? {} : { oneRowCommitUs: oneRowCommitUs(plan.databasePath) }),
      };
    }

    const amountMicros = ledger.worstCaseMicros(FAST_MODEL, INPUT_TOKENS, MAX_OUTPUT_TOKENS);
    let next = plan.seed;
    const pair = () => {
      next += 1;
      return pairOf({
        request: {
          requestId: newId(),
          turnId: newId(),
          userId: plan.userIds[next % plan.userIds.length] ?? '',
          guildId: plan.guildId,
          channelId: plan.channelId,
          provider: 'openai',
          model: FAST_MODEL,
          purpose: 'draft',
          amountMicros,
        },
        usage: USAGE,
      });
    };
    for (let index = 0; index < WARM_UP_PAIRS; index += 1) await pair();

    await startSignal();
    const samplesUs: number[] = [];
    const start = performance.now();
    for (;;) {
      const pairStart = performance.now();
      await pair();
      const now = performance.now();
      samplesUs.push(Math.round((now - pairStart) * 1_000));
      if (now - start >= plan.durationMs) {
        return { warmUpPairs: WARM_UP_PAIRS, pairs: samplesUs.length, elapsedMs: now - start, samplesUs };
      }
    }
  } finally {
    await storage.close();
  }
});

/** The p50 of FLOOR_COMMITS one-row INSERTs, each its own transaction, in a table made (and dropped) for it. */
function oneRowCommitUs(path: string): number {
  const db = openDatabase(path);
  try {
    const sqlite = db.$client;
    sqlite.exec('CREATE TABLE bench_commits (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)');
    const insert = sqlite.prepare('INSERT INTO bench_commits (at) VALUES (?)');
    const samplesUs: number[] = [];
    for (let index = 0; index < FLOOR_COMMITS; index += 1) {
      const start = performance.now();
      insert.run(Date.now());
      samplesUs.push((performance.now() - start) * 1_000);
    }
    sqlite.exec('DROP TABLE bench_commits');
    samplesUs.sort((a, b) => a - b);
    return samplesUs[Math.floor(samplesUs.length / 2)] ?? 0;
  } finally {
    closeDatabase(db);
  }
}
