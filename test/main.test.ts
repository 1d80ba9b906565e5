import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../src/db/sqlite/database.js';
import { type FakeAnthropic, startFakeAnthropic } from './fakes/anthropic.js';
import { type FakeDiscord, startFakeDiscord } from './fakes/discord/index.js';
import { type FakeOpenAI, startFakeOpenAI } from './fakes/openai.js';
import { buildForStart } from './support/process.js';
import { loopbackEnvironment } from './support/environment.js';

let discord: FakeDiscord;
let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let directory: string;
/** The bot built and started as `npm start` does: tsc's dist/, node with the start script's flags. */
let build: string;
let startArguments: string[];

beforeAll(() => {
  build = mkdtempSync(join(tmpdir(), 'tierbot-build-'));
  startArguments = buildForStart(build);
  // tsc over src/ takes a few seconds, more while other test files run.
}, 120_000);
afterAll(() => rmSync(build, { recursive: true, force: true }));

beforeEach(async () => {
  [discord, openai, anthropic] = await Promise.all([
    startFakeDiscord(),
    startFakeOpenAI(),
    startFakeAnthropic(),
  ]);
  directory = mkdtempSync(join(tmpdir(), 'tierbot-main-'));
});
afterEach(async () => {
  await Promise.all([discord.close(), openai.close(), anthropic.close()]);
  rmSync(directory, { recursive: true, force: true });
});

describe('npm start', () => {
  it('when SIGTERM arrives mid-answer, then the answer finishes, nothing stays reserved, and it exits 0', async () => {
    const databasePath = join(directory, 'tierbot.db');
    const bot = spawn(process.execPath, startArguments, {
      cwd: directory,
      env: {
        PATH: process.env.PATH,
        ...loopbackEnvironment({ discord, openai, anthropic, databasePath }),
      },
    });
    let output = '';
    bot.stdout.on('data', (chunk) => {
      output += chunk;
    });
    bot.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const exited = new Promise<number | null>((resolve) => bot.on('close', resolve));
    const until = async (condition: () => boolean) => {
      while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20));
    };

    await until(() => output.includes('tierbot ready'));
    const words = 'Shutting down politely means finishing what you started first.'.split(' ');
    openai.script(
      { type: 'stream', chunks: words.map((word) => `${word} `), chunkDelayMs: 60, finishReason: 'stop' },
      {
        type: 'completion',
        content: JSON.stringify({ verdict: 'accept', reason: 'ok', category: 'other', confidence: 0.9 }),
      },
    );
    discord.messageCreate({ content: `<@${discord.bot.id}> tell me something` });
    await until(() => openai.requests.length > 0);
    bot.kill('SIGTERM');

    expect(await exited).toBe(0);
    expect(output).toContain('shutting down');
    const final = discord.requests.filter((request) =>
      String(request.body?.content ?? '').includes('-# gpt-4o-mini'),
    );
    expect(final.at(-1)?.body.content).toMatch(
      /^Shutting down politely means finishing what you started first\./,
    );
    const db = openDatabase(databasePath);
    try {
      expect(db.$client.prepare('SELECT COUNT(*) FROM reservations').pluck().get()).toBe(0);
      expect(db.$client.prepare('SELECT COUNT(*) FROM usage_ledger').pluck().get()).toBe(2);
    } finally {
      closeDatabase(db);
    }
  });
});
