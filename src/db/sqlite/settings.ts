import { and, eq } from 'drizzle-orm';
import type { ServerSettings } from '../../core/settings.js';
import { settingsUpsert } from '../settings.js';
import type { SettingsRecords } from '../store.js';
import type { AppDatabase } from './database.js';
import { answeredChannels, guildSettings } from './schema.js';

/** Per-server settings and answered channels on SQLite, uncached (the dialect-free cache is in settings.ts). */
export class SqliteSettingsRecords implements SettingsRecords {
  constructor(private readonly db: AppDatabase) {}

  async settingsOf(guildId: string): Promise<ServerSettings | undefined> {
    return this.db
      .select({
        escalationMode: guildSettings.escalationMode,
        showFooter: guildSettings.showFooter,
        alertsChannelId: guildSettings.alertsChannelId,
        answersInThreads: guildSettings.answersInThreads,
      })
      .from(guildSettings)
      .where(eq(guildSettings.guildId, guildId))
      .get();
  }

  async update(
    guildId: string,
    change: Partial<ServerSettings>,
    updatedBy: string,
    atMs: number,
  ): Promise<void> {
    const { insert, update } = settingsUpsert(guildId, change, updatedBy, atMs);
    this.db
      .insert(guildSettings)
      .values(insert)
      .onConflictDoUpdate({ target: guildSettings.guildId, set: update })
      .run();
  }

  async answeredChannelsOf(guildId: string): Promise<string[]> {
    return this.db
      .select({ channelId: answeredChannels.channelId })
      .from(answeredChannels)
      .where(eq(answeredChannels.guildId, guildId))
      .all()
      .map((row) => row.channelId);
  }

  async addAnsweredChannel(guildId: string, channelId: string, addedBy: string, atMs: number): Promise<void> {
    this.db
      .insert(answeredChannels)
      .values({ guildId, channelId, addedBy, addedAt: atMs })
      .onConflictDoNothing()
      .run();
  }

  async removeAnsweredChannel(guildId: string, channelId: string): Promise<void> {
    this.db
      .delete(answeredChannels)
      .where(and(eq(answeredChannels.guildId, guildId), eq(answeredChannels.channelId, channelId)))
      .run();
  }
}
