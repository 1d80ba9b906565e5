import type { SettingsStore } from '../core/ports.js';
import { DEFAULT_SETTINGS, type ServerSettings } from '../core/settings.js';
import type { SettingsRecords } from './store.js';

/**
 * How long a server's cached settings are trusted when changes cannot be announced (SQLite): a change
 * made by another process shows within this time; one made by this process, at once.
 */
export const SETTINGS_TTL_MS = 5_000;
/** With announcements (PostgreSQL LISTEN/NOTIFY), a cache entry is still re-read now and then, in case one was missed. */
export const ANNOUNCED_SETTINGS_TTL_MS = 60_000;
/** Servers whose settings are kept; the least recently used are dropped first. */
const CACHED_SERVERS = 10_000;

/**
 * What a settings update writes, in both dialects: a server without a row gets the defaults for what the
 * change leaves out; a server with one gets only the changed columns, so two processes changing different
 * settings of one server at once both keep their change.
 */
export function settingsUpsert(
  guildId: string,
  change: Partial<ServerSettings>,
  updatedBy: string,
  atMs: number,
): { insert: ServerSettings & SettingsRow; update: Partial<ServerSettings> & Omit<SettingsRow, 'guildId'> } {
  const stamp = { updatedBy, updatedAt: atMs };
  return { insert: { guildId, ...DEFAULT_SETTINGS, ...change, ...stamp }, update: { ...change, ...stamp } };
}

interface SettingsRow {
  guildId: string;
  updatedBy: string;
  updatedAt: number;
}

interface CachedServer {
  settings: ServerSettings;
  answeredChannels: ReadonlySet<string>;
  readAt: number;
}

/**
 * Settings read on every message (answered channels, escalation mode), cached per process: one read per
 * server per TTL instead of one per message. A change made anywhere reaches every process: announced
 * where the database can (PostgreSQL's NOTIFY), within the TTL where it cannot.
 */
export class CachedSettings implements SettingsStore {
  private readonly servers = new Map<string, CachedServer>();
  private readonly reading = new Map<string, Promise<CachedServer>>();
  private ttlMs = SETTINGS_TTL_MS;
  /** Moves on every change heard of: a read that began before it is not cached. */
  private generation = 0;

  constructor(
    private readonly records: SettingsRecords,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts hearing of changes made by other processes, where the database can tell. */
  async listen(): Promise<void> {
    if (!this.records.listen) return;
    await this.records.listen((guildId) => (guildId === null ? this.forgetAll() : this.forget(guildId)));
    this.ttlMs = ANNOUNCED_SETTINGS_TTL_MS;
  }

  async of(guildId: string | null): Promise<ServerSettings> {
    if (guildId === null) return DEFAULT_SETTINGS;
    return (await this.server(guildId)).settings;
  }

  async isAnsweredChannel(guildId: string | null, channelId: string): Promise<boolean> {
    if (guildId === null) return false;
    return (await this.server(guildId)).answeredChannels.has(channelId);
  }

  async update(guildId: string, change: Partial<ServerSettings>, updatedBy: string): Promise<ServerSettings> {
    await this.records.update(guildId, change, updatedBy, this.now());
    await this.changed(guildId);
    return (await this.records.settingsOf(guildId)) ?? { ...DEFAULT_SETTINGS, ...change };
  }

  async addAnsweredChannel(guildId: string, channelId: string, addedBy: string): Promise<void> {
    await this.records.addAnsweredChannel(guildId, channelId, addedBy, this.now());
    await this.changed(guildId);
  }

  async removeAnsweredChannel(guildId: string, channelId: string): Promise<void> {
    await this.records.removeAnsweredChannel(guildId, channelId);
    await this.changed(guildId);
  }

  answeredChannelsOf(guildId: string): Promise<string[]> {
    return this.records.answeredChannelsOf(guildId);
  }

  forgetAll(): void {
    this.generation += 1;
    this.servers.clear();
    this.reading.clear();
  }

  /** Drops a server's cached settings: the next message reads them again. */
  forget(guildId: string): void {
    this.generation += 1;
    this.servers.delete(guildId);
    this.reading.delete(guildId);
  }

  private async changed(guildId: string): Promise<void> {
    this.forget(guildId);
    await this.records.announce?.(guildId);
  }

  private server(guildId: string): Promise<CachedServer> | CachedServer {
    const cached = this.servers.get(guildId);
    if (cached && this.now() - cached.readAt < this.ttlMs) return cached;
    // Messages arriving together in one server share one read.
    let reading = this.reading.get(guildId);
    if (!reading) {
      const read = this.read(guildId).finally(() => {
        if (this.reading.get(guildId) === read) this.reading.delete(guildId);
      });
      reading = read;
      this.reading.set(guildId, read);
    }
    return reading;
  }

  private async read(guildId: string): Promise<CachedServer> {
    const readAt = this.now();
    const generation = this.generation;
    const [settings, channels] = await Promise.all([
      this.records.settingsOf(guildId),
      this.records.answeredChannelsOf(guildId),
    ]);
    const server = { settings: settings ?? DEFAULT_SETTINGS, answeredChannels: new Set(channels), readAt };
    if (generation !== this.generation) return server;
    this.servers.delete(guildId);
    if (this.servers.size >= CACHED_SERVERS) {
      const oldest = this.servers.keys().next().value;
      if (oldest !== undefined) this.servers.delete(oldest);
    }
    this.servers.set(guildId, server);
    return server;
  }
}
