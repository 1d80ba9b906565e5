import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import ts from 'typescript';
import { PROJECT_ROOT, tsxArguments } from '../test/support/process.js';

/*
 * The bot as its own process, so that its memory is measured apart from the fakes and the benchmark:
 * src/main.ts itself (loadConfig → createApp → startBot, signal handling), configured through the
 * environment as an operator configures it.
 *
 * Two ways to run it. `compiled`: src/ transpiled ahead to JavaScript, one file per module (the per-file
 * transform tsx applies on the fly, without type checking), run by plain `node`. `tsx`:
 * `node --import tsx src/main.ts`, the process `npm start` ends up running; its loader adds a second V8
 * isolate (the module-hooks thread), the transformed sources and their source maps to the process.
 */

export type BotRunner = 'compiled' | 'tsx';

const READY_LINE = 'tierbot ready';
const READY_LIMIT_MS = 30_000;
/** How long a stopped bot may take to exit before it is killed. */
const EXIT_LIMIT_MS = 15_000;
/** pino's error and fatal levels. */
const ERROR_LEVEL = 50;
/** Error lines kept for the report; a bot that logs more than this has one problem many times. */
const KEPT_ERROR_LINES = 20;
const BYTES_PER_KIB = 1_024;

/**
 * Transpiles src/ into `directory`/src with links to node_modules and migrations, so that module
 * resolution and `new URL('../../migrations', import.meta.url)` find what they find from the checkout.
 * Returns the entry point.
 */
export function compileBot(directory: string): string {
  const sourceRoot = join(PROJECT_ROOT, 'src');
  for (const file of readdirSync(sourceRoot, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts')) continue;
    const { outputText } = ts.transpileModule(readFileSync(join(sourceRoot, file), 'utf8'), {
      fileName: file,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ES2022,
        verbatimModuleSyntax: true,
      },
    });
    const output = join(directory, 'src', file.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(output), { recursive: true });
    writeFileSync(output, outputText);
  }
  writeFileSync(join(directory, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(directory, 'node_modules'), 'dir');
  symlinkSync(join(PROJECT_ROOT, 'migrations'), join(directory, 'migrations'), 'dir');
  return join(directory, 'src', 'main.js');
}

export interface BotProcess {
  readonly pid: number;
  /** Lines the bot logged at error level or above, and anything it wrote to stderr (the first few). */
  readonly errors: readonly string[];
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

/** Starts the bot with `environment` (and PATH) only, and resolves once it has logged in. */
export async function startBotProcess(options: {
  runner: BotRunner;
  /** For `compiled`: what {@link compileBot} returned. */
  entryPoint?: string;
  environment: Record<string, string>;
  cwd: string;
}): Promise<BotProcess> {
  const args =
    options.runner === 'tsx'
      ? tsxArguments(join(PROJECT_ROOT, 'src/main.ts'))
      : [options.entryPoint ?? fail('a compiled bot needs its entry point')];
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, ...options.environment },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // 'exit', not 'close': a grandchild (tsx's esbuild service) may hold the pipes a little longer.
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const errors: string[] = [];
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
