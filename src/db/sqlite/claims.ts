import { lt } from 'drizzle-orm';
import type { NoticeKey } from '../../core/notices.js';
import type { ClaimStore } from '../store.js';
import type { AppDatabase } from './database.js';
import { budgetNotices, eventClaims } from './schema.js';

/** Notices given and events answered, on SQLite: the primary key decides who was first. */
export class SqliteClaimStore implements ClaimStore {
  constructor(private readonly db: AppDatabase) {}

  async claimNotice(key: NoticeKey, atMs: number): Promise<boolean> {
    const { changes } = this.db
      .insert(budgetNotices)
      .values({
        kind: key.kind,
        guildKey: key.guildId ?? '',
        userKey: key.userId,
        windowStart: key.windowStartMs,
        percent: key.percent,
        notifiedAt: atMs,
      })
      .onConflictDoNothing()
      .run();
    return changes === 1;
  }

  async claimEvent(eventId: string, instanceId: string, atMs: number): Promise<boolean> {
    const { changes } = this.db
      .insert(eventClaims)
      .values({ eventId, instanceId, claimedAt: atMs })
      .onConflictDoNothing()
      .run();
    return changes === 1;
  }

  async pruneEvents(beforeMs: number): Promise<number> {
    return this.db.delete(eventClaims).where(lt(eventClaims.claimedAt, beforeMs)).run().changes;
  }
}
