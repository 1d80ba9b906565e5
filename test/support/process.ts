import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
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

/**
 * Builds the bot as `npm run build` does (tsc with tsconfig.build.json) into `directory`/dist, linking
 * node_modules and migrations beside it so that it runs from there as from the checkout, and returns the
 * arguments `npm start` gives node: package.json's start script (`node [flags] dist/main.js`), with the
 * entry point in `directory`.
 */
export function buildForStart(directory: string): string[] {
  const require = createRequire(join(PROJECT_ROOT, 'package.json'));
  execFileSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(directory, 'dist')],
    { cwd: PROJECT_ROOT, stdio: 'inherit' },
  );
  // dist/ is ES modules, as package.json's "type" says in the checkout.
  writeFileSync(join(directory, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(directory, 'node_modules'), 'dir');
  symlinkSync(join(PROJECT_ROOT, 'migrations'), join(directory, 'migrations'), 'dir');
  const packageJson = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const [command, ...args] = (packageJson.scripts.start ?? '').trim().split(/\s+/);
  const entryPoint = args.at(-1);
  if (command !== 'node' || !entryPoint?.endsWith('.js')) {
    throw new Error(`the start script is not "node [flags] <entry>.js": ${packageJson.scripts.start}`);
  }
  return [...args.slice(0, -1), join(directory, entryPoint)];
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
  return new Promise((resolve) => {
    const child = spawn(process.execPath, tsxArguments(entryPoint, ...args), {
      cwd: options.cwd,
      env: options.env ?? process.env,
    });
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
