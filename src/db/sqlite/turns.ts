import { and, desc, eq, isNull } from 'drizzle-orm';
import type { TurnRow, TurnStore } from '../store.js';
import { type AppDatabase, immediate } from './database.js';
import { escalations, turns } from './schema.js';

/** Turns on SQLite: one row each (see turns.ts for the record they come from). */
export class SqliteTurnStore implements TurnStore {
  private readonly insertRow;

  constructor(private readonly db: AppDatabase) {
    this.insertRow = db.$client.prepare<[TurnRow]>(
      `INSERT INTO turns (turn_id, user_id, guild_id, channel_id, status, models, final_model, escalation_source,
         escalation_reason, category, confidence, tokens, cost_micros, smart_only_cost_micros, question, answer,
         question_message_id, check_verdict, check_category, check_confidence, triage_route, triage_category,
         triage_confidence, created_at)
       VALUES (@turnId, @userId, @guildId, @channelId, @status, @models, @finalModel, @escalationSource,
         @escalationReason, @category, @confidence, @tokens, @costMicros, @smartOnlyCostMicros, @question, @answer,
         @questionMessageId, @checkVerdict, @checkCategory, @checkConfidence, @triageRoute, @triageCategory,
         @triageConfidence, @createdAt)
       ON CONFLICT DO NOTHING`,
    );
  }

  async insert(rows: readonly TurnRow[]): Promise<void> {
    immediate(this.db, () => {
      for (const row of rows) this.insertRow.run(row);
    });
  }

  async latest(userId: string, channelId: string | null): Promise<TurnRow | undefined> {
    return this.db
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
      .limit(1)
      .get();
  }

  async byId(turnId: string): Promise<TurnRow | undefined> {
    return this.db.select().from(turns).where(eq(turns.turnId, turnId)).get();
  }

  async claimEscalation(turnId: string, userId: string, atMs: number): Promise<boolean> {
    const { changes } = this.db
      .insert(escalations)
      .values({ turnId, requestedBy: userId, requestedAt: atMs })
      .onConflictDoNothing()
      .run();
    return changes === 1;
  }

  async releaseEscalation(turnId: string): Promise<void> {
    this.db.delete(escalations).where(eq(escalations.turnId, turnId)).run();
  }
}
