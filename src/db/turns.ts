import { and, desc, eq, isNull } from 'drizzle-orm';
import type { CheckCategory } from '../core/escalation.js';
import type { EscalationSource, TurnLog, TurnRecord } from '../core/turn.js';
import type { AppDatabase } from './database.js';
import { turns } from './schema.js';

/** Turns on SQLite: one row each, written after the answer is shown. */
export class SqliteTurnLog implements TurnLog {
  constructor(private readonly db: AppDatabase) {}

  record(turn: TurnRecord): void {
    this.db
      .insert(turns)
      .values({
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
        createdAt: turn.createdAt,
      })
      .onConflictDoNothing()
      .run();
  }

  latest(userId: string, channelId: string | null): TurnRecord | undefined {
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
    if (!row) return undefined;
    return {
      ...row,
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
}
