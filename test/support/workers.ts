import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { tsxArguments } from './process.js';

/*
 * Tests that need several OS processes on one database start them here, both sides of one small protocol
 * over the standard streams (so that it passes through `nsenter` into a simulated host, which an IPC
 * channel does not): each worker is a TypeScript entry point given one JSON argument; it prints "ready" on
 * a line of its own once loaded, waits for the test's "go" on stdin (so that all of them start at once),
 * prints its report as the last line of stdout and exits 0, or writes the error to stderr and exits 1.
 */

/** The line a worker prints once it is ready, and the line the test answers when all of them are. */
const READY_LINE = 'ready';
const GO_LINE = 'go';

export interface WorkerSpec {
  /** Names the worker in errors. */
  name: string;
  entryPoint: string;
  /** Passed as JSON in argv[2]. */
  argument: unknown;
  cwd: string;
  /** The worker's whole environment (PATH is added); default: this process's. */
  env?: Record<string, string>;
  /** A command the worker runs under (e.g. `nsenter` into a simulated host, see hosts.ts); default none. */
  launcher?: readonly string[];
}

export interface WorkerOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts every worker, lets them go together once all are ready, and waits for them to end. */
export async function runWorkersTogether(specs: readonly WorkerSpec[]): Promise<WorkerOutcome[]> {
  const workers: ReturnType<typeof startWorker>[] = [];
  try {
    for (const spec of specs) workers.push(startWorker(spec));
    await Promise.all(workers.map((worker) => worker.ready));
    for (const worker of workers) worker.child.stdin.end(`${GO_LINE}\n`);
    return await Promise.all(workers.map((worker) => worker.finished));
  } finally {
    // Only after a failure: the workers this test started that still run.
    for (const { child } of workers) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}

/** The report a worker printed: its last line of stdout, as JSON. */
export function reportOf<Report>(outcome: WorkerOutcome): Report {
  return JSON.parse(outcome.stdout.trim().split('\n').at(-1) ?? '') as Report;
}

function startWorker(spec: WorkerSpec) {
  const nodeArguments = tsxArguments(spec.entryPoint, JSON.stringify(spec.argument));
  const [command, ...args] = [...(spec.launcher ?? []), process.execPath, ...nodeArguments];
  const child: ChildProcessWithoutNullStreams = spawn(command ?? process.execPath, args, {
    cwd: spec.cwd,
    env: spec.env ? { PATH: process.env.PATH ?? '', ...spec.env } : process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // A worker that died before reading "go" closes its end: the write fails, and 'close' says why.
  child.stdin.on('error', () => {});
  let stdout = '';
  let stderr = '';
  let markReady: () => void = () => {};
  const isReady = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.split('\n').slice(0, -1).includes(READY_LINE)) markReady();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  // 'close' rather than 'exit': it fires once the output pipes are drained too.
  const finished = new Promise<WorkerOutcome>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, signal) => resolve({ exitCode, signal, stdout, stderr }));
  });
  const ready = Promise.race([
    isReady,
    finished.then((outcome) => {
      throw new Error(`${spec.name} ended before it was ready:\n${outcome.stderr}`);
    }),
  ]);
  return { child, ready, finished };
}

/**
 * Worker side: says "ready" and waits for the test's "go"; run by hand from a terminal, goes at once.
 */
export function startSignal(): Promise<void> {
  process.stdout.write(`${READY_LINE}\n`);
  if (process.stdin.isTTY) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (!received.split('\n').includes(GO_LINE)) return;
      process.stdin.off('data', onData);
      // An open stdin would keep this process alive.
      process.stdin.destroy();
      resolve();
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', () => reject(new Error('stdin ended before the test said "go"')));
  });
}

/**
 * Worker side: runs `work` on the JSON argument and prints its report as one line; a thrown error goes to
 * stderr (with its code, e.g. SQLITE_BUSY) and makes the process exit 1. `work` calls
 * {@link startSignal} when it is ready to go.
 */
export async function runAsWorker<Argument>(work: (argument: Argument) => Promise<unknown>): Promise<void> {
  try {
    const report = await work(JSON.parse(process.argv[2] ?? '') as Argument);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`${typeof code === 'string' ? `${code}: ` : ''}${detail}\n`);
    process.exitCode = 1;
  } finally {
    process.stdin.destroy();
  }
}
