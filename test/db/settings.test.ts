import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../src/core/settings.js';
import { openPostgres } from '../../src/db/postgres/index.js';
import { CachedSettings } from '../../src/db/settings.js';
import { openSqlite } from '../../src/db/sqlite/index.js';
import type { DialectStores, SettingsRecords } from '../../src/db/store.js';
import { BACKENDS, type Backend, type TemporaryDatabase, temporaryDatabase } from '../support/databases.js';

const GUILD = '111111111111111111';
const ADMIN = '222222222222222222';

describe.each(BACKENDS)('settings shared by several processes (%s)', (backend: Backend) => {
  let database: TemporaryDatabase | undefined;
  const opened: DialectStores[] = [];
  afterEach(async () => {
    for (const stores of opened.splice(0)) await stores.close();
    await database?.cleanup();
    database = undefined;
  });

  /** The stores a bot process opens on the test's database. */
  async function openProcess(): Promise<DialectStores> {
    const { location } = database ?? (database = await temporaryDatabase(backend));
    const { stores } = location.databaseUrl
      ? await openPostgres(location.databaseUrl)
      : await openSqlite(location.databasePath);
    opened.push(stores);
    return stores;
  }

  it('when two processes change different settings of one server at the same moment, then both changes are kept', async () => {
    const first = new CachedSettings((await openProcess()).settings);
    const secondRecords = (await openProcess()).settings;
    // The first process writes just after the second one reads the row: the moment a read-merge-write
    // would write the row it read back over the first one's change.
    let hasInterleaved = false;
    const interleaved: SettingsRecords = Object.assign(Object.create(secondRecords) as SettingsRecords, {
      async settingsOf(guildId: string) {
        const row = await secondRecords.settingsOf(guildId);
        if (!hasInterleaved) {
          hasInterleaved = true;
          await first.update(GUILD, { escalationMode: 'manual' }, ADMIN);
        }
        return row;
      },
    });
    const second = new CachedSettings(interleaved);

    await second.update(GUILD, { showFooter: false }, ADMIN);
    if (!hasInterleaved) await first.update(GUILD, { escalationMode: 'manual' }, ADMIN);

    const expected = { ...DEFAULT_SETTINGS, escalationMode: 'manual', showFooter: false };
    expect(await secondRecords.settingsOf(GUILD)).toEqual(expected);
    expect(await new CachedSettings(secondRecords).of(GUILD)).toEqual(expected);
  });

  it('when a server changes one setting for the first time, then the others keep their defaults', async () => {
    const settings = new CachedSettings((await openProcess()).settings);

    expect(await settings.update(GUILD, { answersInThreads: true }, ADMIN)).toEqual({
      ...DEFAULT_SETTINGS,
      answersInThreads: true,
    });
    expect(await settings.update(GUILD, { alertsChannelId: '333333333333333333' }, ADMIN)).toEqual({
      ...DEFAULT_SETTINGS,
      answersInThreads: true,
      alertsChannelId: '333333333333333333',
    });
  });
});
