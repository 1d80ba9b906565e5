import { BUDGET_PERIODS, periodWindow } from '../../src/core/budget.js';
import type { TemporaryDatabase } from './databases.js';

/**
 * Known ledger history written straight into a database of either backend, as the ledger writes it: one
 * usage_ledger row per call, a turn per answer, and the running totals (spend_counters) those rows make in
 * the day, week and month current at `nowMs` (the budget check and /usage server's biggest spenders read
 * them), so that a test can put calls at any moment of a period and know every figure.
 */

export interface SeedCall {
  userId: string;
  guildId: string | null;
  channelId?: string;
  model: string;
  purpose?: string;
  chargedAt: number;
  costMicros: number;
  /** Default: the cost. */
  smartCostMicros?: number;
  inputTokens?: number;
  cachedInputTokens?: number;
  cacheWriteTokens?: number;
  outputTokens?: number;
  turnId?: string;
}

export interface SeedTurn {
  turnId: string;
  userId: string;
  guildId: string | null;
  escalationSource: string | null;
  costMicros: number;
  smartOnlyCostMicros: number;
  createdAt: number;
  status?: 'answered' | 'denied' | 'refused';
}

const LEDGER_COLUMNS = [
  'request_id',
  'turn_id',
  'user_id',
  'guild_id',
  'channel_id',
  'provider',
  'model',
  'purpose',
  'outcome',
  'input_tokens',
  'cached_input_tokens',
  'cache_write_tokens',
  'output_tokens',
  'cost_micros',
  'smart_cost_micros',
  'reserved_micros',
  'charged_at',
  'created_at',
];
const TURN_COLUMNS = [
  'turn_id',
  'user_id',
  'guild_id',
  'channel_id',
  'status',
  'models',
  'final_model',
  'escalation_source',
  'tokens',
  'cost_micros',
  'smart_only_cost_micros',
  'question',
  'answer',
  'created_at',
];
const COUNTER_COLUMNS = [
  'kind',
  'guild_key',
  'user_key',
  ...BUDGET_PERIODS.flatMap((period) => [
    `${period}_start`,
    `${period}_spent_micros`,
    `${period}_reserved_micros`,
  ]),
];
/** Rows per INSERT: well under either database's limit on parameters. */
const BATCH_ROWS = 400;

let seeded = 0;

export async function seedUsage(
  database: TemporaryDatabase,
  history: { calls: readonly SeedCall[]; turns?: readonly SeedTurn[]; nowMs: number },
): Promise<void> {
  const ledgerRows = history.calls.map((call) => {
    seeded += 1;
    return [
      `seeded-request-${seeded}`,
      call.turnId ?? `seeded-turn-${seeded}`,
      call.userId,
      call.guildId,
      call.channelId ?? 'seeded-channel',
      call.model.startsWith('claude') ? 'anthropic' : 'openai',
      call.model,
      call.purpose ?? 'draft',
      'settled',
      call.inputTokens ?? 100,
      call.cachedInputTokens ?? 0,
      call.cacheWriteTokens ?? 0,
      call.outputTokens ?? 50,
      call.costMicros,
      call.smartCostMicros ?? call.costMicros,
      call.costMicros,
      call.chargedAt,
      call.chargedAt + 1_000,
    ];
  });
  await insert(database, 'usage_ledger', LEDGER_COLUMNS, ledgerRows);
  const turnRows = (history.turns ?? []).map((turn) => [
    turn.turnId,
    turn.userId,
    turn.guildId,
    'seeded-channel',
    turn.status ?? 'answered',
    'seeded',
    'seeded',
    turn.escalationSource,
    100,
    turn.costMicros,
    turn.smartOnlyCostMicros,
    'question',
    'answer',
    turn.createdAt,
  ]);
  await insert(database, 'turns', TURN_COLUMNS, turnRows);
  await insert(database, 'spend_counters', COUNTER_COLUMNS, countersOf(history.calls, history.nowMs));
}

/** The running totals of every member and server with calls, for the windows current at `nowMs`. */
function countersOf(calls: readonly SeedCall[], nowMs: number): unknown[][] {
  const owners = new Map<
    string,
    { kind: 'user' | 'server'; guildKey: string; userKey: string; calls: SeedCall[] }
  >();
  for (const call of calls) {
    const guildKey = call.guildId ?? '';
    const keys: { kind: 'user' | 'server'; userKey: string }[] = [{ kind: 'user', userKey: call.userId }];
    if (call.guildId !== null) keys.push({ kind: 'server', userKey: '' });
    for (const { kind, userKey } of keys) {
      const key = `${kind}/${guildKey}/${userKey}`;
      const owner = owners.get(key) ?? { kind, guildKey, userKey, calls: [] };
      owner.calls.push(call);
      owners.set(key, owner);
    }
  }
  return [...owners.values()].map((owner) => [
    owner.kind,
    owner.guildKey,
    owner.userKey,
    ...BUDGET_PERIODS.flatMap((period) => {
      const window = periodWindow(period, nowMs);
      const spent = owner.calls
        .filter((call) => call.chargedAt >= window.startMs && call.chargedAt < window.endMs)
        .reduce((sum, call) => sum + call.costMicros, 0);
      return [window.startMs, spent, 0];
    }),
  ]);
}

async function insert(
  database: TemporaryDatabase,
  table: string,
  columns: readonly string[],
  rows: readonly unknown[][],
): Promise<void> {
  for (let from = 0; from < rows.length; from += BATCH_ROWS) {
    const batch = rows.slice(from, from + BATCH_ROWS);
    const values = batch
      .map((_, row) => `(${columns.map((_, column) => `$${row * columns.length + column + 1}`).join(', ')})`)
      .join(', ');
    await database.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}`, batch.flat());
  }
}
