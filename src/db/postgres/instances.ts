import { eq } from 'drizzle-orm';
import type { InstanceRow, InstanceStore, StartStore } from '../store.js';
import { inTransaction, POSTGRES_NOW_MS, type PgDatabase } from './database.js';
import { instances } from './schema.js';

/** Bot processes under leases, on PostgreSQL: every lease is judged by the database's clock. */
export class PostgresInstanceStore implements InstanceStore, StartStore {
  constructor(private readonly db: PgDatabase) {}

  async register(instance: InstanceRow, ttlMs: number): Promise<void> {
    await this.db.$client.query(
      `INSERT INTO instances (id, host, pid, process_started_at, started_at, lease_expires_at)
       VALUES ($1, $2, $3, $4, ${POSTGRES_NOW_MS}, ${POSTGRES_NOW_MS} + $5)
       ON CONFLICT (id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at`,
      [instance.id, instance.host, instance.pid, instance.processStartedAt, ttlMs],
    );
  }

  async renew(id: string, ttlMs: number): Promise<boolean> {
    const result = await this.db.$client.query({
      name: 'tierbot_renew_lease',
      text: `UPDATE instances SET lease_expires_at = ${POSTGRES_NOW_MS} + $2
             WHERE id = $1 AND lease_expires_at > ${POSTGRES_NOW_MS}`,
      values: [id, ttlMs],
    });
    return result.rowCount === 1;
  }

  async isFresh(id: string): Promise<boolean> {
    const result = await this.db.$client.query<{ fresh: boolean }>({
      name: 'tierbot_lease_fresh',
      text: `SELECT lease_expires_at > ${POSTGRES_NOW_MS} AS fresh FROM instances WHERE id = $1`,
      values: [id],
    });
    return result.rows[0]?.fresh === true;
  }

  async onHost(host: string): Promise<InstanceRow[]> {
    return this.db
      .select({
        id: instances.id,
        host: instances.host,
        pid: instances.pid,
        processStartedAt: instances.processStartedAt,
      })
      .from(instances)
      .where(eq(instances.host, host));
  }

  async prune(olderThanMs: number): Promise<number> {
    const result = await this.db.$client.query(
      `DELETE FROM instances i WHERE i.lease_expires_at < $1
         AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.instance_id = i.id)`,
      [olderThanMs],
    );
    return result.rowCount ?? 0;
  }

  async remove(id: string): Promise<void> {
    await this.db.delete(instances).where(eq(instances.id, id));
  }

  async recordStart(host: string, pid: number, atMs: number, sinceMs: number): Promise<number[]> {
    return inTransaction(this.db.$client, async (client) => {
      await client.query('DELETE FROM bot_starts WHERE started_at < $1', [sinceMs]);
      const earlier = await client.query<{ startedAt: number }>(
        'SELECT started_at AS "startedAt" FROM bot_starts WHERE host = $1',
        [host],
      );
      await client.query('INSERT INTO bot_starts (started_at, pid, host) VALUES ($1, $2, $3)', [
        atMs,
        pid,
        host,
      ]);
      return earlier.rows.map((row) => row.startedAt);
    });
  }
}
