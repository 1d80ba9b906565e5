import { and, desc, eq, isNull } from 'drizzle-orm';
import type { CheckCategory } from '../core/escalation.js';
import type { EscalationSource, TurnLog, TurnRecord } from '../core/turn.js';
import { type AppDatabase, flushBeforeClose } from './database.js';
import { escalations, turns } from './schema.js';
import { WriteBehind } from './write-behind.js';

/**
 * Turns on SQLite: one row each, written behind the answer (a turn is recorded before its answer's last
 * edit, and nobody waits for the commit).
 */
export class SqliteTurnLog implements TurnLog {
  private readonly insert;
  private readonly writes: WriteBehind<TurnRecord>;

  constructor(
    private readonly db: AppDatabase,
    onWriteError: (error: unknown) => void = (error) => {
      throw error;
    },
  ) {
    const insertAll = db.$client.transaction((records: readonly TurnRecord[]) => {
      for (const record of records) this.write(record);
    });
    this.writes = new WriteBehind((records) => insertAll.immediate(records), onWriteError);
    flushBeforeClose(db, () => this.flush());
    this.insert = db.$client.prepare<[Record<string, unknown>]>(
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

  record(turn: TurnRecord): void {
    this.writes.add(turn);
  }

  /** Writes the turns still waiting; on close, and before reading. */
  flush(): void {
    this.writes.flush();
  }

  private write(turn: TurnRecord): void {
    this.insert.run({
      turnId: turn.turnId,
      userId: turn.userId,
      guildId: turn.guildId,
      channelId: turn.channelId,
      status: turn.status,
      models: turn.models.join(','),
      finalModel: turn.finalModel,
      escalationSource: turn.escalation?.source ?? null,
      escalationReason: turn.escalation?.reason ?? null,
      category: turn.escalation?.category ?? null,
      confidence: turn.escalation?.confidence ?? null,
      tokens: turn.tokens,
      costMicros: turn.costMicros,
      smartOnlyCostMicros: turn.smartOnlyCostMicros,
      question: turn.question,
      answer: turn.answer,
      questionMessageId: turn.questionMessageId ?? null,
      checkVerdict: turn.check?.verdict ?? null,
      checkCategory: turn.check?.category ?? null,
      checkConfidence: turn.check?.confidence ?? null,
      triageRoute: turn.triage?.route ?? null,
      triageCategory: turn.triage?.category ?? null,
      triageConfidence: turn.triage?.confidence ?? null,
      createdAt: turn.createdAt,
    });
  }

  latest(userId: string, channelId: string | null): TurnRecord | undefined {
    this.flush();
    const row = this.db
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
    return row && toRecord(row);
  }

  byId(turnId: string): TurnRecord | undefined {
    this.flush();
    const row = this.db.select().from(turns).where(eq(turns.turnId, turnId)).get();
    return row && toRecord(row);
  }

  /**
   * Takes the right to have the smart model improve an answer: true for the first asker only, so a
   * second click (or a second /escalate) charges nothing. Give it back if the escalation did not happen.
   */
  claimEscalation(turnId: string, userId: string, now = Date.now()): boolean {
    const { changes } = this.db
      .insert(escalations)
      .values({ turnId, requestedBy: userId, requestedAt: now })
      .onConflictDoNothing()
      .run();
    return changes === 1;
  }

  releaseEscalation(turnId: string): void {
    this.db.delete(escalations).where(eq(escalations.turnId, turnId)).run();
  }
}

function toRecord(row: typeof turns.$inferSelect): TurnRecord {
  const {
    checkVerdict,
    checkCategory,
    checkConfidence,
    triageRoute,
    triageCategory,
    triageConfidence,
    ...rest
  } = row;
  return {
    ...rest,
    check:
      checkVerdict === null
        ? undefined
        : {
            verdict: checkVerdict,
            reason: '',
            category: (checkCategory ?? 'other') as CheckCategory,
            confidence: checkConfidence ?? 0,
          },
    triage:
      triageRoute === null
        ? undefined
        : {
            route: triageRoute,
            category: (triageCategory ?? 'other') as CheckCategory,
            confidence: triageConfidence ?? 0,
          },
    models: row.models === '' ? [] : row.models.split(','),
    escalation: row.escalationSource
      ? {
          source: row.escalationSource as EscalationSource,
          reason: row.escalationReason ?? '',
          ...(row.category ? { category: row.category as CheckCategory } : {}),
          ...(row.confidence === null ? {} : { confidence: row.confidence }),
        }
      : undefined,
  };
}
