import type { PeriodWindow } from '../core/budget.js';
import type { Storage, UsageReports } from '../core/ports.js';
import type { PriceTable } from '../core/pricing.js';
import { RESTART_WINDOW_MS } from '../core/restarts.js';
import type { CallRecord, CallsQuery, ModelUsage, OverviewQuery, UsageOverview } from '../core/usage.js';
import { BudgetBook } from './budgets.js';
import { Lease } from './leases.js';
import { Ledger } from './ledger.js';
import { BudgetNotices } from './notices.js';
import { CachedSettings } from './settings.js';
import type { DefaultBudgets } from './standings.js';
import type { DialectStores } from './store.js';
import { TurnBook } from './turns.js';

/** Where the bot keeps its money and records: PostgreSQL when a URL is given, else a SQLite file. */
export interface DatabaseLocation {
  databaseUrl?: string | undefined;
  databasePath: string;
}

export interface StorageOptions extends DefaultBudgets, DatabaseLocation {
  prices: PriceTable;
  smartModel: string;
  leaseMs?: number | undefined;
  reservationTtlMs?: number | undefined;
  /** The ledger's clock (tests move it); leases go by the database's own. */
  now?: () => number;
  /** How often left-behind reservations are looked for (default: a third of the lease). */
  sweepIntervalMs?: number | undefined;
  log: StorageLog;
}

/** What storage tells the operator: one line each, with the error object for the log's serializer. */
export interface StorageLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Event claims older than this are forgotten: Discord never delivers an event again so late. */
const EVENT_CLAIM_LIFETIME_MS = 24 * 60 * 60_000;
/** Instances whose lease expired this long ago and that hold nothing are removed. */
const INSTANCE_LIFETIME_MS = 24 * 60 * 60_000;

/** The storage of a process, with what tests and the operator's views reach beyond the ports. */
export interface AppStorage extends Storage {
  ledger: Ledger;
  turns: TurnBook;
  settings: CachedSettings;
  lease: Lease;
  stores: DialectStores;
  /** Charges reservations left behind (expired leases, dead processes of this host, TTLs); returns how many. */
  sweep(): Promise<number>;
  /** Stops renewing the lease and closes the database without releasing anything, as a crash would. */
  abandon(): Promise<void>;
}

/**
 * Opens the database (migrating it once, however many processes start together), registers this
 * process's instance under a lease, charges reservations that processes left behind, and keeps sweeping
 * for them while it runs.
 */
export async function openStorage(options: StorageOptions): Promise<AppStorage> {
  // One plain line: pg attaches the dropped client (its statements, its settings) to the error.
  const { stores, applied } = await openDialect(options, (error) =>
    options.log.error(
      { reason: error.message, code: (error as { code?: unknown }).code },
      'a database connection failed; reconnecting',
    ),
  );
  if (applied > 0) options.log.info({ applied, dialect: stores.dialect }, 'database migrated');
  const now = options.now ?? Date.now;
  const onWriteError = (what: string) => (error: unknown) =>
    options.log.error({ err: error }, `could not write ${what}; will retry`);

  // The lease writes what the ledger waits to write before it renews a lapsed lease: they refer to each
  // other, so the lease reaches the ledger through a reference set just below.
  const ledgerRef: { current?: Ledger } = {};
  const lease = new Lease(stores.instances, {
    ttlMs: options.leaseMs,
    beforeRecovery: async () => ledgerRef.current?.flush(),
    onLapse: () =>
      options.log.warn(
        {},
        'this process lost its lease (it was paused or cut off): renewing it before reserving',
      ),
  });
  const ledger = new Ledger(stores.ledger, lease, {
    ...options,
    now,
    onWriteError: onWriteError('settled calls'),
  });
  ledgerRef.current = ledger;
  const turns = new TurnBook(stores.turns, onWriteError('turns'), now);
  const settings = new CachedSettings(stores.settings, now);
  const budgets = new BudgetBook(ledger, stores.ledger, now);
  const notices = new BudgetNotices(ledger, stores.claims, now);
  const flush = async () => {
    await Promise.all([ledger.flush(), turns.flush()]);
  };
  const usage: UsageReports = {
    async byModel(userId: string, guildId: string | null, window: PeriodWindow): Promise<ModelUsage[]> {
      await flush();
      return stores.usage.byModel(userId, guildId, window);
    },
    async overview(query: OverviewQuery): Promise<UsageOverview> {
      await flush();
      return stores.usage.overview(query);
    },
    async *calls(query: CallsQuery): AsyncIterable<CallRecord> {
      await flush();
      yield* stores.usage.calls(query);
    },
  };

  const sweep = async () => {
    const swept = await ledger.sweep({ deadInstanceIds: await lease.deadOnThisHost() });
    if (swept > 0) {
      options.log.warn(
        { swept },
        'charged reservations left open by a stopped or vanished process at their reserved amount',
      );
    }
    return swept;
  };

  try {
    await lease.start();
    await settings.listen();
    await sweep();
  } catch (error) {
    await stores.close();
    throw error;
  }

  const sweepIntervalMs = options.sweepIntervalMs ?? lease.ttlMs / 3;
  const sweeper = setInterval(() => {
    void (async () => {
      await sweep();
      await stores.claims.pruneEvents(Date.now() - EVENT_CLAIM_LIFETIME_MS);
      await stores.instances.prune(Date.now() - INSTANCE_LIFETIME_MS);
    })().catch((error: unknown) =>
      options.log.error({ err: error }, 'could not sweep reservations; will retry'),
    );
  }, sweepIntervalMs);
  sweeper.unref();

  let isClosed = false;
  return {
    dialect: stores.dialect,
    ledger,
    budgets,
    turns,
    settings,
    usage,
    notices,
    lease,
    stores,
    events: { claim: (eventId) => stores.claims.claimEvent(eventId, lease.instanceId, now()) },
    flush,
    sweep,
    async health() {
      try {
        await stores.ping();
      } catch (error) {
        return { ok: false, reason: `the database does not answer (${(error as Error).message})` };
      }
      if (!(await lease.check())) return { ok: false, reason: "this process's lease has lapsed" };
      return { ok: true };
    },
    recordStart: (nowMs, shards) =>
      stores.instances.recordStart(
        shards === '' ? lease.host : `${lease.host} shards ${shards}`,
        process.pid,
        nowMs,
        nowMs - RESTART_WINDOW_MS,
      ),
    async close() {
      if (isClosed) return;
      isClosed = true;
      clearInterval(sweeper);
      try {
        await flush();
        await lease.stop();
      } finally {
        await stores.close();
      }
    },
    async abandon() {
      if (isClosed) return;
      isClosed = true;
      clearInterval(sweeper);
      lease.abandon();
      await stores.close();
    },
  };
}

async function openDialect(
  location: DatabaseLocation,
  onError: (error: Error) => void,
): Promise<{ stores: DialectStores; applied: number }> {
  if (location.databaseUrl) {
    const { openPostgres } = await import('./postgres/index.js');
    return openPostgres(location.databaseUrl, onError);
  }
  const { openSqlite } = await import('./sqlite/index.js');
  return openSqlite(location.databasePath);
}
