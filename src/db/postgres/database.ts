import { fileURLToPath } from 'node:url';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import pg from 'pg';
import * as schema from './schema.js';

export type PgDatabase = NodePgDatabase<typeof schema> & { $client: pg.Pool };

export const POSTGRES_MIGRATIONS_FOLDER = fileURLToPath(
  new URL('../../../migrations/postgres', import.meta.url),
);

/** PostgreSQL's clock in ms: leases are judged by the database's clock, the same for every host. */
export const POSTGRES_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * Connections per process. A reserve holds one for a few round trips; the write behind holds one per
 * batch. Eight processes × 10 stay under PostgreSQL's default max_connections of 100.
 */
const POOL_SIZE = 10;
/** A statement that waits longer than this (a lock held by a stuck process) fails instead of hanging a turn. */
const STATEMENT_TIMEOUT_MS = 15_000;
/**
 * A transaction left open this long is ended by the server: ours last milliseconds, so only a process
 * that was paused (or cut off) mid-transaction meets it — and the row locks it held are let go.
 */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000;

/**
 * int8 and numeric come back as JavaScript numbers, not strings: money is integer micro-USD well under
 * 2^53 (nine billion dollars), and SUM() of bigints is a numeric.
 */
const PARSE_AS_NUMBER = new Set([20, 1700]);
export const PG_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    PARSE_AS_NUMBER.has(oid) ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export function openPool(url: string, onError: (error: Error) => void, size = POOL_SIZE): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: size,
    types: PG_TYPES,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    application_name: 'tierbot',
  });
  // An idle connection the server dropped (a restart, a failover) is an event, not a crash.
  pool.on('error', onError);
  acknowledgeErrorsWhileCheckedOut(pool);
  return pool;
}

/**
 * pg-pool listens for a connection's errors only while it is idle, and an 'error' event nobody listens for
 * ends the process: a connection the server drops while it is checked out (for a transaction, between two
 * of its statements) would take the bot down. Each connection gets a listener for its whole life that only
 * acknowledges the event: the statement the drop fails rejects on its own, and pg-pool does not put a
 * connection that is no longer queryable back in the pool.
 */
export function acknowledgeErrorsWhileCheckedOut(pool: pg.Pool): void {
  pool.on('connect', (client) => client.on('error', () => {}));
}

export function openDatabase(pool: pg.Pool): PgDatabase {
  return drizzle(pool, { schema }) as PgDatabase;
}

/** The bookkeeping table drizzle-kit and drizzle's own migrator use, in the schema they use. */
const MIGRATIONS_SCHEMA = 'drizzle';
const MIGRATIONS_TABLE = '__drizzle_migrations';
/** The advisory lock migrations run under: any 64-bit number that no other code of the database uses. */
export const MIGRATION_LOCK = 7_354_991_020_214_001;

/**
 * Applies the migrations drizzle-kit generated into migrations/postgres, once, however many hosts start
 * together: each process takes one advisory lock before it reads which migrations ran, so the second
 * waits and then finds nothing to do (drizzle's own `migrate()` reads first and can apply one twice).
 * Every migration of a start runs in one transaction with its bookkeeping.
 */
