import { and, eq, sql } from 'drizzle-orm';
import type { EscalationMode } from '../core/escalation.js';
import type { AppDatabase } from './database.js';
import { answeredChannels, guildSettings } from './schema.js';

const sqlPlaceholder = sql.placeholder;

export interface ServerSettings {
  escalationMode: EscalationMode;
  showFooter: boolean;
  alertsChannelId: string | null;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  escalationMode: 'auto',
  showFooter: true,
  alertsChannelId: null,
};

/** Per-server settings and the channels answered without a mention, read on every message. */
export class SqliteSettings {
  private readonly settingsOf;
  private readonly answeredChannel;

  constructor(private readonly db: AppDatabase) {
    this.settingsOf = db
      .select({
        escalationMode: guildSettings.escalationMode,
        showFooter: guildSettings.showFooter,
        alertsChannelId: guildSettings.alertsChannelId,
      })
      .from(guildSettings)
      .where(eq(guildSettings.guildId, sqlPlaceholder('guildId')))
      .prepare();
    this.answeredChannel = db
      .select({ channelId: answeredChannels.channelId })
      .from(answeredChannels)
      .where(
        and(
          eq(answeredChannels.guildId, sqlPlaceholder('guildId')),
          eq(answeredChannels.channelId, sqlPlaceholder('channelId')),
        ),
      )
      .prepare();
  }

  /** A server's settings; DMs (no server) and servers that changed nothing get the defaults. */
  of(guildId: string | null): ServerSettings {
    if (guildId === null) return DEFAULT_SETTINGS;
    return this.settingsOf.get({ guildId }) ?? DEFAULT_SETTINGS;
  }

  update(
    guildId: string,
    change: Partial<ServerSettings>,
    updatedBy: string,
    now = Date.now(),
  ): ServerSettings {
    const next = { ...this.of(guildId), ...change };
    this.db
      .insert(guildSettings)
      .values({ guildId, ...next, updatedBy, updatedAt: now })
      .onConflictDoUpdate({ target: guildSettings.guildId, set: { ...next, updatedBy, updatedAt: now } })
      .run();
    return next;
  }

  isAnsweredChannel(guildId: string | null, channelId: string): boolean {
    return guildId !== null && this.answeredChannel.get({ guildId, channelId }) !== undefined;
  }

  addAnsweredChannel(guildId: string, channelId: string, addedBy: string, now = Date.now()): void {
    this.db
      .insert(answeredChannels)
      .values({ guildId, channelId, addedBy, addedAt: now })
      .onConflictDoNothing()
      .run();
  }

  removeAnsweredChannel(guildId: string, channelId: string): void {
    this.db
      .delete(answeredChannels)
      .where(and(eq(answeredChannels.guildId, guildId), eq(answeredChannels.channelId, channelId)))
      .run();
  }

  answeredChannelsOf(guildId: string): string[] {
    return this.db
      .select({ channelId: answeredChannels.channelId })
      .from(answeredChannels)
      .where(eq(answeredChannels.guildId, guildId))
      .all()
      .map((row) => row.channelId);
  }
}
