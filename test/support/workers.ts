import { type ChildProcess, spawn } from 'node:child_process';
import { tsxArguments } from './process.js';

/*
 * Tests that need several OS processes on one database start them here, both sides of one small protocol:
 * each worker is a TypeScript entry point given one JSON argument and an IPC channel; it says "ready" once
 * loaded, waits for the test's "go" (so that all of them start at once), prints its report as the last
 * line of stdout and exits 0, or writes the error to stderr and exits 1.
 */

export interface WorkerSpec {
  /** Names the worker in errors. */
  name: string;
  entryPoint: string;
  /** Passed as JSON in argv[2]. */
  argument: unknown;
  cwd: string;
  /** The worker's whole environment (PATH is added); default: this process's. */
  env?: Record<string, string>;
}

export interface WorkerOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts every worker, lets them go together once all are ready, and waits for them to end. */
export async function runWorkersTogether(specs: readonly WorkerSpec[]): Promise<WorkerOutcome[]> {
  const workers: { child: ChildProcess; ready: Promise<void>; finished: Promise<WorkerOutcome> }[] = [];
  try {
    for (const spec of specs) workers.push(startWorker(spec));
    await Promise.all(workers.map((worker) => worker.ready));
    for (const worker of workers) worker.child.send('go');
    return await Promise.all(workers.map((worker) => worker.finished));
  } finally {
    // Only after a failure: the workers this test started that still run.
    for (const { child } of workers) {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    }
  }
}

/** The report a worker printed: its last line of stdout, as JSON. */
export function reportOf<Report>(outcome: WorkerOutcome): Report {
  return JSON.parse(outcome.stdout.trim().split('\n').at(-1) ?? '') as Report;
}

function startWorker(spec: WorkerSpec) {
  const child = spawn(process.execPath, tsxArguments(spec.entryPoint, JSON.stringify(spec.argument)), {
    cwd: spec.cwd,
    env: spec.env ? { PATH: process.env.PATH ?? '', ...spec.env } : process.env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  // 'close' rather than 'exit': it fires once the output pipes are drained too.
  const finished = new Promise<WorkerOutcome>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, signal) => resolve({ exitCode, signal, stdout, stderr }));
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    finished.then(
      (outcome) => reject(new Error(`${spec.name} ended before it was ready:\n${outcome.stderr}`)),
      reject,
    );
  });
  return { child, ready, finished };
}

/** Worker side: says "ready" and waits for the test's "go"; run by hand (no IPC), goes at once. */
export function startSignal(): Promise<void> {
  const send = process.send?.bind(process);
  if (!send) return Promise.resolve();
  return new Promise((resolve) => {
    process.once('message', () => resolve());
    send('ready');
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
    // The IPC channel would keep this process alive.
    process.disconnect?.();
  }
}