export async function migrate(
  pool: pg.Pool,
  migrationsFolder = POSTGRES_MIGRATIONS_FOLDER,
): Promise<{ applied: number }> {
  const migrations = readMigrationFiles({ migrationsFolder });
  const client = await pool.connect();
  try {
    // No statement timeout while migrating: a process waits for the lock as long as another migrates, and
    // a migration's statement (an index on a large ledger) may run for minutes. Reset before the
    // connection goes back to the pool.
    await client.query('SET statement_timeout = 0');
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query('BEGIN');
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${MIGRATIONS_SCHEMA}"`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS "${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`,
      );
      const last = await client.query<{ created_at: number }>(
        `SELECT created_at FROM "${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}" ORDER BY created_at DESC LIMIT 1`,
      );
      const lastAt = last.rows[0]?.created_at;
      let applied = 0;
      for (const migration of migrations) {
        if (lastAt !== undefined && Number(lastAt) >= migration.folderMillis) continue;
        for (const statement of migration.sql) {
          if (statement.trim() !== '') await client.query(statement);
        }
        await client.query(
          `INSERT INTO "${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}" (hash, created_at) VALUES ($1, $2)`,
          [migration.hash, migration.folderMillis],
        );
        applied += 1;
      }
      await client.query('COMMIT');
      return { applied };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    }
  } finally {
    await client.query('RESET statement_timeout').catch(() => {});
    client.release();
  }
}

/**
 * A transaction whose bracketing statements travel with the work's own: BEGIN in one batch with the first
 * statement, COMMIT in one batch with the last (one Sync each, so one round trip each). node-postgres waits
 * for every query's answer before it sends the next, so `inTransaction`'s two-statement transaction costs
 * four round trips and holds its row locks across three of them; this one costs two and holds them across
 * one, which matters when many processes queue on one server's counter row.
 *
 * It is for the ledger's hot statements, and runs them on plans made once per connection that find rows
 * by their keys (HOT_PLANS, after BEGIN):
 * - generic plans: the values do not change the best plan, and PostgreSQL's default would plan some of
 *   them afresh at every execution, its estimate for a plan that knows the arrays' lengths being lower.
 *   Planning the settle's statement cost 320 µs of the server's processor per settle, more than running it;
 * - index scans, never sequential ones: the tables they touch are small by their statistics (open
 *   reservations, a counter row per member) but not on disk, where every reserve and settle leaves dead
 *   row versions until autovacuum comes (a minute or more). A plan made while a table looked empty
 *   scanned all of them on every execution: 8 processes on a new database made 10,625 pairs with 6,726
 *   sequential scans of reservations and 42,341 of spend_counters.
 */
export interface BatchedTransaction {
  /** Runs a statement (the first one also begins the transaction). */
  query<Row extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<Row>>;
  /** Runs the transaction's last statement and commits with it. */
  queryAndCommit<Row extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<Row>>;
}

/** Runs `work` in one transaction on one pooled connection (see {@link BatchedTransaction}); rolls back if it throws. */
export async function inBatchedTransaction<T>(
  pool: pg.Pool,
  work: (transaction: BatchedTransaction) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  type State = 'new' | 'open' | 'committed';
  // Changed by `run`, which the compiler's narrowing of a local cannot see.
  let state = 'new' as State;
  let isBroken = false;
  const run = async <Row extends pg.QueryResultRow>(config: pg.QueryConfig, commit: boolean) => {
    const begin = state === 'new';
    // Until the batch's answer, a failure may have left the transaction open: roll back to be sure.
    state = 'open';
    const results = await new Promise<pg.QueryResult<Row> | pg.QueryResult<Row>[]>((resolve, reject) => {
      void client.query(
        new BatchedQuery(config, { begin, commit }, (error, result) => {
          if (error) {
            // pg counts a named statement as prepared on the first ParseComplete of its query, which here
            // may be BEGIN's: had the batch failed before the statement's own Parse, the connection would
            // never prepare it again. It is not given back to the pool.
            if (begin && config.name) isBroken = true;
            reject(error);
          } else resolve(result as pg.QueryResult<Row> | pg.QueryResult<Row>[]);
        }),
      );
    });
    if (commit) state = 'committed';
    // One result per statement of the batch (BEGIN's, HOT_PLANS', the statement's, COMMIT's); alone, not
    // in an array.
    const result = Array.isArray(results) ? results[begin ? 1 + HOT_PLANS.length : 0] : results;
    if (!result) throw new Error('PostgreSQL answered a batch without its statement');
    return result;
  };
  try {
    const result = await work({
      query: (config) => run(config, false),
      queryAndCommit: (config) => run(config, true),
    });
    if (state === 'open') await client.query('COMMIT');
    return result;
  } catch (error) {
    if (state === 'open') {
      // A connection that cannot even roll back is not given back to the pool.
      await client.query('ROLLBACK').catch(() => {
        isBroken = true;
      });
    }
    throw error;
  } finally {
    client.release(isBroken);
  }
}

/** The parts of node-postgres's connection a batch writes with (pg's own Query uses the same). */
interface ProtocolWriter {
  parse(query: { text: string; name: string; types: unknown[] }): void;
  bind(config: { portal: string; statement: string; values: unknown[] }): void;
  execute(config: { portal: string; rows?: number }): void;
  sync(): void;
}

/**
 * node-postgres's Query with BEGIN (and HOT_PLANS) sent before the statement and COMMIT after it, before
 * the one Sync.
 * Within one Sync the server runs the messages in order and stops at the first error (so COMMIT never
 * runs after a failed statement, and the transaction is left for the caller to roll back); pg's Query
 * gathers one result per CommandComplete. It overrides the two steps of pg's Query that write the
 * statement (`prepare`, which writes Parse/Bind/Describe and calls `_getRows`, which writes Execute and
 * Sync), unchanged through pg 8.
 */
class BatchedQuery extends pg.Query {
  constructor(
    config: pg.QueryConfig,
    private readonly edges: { begin: boolean; commit: boolean },
    callback: (error: Error | undefined, result: unknown) => void,
  ) {
    // Always the extended protocol (a statement without values would otherwise go alone, as a simple query).
    // (pg reads `queryMode`; its types do not list it.)
    super({ ...config, queryMode: 'extended' } as pg.QueryConfig, callback as never);
  }

  prepare(connection: ProtocolWriter): void {
    if (this.edges.begin) {
      writeStatement(connection, 'BEGIN');
      for (const setting of HOT_PLANS) writeStatement(connection, setting);
    }
    (pg.Query.prototype as unknown as { prepare(connection: ProtocolWriter): void }).prepare.call(
      this,
      connection,
    );
  }

  _getRows(connection: ProtocolWriter, rows: number | undefined): void {
    connection.execute({ portal: '', rows });
    if (this.edges.commit) writeStatement(connection, 'COMMIT');
    connection.sync();
  }
}

/** What a batched transaction runs after BEGIN: plans made once per connection, finding rows by key. */
const HOT_PLANS = ['SET LOCAL plan_cache_mode = force_generic_plan', 'SET LOCAL enable_seqscan = off'];

/** Parse, Bind and Execute of a statement without parameters, in the unnamed statement and portal. */
function writeStatement(connection: ProtocolWriter, text: string): void {
  connection.parse({ text, name: '', types: [] });
  connection.bind({ portal: '', statement: '', values: [] });
  connection.execute({ portal: '' });
}

/** Runs `work` in one transaction on one pooled connection; rolls back if it throws. */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let isBroken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // A connection that cannot even roll back is not given back to the pool.
    await client.query('ROLLBACK').catch(() => {
      isBroken = true;
    });
    throw error;
  } finally {
    client.release(isBroken);
  }
}
