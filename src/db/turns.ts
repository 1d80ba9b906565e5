import type { CheckCategory } from '../core/escalation.js';
import type { TurnLog } from '../core/ports.js';
import type { EscalationSource, TurnRecord } from '../core/turn.js';
import type { TurnRow, TurnStore } from './store.js';
import { WriteBehind } from './write-behind.js';

/**
 * Turns, for every dialect: one row each, written behind the answer (a turn is recorded before its
 * answer's last edit, and nobody waits for the commit).
 */
export class TurnBook implements TurnLog {
  private readonly writes: WriteBehind<TurnRecord>;

  constructor(
    private readonly store: TurnStore,
    onWriteError: (error: unknown) => void = (error) => {
      throw error;
    },
    private readonly now: () => number = Date.now,
  ) {
    this.writes = new WriteBehind((records) => store.insert(records.map(toRow)), onWriteError);
  }

  record(turn: TurnRecord): void {
    this.writes.add(turn);
  }

  /** Writes the turns still waiting; before an answer is shown as done, before reading, and on close. */
  flush(): Promise<void> {
    return this.writes.flush();
  }

  async latest(userId: string, channelId: string | null): Promise<TurnRecord | undefined> {
    await this.flush();
    const row = await this.store.latest(userId, channelId);
    return row && toRecord(row);
  }

  async byId(turnId: string): Promise<TurnRecord | undefined> {
    await this.flush();
    const row = await this.store.byId(turnId);
    return row && toRecord(row);
  }

  claimEscalation(turnId: string, userId: string): Promise<boolean> {
    return this.store.claimEscalation(turnId, userId, this.now());
  }

  releaseEscalation(turnId: string): Promise<void> {
    return this.store.releaseEscalation(turnId);
  }
}

function toRow(turn: TurnRecord): TurnRow {
  return {
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
  };
}

function toRecord(row: TurnRow): TurnRecord {
  return {
    turnId: row.turnId,
    userId: row.userId,
    guildId: row.guildId,
    channelId: row.channelId,
    status: row.status,
    models: row.models === '' ? [] : row.models.split(','),
    finalModel: row.finalModel,
    escalation: row.escalationSource
      ? {
          source: row.escalationSource as EscalationSource,
          reason: row.escalationReason ?? '',
          ...(row.category ? { category: row.category as CheckCategory } : {}),
          ...(row.confidence === null ? {} : { confidence: row.confidence }),
        }
      : undefined,
    tokens: row.tokens,
    costMicros: row.costMicros,
    smartOnlyCostMicros: row.smartOnlyCostMicros,
    question: row.question,
    answer: row.answer,
    questionMessageId: row.questionMessageId,
    check:
      row.checkVerdict === null
        ? undefined
        : {
            verdict: row.checkVerdict,
            reason: '',
            category: (row.checkCategory ?? 'other') as CheckCategory,
            confidence: row.checkConfidence ?? 0,
          },
    triage:
      row.triageRoute === null
        ? undefined
        : {
            route: row.triageRoute,
            category: (row.triageCategory ?? 'other') as CheckCategory,
            confidence: row.triageConfidence ?? 0,
          },
    createdAt: row.createdAt,
  };
}
