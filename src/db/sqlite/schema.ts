import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { BUDGET_PERIODS, BUDGET_SCOPES } from '../../core/budget.js';
import { ESCALATION_MODES } from '../../core/escalation.js';
import { CALL_PURPOSES } from '../../core/ledger.js';
import { CALL_OUTCOMES } from '../store.js';

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
    // Covers /usage (a member's calls in a period, by model and day): the aggregate reads the index alone,
    // never the table, which keeps a heavy user's month to a few milliseconds at a million rows.
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
    // /usage export: a server's calls in time order (the rowid, last in every index, breaks ties).
    index('usage_ledger_guild_time').on(table.guildId, table.chargedAt),
  ],
);

/** Budgets set by admins. `user_id` is the member or the role, '' for the two server-wide scopes. */
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
  /** The instance (bot process) that holds it: when its lease expires, any process charges it. */
  instanceId: text('instance_id').notNull(),
});

/**
 * Bot processes, each under a lease it renews: a reservation whose instance's lease has expired was left
 * by a process that died (or stopped answering), and is charged at its worst case by whoever sweeps.
 */
export const instances = sqliteTable('instances', {
  id: text('id').primaryKey(),
  /** The host (hostname and PID namespace): processes on one host may check each other's PIDs. */
  host: text('host').notNull(),
  pid: integer('pid').notNull(),
  /** When the process started: with the PID, tells a process apart from an earlier one that had its PID. */
  processStartedAt: integer('process_started_at').notNull(),
  startedAt: integer('started_at').notNull(),
  leaseExpiresAt: integer('lease_expires_at').notNull(),
});

/**
 * Messages and interactions already taken by some process: an event delivered twice (or to two processes
 * running one shard during a deploy) is answered once. Pruned after a day.
 */
export const eventClaims = sqliteTable(
  'event_claims',
  {
    eventId: text('event_id').primaryKey(),
    instanceId: text('instance_id').notNull(),
    claimedAt: integer('claimed_at').notNull(),
  },
  (table) => [index('event_claims_claimed_at').on(table.claimedAt)],
);

/**
 * Running totals of what is spent and held in the *current* day, week and month, one row per member of a
 * server (or per DM user) and one per server, kept in the same transaction as every reservation and ledger
 * row. A reservation checks its limits with one point read per limit instead of summing the ledger, and
 * an admin can switch a budget's period at once, as all three windows are always kept.
 * A row whose window has ended counts as empty for the new one; a late settle for an ended window only
 * goes to the ledger (that period is closed). `guild_key` is '' for direct messages, `user_key` '' for a
 * server's total. WITHOUT ROWID in the migration (clustered on its key), like reservations.
 */
export const spendCounters = sqliteTable(
  'spend_counters',
  {
    kind: text('kind', { enum: ['user', 'server'] }).notNull(),
    guildKey: text('guild_key').notNull(),
    userKey: text('user_key').notNull(),
    dayStart: integer('day_start').notNull(),
    daySpentMicros: integer('day_spent_micros').notNull(),
    dayReservedMicros: integer('day_reserved_micros').notNull(),
    weekStart: integer('week_start').notNull(),
    weekSpentMicros: integer('week_spent_micros').notNull(),
    weekReservedMicros: integer('week_reserved_micros').notNull(),
    monthStart: integer('month_start').notNull(),
    monthSpentMicros: integer('month_spent_micros').notNull(),
    monthReservedMicros: integer('month_reserved_micros').notNull(),
  },
  (table) => [primaryKey({ columns: [table.kind, table.guildKey, table.userKey] })],
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

/**
 * One row per turn: where it went and why, what it cost, and what the smart model alone would have cost.
 * The question and answer are kept (clipped) so /escalate can improve on a user's latest answer.
 */
export const turns = sqliteTable(
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
    /** The check's confidence, 0 to 1 (a judgement, not money: a float is fine here). */
    confidence: real('confidence'),
    /** What the check said of the draft, when one ran (whether or not it escalated). */
    checkVerdict: text('check_verdict', { enum: ['accept', 'refine'] }),
    checkCategory: text('check_category'),
    checkConfidence: real('check_confidence'),
    /**
     * What the router's triage said of the question, when one ran: recorded beside the check's verdict
     * (in shadow mode it never acts), so the two can be compared on real traffic.
     */
    triageRoute: text('triage_route', { enum: ['fast', 'smart'] }),
    triageCategory: text('triage_category'),
    triageConfidence: real('triage_confidence'),
    tokens: integer('tokens').notNull(),
    costMicros: integer('cost_micros').notNull(),
    smartOnlyCostMicros: integer('smart_only_cost_micros').notNull(),
    question: text('question').notNull(),
    answer: text('answer').notNull(),
    /** The chat message that asked (Discord), so that /escalate can answer it again; null if none. */
    questionMessageId: text('question_message_id'),
    createdAt: integer('created_at').notNull(),
  },
  (table) => [
    index('turns_user_channel').on(table.userId, table.channelId, table.createdAt),
    index('turns_user_guild').on(table.guildId, table.userId, table.createdAt),
  ],
);

