import { and, desc, eq, isNull } from 'drizzle-orm';
import type { TurnRow, TurnStore } from '../store.js';
import type { PgDatabase } from './database.js';
import { escalations, turns } from './schema.js';

/** Turns on PostgreSQL: one row each (see ../turns.ts for the record they come from). */
export class PostgresTurnStore implements TurnStore {
  constructor(private readonly db: PgDatabase) {}

  async insert(rows: readonly TurnRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db
      .insert(turns)
      .values([...rows])
      .onConflictDoNothing();
  }

  async latest(userId: string, channelId: string | null): Promise<TurnRow | undefined> {
    const [row] = await this.db
      .select()
      .from(turns)
      .where(
        and(
          eq(turns.userId, userId),
          channelId === null ? isNull(turns.channelId) : eq(turns.channelId, channelId),
          eq(turns.status, 'answered'),
        ),
      )
      .orderBy(desc(turns.createdAt))
      .limit(1);
    return row;
  }

  async byId(turnId: string): Promise<TurnRow | undefined> {
    const [row] = await this.db.select().from(turns).where(eq(turns.turnId, turnId));
    return row;
  }

  async claimEscalation(turnId: string, userId: string, atMs: number): Promise<boolean> {
    const inserted = await this.db
      .insert(escalations)
      .values({ turnId, requestedBy: userId, requestedAt: atMs })
      .onConflictDoNothing()
      .returning({ turnId: escalations.turnId });
    return inserted.length === 1;
  }

  async releaseEscalation(turnId: string): Promise<void> {
    await this.db.delete(escalations).where(eq(escalations.turnId, turnId));
  }
}
