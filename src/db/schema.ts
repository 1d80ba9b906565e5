import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { BUDGET_PERIODS, BUDGET_SCOPES } from '../core/budget.js';

export const CALL_PURPOSES = ['draft', 'check', 'refine', 'direct', 'fallback'] as const;
export type CallPurpose = (typeof CALL_PURPOSES)[number];

/** How a ledger row came to be: a normal settle, a failed call, or a reservation swept after a crash or TTL. */
export const CALL_OUTCOMES = ['settled', 'failed', 'swept'] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

/**
 * The usage ledger: append-only, one row per model call. Money is integer micro-USD.
 * `guild_id` is null for direct messages.
 */
export const usageLedger = sqliteTable(
  'usage_ledger',
  {
    // A plain rowid, not AUTOINCREMENT: rows are never deleted, so ids only grow anyway, and AUTOINCREMENT
    // would write sqlite_sequence on every insert.
    id: integer('id').primaryKey(),
    requestId: text('request_id').notNull(),
    turnId: text('turn_id').notNull(),
    userId: text('user_id').notNull(),
    guildId: text('guild_id'),
    channelId: text('channel_id'),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    purpose: text('purpose', { enum: CALL_PURPOSES }).notNull(),
    outcome: text('outcome', { enum: CALL_OUTCOMES }).notNull(),
    inputTokens: integer('input_tokens').notNull(),
    cachedInputTokens: integer('cached_input_tokens').notNull(),
    cacheWriteTokens: integer('cache_write_tokens').notNull(),
    outputTokens: integer('output_tokens').notNull(),
    costMicros: integer('cost_micros').notNull(),
    /** What the same tokens would have cost on the smart model, so the cascade's savings can be reported. */
    smartCostMicros: integer('smart_cost_micros').notNull(),
    /** What the call held while it ran (its worst case). */
    reservedMicros: integer('reserved_micros').notNull(),
    /** When the call's reservation was made (ms since epoch): the charge lands in that period. */
    chargedAt: integer('charged_at').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (table) => [
    uniqueIndex('usage_ledger_request_id').on(table.requestId),
    index('usage_ledger_user_period').on(table.guildId, table.userId, table.chargedAt),
  ],
);

/** Budgets set by admins. `user_id` is '' for the two server-wide scopes. */
export const budgets = sqliteTable(
  'budgets',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    scope: text('scope', { enum: BUDGET_SCOPES }).notNull(),
    guildId: text('guild_id').notNull(),
    userId: text('user_id').notNull().default(''),
    amountMicros: integer('amount_micros').notNull(),
    period: text('period', { enum: BUDGET_PERIODS }).notNull(),
    setBy: text('set_by').notNull(),
    setAt: integer('set_at').notNull(),
  },
  (table) => [uniqueIndex('budgets_scope_guild_user').on(table.guildId, table.scope, table.userId)],
);

/**
 * Calls in flight: each holds its worst-case cost against every limit until it settles or is released.
 * Only open calls live here (a handful of rows), so it has no index beyond its key, and the migration
 * makes it WITHOUT ROWID (clustered on the request id), which drizzle's schema cannot say: each
 * reserve and settle then writes one page of it instead of three.
 */
export const reservations = sqliteTable('reservations', {
  requestId: text('request_id').primaryKey(),
  turnId: text('turn_id').notNull(),
  userId: text('user_id').notNull(),
  guildId: text('guild_id'),
  channelId: text('channel_id'),
  provider: text('provider').notNull(),
  model: text('model').notNull(),
  purpose: text('purpose', { enum: CALL_PURPOSES }).notNull(),
  amountMicros: integer('amount_micros').notNull(),
  createdAt: integer('created_at').notNull(),
  expiresAt: integer('expires_at').notNull(),
  /** The process that holds it: a reservation whose process is gone was left by a crash. */
  holderPid: integer('holder_pid').notNull(),
});

/**
 * Running totals per limit window, kept in the same transaction as every reservation and ledger row, so a
 * reservation checks its limits with two point reads instead of summing the ledger. Kept for every period
 * kind, so an admin can switch a budget from monthly to weekly and the totals are already there.
 * `guild_key` is '' for direct messages; `user_key` is '' for a server's total. WITHOUT ROWID in the
 * migration (clustered on its key), for the same reason as reservations.
 */
export const spendCounters = sqliteTable(
  'spend_counters',
  {
    kind: text('kind', { enum: ['user', 'server'] }).notNull(),
    guildKey: text('guild_key').notNull(),
    userKey: text('user_key').notNull(),
    period: text('period', { enum: BUDGET_PERIODS }).notNull(),
    periodStart: integer('period_start').notNull(),
    spentMicros: integer('spent_micros').notNull().default(0),
    reservedMicros: integer('reserved_micros').notNull().default(0),
  },
  (table) => [
    primaryKey({ columns: [table.kind, table.guildKey, table.userKey, table.period, table.periodStart] }),
  ],
);

/** Every budget change: who, when, old → new. A null new amount means the budget was cleared. */
export const budgetAudit = sqliteTable(
  'budget_audit',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    guildId: text('guild_id').notNull(),
    scope: text('scope', { enum: BUDGET_SCOPES }).notNull(),
    userId: text('user_id').notNull().default(''),
    oldAmountMicros: integer('old_amount_micros'),
    oldPeriod: text('old_period', { enum: BUDGET_PERIODS }),
    newAmountMicros: integer('new_amount_micros'),
    newPeriod: text('new_period', { enum: BUDGET_PERIODS }),
    changedBy: text('changed_by').notNull(),
    changedAt: integer('changed_at').notNull(),
  },
  (table) => [index('budget_audit_guild').on(table.guildId, table.changedAt)],
);
