import { and, eq } from 'drizzle-orm';
import pg from 'pg';
import type { ServerSettings } from '../../core/settings.js';
import { settingsUpsert } from '../settings.js';
import type { SettingsRecords } from '../store.js';
import type { PgDatabase } from './database.js';
import { answeredChannels, guildSettings } from './schema.js';

/** The channel every process listens on for settings changes; the payload is the server's id. */
const SETTINGS_CHANNEL = 'tierbot_settings';
/** After the listening connection drops, it is opened again after this long (doubling, up to a minute). */
const RECONNECT_BASE_MS = 1_000;
const RECONNECT_MAX_MS = 60_000;

/**
 * Per-server settings and answered channels on PostgreSQL, uncached (settings.ts caches them). A change
 * is announced with NOTIFY, and every process LISTENs on one connection of its own, so a change made on
 * one host reaches every cache at once.
 */
export class PostgresSettingsRecords implements SettingsRecords {
  private listener: pg.Client | undefined;
  private isClosed = false;

  constructor(
    private readonly db: PgDatabase,
    private readonly url: string,
    private readonly onError: (error: Error) => void,
  ) {}

  async settingsOf(guildId: string): Promise<ServerSettings | undefined> {
    const [row] = await this.db
      .select({
        escalationMode: guildSettings.escalationMode,
        showFooter: guildSettings.showFooter,
        alertsChannelId: guildSettings.alertsChannelId,
        answersInThreads: guildSettings.answersInThreads,
      })
      .from(guildSettings)
      .where(eq(guildSettings.guildId, guildId));
    return row;
  }

  async update(
    guildId: string,
    change: Partial<ServerSettings>,
    updatedBy: string,
    atMs: number,
  ): Promise<void> {
    const { insert, update } = settingsUpsert(guildId, change, updatedBy, atMs);
    await this.db
      .insert(guildSettings)
      .values(insert)
      .onConflictDoUpdate({ target: guildSettings.guildId, set: update });
  }

  async answeredChannelsOf(guildId: string): Promise<string[]> {
    const rows = await this.db
      .select({ channelId: answeredChannels.channelId })
      .from(answeredChannels)
      .where(eq(answeredChannels.guildId, guildId));
    return rows.map((row) => row.channelId);
  }

  async addAnsweredChannel(guildId: string, channelId: string, addedBy: string, atMs: number): Promise<void> {
    await this.db
      .insert(answeredChannels)
      .values({ guildId, channelId, addedBy, addedAt: atMs })
      .onConflictDoNothing();
  }

  async removeAnsweredChannel(guildId: string, channelId: string): Promise<void> {
    await this.db
      .delete(answeredChannels)
      .where(and(eq(answeredChannels.guildId, guildId), eq(answeredChannels.channelId, channelId)));
  }

  async announce(guildId: string): Promise<void> {
    await this.db.$client.query('SELECT pg_notify($1, $2)', [SETTINGS_CHANNEL, guildId]);
  }

  /**
   * Hears every change announced by any process. While the listening connection is down, changes may be
   * missed: when it is back, every cached server is forgotten (`onChange(null)`).
   */
  async listen(onChange: (guildId: string | null) => void): Promise<void> {
    const connect = async (): Promise<void> => {
      const client = new pg.Client({ connectionString: this.url, application_name: 'tierbot-listen' });
      client.on('notification', (message) => {
        if (message.channel === SETTINGS_CHANNEL && message.payload) onChange(message.payload);
      });
      client.on('error', (error) => this.onError(error));
      client.on('end', () => {
        if (this.isClosed) return;
        this.listener = undefined;
        void reconnect(RECONNECT_BASE_MS);
      });
      await client.connect();
      await client.query(`LISTEN ${SETTINGS_CHANNEL}`);
      this.listener = client;
    };
    const reconnect = async (delayMs: number): Promise<void> => {
      await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
      if (this.isClosed) return;
      try {
        await connect();
        onChange(null);
      } catch (error) {
        this.onError(error as Error);
        void reconnect(Math.min(RECONNECT_MAX_MS, delayMs * 2));
      }
    };
    await connect();
  }

  async close(): Promise<void> {
    this.isClosed = true;
    await this.listener?.end().catch(() => {});
  }
}
