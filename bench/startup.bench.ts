import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeAnthropic } from '../test/fakes/anthropic.js';
import { type FakeDiscord, startFakeDiscord } from '../test/fakes/discord/index.js';
import { type FakeOpenAI, startFakeOpenAI } from '../test/fakes/openai.js';
import { startOpenAIRouter } from '../test/fakes/openai-router.js';
import { buildProject } from '../test/support/process.js';
import { type TreeProcess, TreeRssSampler } from './process-tree.js';
import { type Benchmark, type Figure, percentile, progress } from './support.js';

/*
 * How fast `npm start` gets the bot ready, and how much memory everything it runs takes while the bot
 * answers, against a bare bot.
 *
 * The project is built in a temporary directory as `npm ci` builds it (scripts/build.mjs, its prepare
 * script), then started with the real `npm start` there: npm, the prestart check that dist/ is up to date,
 * and node with the start script's flags, configured by environment variables against the loopback
 * Discord and OpenAI of this process.
 *
 * - Ready: from spawning `npm start` to the bot's "tierbot ready" log line, over several starts after one
 *   unmeasured start (the files are in the page cache, as on any restart), each on a copy of a database
 *   that start migrated (a restart's database: migrated, and with no crash loop to back off from).
 * - Memory: the sum of the RSS of every process in `npm start`'s tree (npm, sh where it stays, node; the
 *   prestart check while it runs), read from /proc every 50 ms from the spawn until the last of the
 *   streamed answers is final at Discord.
 * - The baseline is bench/bare-bot: a discord.js client that answers a mention by streaming an OpenAI
 *   chat completion into a reply with edits, with discord.js's default caches and nothing else, started
 *   the same way (`npm start` in its directory, node with the same `--optimize-for-size`) against the same
 *   fakes, and asked the same questions, the same streamed answer coming back at the same pace.
 */

const BARE_BOT_DIRECTORY = fileURLToPath(new URL('./bare-bot/', import.meta.url));

/** Starts timed after the unmeasured first one; the p50 is the 4th of 7. */
const TIMED_STARTS = 7;
const RSS_SAMPLE_INTERVAL_MS = 50;
/** Mentions answered while memory is sampled: waves of questions from different people at once. */
const WAVES = 6;
const QUESTIONS_PER_WAVE = 4;
const READY_LIMIT_MS = 60_000;
const ANSWERS_LIMIT_MS = 60_000;
const EXIT_LIMIT_MS = 15_000;

/** The same streamed answer for both bots: the first token after 300 ms, then ~100 tokens/s. */
const ANSWER =
  'A monad is a way to chain computations that carry context along with their values, such as failure or state.';
const FIRST_CHUNK_DELAY_MS = 300;
const CHUNK_DELAY_MS = 40;
const ACCEPT = JSON.stringify({
  verdict: 'accept',
  reason: 'complete',
  category: 'factual',
  confidence: 0.95,
});

const READY_TARGET_MS = 2_000;
const RSS_RATIO_TARGET = 1.3;
const BYTES_PER_MB = 2 ** 20;

interface Contender {
  name: string;
  /** Where `npm start` runs. */
  directory: string;
  /** What its log says once it is ready. */
  readyLine: string;
  /** Whether a message the bot sent is the final form of an answer. */
  isFinal(content: string): boolean;
  /** What the fake OpenAI must be ready to answer for one question. */
  scriptTurn(drafts: FakeOpenAI, checks: FakeOpenAI): void;
  environment(servers: Servers, databasePath: string): Record<string, string>;
}

interface Servers {
  discord: FakeDiscord;
  drafts: FakeOpenAI;
  checks: FakeOpenAI;
  openaiUrl: string;
  anthropicUrl: string;
  close(): Promise<void>;
}

interface Started {
  child: ChildProcess;
  readyMs: number;
  errors: string[];
  stop(): Promise<void>;
}

