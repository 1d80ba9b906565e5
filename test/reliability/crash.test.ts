import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { APIUser } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { BUDGET_PERIODS, periodWindow } from '../../src/core/budget.js';
import { formatUsd } from '../../src/core/money.js';
import { modelLabel } from '../../src/core/models.js';
import { registerCommands } from '../../src/discord/commands/register.js';
import { type FakeAnthropic, startFakeAnthropic } from '../fakes/anthropic.js';
import { type FakeDiscord, type RecordedRequest, startFakeDiscord } from '../fakes/discord/index.js';
import { type Backend, BACKENDS, type TemporaryDatabase, temporaryDatabase } from '../support/databases.js';
import { tsxArguments } from '../support/process.js';
import { type SplitOpenAI, startSplitOpenAI } from '../fakes/openai-router.js';
import { loopbackEnvironment } from '../support/environment.js';
import { ACCEPT, REFINE } from '../support/verdicts.js';

/*
 * The bot as `npm start` runs it, SIGKILLed in the middle of a burst of turns, round after round over one
 * database (a SQLite file, or a PostgreSQL database: the server lives on, the bot dies): nothing it showed
 * as done may be lost, nothing it held may stay held, and /usage must say what the ledger holds.
 *
 * Each round scripts exactly which turns can finish. Of the round's drafts, the first `fastDrafts` stream
 * at once and the others stall after their first words; of the checks that the fast drafts reach, the
 * first `accepted` accept at once, and the rest alternately send the turn to Claude Haiku (whose answer
 * stalls) or stall themselves. So exactly `accepted` answers finish, and once they have and every stalled
 * call has reached its provider, the kill finds turns stuck mid-draft, mid-check and mid-refine.
 */

/**
 * Twenty rounds on SQLite, whose file a kill can leave mid-write. Six on PostgreSQL, whose server the kill
 * does not touch: rounds 0–3 already land the kills mid-draft, mid-check and mid-refine (see roundPlan),
 * and every round costs a bot start of several seconds on this 2-core machine.
 */
const ROUNDS: Record<Backend, number> = { sqlite: 20, postgres: 6 };
const USER_NAMES = ['bob', 'carol', 'dave'];
const MESSAGES_PER_USER = 3;
/** A person has at most two answers in progress (src/discord/user-lanes.ts); the third message waits. */
const ANSWERS_IN_PROGRESS_PER_USER = 2;
const BUDGET_MICROS = 1_000_000;
/** /usage runs for real every few restarts (a process's first chart takes a second to draw) and at the end. */
const USAGE_EVERY_ROUNDS = 5;
/** Longer than the whole test: a stalled call is still stalled when the bot is killed. */
const STALL_MS = 600_000;
/** Bot processes loading their modules (a second or two of CPU each) ahead of their turn. */
const PROCESSES_AHEAD = 2;
/**
 * A safety net for a hang, not a speed check: on this 2-core machine shared with other work, a round
 * took 12 s at a load average of 19, so SQLite's 20 rounds took four minutes.
 */
const TIMEOUT_MS = 420_000;

const FOOTER = /^-# gpt-4o-mini · [\d,]+ tokens · (\$[\d,.]+)$/m;
const ESCALATE_BUTTON = /"custom_id":"escalate:([^"]+)"/;
const LAUNCHER_PATH = join(import.meta.dirname, 'fixtures/bot-launcher.ts');

interface RoundPlan {
  fastDrafts: number;
  accepted: number;
  refines: number;
}

/** Where the kill lands varies: 2–7 drafts finish, 1 to all of them are accepted, the rest stall. */
function roundPlan(round: number): RoundPlan {
  const fastDrafts = 2 + (round % 6);
  const accepted = 1 + ((round * 5) % fastDrafts);
  return { fastDrafts, accepted, refines: Math.ceil((fastDrafts - accepted) / 2) };
}

function scriptRound(plan: RoundPlan, providers: Providers, turns: number): void {
  for (let index = 0; index < turns; index += 1) {
    providers.openai.drafts.script(
      index < plan.fastDrafts
        ? { type: 'stream', chunks: ['A ', 'complete ', 'answer.'], chunkDelayMs: 5 }
        : { type: 'stream', chunks: ['Still ', 'thinking'], chunkDelayMs: STALL_MS },
    );
  }
  for (let index = plan.accepted; index > 0; index -= 1) {
    providers.openai.checks.script({ type: 'completion', content: ACCEPT });
  }
  for (let index = 0; index < plan.fastDrafts - plan.accepted; index += 1) {
    providers.openai.checks.script(
      index % 2 === 0
        ? { type: 'completion', content: REFINE }
        : { type: 'completion', content: ACCEPT, delayMs: STALL_MS },
    );
  }
  for (let index = 0; index < plan.refines; index += 1) {
    providers.anthropic.script({ type: 'stream', chunks: ['A better ', 'answer'], chunkDelayMs: STALL_MS });
  }
}

