import { lt } from 'drizzle-orm';
import { RESTART_WINDOW_MS } from '../core/restarts.js';
import type { AppDatabase } from './database.js';
import { botStarts } from './schema.js';

/** Records this start and returns when the bot started before, within the restart window. */
export function recordStart(db: AppDatabase, nowMs: number, pid = process.pid): number[] {
  const record = db.$client.transaction(() => {
    db.delete(botStarts)
      .where(lt(botStarts.startedAt, nowMs - RESTART_WINDOW_MS))
      .run();
    const earlier = db
      .select({ startedAt: botStarts.startedAt })
      .from(botStarts)
      .all()
      .map((row) => row.startedAt);
    db.insert(botStarts).values({ startedAt: nowMs, pid }).run();
    return earlier;
  });
  return record.immediate();
}
