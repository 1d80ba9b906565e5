import {
  bigint,
  boolean,
  doublePrecision,
  index,
  pgTable,
  primaryKey,
  serial,
  text,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { BUDGET_PERIODS, BUDGET_SCOPES } from '../../core/budget.js';
import { ESCALATION_MODES } from '../../core/escalation.js';
import { CALL_PURPOSES } from '../../core/ledger.js';
import { CALL_OUTCOMES } from '../store.js';

/**
 * The same tables as on SQLite (see ../sqlite/schema.ts for what each is for), in PostgreSQL's types.
 * Money is integer micro-USD in bigint; moments are ms since the epoch in bigint, as on SQLite, so the
 * dialect-free rules see the same numbers (both fit a JavaScript number: 2^53 micro-USD is $9 billion).
 */
const micros = (name: string) => bigint(name, { mode: 'number' });
const moment = (name: string) => bigint(name, { mode: 'number' });

export const usageLedger = pgTable(
  'usage_ledger',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    requestId: text('request_id').notNull(),
    turnId: text('turn_id').notNull(),
    userId: text('user_id').notNull(),
    guildId: text('guild_id'),
    channelId: text('channel_id'),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    purpose: text('purpose', { enum: CALL_PURPOSES }).notNull(),
    outcome: text('outcome', { enum: CALL_OUTCOMES }).notNull(),
    inputTokens: bigint('input_tokens', { mode: 'number' }).notNull(),
    cachedInputTokens: bigint('cached_input_tokens', { mode: 'number' }).notNull(),
    cacheWriteTokens: bigint('cache_write_tokens', { mode: 'number' }).notNull(),
    outputTokens: bigint('output_tokens', { mode: 'number' }).notNull(),
    costMicros: micros('cost_micros').notNull(),
    smartCostMicros: micros('smart_cost_micros').notNull(),
    reservedMicros: micros('reserved_micros').notNull(),
    chargedAt: moment('charged_at').notNull(),
    createdAt: moment('created_at').notNull(),
  },
  (table) => [
    uniqueIndex('usage_ledger_request_id').on(table.requestId),
    // Covers /usage (a member's calls in a period, by model and day), read by an index-only scan.
    index('usage_ledger_user_period').on(
      table.guildId,
      table.userId,
      table.chargedAt,
      table.model,
      table.costMicros,
      table.smartCostMicros,
      table.inputTokens,
      table.cachedInputTokens,
      table.cacheWriteTokens,
      table.outputTokens,
    ),
    // /usage export's pages of a server's calls in time order, keyed by (charged_at, id).
    index('usage_ledger_guild_time').on(table.guildId, table.chargedAt, table.id),
  ],
);

export const budgets = pgTable(
  'budgets',
  {
    id: serial('id').primaryKey(),
    scope: text('scope', { enum: BUDGET_SCOPES }).notNull(),
    guildId: text('guild_id').notNull(),
    userId: text('user_id').notNull().default(''),
    amountMicros: micros('amount_micros').notNull(),
    period: text('period', { enum: BUDGET_PERIODS }).notNull(),
    setBy: text('set_by').notNull(),
    setAt: moment('set_at').notNull(),
  },
  (table) => [uniqueIndex('budgets_scope_guild_user').on(table.guildId, table.scope, table.userId)],
);

export const reservations = pgTable(
  'reservations',
  {
    requestId: text('request_id').primaryKey(),
    turnId: text('turn_id').notNull(),
    userId: text('user_id').notNull(),
    guildId: text('guild_id'),
    channelId: text('channel_id'),
    provider: text('provider').notNull(),
    model: text('model').notNull(),
    purpose: text('purpose', { enum: CALL_PURPOSES }).notNull(),
    amountMicros: micros('amount_micros').notNull(),
    createdAt: moment('created_at').notNull(),
    expiresAt: moment('expires_at').notNull(),
    instanceId: text('instance_id').notNull(),
  },
  // The sweep looks reservations up by their instance.
  (table) => [index('reservations_instance').on(table.instanceId)],
);

export const instances = pgTable('instances', {
  id: text('id').primaryKey(),
  host: text('host').notNull(),
  pid: bigint('pid', { mode: 'number' }).notNull(),
  processStartedAt: moment('process_started_at').notNull(),
  startedAt: moment('started_at').notNull(),
  /** By the database's clock: every host's lease is judged by one clock. */
  leaseExpiresAt: moment('lease_expires_at').notNull(),
});

export const eventClaims = pgTable(
  'event_claims',
  {
    eventId: text('event_id').primaryKey(),
    instanceId: text('instance_id').notNull(),
    claimedAt: moment('claimed_at').notNull(),
  },
  (table) => [index('event_claims_claimed_at').on(table.claimedAt)],
);

export const spendCounters = pgTable(
  'spend_counters',
  {
    kind: text('kind', { enum: ['user', 'server'] }).notNull(),
    guildKey: text('guild_key').notNull(),
    userKey: text('user_key').notNull(),
    dayStart: moment('day_start').notNull(),
    daySpentMicros: micros('day_spent_micros').notNull(),
    dayReservedMicros: micros('day_reserved_micros').notNull(),
    weekStart: moment('week_start').notNull(),
    weekSpentMicros: micros('week_spent_micros').notNull(),
    weekReservedMicros: micros('week_reserved_micros').notNull(),
    monthStart: moment('month_start').notNull(),
    monthSpentMicros: micros('month_spent_micros').notNull(),
    monthReservedMicros: micros('month_reserved_micros').notNull(),
  },
  (table) => [primaryKey({ columns: [table.kind, table.guildKey, table.userKey] })],
);

