/**
 * What each database dialect provides to the dialect-free rules in ledger.ts, leases.ts and
 * settings-cache.ts: small stores that run the SQL and keep each operation in one transaction. The rules
 * (what a call may cost, whether it fits a budget, what is still waiting to be written) are written once
 * over these.
 */
import type {
  AuditEntry,
  Budget,
  BudgetChange,
  BudgetPeriod,
  BudgetScope,
  PeriodWindow,
} from '../core/budget.js';
import type { CallRecord, CallsQuery, ModelUsage, OverviewQuery, UsageOverview } from '../core/usage.js';
import type { NoticeKey } from '../core/notices.js';
import type { ServerSettings } from '../core/settings.js';
import type { CallContext, SettleResult } from '../core/ledger.js';
import type { Micros } from '../core/money.js';
import type { TokenUsage } from '../core/pricing.js';

/** How a ledger row came to be: a normal settle, a failed call, or a reservation swept after a crash or TTL. */
export const CALL_OUTCOMES = ['settled', 'failed', 'swept'] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

/** A counter row: what is spent and held in the current day, week and month of a member or a server. */
export interface CounterRow {
  dayStart: number;
  daySpentMicros: Micros;
  dayReservedMicros: Micros;
  weekStart: number;
  weekSpentMicros: Micros;
  weekReservedMicros: Micros;
  monthStart: number;
  monthSpentMicros: Micros;
  monthReservedMicros: Micros;
}

/** A stored budget that may apply to a member: their own, one of their roles', or a server-wide one. */
export interface BudgetRow extends Budget {
  scope: BudgetScope;
  /** The member or role; '' for the server-wide scopes. */
  subjectId: string;
}

/** Who a limit is counted for: a member of a server (or a DM user) and, in a server, the server. */
export interface CounterOwner {
  userId: string;
  guildId: string | null;
  roleIds: readonly string[];
}

/** What a reservation is decided on, read inside the reserve's transaction with the counter rows locked. */
export interface LimitSnapshot {
  user: CounterRow | undefined;
  /** undefined in DMs, or for a server whose counter row does not exist yet. */
  server: CounterRow | undefined;
  budgets: BudgetRow[];
}

/** The start of each window a charge at a moment falls in: one counter update moves all three. */
export interface WindowStarts {
  day: number;
  week: number;
  month: number;
}

/** A move of money between "reserved" and "spent" in the windows of one moment. */
export interface CounterDelta {
  owner: Pick<CounterOwner, 'userId' | 'guildId'>;
  windows: WindowStarts;
  spentMicros: Micros;
  reservedMicros: Micros;
}

export interface ReservationRow extends Omit<CallContext, 'roleIds'> {
  amountMicros: Micros;
  createdAt: number;
  expiresAt: number;
  /** The process (instance) that holds it, under a lease. */
  instanceId: string;
}

/** The most one limit's window may hold (spent + reserved) for a reservation to be granted. */
export interface LimitCeiling {
  kind: 'user' | 'server';
  period: BudgetPeriod;
  maxUsedMicros: Micros;
}

/** What the rules decide inside the reserve's transaction, once the counters are locked. */
export type ReserveDecision<Denied> =
  { ok: true; atMs: number; windows: WindowStarts } | { ok: false; denied: Denied };

/** A reservation to close: settled, failed (charging what the provider reported) or swept (its worst case). */
export interface CloseRequest {
  requestId: string;
  outcome: CallOutcome;
  usage: TokenUsage;
}

/** A settle of a reservation this process holds: everything its ledger row and counters need is known. */
export interface HeldSettle {
  requestId: string;
  userId: string;
  guildId: string | null;
  amountMicros: Micros;
  usage: TokenUsage;
  costMicros: Micros;
  smartCostMicros: Micros;
  /** The windows the reservation was made in (its charge lands there). */
  windows: WindowStarts;
}

/** What closing a reservation charges, computed by the rules from the reservation's own row. */
export interface Charge {
  costMicros: Micros;
  smartCostMicros: Micros;
  windows: WindowStarts;
}