export const startupBenchmark: Benchmark = {
  name: 'startup',
  async run(): Promise<Figure[]> {
    const directory = mkdtempSync(join(tmpdir(), 'tierbot-bench-startup-'));
    try {
      progress('startup: building the project as `npm ci` does (scripts/build.mjs)…');
      const project = join(directory, 'project');
      buildProject(project);
      const tierbot = tierbotContender(project);
      const bare = bareContender();
      assertSameNodeFlags(project, bare.directory);

      progress(`startup: \`npm start\` to ready, 1 + ${TIMED_STARTS} starts of each bot…`);
      const tierbotReadyMs = await timeStarts(tierbot, directory);
      const bareReadyMs = await timeStarts(bare, directory);

      progress(
        `startup: peak RSS of npm start's processes while answering ${WAVES * QUESTIONS_PER_WAVE} mentions…`,
      );
      const tierbotMemory = await peakWhileAnswering(tierbot, directory);
      const bareMemory = await peakWhileAnswering(bare, directory);
      progress(`startup: tierbot at its peak: ${describeTree(tierbotMemory.atPeak)}`);
      progress(`startup: bare bot at its peak: ${describeTree(bareMemory.atPeak)}`);

      return [
        {
          name: '`npm start` → "tierbot ready" p50 (built, restart)',
          value: percentile(tierbotReadyMs, 50) / 1_000,
          unit: 's',
          target: { atMost: READY_TARGET_MS / 1_000 },
        },
        {
          name: '`npm start` → "tierbot ready" slowest',
          value: percentile(tierbotReadyMs, 100) / 1_000,
          unit: 's',
        },
        { name: '`npm start` → ready, bare bot, p50', value: percentile(bareReadyMs, 50) / 1_000, unit: 's' },
        {
          name: `peak RSS of npm start's processes, ${WAVES * QUESTIONS_PER_WAVE} streamed answers`,
          value: tierbotMemory.peakBytes / BYTES_PER_MB,
          unit: 'MB',
        },
        {
          name: 'the same, bare discord.js + openai bot',
          value: bareMemory.peakBytes / BYTES_PER_MB,
          unit: 'MB',
        },
        {
          name: 'peak RSS, tierbot / bare bot',
          value: tierbotMemory.peakBytes / bareMemory.peakBytes,
          unit: '×',
          target: { atMost: RSS_RATIO_TARGET },
        },
      ];
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  },
};

function tierbotContender(project: string): Contender {
  return {
    name: 'tierbot',
    directory: project,
    readyLine: 'tierbot ready',
    isFinal: (content) => content.includes('\n-# '),
    scriptTurn(drafts, checks) {
      drafts.script(streamedAnswer());
      checks.script({ type: 'completion', content: ACCEPT });
    },
    environment: (servers, databasePath) => ({
      DISCORD_TOKEN: servers.discord.token,
      DISCORD_API_URL: servers.discord.apiUrl,
      OPENAI_API_KEY: 'sk-bench-openai-key-0000000000',
      ANTHROPIC_API_KEY: 'sk-ant-bench-key-0000000000',
      OPENAI_BASE_URL: servers.openaiUrl,
      ANTHROPIC_BASE_URL: servers.anthropicUrl,
      DATABASE_PATH: databasePath,
      DEFAULT_USER_BUDGET_USD: '10000',
      LOG_LEVEL: 'info',
    }),
  };
}

function bareContender(): Contender {
  return {
    name: 'bare bot',
    directory: BARE_BOT_DIRECTORY,
    readyLine: 'bare bot ready',
    isFinal: (content) => content === ANSWER,
    scriptTurn(drafts) {
      drafts.script(streamedAnswer());
    },
    environment: (servers) => ({
      DISCORD_TOKEN: servers.discord.token,
      DISCORD_API_URL: servers.discord.apiUrl,
      OPENAI_API_KEY: 'sk-bench-openai-key-0000000000',
      OPENAI_BASE_URL: servers.openaiUrl,
    }),
  };
}

function streamedAnswer() {
  return {
    type: 'stream' as const,
    text: ANSWER,
    firstChunkDelayMs: FIRST_CHUNK_DELAY_MS,
    chunkDelayMs: CHUNK_DELAY_MS,
    finishReason: 'stop' as const,
  };
}

/** Milliseconds from spawning `npm start` to the ready line, for each timed start. */
async function timeStarts(contender: Contender, directory: string): Promise<Float64Array> {
  const servers = await startServers();
  const readyMs = new Float64Array(TIMED_STARTS);
  try {
    // The unmeasured start: it fills the page cache, and migrates the database the others copy.
    const migrated = join(directory, `${contender.name}-migrated.db`);
    await (await startWithNpm(contender, contender.environment(servers, migrated))).stop();
    for (let start = 0; start < TIMED_STARTS; start += 1) {
      const databasePath = copyDatabase(migrated, join(directory, `${contender.name}-${start}.db`));
      const started = await startWithNpm(contender, contender.environment(servers, databasePath));
      readyMs[start] = started.readyMs;
      await started.stop();
    }
    return readyMs;
  } finally {
    await servers.close();
  }
}

/** The peak of the summed RSS of `npm start`'s processes, from the spawn to the last answer's final edit. */
async function peakWhileAnswering(
  contender: Contender,
  directory: string,
): Promise<{ peakBytes: number; atPeak: TreeProcess[] }> {
  const servers = await startServers();
  let sampler: TreeRssSampler | undefined;
  const started = await startWithNpm(
    contender,
    contender.environment(servers, join(directory, `${contender.name}-memory.db`)),
    (pid) => {
      sampler = new TreeRssSampler(pid, RSS_SAMPLE_INTERVAL_MS);
    },
  );
  try {
    const { discord } = servers;
    const people = Array.from({ length: QUESTIONS_PER_WAVE }, (_, index) => {
      const user = discord.addUser({ username: `asker-${index}` });
      discord.addMember(user.id);
      return user;
    });
    for (let wave = 0; wave < WAVES; wave += 1) {
      const from = discord.requests.length;
      for (let turn = 0; turn < people.length; turn += 1)
        contender.scriptTurn(servers.drafts, servers.checks);
      const questions = people.map((person) =>
        discord.messageCreate({ content: `<@${discord.bot.id}> what is a monad?`, authorId: person.id }),
      );
      await waitForFinals(discord, contender, new Set(questions.map((question) => question.id)), from);
    }
    if (started.errors.length > 0) throw new Error(`${contender.name} wrote:\n${started.errors.join('\n')}`);
    return sampler!.stop();
  } finally {
    sampler?.stop();
    await started.stop();
    await servers.close();
  }
}

/** Waits until every question has a final answer at Discord (a reply, or an edit of one). */
async function waitForFinals(
  discord: FakeDiscord,
  contender: Contender,
  questionIds: Set<string>,
  from: number,
): Promise<void> {
  const deadline = Date.now() + ANSWERS_LIMIT_MS;
  const replyOf = new Map<string, string>();
  const answered = new Set<string>();
  let cursor = from;
  while (answered.size < questionIds.size) {
    for (; cursor < discord.requests.length; cursor += 1) {
      const request = discord.requests[cursor]!;
      if (request.status >= 300) continue;
      const content = String(request.body?.content ?? '');
      let questionId: string | undefined;
      if (request.route === 'POST /channels/:channel_id/messages') {
        questionId = request.body?.message_reference?.message_id;
        if (questionId) replyOf.set(String(request.responseBody?.id), questionId);
      } else if (request.route === 'PATCH /channels/:channel_id/messages/:message_id') {
        questionId = replyOf.get(request.params.message_id ?? '');
      }
      if (questionId && questionIds.has(questionId) && contender.isFinal(content)) answered.add(questionId);
    }
    if (Date.now() > deadline) {
      throw new Error(`${contender.name}: ${questionIds.size - answered.size} answers had no final edit`);
    }
    await sleep(10);
  }
}

/**
 * Runs `npm start` in the contender's directory, in a process group of its own (so that npm, sh and node
 * stop together), and resolves once the ready line is logged.
 */
async function startWithNpm(
  contender: Contender,
  environment: Record<string, string>,
  onSpawn?: (pid: number) => void,
): Promise<Started> {
  const startedAt = performance.now();
  const child = spawn('npm', ['start'], {
    cwd: contender.directory,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      // npm would otherwise look up its own latest version on the registry now and then.
      npm_config_update_notifier: 'false',
      ...environment,
    },
  });
  const pid = child.pid ?? fail(`${contender.name}: npm start did not spawn`);
  onSpawn?.(pid);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const errors: string[] = [];
  let output = '';
  let readyMs: number | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (readyMs === undefined) {
      output += `${line}\n`;
      if (line.includes(contender.readyLine)) readyMs = performance.now() - startedAt;
    }
    if (Number(/"level":(\d+)/.exec(line)?.[1]) >= 50) errors.push(line);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => errors.push(line));

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(-pid, 'SIGTERM');
    if ((await Promise.race([exited, sleep(EXIT_LIMIT_MS, 'late' as const)])) !== 'late') return;
    process.kill(-pid, 'SIGKILL');
    await exited;
  };
  const deadline = Date.now() + READY_LIMIT_MS;
  while (readyMs === undefined) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`${contender.name} did not get ready:\n${output}${errors.join('\n')}`);
    }
    await sleep(5);
  }
  return { child, readyMs, errors, stop };
}