/**
 * A server's calls by UTC hour and model, summed: what /usage server and /usage bot read, so that a month
 * of the busiest server is a few hundred rows, not its tens of thousands of calls. Written by a trigger on
 * every usage_ledger insert, in the same transaction (migrations/sqlite/0007_usage_by_hour.sql), so it
 * always holds the ledger's sums; never written by the bot itself. `guild_key` is '' for direct messages,
 * `hour` the charge time's hours since the epoch. WITHOUT ROWID in the migration (clustered on its key).
 */
export const usageByHour = sqliteTable(
  'usage_by_hour',
  {
    guildKey: text('guild_key').notNull(),
    hour: integer('hour').notNull(),
    model: text('model').notNull(),
    calls: integer('calls').notNull(),
    inputTokens: integer('input_tokens').notNull(),
    cachedInputTokens: integer('cached_input_tokens').notNull(),
    cacheWriteTokens: integer('cache_write_tokens').notNull(),
    outputTokens: integer('output_tokens').notNull(),
    costMicros: integer('cost_micros').notNull(),
    smartCostMicros: integer('smart_cost_micros').notNull(),
  },
  (table) => [primaryKey({ columns: [table.guildKey, table.hour, table.model] })],
);

/**
 * A server's answered turns by UTC hour and escalation reason ('' for none), summed by a trigger on every
 * turns insert, as usage_by_hour is on the ledger's: /usage server's answers by reason and savings.
 */
export const answersByHour = sqliteTable(
  'answers_by_hour',
  {
    guildKey: text('guild_key').notNull(),
    hour: integer('hour').notNull(),
    reason: text('reason').notNull(),
    answers: integer('answers').notNull(),
    costMicros: integer('cost_micros').notNull(),
    smartOnlyCostMicros: integer('smart_only_cost_micros').notNull(),
  },
  (table) => [primaryKey({ columns: [table.guildKey, table.hour, table.reason] })],
);

/**
 * Answers the smart model was asked to improve (/escalate, the Escalate button): one row per answer, so
 * a second click finds it taken and charges nothing. A claim whose escalation did not happen is removed.
 */
export const escalations = sqliteTable('escalations', {
  turnId: text('turn_id').primaryKey(),
  requestedBy: text('requested_by').notNull(),
  requestedAt: integer('requested_at').notNull(),
});

/**
 * Budget notices already given: one per limit, window and threshold (80% and 100%), so that a user or a
 * server is told once per period.
 */
export const budgetNotices = sqliteTable(
  'budget_notices',
  {
    kind: text('kind', { enum: ['user', 'server'] }).notNull(),
    guildKey: text('guild_key').notNull(),
    userKey: text('user_key').notNull(),
    windowStart: integer('window_start').notNull(),
    percent: integer('percent').notNull(),
    notifiedAt: integer('notified_at').notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.kind, table.guildKey, table.userKey, table.windowStart, table.percent] }),
  ],
);

/** What a server's admins chose (/settings). A server without a row has the defaults. */
export const guildSettings = sqliteTable('guild_settings', {
  guildId: text('guild_id').primaryKey(),
  escalationMode: text('escalation_mode', { enum: ESCALATION_MODES }).notNull().default('auto'),
  showFooter: integer('show_footer', { mode: 'boolean' }).notNull().default(true),
  /** Where server-budget alerts go; null: nowhere. */
  alertsChannelId: text('alerts_channel_id'),
  /** /settings threads: answers go on in a thread opened from the question. */
  answersInThreads: integer('answers_in_threads', { mode: 'boolean' }).notNull().default(false),
  updatedBy: text('updated_by').notNull(),
  updatedAt: integer('updated_at').notNull(),
});

/** Channels where every message is answered without a mention (/settings channel add). */
export const answeredChannels = sqliteTable(
  'answered_channels',
  {
    guildId: text('guild_id').notNull(),
    channelId: text('channel_id').notNull(),
    addedBy: text('added_by').notNull(),
    addedAt: integer('added_at').notNull(),
  },
  (table) => [primaryKey({ columns: [table.guildId, table.channelId] })],
);

/** When a bot process started on which host, for the crash-loop backoff; old rows are pruned at each start. */
export const botStarts = sqliteTable('bot_starts', {
  id: integer('id').primaryKey(),
  startedAt: integer('started_at').notNull(),
  pid: integer('pid').notNull(),
  host: text('host').notNull().default(''),
});
