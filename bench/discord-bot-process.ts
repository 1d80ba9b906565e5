import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/*
 * The bot as its own process, so that its memory is measured apart from the fakes and the benchmark, and
 * run as `npm start` runs it: built as `npm run build` builds it (tsc, src/ → dist/), then started with
 * the start script's own node flags, configured through the environment as an operator configures it.
 */

const READY_LINE = 'tierbot ready';
/** The line src/discord/answer.ts logs once a turn is shown. */
const TURN_DONE = '"msg":"turn done"';
const READY_LIMIT_MS = 30_000;
/** How long a stopped bot may take to exit before it is killed. */
const EXIT_LIMIT_MS = 15_000;
/** pino's error and fatal levels. */
const ERROR_LEVEL = 50;
/** Error lines kept for the report; a bot that logs more than this has one problem many times. */
const KEPT_ERROR_LINES = 20;
const BYTES_PER_KIB = 1_024;

/** What the bot logged of a turn once it was shown (its "turn done" line). */
export interface LoggedTurn {
  /** From the start of the turn to its last message sent. */
  ms: number;
  /** Of that, the time inside the providers' calls, as the bot's gateway measured it. */
  providerMs: number;
}

export interface BotProcess {
  readonly pid: number;
  /** Lines the bot logged at error level or above, and anything it wrote to stderr (the first few). */
  readonly errors: readonly string[];
  /** The turns the bot logged as done, by the id of the message they answered. */
  readonly turns: ReadonlyMap<string, LoggedTurn>;
  /** Resident set size now, in bytes. */
  rssBytes(): number;
  /**
   * The kernel's high-water mark of the resident set (VmHWM) since start or the last
   * {@link resetPeakRss}, in bytes: exact, with no sampling gaps. Undefined without /proc.
   */
  peakRssBytes(): number | undefined;
  /** Restarts the high-water mark from the current RSS; false where the kernel does not allow it. */
  resetPeakRss(): boolean;
  /** SIGTERM (the bot finishes or cancels answers in progress) or SIGKILL; resolves with the exit code. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<number | null>;
}

/**
 * Starts the bot with `environment` (and PATH) only, in `cwd` (where it looks for a .env file), and resolves
 * once it has logged in.
 */
export async function startBotProcess(options: {
  /** What test/support/process.ts's buildForStart returned: node's arguments as `npm start` gives them. */
  args: readonly string[];
  environment: Record<string, string>;
  cwd: string;
}): Promise<BotProcess> {
  const { args } = options;
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, ...options.environment },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const errors: string[] = [];
  const turns = new Map<string, LoggedTurn>();
  const keep = (line: string) => {
    if (errors.length < KEPT_ERROR_LINES) errors.push(line);
  };
  // Every line is read (an unread pipe would stall the bot); only the start and errors are kept.
  let startOutput = '';
  let isReady = false;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!isReady) {
      startOutput += `${line}\n`;
      isReady = line.includes(READY_LINE);
    }
    if (Number(/"level":(\d+)/.exec(line)?.[1]) >= ERROR_LEVEL) keep(line);
    if (line.includes(TURN_DONE)) {
      const { messageId, ms, providerMs } = JSON.parse(line) as LoggedTurn & { messageId?: string };
      if (messageId) turns.set(messageId, { ms, providerMs });
    }
  });
  createInterface({ input: child.stderr }).on('line', keep);

  const deadline = Date.now() + READY_LIMIT_MS;
  while (!isReady) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the bot did not log in:\n${startOutput}${errors.join('\n')}`);
    }
    await sleep(20);
  }
  const pid = child.pid ?? fail('the bot process has no pid');

  return {
    pid,
    errors,
    turns,
    rssBytes: () => readRssBytes(pid),
    peakRssBytes: () => statusField(pid, 'VmHWM'),
    resetPeakRss: () => {
      try {
        // "5" resets the peak RSS to the current RSS (Linux ≥ 4.0; proc(5), /proc/pid/clear_refs).
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
        return true;
      } catch {
        return false;
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const code = await Promise.race([exited, sleep(EXIT_LIMIT_MS, 'late' as const)]);
      if (code !== 'late') return code;
      child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Samples a process's RSS on an interval and keeps the largest. */
export class RssSampler {
  #peakBytes: number;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly bot: BotProcess,
    intervalMs: number,
  ) {
    this.#peakBytes = bot.rssBytes();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  /** Stops sampling; the largest sample, in bytes. */
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    return this.#peakBytes;
  }

  #sample(): void {
    try {
      this.#peakBytes = Math.max(this.#peakBytes, this.bot.rssBytes());
    } catch {
      // The process has gone; the samples so far stand.
    }
  }
}

function fail(message: string): never {
  throw new Error(message);
}

function readRssBytes(pid: number): number {
  const fromProc = statusField(pid, 'VmRSS');
  if (fromProc !== undefined) return fromProc;
  // Without /proc (macOS): ps reports RSS in KiB.
  const kib = execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' });
  return Number(kib.trim()) * BYTES_PER_KIB;
}

/** A field of /proc/<pid>/status (given in kB, which are KiB) in bytes, or undefined without /proc. */
function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  return match ? Number(match[1]) * BYTES_PER_KIB : undefined;
}