export const budgetAudit = pgTable(
  'budget_audit',
  {
    id: serial('id').primaryKey(),
    guildId: text('guild_id').notNull(),
    scope: text('scope', { enum: BUDGET_SCOPES }).notNull(),
    userId: text('user_id').notNull().default(''),
    oldAmountMicros: micros('old_amount_micros'),
    oldPeriod: text('old_period', { enum: BUDGET_PERIODS }),
    newAmountMicros: micros('new_amount_micros'),
    newPeriod: text('new_period', { enum: BUDGET_PERIODS }),
    changedBy: text('changed_by').notNull(),
    changedAt: moment('changed_at').notNull(),
  },
  (table) => [index('budget_audit_guild').on(table.guildId, table.changedAt)],
);

export const turns = pgTable(
  'turns',
  {
    turnId: text('turn_id').primaryKey(),
    userId: text('user_id').notNull(),
    guildId: text('guild_id'),
    channelId: text('channel_id'),
    status: text('status', { enum: ['answered', 'denied', 'refused'] }).notNull(),
    models: text('models').notNull(),
    finalModel: text('final_model').notNull(),
    escalationSource: text('escalation_source'),
    escalationReason: text('escalation_reason'),
    category: text('category'),
    confidence: doublePrecision('confidence'),
    tokens: bigint('tokens', { mode: 'number' }).notNull(),
    costMicros: micros('cost_micros').notNull(),
    smartOnlyCostMicros: micros('smart_only_cost_micros').notNull(),
    question: text('question').notNull(),
    answer: text('answer').notNull(),
    questionMessageId: text('question_message_id'),
    checkVerdict: text('check_verdict', { enum: ['accept', 'refine'] }),
    checkCategory: text('check_category'),
    checkConfidence: doublePrecision('check_confidence'),
    triageRoute: text('triage_route', { enum: ['fast', 'smart'] }),
    triageCategory: text('triage_category'),
    triageConfidence: doublePrecision('triage_confidence'),
    createdAt: moment('created_at').notNull(),
  },
  (table) => [
    index('turns_user_channel').on(table.userId, table.channelId, table.createdAt),
    index('turns_user_guild').on(table.guildId, table.userId, table.createdAt),
  ],
);

/**
 * A server's calls by UTC hour and model, summed by a statement trigger on usage_ledger
 * (migrations/postgres/0004_usage_by_hour.sql); see ../sqlite/schema.ts.
 */
export const usageByHour = pgTable(
  'usage_by_hour',
  {
    guildKey: text('guild_key').notNull(),
    hour: bigint('hour', { mode: 'number' }).notNull(),
    model: text('model').notNull(),
    calls: bigint('calls', { mode: 'number' }).notNull(),
    inputTokens: bigint('input_tokens', { mode: 'number' }).notNull(),
    cachedInputTokens: bigint('cached_input_tokens', { mode: 'number' }).notNull(),
    cacheWriteTokens: bigint('cache_write_tokens', { mode: 'number' }).notNull(),
    outputTokens: bigint('output_tokens', { mode: 'number' }).notNull(),
    costMicros: micros('cost_micros').notNull(),
    smartCostMicros: micros('smart_cost_micros').notNull(),
  },
  (table) => [primaryKey({ columns: [table.guildKey, table.hour, table.model] })],
);

/** A server's answered turns by UTC hour and escalation reason ('' for none), summed by a trigger on turns. */
export const answersByHour = pgTable(
  'answers_by_hour',
  {
    guildKey: text('guild_key').notNull(),
    hour: bigint('hour', { mode: 'number' }).notNull(),
    reason: text('reason').notNull(),
    answers: bigint('answers', { mode: 'number' }).notNull(),
    costMicros: micros('cost_micros').notNull(),
    smartOnlyCostMicros: micros('smart_only_cost_micros').notNull(),
  },
  (table) => [primaryKey({ columns: [table.guildKey, table.hour, table.reason] })],
);

export const escalations = pgTable('escalations', {
  turnId: text('turn_id').primaryKey(),
  requestedBy: text('requested_by').notNull(),
  requestedAt: moment('requested_at').notNull(),
});

export const budgetNotices = pgTable(
  'budget_notices',
  {
    kind: text('kind', { enum: ['user', 'server'] }).notNull(),
    guildKey: text('guild_key').notNull(),
    userKey: text('user_key').notNull(),
    windowStart: moment('window_start').notNull(),
    percent: bigint('percent', { mode: 'number' }).notNull(),
    notifiedAt: moment('notified_at').notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.kind, table.guildKey, table.userKey, table.windowStart, table.percent] }),
  ],
);

export const guildSettings = pgTable('guild_settings', {
  guildId: text('guild_id').primaryKey(),
  escalationMode: text('escalation_mode', { enum: ESCALATION_MODES }).notNull().default('auto'),
  showFooter: boolean('show_footer').notNull().default(true),
  alertsChannelId: text('alerts_channel_id'),
  answersInThreads: boolean('answers_in_threads').notNull().default(false),
  updatedBy: text('updated_by').notNull(),
  updatedAt: moment('updated_at').notNull(),
});

export const answeredChannels = pgTable(
  'answered_channels',
  {
    guildId: text('guild_id').notNull(),
    channelId: text('channel_id').notNull(),
    addedBy: text('added_by').notNull(),
    addedAt: moment('added_at').notNull(),
  },
  (table) => [primaryKey({ columns: [table.guildId, table.channelId] })],
);

export const botStarts = pgTable('bot_starts', {
  id: serial('id').primaryKey(),
  startedAt: moment('started_at').notNull(),
  pid: bigint('pid', { mode: 'number' }).notNull(),
  host: text('host').notNull().default(''),
});
