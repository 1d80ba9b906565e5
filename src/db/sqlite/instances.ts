import { and, eq, lt, notInArray } from 'drizzle-orm';
import type { InstanceRow, InstanceStore, StartStore } from '../store.js';
import { type AppDatabase, immediate } from './database.js';
import { SQLITE_NOW_MS } from './ledger-store.js';
import { botStarts, instances, reservations } from './schema.js';

/** Bot processes under leases, on SQLite (whose clock is the host's). */
export class SqliteInstanceStore implements InstanceStore, StartStore {
  private readonly renewLease;
  private readonly isLeaseFresh;

  constructor(private readonly db: AppDatabase) {
    this.renewLease = db.$client.prepare<[{ id: string; ttlMs: number }]>(
      `UPDATE instances SET lease_expires_at = ${SQLITE_NOW_MS} + @ttlMs
       WHERE id = @id AND lease_expires_at > ${SQLITE_NOW_MS}`,
    );
    this.isLeaseFresh = db.$client
      .prepare<[{ id: string }], number>(
        `SELECT lease_expires_at > ${SQLITE_NOW_MS} FROM instances WHERE id = @id`,
      )
      .pluck();
  }

  async register(instance: InstanceRow, ttlMs: number): Promise<void> {
    this.db.$client
      .prepare(
        `INSERT INTO instances (id, host, pid, process_started_at, started_at, lease_expires_at)
         VALUES (@id, @host, @pid, @processStartedAt, ${SQLITE_NOW_MS}, ${SQLITE_NOW_MS} + @ttlMs)
         ON CONFLICT (id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at`,
      )
      .run({ ...instance, ttlMs });
  }

  async renew(id: string, ttlMs: number): Promise<boolean> {
    return this.renewLease.run({ id, ttlMs }).changes === 1;
  }

  async isFresh(id: string): Promise<boolean> {
    return this.isLeaseFresh.get({ id }) === 1;
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
      .where(eq(instances.host, host))
      .all();
  }

  async prune(olderThanMs: number): Promise<number> {
    const holding = this.db.selectDistinct({ id: reservations.instanceId }).from(reservations);
    return this.db
      .delete(instances)
      .where(and(lt(instances.leaseExpiresAt, olderThanMs), notInArray(instances.id, holding)))
      .run().changes;
  }

  async remove(id: string): Promise<void> {
    this.db.delete(instances).where(eq(instances.id, id)).run();
  }

  async recordStart(host: string, pid: number, atMs: number, sinceMs: number): Promise<number[]> {
    return immediate(this.db, () => {
      this.db.delete(botStarts).where(lt(botStarts.startedAt, sinceMs)).run();
      const earlier = this.db
        .select({ startedAt: botStarts.startedAt })
        .from(botStarts)
        .where(eq(botStarts.host, host))
        .all()
        .map((row) => row.startedAt);
      this.db.insert(botStarts).values({ startedAt: atMs, pid, host }).run();
      return earlier;
    });
  }
}