export interface LedgerStore {
  /**
   * In one transaction: the lease of `instanceId` must be fresh (else 'lapsed', nothing written); the
   * counter rows of the member and the server are locked (created if missing) in a fixed order, so that
   * concurrent reserves queue instead of deciding on totals that are about to change; the budgets that may
   * apply are read; `decide` runs on what was read; a grant inserts the reservation and adds its amount to
   * every window's reserved total, before the locks are let go.
   *
   * `stillOpen` lists reservations whose settles this process has not written yet: the snapshot says which
   * of them are still open once the locks are held (a settle written meanwhile by this process's write
   * behind already counts in the rows).
   */
  reserve<Denied>(
    request: Omit<ReservationRow, 'createdAt' | 'expiresAt'> & {
      /** false: the caller knows the lease is fresh (see LeaseHolder.isSurelyFresh); the check may be skipped. */
      checkLease: boolean;
      owner: CounterOwner;
      ttlMs: number;
      /** This process's clock, which the reservation is made at unless a counter row is in a later window. */
      clockMs: number;
      /** The windows of `clockMs`: a counter row that does not exist yet starts with them. */
      createWindows: WindowStarts;
      /**
       * Given when nothing of this process waits to be written for the member: the ceiling of each limit
       * that budgets would set (see usageCeiling). A store may then reserve in one statement with budgets it
       * read before, granting only if they are still the stored ones, every counter row exists and is in
       * `createWindows`, and each limit's window holds no more than its ceiling; `decide` still runs on
       * the rows it locked. Otherwise, or when that does not grant, it reserves as above.
       */
      ceilingsOf?: (budgets: readonly BudgetRow[]) => LimitCeiling[];
    },
    stillOpen: readonly string[],
    decide: (snapshot: LimitSnapshot, openIds: ReadonlySet<string>) => ReserveDecision<Denied>,
  ): Promise<ReserveDecision<Denied> | { ok: false; lapsed: true }>;

  /**
   * Closes reservations in one transaction: each is removed, charged what `charge` says (a ledger row,
   * and its money moved from reserved to spent in the windows it was reserved in). A request with no open
   * reservation is 'duplicate' if its ledger row exists, else 'unknown'.
   */
  close(
    requests: readonly CloseRequest[],
    charge: (reservation: ReservationRow, request: CloseRequest) => Charge,
  ): Promise<SettleResult[]>;

  /**
   * Settles reservations this process holds, whose charge it already knows (the write behind's batch):
   * the same as `close` with outcome 'settled', in fewer round trips where the dialect can. Optional: the
   * rules fall back to `close`.
   */
  settleHeld?(settles: readonly HeldSettle[]): Promise<SettleResult[]>;

  /** Removes a reservation whose call never reached a provider, freeing its hold: no ledger row. */
  cancel(requestId: string, windowsOf: (createdAt: number) => WindowStarts): Promise<void>;

  /**
   * The counters and budgets of members, without locking (for /usage and standings), read at one moment
   * with which of `stillOpen` are still open (as in reserve): one snapshot per owner, in their order.
   */
  snapshots(
    owners: readonly CounterOwner[],
    stillOpen: readonly string[],
  ): Promise<{ snapshots: LimitSnapshot[]; openIds: Set<string> }>;

  /**
   * Reservations to charge at their worst case: held past their TTL, or by an instance whose lease has
   * expired (or that no longer exists), or by a process of this host that is gone.
   */
  staleReservations(sweep: {
    /** The ledger's clock, for reservations' TTLs (leases go by the database's own clock). */
    nowMs: number;
    ownInstanceId: string;
    /** Instances of this host whose process is gone: swept at once, without waiting for their lease. */
    deadInstanceIds: readonly string[];
  }): Promise<string[]>;

  openReservationCount(): Promise<number>;

  /** Sets (or, with null, removes) a budget and audits the change in one transaction; returns the old one. */
  writeBudget(change: BudgetChange, budget: Budget | null, atMs: number): Promise<Budget | undefined>;
  budgetOf(guildId: string, scope: BudgetScope, subjectId: string): Promise<Budget | undefined>;
  auditLog(guildId: string, limit: number): Promise<AuditEntry[]>;
  /** Every role budget of a server, for /budget show. */
  roleBudgets(guildId: string): Promise<{ roleId: string; budget: Budget }[]>;
}

/** A bot process registered under a lease renewed on the database's clock. */
export interface InstanceRow {
  id: string;
  /** This host (hostname and PID namespace): processes on one host can check each other's PIDs. */
  host: string;
  pid: number;
  /** When the process started (ms): a PID with another start time is an earlier process that had it. */
  processStartedAt: number;
}

export interface InstanceStore {
  /** Registers (or re-registers) an instance with a lease of `ttlMs` from the database's clock now. */
  register(instance: InstanceRow, ttlMs: number): Promise<void>;
  /** Extends a lease that has not expired; false if it had (the instance must recover first). */
  renew(id: string, ttlMs: number): Promise<boolean>;
  /** Whether an instance's lease is fresh by the database's clock. */
  isFresh(id: string): Promise<boolean>;
  /** The other instances registered on a host, for the PID check. */
  onHost(host: string): Promise<InstanceRow[]>;
  /** Removes instances whose lease expired long ago and that hold nothing. */
  prune(olderThanMs: number): Promise<number>;
  remove(id: string): Promise<void>;
}

