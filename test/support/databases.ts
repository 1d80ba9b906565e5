import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { newId } from '../../src/core/ids.js';
import { PG_TYPES } from '../../src/db/postgres/database.js';
import type { DatabaseLocation } from '../../src/db/storage.js';
import { TEMPLATE_DATABASE, withDatabase } from '../setup/postgres.js';

/** Every database tierbot runs on: the tests that hold the budget promise run on each. */
export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

export interface TemporaryDatabase {
  backend: Backend;
  location: DatabaseLocation;
  /** The variables that point the bot at it (for bot processes). */
  environment: Record<string, string>;
  /** Runs SQL against it with a connection of its own (PostgreSQL) or the file (SQLite): for assertions. */
  query<Row = Record<string, unknown>>(sql: string, parameters?: unknown[]): Promise<Row[]>;
  /** The first column of the first row (e.g. a COUNT). */
  value<Value = number>(sql: string, parameters?: unknown[]): Promise<Value>;
  cleanup(): Promise<void>;
}

/**
 * A fresh database: a SQLite file in a temp directory, or a PostgreSQL database on the suite's server
 * (copied from the migrated template, or `empty` for tests of the migrations themselves).
 */
export async function temporaryDatabase(
  backend: Backend,
  options: { empty?: boolean } = {},
): Promise<TemporaryDatabase> {
  const database = await openTemporaryDatabase(backend, options);
  return {
    ...database,
    async value<Value>(sql: string, parameters?: unknown[]) {
      const [row] = await database.query<Record<string, Value>>(sql, parameters);
      return Object.values(row ?? {})[0] as Value;
    },
  };
}

async function openTemporaryDatabase(
  backend: Backend,
  options: { empty?: boolean },
): Promise<Omit<TemporaryDatabase, 'value'>> {
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-test-'));
  const databasePath = join(directory, 'tierbot.db');
  if (backend === 'sqlite') {
    const { default: Database } = await import('better-sqlite3');
    return {
      backend,
      location: { databasePath },
      environment: { DATABASE_PATH: databasePath },
      async query<Row>(sql: string, parameters: unknown[] = []) {
        const sqlite = new Database(databasePath);
        try {
          // Tests write PostgreSQL's numbered parameters; better-sqlite3 binds ?NNN as anonymous ones
          // (and refuses them), so they become named ones: $1 → @p1.
          const statement = sqlite.prepare(sql.replace(/\$(\d+)/g, '@p$1'));
          const named = Object.fromEntries(parameters.map((value, index) => [`p${index + 1}`, value]));
          return (statement.reader ? statement.all(named) : (statement.run(named), [])) as Row[];
        } finally {
          sqlite.close();
        }
      },
      async cleanup() {
        rmSync(directory, { recursive: true, force: true });
      },
    };
  }
  const adminUrl = inject('postgresUrl');
  const name = `tierbot_${newId().replaceAll('-', '')}`;
  await adminQuery(
    adminUrl,
    `CREATE DATABASE ${name} TEMPLATE ${options.empty ? 'template0' : TEMPLATE_DATABASE}`,
  );
  const databaseUrl = withDatabase(adminUrl, name);
  return {
    backend,
    location: { databaseUrl, databasePath },
    environment: { DATABASE_URL: databaseUrl, DATABASE_PATH: databasePath },
    async query<Row>(sql: string, parameters: unknown[] = []) {
      const client = new pg.Client({ connectionString: databaseUrl, types: PG_TYPES });
      await client.connect();
      try {
        return (await client.query(sql, parameters)).rows as Row[];
      } finally {
        await client.end();
      }
    },
    async cleanup() {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
