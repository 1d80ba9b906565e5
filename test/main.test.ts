import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../src/db/sqlite/database.js';
import { type FakeAnthropic, startFakeAnthropic } from './fakes/anthropic.js';
import { type FakeDiscord, startFakeDiscord } from './fakes/discord/index.js';
import { type FakeOpenAI, startFakeOpenAI } from './fakes/openai.js';
import { EXIT_CODES } from '../src/exit-codes.js';
import { buildForStart, type ProcessOutcome, runNode, scriptArguments } from './support/process.js';
import { loopbackEnvironment, TEST_KEYS } from './support/environment.js';

let discord: FakeDiscord;
let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let directory: string;
/**
 * The project built as `npm ci` builds it (scripts/build.mjs: tsc's dist/), and the bot started as
 * `npm start` starts it: node with the start script's flags.
 */
let build: string;
let startArguments: string[];

beforeAll(() => {
  build = mkdtempSync(join(tmpdir(), 'tierbot-build-'));
  startArguments = buildForStart(build);
  // A copy of the checkout built once for the run (test/setup/build.ts).
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

interface RunningBot {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** The bot as `npm start` runs it, with this environment (and PATH) only. */
function spawnBot(environment: Record<string, string>): RunningBot {
  const child = spawn(process.execPath, startArguments, {
    cwd: directory,
    env: { PATH: process.env.PATH, ...environment },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function environmentFor(fake: FakeDiscord = discord): Record<string, string> {
  return loopbackEnvironment({
    discord: fake,
    openai,
    anthropic,
    databasePath: join(directory, 'tierbot.db'),
  });
}

/** What an operator must see: one line saying what is wrong and what to do, no stack trace, no secret. */
function expectOneClearLine(stderr: string, says: RegExp): void {
  const lines = stderr.split('\n').filter((line) => line.trim() !== '');
  expect(lines).toEqual([expect.stringMatching(says)]);
  expect(lines[0]).toMatch(/^tierbot cannot start: /);
  expect(stderr).not.toMatch(/^\s+at /m);
  for (const secret of [discord.token, ...Object.values(TEST_KEYS)]) expect(stderr).not.toContain(secret);
}

/** A loopback port nothing listens on: connecting to it is refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('npm start when Discord will not have the bot', () => {
  it('when Discord refuses the token, then it says to reset it and exits with the token code', async () => {
    discord.resetToken();
    const bot = spawnBot(environmentFor());

    expect(await bot.exited).toBe(EXIT_CODES.tokenRefused);
    expectOneClearLine(bot.stderr(), /Discord refused the bot token .*Bot → Reset Token/);
    expect(discord.identifies).toEqual([]);
  });

  it('when the gateway refuses the token (4004), then it says the same and exits with the token code', async () => {
    discord.resetToken({ from: 'identify' });
    const bot = spawnBot(environmentFor());

    expect(await bot.exited).toBe(EXIT_CODES.tokenRefused);
    expectOneClearLine(bot.stderr(), /Discord refused the bot token .*Bot → Reset Token/);
    expect(discord.events).toContainEqual(expect.objectContaining({ type: 'closed', code: 4004 }));
  });

  it('when the Message Content intent is not enabled (4014), then it says where to enable it and exits with the intents code', async () => {
    const withoutIntent = await startFakeDiscord({ privilegedIntents: { messageContent: false } });
    try {
      const bot = spawnBot(environmentFor(withoutIntent));

      expect(await bot.exited).toBe(EXIT_CODES.intentsDisallowed);
      expectOneClearLine(
        bot.stderr(),
        /enable Message Content Intent in the developer portal under Bot → Privileged Gateway Intents/,
      );
      expect(withoutIntent.events).toContainEqual(expect.objectContaining({ type: 'closed', code: 4014 }));
    } finally {
      await withoutIntent.close();
    }
  });

  it('when nothing answers at the Discord address (connection refused), then it says so and exits with the unreachable code', async () => {
    const apiUrl = `http://127.0.0.1:${await closedPort()}/api`;
    const bot = spawnBot({ ...environmentFor(), DISCORD_API_URL: apiUrl });

    expect(await bot.exited).toBe(EXIT_CODES.discordUnreachable);
    expectOneClearLine(
      bot.stderr(),
      new RegExp(`cannot reach Discord at ${apiUrl} \\(connection refused\\): check`),
    );
  });

  it('when Discord answers 502 at first, then the login is tried again after a wait and the bot gets ready', async () => {
    // @discordjs/rest tries a 5xx four times in a row before it gives up: the first login fails whole.
    discord.failNext('GET /gateway/bot', { status: 502, code: 0, message: '502: Bad Gateway', times: 4 });
    const bot = spawnBot(environmentFor());

    await until(() => bot.stdout().includes('tierbot ready'), bot);
    const retry = bot
      .stdout()
      .split('\n')
      .find((line) => line.includes('trying again'));
    expect(JSON.parse(retry ?? '{}')).toMatchObject({
      level: 40,
      msg: 'Discord did not answer (HTTP 502): trying again in 1 s',
      waitMs: 1000,
    });
    expect(discord.requests.filter((request) => request.route === 'GET /gateway/bot')).toHaveLength(5);
    bot.child.kill('SIGTERM');
    expect(await bot.exited).toBe(0);
    expect(bot.stderr()).toBe('');
  });
});

describe('npm run deploy-commands', () => {
  const deploy = (environment: Record<string, string>): Promise<ProcessOutcome> =>
    runNode(scriptArguments(build, 'deploy-commands'), {
      cwd: directory,
      env: { PATH: process.env.PATH, ...environment },
    });

  it('when only the Discord settings are set, then the commands are registered without any model key', async () => {
    const outcome = await deploy({
      DISCORD_TOKEN: discord.token,
      DISCORD_API_URL: discord.apiUrl,
      DISCORD_GUILD_ID: discord.guild.id,
    });

    expect(outcome.stderr).toBe('');
    expect(outcome.code).toBe(0);
    expect(discord.commands(discord.guild.id).map((command) => command.name)).toContain('ask');
  });

  it('when DISCORD_TOKEN is missing, then it names it (and no model key) and exits with the configuration code', async () => {
    const outcome = await deploy({ DISCORD_API_URL: discord.apiUrl });

    expect(outcome.code).toBe(EXIT_CODES.configuration);
    expect(outcome.stderr).toContain('DISCORD_TOKEN: required but not set');
    expect(outcome.stderr).not.toMatch(/OPENAI_API_KEY|ANTHROPIC_API_KEY/);
    expect(outcome.stderr).not.toMatch(/^\s+at /m);
  });

  it('when Discord refuses the token, then it says to reset it and exits with the token code', async () => {
    discord.resetToken();
    const outcome = await deploy({ DISCORD_TOKEN: discord.token, DISCORD_API_URL: discord.apiUrl });

    expect(outcome.code).toBe(EXIT_CODES.tokenRefused);
    expect(outcome.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^could not register the commands: Discord refused the bot token/),
    ]);
    expect(outcome.stderr).not.toContain(discord.token);
  });
});

/** Waits until a condition holds; fails at once, with the bot's output, if the bot exits meanwhile. */
async function until(condition: () => boolean, bot: RunningBot): Promise<void> {
  let hasExited = false;
  void bot.exited.then(() => {
    hasExited = true;
  });
  while (!condition()) {
    if (hasExited) throw new Error(`the bot exited:\n${bot.stdout()}\n${bot.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