// ── Bot processes ──────────────────────────────────────────────────────────────────────────────────

interface Providers {
  openai: SplitOpenAI;
  anthropic: FakeAnthropic;
}

interface BotProcess {
  child: ChildProcess;
  /** Its log, one parsed pino line each. */
  logs: Record<string, unknown>[];
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Runs src/main.ts in it (see fixtures/bot-launcher.ts). */
  start(): void;
  /** The fakes this process was configured with: fresh ones for every process, with their own scripts. */
  providers: Providers;
}

const running = new Set<ChildProcess>();

/** A process with the bot's modules loaded, waiting for `start()` to run src/main.ts. */
async function spawnBotProcess(environment: (providers: Providers) => Record<string, string>) {
  const providers = { openai: await startSplitOpenAI(), anthropic: await startFakeAnthropic() };
  const child = spawn(process.execPath, tsxArguments(LAUNCHER_PATH), {
    cwd: directory,
    env: { PATH: process.env.PATH ?? '', ...environment(providers) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: Record<string, unknown>[] = [];
  let output = '';
  let partialLine = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    const lines = (partialLine + chunk).split('\n');
    partialLine = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') logs.push(JSON.parse(line));
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const start = () => child.stdin?.end('go\n');
  return { child, logs, output: () => output, exited, start, providers } satisfies BotProcess;
}

/** Waits until a condition holds; fails at once, with the bot's output, if the bot died meanwhile. */
async function until(bot: BotProcess, condition: () => boolean): Promise<void> {
  while (!condition()) {
    if (bot.child.exitCode !== null || bot.child.signalCode !== null) {
      throw new Error(`the bot exited while the test was waiting for it:\n${bot.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ── The database, read beside the bot ─────────────────────────────────────────────────────────────

interface LedgerRow {
  id: number;
  request_id: string;
  turn_id: string;
  user_id: string;
  guild_id: string | null;
  model: string;
  purpose: string;
  outcome: string;
  cost_micros: number;
  reserved_micros: number;
  charged_at: number;
}

interface ReservationRow {
  request_id: string;
  turn_id: string;
  user_id: string;
  guild_id: string | null;
  purpose: string;
  amount_micros: number;
  created_at: number;
}

type CounterRow = { kind: 'user' | 'server'; guild_key: string; user_key: string } & Record<
  `${'day' | 'week' | 'month'}_${'start' | 'spent_micros' | 'reserved_micros'}`,
  number
>;

interface DatabaseState {
  /**
   * 'ok', or what is wrong: SQLite's own check of the file (PRAGMA integrity_check), and on either
   * backend that every running total holds exactly what the ledger charged and the open reservations
   * hold in its day, week and month.
   */
  integrity: string;
  ledger: LedgerRow[];
  reservations: ReservationRow[];
  turns: { turn_id: string; status: string; cost_micros: number }[];
}

type Query = <Row>(sql: string) => Promise<Row[]>;

async function readState(query: Query, sqliteIntegrity?: string): Promise<DatabaseState> {
  const ledger = await query<LedgerRow>('SELECT * FROM usage_ledger ORDER BY id');
  const reservations = await query<ReservationRow>('SELECT * FROM reservations ORDER BY request_id');
  const counters = await query<CounterRow>('SELECT * FROM spend_counters');
  const turns = await query<DatabaseState['turns'][number]>(
    'SELECT turn_id, status, cost_micros FROM turns ORDER BY turn_id',
  );
  const integrity =
    sqliteIntegrity === undefined || sqliteIntegrity === 'ok'
      ? balanceOf(counters, ledger, reservations)
      : sqliteIntegrity;
  return { integrity, ledger, reservations, turns };
}

/** 'ok' if every counter holds what the ledger charged and the reservations hold in its windows. */
function balanceOf(counters: CounterRow[], ledger: LedgerRow[], reservations: ReservationRow[]): string {
  for (const counter of counters) {
    const concerns = (row: { guild_id: string | null; user_id: string }) =>
      (row.guild_id ?? '') === counter.guild_key &&
      (counter.kind === 'server' || row.user_id === counter.user_key);
    for (const period of BUDGET_PERIODS) {
      const window = periodWindow(period, counter[`${period}_start`]);
      const isIn = (atMs: number) => atMs >= window.startMs && atMs < window.endMs;
      const spent = ledger
        .filter((row) => concerns(row) && isIn(row.charged_at))
        .reduce((total, row) => total + row.cost_micros, 0);
      const reserved = reservations
        .filter((row) => concerns(row) && isIn(row.created_at))
        .reduce((total, row) => total + row.amount_micros, 0);
      if (counter[`${period}_spent_micros`] !== spent || counter[`${period}_reserved_micros`] !== reserved) {
        return `${counter.kind}|${counter.guild_key}|${counter.user_key} holds ${counter[`${period}_spent_micros`]} spent and ${counter[`${period}_reserved_micros`]} reserved this ${period}; the ledger ${spent}, the reservations ${reserved}`;
      }
    }
  }
  return 'ok';
}

/** The database as it is now, read beside the running bot. */
function readNow(on: TemporaryDatabase): Promise<DatabaseState> {
  if (on.backend === 'postgres') return readState((sql) => on.query(sql));
  return readSqliteFile(on.location.databasePath);
}

async function readSqliteFile(path: string): Promise<DatabaseState> {
  const sqlite = new Database(path, { timeout: 15_000 });
  try {
    const integrity = sqlite.pragma('integrity_check', { simple: true }) as string;
    return await readState(async <Row>(sql: string) => sqlite.prepare(sql).all() as Row[], integrity);
  } finally {
    sqlite.close();
  }
}

/**
 * What the killed process left. PostgreSQL: the database as it is (its server was not killed, and what a
 * transaction of the dead bot had not committed is gone). SQLite: a copy of the file and its WAL, since
 * opening the file itself would recover and checkpoint the WAL when closed, and the next bot must find it
 * as the crash left it.
 */
async function readCrashImage(on: TemporaryDatabase, round: number): Promise<DatabaseState> {
  if (on.backend === 'postgres') return readNow(on);
  const path = on.location.databasePath;
  const copyDirectory = join(directory, `crash-${round}`);
  mkdirSync(copyDirectory);
  const copy = join(copyDirectory, 'crashed.db');
  copyFileSync(path, copy);
  if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
  try {
    return await readSqliteFile(copy);
  } finally {
    rmSync(copyDirectory, { recursive: true, force: true });
  }
}

// ── The test ───────────────────────────────────────────────────────────────────────────────────────

let discord: FakeDiscord;
let directory: string;
let database: TemporaryDatabase;
let users: APIUser[];

describe.each(BACKENDS)('Crash, on %s', (backend) => {
  const rounds = ROUNDS[backend];

  beforeAll(async () => {
    discord = await startFakeDiscord({ heartbeatIntervalMs: 5_000 });
    directory = mkdtempSync(join(tmpdir(), 'tierbot-crash-'));
    database = await temporaryDatabase(backend);
    users = [discord.user];
    for (const username of USER_NAMES) {
      const user = discord.addUser({ username });
      discord.addMember(user.id);
      users.push(user);
    }
  });

  afterAll(async () => {
    // Only after a failure half-way: the processes this test started that still run.
    for (const child of running) child.kill('SIGKILL');
    await discord.close();
    await database.cleanup();
    rmSync(directory, { recursive: true, force: true });
  });

  it(
    `when the bot is SIGKILLed during a burst of turns, ${rounds} rounds, then after each restart the ${backend === 'sqlite' ? 'file is intact' : 'running totals hold what the ledger holds'}, no settled row is lost, every open reservation is swept, and /usage agrees with the ledger`,
    async () => {
      const environment = ({ openai, anthropic }: Providers) => ({
        ...loopbackEnvironment({ discord, openai, anthropic, database }),
        DEFAULT_USER_BUDGET_USD: String(BUDGET_MICROS / 1_000_000),
      });
      // Each process loads its modules ahead of its turn and starts once the one before it is dead.
      const waiting: BotProcess[] = [];
      for (let ahead = 0; ahead < PROCESSES_AHEAD; ahead += 1) {
        waiting.push(await spawnBotProcess(environment));
      }
      // Registered once, as `npm run deploy-commands` does, so that /usage can be run.
      await registerCommands(loadConfig(environment(waiting[0]!.providers)).discord);

      let crashed: DatabaseState | undefined;
      let answered = 0;
      const swept = new Set<string>();
      for (let round = 0; ; round += 1) {
        const bot = waiting.shift()!;
        bot.start();
        await until(bot, () => bot.logs.some((line) => String(line.msg).startsWith('tierbot ready')));
        if (crashed) {
          await checkRestart(bot, crashed);
          for (const reservation of crashed.reservations) swept.add(reservation.purpose);
        }
        if (round === rounds) {
          for (const user of users) await checkUsage(bot, user);
        } else if (round > 0 && round % USAGE_EVERY_ROUNDS === 0) {
          await checkUsage(bot, users[(round / USAGE_EVERY_ROUNDS) % users.length]!);
        }
        // src/main.ts backs a crash loop off (src/core/restarts.ts: the third start within five minutes
        // waits 5 s to log in, doubling each time), and these starts come a second or two apart. No
        // setting shortens it, so the recorded starts are forgotten while this bot runs (on SQLite, its
        // open connection keeps the next crash's WAL as the crash leaves it): each start is an ordinary one.
        await database.query('DELETE FROM bot_starts');
        if (round === rounds) {
          bot.child.kill('SIGTERM');
          expect((await bot.exited).code, bot.output()).toBe(0);
          await closeProviders(bot.providers);
          break;
        }
        if (round + waiting.length < rounds) waiting.push(await spawnBotProcess(environment));

        const plan = roundPlan(round);
        const finished = await killDuringBurst(bot, round, plan);
        crashed = await readCrashImage(database, round);
        checkCrashImage(crashed, finished, plan, bot.providers.openai.drafts.requests.length);
        answered += plan.accepted;
        await closeProviders(bot.providers);
      }

      // The kills landed in every phase of a turn, and every answer shown is in the turn log.
      expect([...swept].sort()).toEqual(['check', 'draft', 'refine']);
      expect(await database.value("SELECT COUNT(*) FROM turns WHERE status = 'answered'")).toBe(answered);
      discord.assertNothingUnexpected();
    },
    TIMEOUT_MS,
  );
});

/**
 * Every user sends three questions at once; once the answers that can finish have, and every stalled
 * call has reached its provider, the bot is SIGKILLed. Returns the answers' final messages.
 */
async function killDuringBurst(bot: BotProcess, round: number, plan: RoundPlan): Promise<RecordedRequest[]> {
  const { openai, anthropic } = bot.providers;
  scriptRound(plan, bot.providers, users.length * MESSAGES_PER_USER);
  const from = discord.requests.length;
  for (let message = 1; message <= MESSAGES_PER_USER; message += 1) {
    for (const user of users) {
      discord.messageCreate({
        content: `<@${discord.bot.id}> round ${round}, question ${message} from ${user.username}`,
        authorId: user.id,
      });
    }
  }
  const finished = () =>
    discord.requests
      .slice(from)
      .filter((request) => request.status === 200 && FOOTER.test(String(request.body?.content ?? '')));
  await until(
    bot,
    () =>
      finished().length >= plan.accepted &&
      openai.drafts.requests.length >= users.length * ANSWERS_IN_PROGRESS_PER_USER &&
      openai.checks.requests.length >= plan.fastDrafts &&
      anthropic.requests.length >= plan.refines,
  );
  bot.child.kill('SIGKILL');
  expect((await bot.exited).signal).toBe('SIGKILL');
  expect([...openai.drafts.unexpected, ...openai.checks.unexpected, ...anthropic.unexpected]).toEqual([]);
  return finished();
}

async function closeProviders({ openai, anthropic }: Providers): Promise<void> {
  await Promise.all([openai.close(), anthropic.close()]);
}

/**
 * What the kill left: an intact database; exactly the scripted answers finished, each on disk (its calls, at
 * the cost its footer showed, and its turn); and every turn that reached a provider without finishing
 * still holds a reservation.
 */
function checkCrashImage(
  crashed: DatabaseState,
  finished: RecordedRequest[],
  plan: RoundPlan,
  draftsStarted: number,
): void {
  expect(crashed.integrity).toBe('ok');
  expect(finished).toHaveLength(plan.accepted);
  const held = new Set(crashed.reservations.map((reservation) => reservation.turn_id));
  for (const request of finished) {
    const turnId = ESCALATE_BUTTON.exec(JSON.stringify(request.body))?.[1] ?? 'no Escalate button';
    const rows = crashed.ledger.filter((row) => row.turn_id === turnId);
    expect(rows.map((row) => [row.purpose, row.outcome])).toEqual([
      ['draft', 'settled'],
      ['check', 'settled'],
    ]);
    const costMicros = rows.reduce((total, row) => total + row.cost_micros, 0);
    expect(formatUsd(costMicros)).toBe(FOOTER.exec(String(request.body.content))?.[1]);
    expect(crashed.turns.find((turn) => turn.turn_id === turnId)).toEqual({
      turn_id: turnId,
      status: 'answered',
      cost_micros: costMicros,
    });
    expect(held.has(turnId)).toBe(false);
  }
  expect(held.size).toBeGreaterThanOrEqual(draftsStarted - plan.accepted);
}

/** After a restart: the sweep ran, nothing written was lost, and the running totals match the ledger. */
async function checkRestart(bot: BotProcess, crashed: DatabaseState): Promise<void> {
  const now = await readNow(database);
  // The file is intact (SQLite), and the running totals that budget checks read hold what the ledger
  // charged, and, with no reservation left, nothing held.
  expect(now.integrity).toBe('ok');
  // Every row the crash left is there unchanged, and the only new rows are the sweep's.
  const byRequest = new Map(now.ledger.map((row) => [row.request_id, row]));
  for (const row of crashed.ledger) expect(byRequest.get(row.request_id)).toEqual(row);
  expect(now.ledger).toHaveLength(crashed.ledger.length + crashed.reservations.length);
  expect(now.reservations).toEqual([]);
  for (const reservation of crashed.reservations) {
    expect(byRequest.get(reservation.request_id)).toMatchObject({
      turn_id: reservation.turn_id,
      purpose: reservation.purpose,
      outcome: 'swept',
      cost_micros: reservation.amount_micros,
      reserved_micros: reservation.amount_micros,
      charged_at: reservation.created_at,
    });
  }
  expect(bot.logs.find((line) => typeof line.swept === 'number')?.swept).toBe(crashed.reservations.length);
  // A running total for every member who asked, and one for the server.
  const counters = await database.query('SELECT kind FROM spend_counters WHERE guild_key = $1', [
    discord.guild.id,
  ]);
  expect(counters).toHaveLength(users.length + 1);
}

/** A member's /usage, run for real, checked line by line against the file. */
async function checkUsage(bot: BotProcess, user: APIUser): Promise<void> {
  const windowBefore = periodWindow('month', Date.now());
  const interaction = discord.chatInputCommand({ commandName: 'usage', subcommand: 'me', userId: user.id });
  const content = () => discord.interactionResponses(interaction.id).original?.content ?? '';
  await until(bot, () => content().startsWith('Spent'));
  const windowAfter = periodWindow('month', Date.now());
  const lines = content().split('\n');
  const shown = [
    lines[0],
    lines[1]?.slice(0, lines[1].indexOf(' resets')),
    ...lines.filter((line) => line.startsWith('- ')).sort(),
    lines.find((line) => line.startsWith('**Answers**')),
  ];
  // At a month's last midnight the command may have run in either month: either one matches then.
  const expected = await Promise.all(
    [windowBefore, windowAfter].map((window) => expectedUsage(user, window)),
  );
  expect(shown).toEqual(
    expected.find((lines) => JSON.stringify(lines) === JSON.stringify(shown)) ?? expected[1],
  );
}

async function expectedUsage(user: APIUser, window: { startMs: number; endMs: number }): Promise<string[]> {
  const byModel = await database.query<{ model: string; calls: number; costMicros: number; tokens: number }>(
    `SELECT model, COUNT(*) AS calls, SUM(cost_micros) AS "costMicros",
            SUM(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens) AS tokens
     FROM usage_ledger WHERE guild_id = $1 AND user_id = $2 AND charged_at >= $3 AND charged_at < $4
     GROUP BY model`,
    [discord.guild.id, user.id, window.startMs, window.endMs],
  );
  const answers = await database.value(
    `SELECT COUNT(*) FROM turns
     WHERE guild_id = $1 AND user_id = $2 AND status = 'answered' AND created_at >= $3 AND created_at < $4`,
    [discord.guild.id, user.id, window.startMs, window.endMs],
  );
  const spentMicros = byModel.reduce((total, row) => total + row.costMicros, 0);
  return [
    `Spent ${formatUsd(spentMicros)} of ${formatUsd(BUDGET_MICROS)} this month`,
    // Nothing is in progress, so nothing is held: what is left is the budget less the ledger.
    `${formatUsd(BUDGET_MICROS - spentMicros)} left;`,
    ...byModel
      .map(
        (row) =>
          `- ${modelLabel(row.model)}: ${row.calls.toLocaleString('en-US')} calls · ` +
          `${row.tokens.toLocaleString('en-US')} tokens · ${formatUsd(row.costMicros)}`,
      )
      .sort(),
    // The refines never finish, so no answer shown was escalated.
    `**Answers**: ${String(answers)} · escalated to Claude Haiku: 0`,
  ];
}