/** A turn as stored: the record's fields, flattened into columns. */
export interface TurnRow {
  turnId: string;
  userId: string;
  guildId: string | null;
  channelId: string | null;
  status: 'answered' | 'denied' | 'refused';
  models: string;
  finalModel: string;
  escalationSource: string | null;
  escalationReason: string | null;
  category: string | null;
  confidence: number | null;
  tokens: number;
  costMicros: Micros;
  smartOnlyCostMicros: Micros;
  question: string;
  answer: string;
  questionMessageId: string | null;
  checkVerdict: 'accept' | 'refine' | null;
  checkCategory: string | null;
  checkConfidence: number | null;
  triageRoute: 'fast' | 'smart' | null;
  triageCategory: string | null;
  triageConfidence: number | null;
  createdAt: number;
}

export interface TurnStore {
  /** Writes turns in one transaction; a turn already written is left as it is. */
  insert(rows: readonly TurnRow[]): Promise<void>;
  latest(userId: string, channelId: string | null): Promise<TurnRow | undefined>;
  byId(turnId: string): Promise<TurnRow | undefined>;
  claimEscalation(turnId: string, userId: string, atMs: number): Promise<boolean>;
  releaseEscalation(turnId: string): Promise<void>;
}

/** A server's stored settings and answered channels, uncached (settings.ts caches them). */
export interface SettingsRecords {
  settingsOf(guildId: string): Promise<ServerSettings | undefined>;
  /**
   * Writes only the settings in `change` (a server without a row gets the defaults for the rest), so two
   * processes changing different settings of one server at once both keep their change.
   */
  update(guildId: string, change: Partial<ServerSettings>, updatedBy: string, atMs: number): Promise<void>;
  answeredChannelsOf(guildId: string): Promise<string[]>;
  addAnsweredChannel(guildId: string, channelId: string, addedBy: string, atMs: number): Promise<void>;
  removeAnsweredChannel(guildId: string, channelId: string): Promise<void>;
  /**
   * Tells every process that a server's settings changed (PostgreSQL: NOTIFY); `listen` hears it from any
   * process. Without it (SQLite), caches expire after a short time instead.
   */
  announce?(guildId: string): Promise<void>;
  /** `onChange(null)`: changes may have been missed (the connection dropped); forget every server. */
  listen?(onChange: (guildId: string | null) => void): Promise<void>;
}

/** Claims that exactly one process wins: notices given, events answered. */
export interface ClaimStore {
  /** Records a budget notice; true if it had not been given before. */
  claimNotice(key: NoticeKey, atMs: number): Promise<boolean>;
  /** Records that an event is being answered; true for the first process only. */
  claimEvent(eventId: string, instanceId: string, atMs: number): Promise<boolean>;
  /** Forgets event claims older than a moment (an event is never delivered again a day later). */
  pruneEvents(beforeMs: number): Promise<number>;
}

/** Starts of the bot per host, for the crash-loop backoff. */
export interface StartStore {
  /** Records this start and returns the host's earlier starts since `sinceMs`. */
  recordStart(host: string, pid: number, atMs: number, sinceMs: number): Promise<number[]>;
}

/** The /usage queries (callers write what waits first); see UsageReports in src/core/ports.ts. */
export interface UsageStore {
  byModel(userId: string, guildId: string | null, window: PeriodWindow): Promise<ModelUsage[]>;
  overview(query: OverviewQuery): Promise<UsageOverview>;
  calls(query: CallsQuery): AsyncIterable<CallRecord>;
}

/** One database dialect's stores, on a database opened and migrated (see sqlite/index.ts, postgres/index.ts). */
export interface DialectStores {
  readonly dialect: 'sqlite' | 'postgres';
  ledger: LedgerStore;
  instances: InstanceStore & StartStore;
  turns: TurnStore;
  settings: SettingsRecords;
  claims: ClaimStore;
  usage: UsageStore;
  /** Throws unless the database answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What reading a database without touching it needs (`npm run report`): the usage queries and budgets. */
export interface ReadOnlyStores {
  readonly dialect: 'sqlite' | 'postgres';
  ledger: Pick<LedgerStore, 'snapshots' | 'roleBudgets'>;
  usage: UsageStore;
  close(): Promise<void>;
}
