import type { NoticeKey } from '../core/notices.js';
import type { AppDatabase } from './database.js';
import { budgetNotices } from './schema.js';

/** The budget notices already given, so each is given once per period (by any bot process). */
export class SqliteNoticeLog {
  constructor(private readonly db: AppDatabase) {}

  /** Records a notice; true if it had not been given before. */
  claim(key: NoticeKey, now = Date.now()): boolean {
    const { changes } = this.db
      .insert(budgetNotices)
      .values({
        kind: key.kind,
        guildKey: key.guildId ?? '',
        userKey: key.userId,
        windowStart: key.windowStartMs,
        percent: key.percent,
        notifiedAt: now,
      })
      .onConflictDoNothing()
      .run();
    return changes === 1;
  }
}
