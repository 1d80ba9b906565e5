/**
 * One of the processes of the ledger benchmark's contention figures (ledger.bench.ts): it opens storage
 * on the benchmark's PostgreSQL database as the bot does, warms up, says "ready", and on "go" runs reserve
 * + settle pairs (the settle's write flushed, as part of the pair) for members of one server, one at a
 * time, for a fixed time. Its report: how many pairs, in how long, and each pair's time.
 *
 * Run as `node --import tsx ledger-worker.ts '<LedgerWorkerPlan as JSON>'` (see test/support/workers.ts).
 */
import { newId } from '../src/core/ids.js';
import { buildPriceTable, DEFAULT_PRICES } from '../src/core/pricing.js';
import { openStorage } from '../src/db/storage.js';
import { createLogger } from '../src/log.js';
import { runAsWorker, startSignal } from '../test/support/workers.js';

export interface LedgerWorkerPlan {
  databaseUrl: string;
  guildId: string;
  channelId: string;
  /** The members this process asks for, in turn. */
  userIds: string[];
  durationMs: number;
  seed: number;
}

export interface LedgerWorkerReport {
  /** Run before "go", to warm the connections and caches. */
  warmUpPairs: number;
  pairs: number;
  elapsedMs: number;
  /** Each pair's time, in whole microseconds. */
  samplesUs: number[];
}

const FAST_MODEL = 'gpt-4o-mini';
const SMART_MODEL = 'claude-haiku-4-5';
const WARM_UP_PAIRS = 50;
/** A typical draft's worst case and what it used: the figures do not depend on the amounts. */
const INPUT_TOKENS = 1_500;
const MAX_OUTPUT_TOKENS = 1_024;
const USAGE = { inputTokens: 1_500, cachedInputTokens: 0, cacheWriteTokens: 0, outputTokens: 300 };
/** Budgets so large nothing is ever denied; a server cap too, so each reserve locks both counter rows. */
const NEVER_DENY = { amountMicros: 10 ** 15, period: 'month' as const };

await runAsWorker(async (plan: LedgerWorkerPlan): Promise<LedgerWorkerReport> => {
  const prices = buildPriceTable(DEFAULT_PRICES);
  if (!prices.ok) throw new Error(prices.problems.join('; '));
  const storage = await openStorage({
    databaseUrl: plan.databaseUrl,
    databasePath: '',
    prices: prices.table,
    smartModel: SMART_MODEL,
    defaultUserBudget: NEVER_DENY,
    defaultServerCap: NEVER_DENY,
    log: createLogger('warn', process.stderr),
  });
  try {
    const { ledger } = storage;
    const amountMicros = ledger.worstCaseMicros(FAST_MODEL, INPUT_TOKENS, MAX_OUTPUT_TOKENS);
    let next = plan.seed;
    const pair = async () => {
      const requestId = newId();
      next += 1;
      const reserved = await ledger.reserve({
        requestId,
        turnId: newId(),
        userId: plan.userIds[next % plan.userIds.length] ?? '',
        guildId: plan.guildId,
        channelId: plan.channelId,
        provider: 'openai',
        model: FAST_MODEL,
        purpose: 'draft',
        amountMicros,
      });
      if (!reserved.ok) throw new Error('a reserve was denied');
      if ((await ledger.settle(requestId, USAGE)).status !== 'settled') throw new Error('a settle failed');
      await ledger.flush();
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
