import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { type FakeDiscord, shardOfGuild, startFakeDiscord } from '../fakes/discord/index.js';
import { type SplitOpenAI, startSplitOpenAI } from '../fakes/openai-router.js';
import { type TemporaryDatabase, temporaryDatabase } from './databases.js';
import { loopbackEnvironment } from './environment.js';
import { PROJECT_ROOT, tsxArguments } from './process.js';

/** A bot running as its own OS process: src/main.ts as `npm start` runs it, through tsx. */
export interface BotProcess {
  child: ChildProcess;
  /** Every JSON log line it wrote to stdout, parsed; other output is kept in `output`. */
  logs: Record<string, unknown>[];
  output(): string;
  /** Resolves once it logged "tierbot ready". */
  ready: Promise<void>;
  /** Resolves with its exit code once it has ended. */
  exited: Promise<number | null>;
  /** SIGTERM (answers in progress finish), then waits for the exit. */
  stop(): Promise<number | null>;
}

/**
 * Starts the bot. `ownHost`: in a PID namespace of its own (`unshare --pid`), as on another host: its
 * PIDs mean nothing to processes outside it, and killing it (SIGKILL to `child`) kills every process
 * inside, as a host that dies.
 */
export function startBotProcess(
  environment: Record<string, string>,
  name = 'bot',
  options: { ownHost?: boolean } = {},
): BotProcess {
  const node = [process.execPath, ...tsxArguments(join(PROJECT_ROOT, 'src/main.ts'))];
  const [command, ...args] = options.ownHost
    ? ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGKILL', ...node]
    : node;
  const child = spawn(command ?? process.execPath, args, {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...environment },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let output = '';
  let pending = '';
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        logs.push(parsed);
        if (String(parsed.msg).startsWith('tierbot ready')) onReady();
      } catch {
        // Not a log line.
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  void exited.then(() => onReady());
  return {
    child,
    logs,
    output: () => output,
    ready: ready.then(() => {
      if (child.exitCode !== null) throw new Error(`${name} exited before it was ready:\n${output}`);
    }),
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // unshare waits out signals other than SIGKILL: the bot inside is told directly.
        for (const pid of options.ownHost ? childrenOf(child.pid) : [child.pid]) {
          if (pid !== undefined) process.kill(pid, 'SIGTERM');
        }
      }
      return exited;
    },
  };
}

/** A process's children, as Linux lists them. */
function childrenOf(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((id) => id !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** The "turn done" log lines of a bot process. */
export function turnsDone(bot: BotProcess): Record<string, unknown>[] {
  return bot.logs.filter((line) => line.msg === 'turn done');
}

/**
 * For a test file whose tests run bot processes on one PostgreSQL database (call it at the file's top
 * level): before each test, the loopback Discord, OpenAI (a fake per kind of call) and Anthropic and a
 * fresh database; after it, every bot started with `start` is stopped (woken first, if a test stopped it)
 * and everything removed. `start` runs a bot with the loopback environment under `environment`.
 */
export function botProcessesPerTest() {
  const world = {} as {
    discord: FakeDiscord;
    openai: SplitOpenAI;
    anthropic: FakeAnthropic;
    database: TemporaryDatabase;
  };
  let bots: BotProcess[] = [];
  beforeEach(async () => {
    [world.discord, world.openai, world.anthropic, world.database] = await Promise.all([
      startFakeDiscord({ heartbeatIntervalMs: 5_000 }),
      startSplitOpenAI(),
      startFakeAnthropic(),
      temporaryDatabase('postgres'),
    ]);
    bots = [];
  });
  afterEach(async () => {
    for (const bot of bots) bot.child.kill('SIGCONT');
    await Promise.all(bots.map((bot) => bot.stop()));
    await Promise.all([world.discord.close(), world.openai.close(), world.anthropic.close()]);
    await world.database.cleanup();
  });
  const start = (environment: Record<string, string>, name: string, options: { ownHost?: boolean } = {}) => {
    const bot = startBotProcess({ ...loopbackEnvironment(world), ...environment }, name, options);
    bots.push(bot);
    return bot;
  };
  return Object.assign(world, { start });
}

/** #general of a server (the default one, or a new one the person joins) whose events go to a shard. */
export function channelOnShard(discord: FakeDiscord, shardId: number, shardCount: number): string {
  let guild = discord.guild;
  while (shardOfGuild(guild.id, shardCount) !== shardId) guild = discord.addGuild({ name: 'another server' });
  if (guild.id !== discord.guild.id) discord.addMember(discord.user.id, { guildId: guild.id });
  const general = [...discord.world.channels.values()].find(
    (channel) => 'guild_id' in channel && channel.guild_id === guild.id && channel.name === 'general',
  );
  return general?.id ?? '';
}
