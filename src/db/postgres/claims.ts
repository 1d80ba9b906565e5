import { lt } from 'drizzle-orm';
import type { NoticeKey } from '../../core/notices.js';
import type { ClaimStore } from '../store.js';
import type { PgDatabase } from './database.js';
import { budgetNotices, eventClaims } from './schema.js';

/** Notices given and events answered, on PostgreSQL: the primary key decides who was first. */
export class PostgresClaimStore implements ClaimStore {
  constructor(private readonly db: PgDatabase) {}

  async claimNotice(key: NoticeKey, atMs: number): Promise<boolean> {
    const inserted = await this.db
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
      .returning({ percent: budgetNotices.percent });
    return inserted.length === 1;
  }

  async claimEvent(eventId: string, instanceId: string, atMs: number): Promise<boolean> {
    const result = await this.db.$client.query({
      name: 'tierbot_claim_event',
      text: 'INSERT INTO event_claims (event_id, instance_id, claimed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      values: [eventId, instanceId, atMs],
    });
    return result.rowCount === 1;
  }

  async pruneEvents(beforeMs: number): Promise<number> {
    const deleted = await this.db
      .delete(eventClaims)
      .where(lt(eventClaims.claimedAt, beforeMs))
      .returning({ eventId: eventClaims.eventId });
    return deleted.length;
  }
}