async function startServers(): Promise<Servers> {
  const [discord, drafts, checks, anthropic] = await Promise.all([
    startFakeDiscord(),
    startFakeOpenAI(),
    startFakeOpenAI(),
    startFakeAnthropic(),
  ]);
  const router = await startOpenAIRouter({ urls: { draft: drafts.url, check: checks.url } });
  return {
    discord,
    drafts,
    checks,
    openaiUrl: router.url,
    anthropicUrl: anthropic.url,
    async close() {
      const unexpected = drafts.unexpected.length + checks.unexpected.length;
      await Promise.all([discord.close(), drafts.close(), checks.close(), anthropic.close(), router.close()]);
      if (unexpected > 0) throw new Error(`${unexpected} model requests were not scripted`);
    },
  };
}

/** A copy of a closed SQLite database (with its WAL, if one was left) at `path`. */
function copyDatabase(source: string, path: string): string {
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(`${source}${suffix}`)) copyFileSync(`${source}${suffix}`, `${path}${suffix}`);
  }
  return path;
}

/** The comparison is fair only if both start scripts give node the same flags. */
function assertSameNodeFlags(...directories: string[]): void {
  const flags = directories.map((directory) => {
    const { scripts } = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as {
      scripts: { start: string };
    };
    return scripts.start.split(/\s+/).slice(1, -1).join(' ');
  });
  if (new Set(flags).size > 1) {
    throw new Error(
      `the start scripts give node different flags (${flags.join(' / ')}): align bench/bare-bot's`,
    );
  }
}

function describeTree(tree: readonly TreeProcess[]): string {
  return tree
    .map((process) => `${process.command} ${Math.round(process.rssBytes / BYTES_PER_MB)} MB`)
    .join(', ');
}

function fail(message: string): never {
  throw new Error(message);
}
