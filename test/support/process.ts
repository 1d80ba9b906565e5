import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const PROJECT_ROOT = join(import.meta.dirname, '../..');

/**
 * Node arguments that run a TypeScript entry point through tsx from any working directory
 * (`--import tsx` alone resolves tsx from the child's cwd).
 */
export function tsxArguments(entryPoint: string, ...args: string[]): string[] {
  const loader = pathToFileURL(createRequire(join(PROJECT_ROOT, 'package.json')).resolve('tsx')).href;
  return ['--import', loader, entryPoint, ...args];
}

/** The npm scripts that run a compiled entry point: `node [flags] dist/<entry>.js`. */
export type EntryScript = 'start' | 'chat' | 'deploy-commands';

/**
 * The project in `directory` as `npm ci` leaves it (its prepare script, scripts/build.mjs: tsc with
 * tsconfig.build.json into dist/, and the hash of the sources it was built from): a copy of package.json,
 * the tsconfigs, scripts/, src/ and the checkout's dist/ (built once for the whole run by
 * test/setup/build.ts, the same build as the copy's sources make), with node_modules (by default the
 * checkout's) and migrations linked, so that it runs from there — `npm start` included — as from a fresh
 * checkout. The copy's own check finds its dist/ fresh, as after `npm ci`.
 */
export function buildProject(directory: string, options: { nodeModules?: string } = {}): void {
  mkdirSync(directory, { recursive: true });
  for (const path of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts', 'src', 'dist']) {
    cpSync(join(PROJECT_ROOT, path), join(directory, path), { recursive: true });
  }
  symlinkSync(
    options.nodeModules ?? join(PROJECT_ROOT, 'node_modules'),
    join(directory, 'node_modules'),
    'dir',
  );
  symlinkSync(join(PROJECT_ROOT, 'migrations'), join(directory, 'migrations'), 'dir');
  execFileSync(process.execPath, ['scripts/build.mjs', '--install'], { cwd: directory, stdio: 'inherit' });
}

/**
 * The arguments package.json's `script` gives node (`node [flags] <entry>.js`), with the entry point in
 * `directory` and `args` after it: the process `npm start` (or `npm run chat -- args`) starts.
 */
export function scriptArguments(directory: string, script: EntryScript, ...args: string[]): string[] {
  const packageJson = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const command = packageJson.scripts[script] ?? '';
  const [program, ...words] = command.trim().split(/\s+/);
  const entryPoint = words.at(-1);
  if (program !== 'node' || !entryPoint?.endsWith('.js')) {
    throw new Error(`the ${script} script is not "node [flags] <entry>.js": ${command}`);
  }
  return [...words.slice(0, -1), join(directory, entryPoint), ...args];
}

/** Builds the project in `directory` ({@link buildProject}) and returns the arguments `npm start` gives node. */
export function buildForStart(directory: string): string[] {
  buildProject(directory);
  return scriptArguments(directory, 'start');
}

export interface ProcessOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a TypeScript entry point in its own Node process to the end, feeding it `input` on stdin. */
export function runEntryPoint(
  entryPoint: string,
  args: readonly string[] = [],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<ProcessOutcome> {
  return runNode(tsxArguments(entryPoint, ...args), options);
}

/** Runs node with `args` to the end, feeding it `input` on stdin. */
export function runNode(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<ProcessOutcome> {
  return runProcess(process.execPath, args, options);
}

/** Runs a program to the end, feeding it `input` on stdin; what it printed and how it ended. */
export function runProcess(
  program: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    const child = spawn(program, args, { cwd: options.cwd, env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}
