// Builds dist/ from src/ with TypeScript, when it is missing or was built from other sources.
//
//   node scripts/build.mjs            before `npm start`, `npm run chat`, `npm run deploy-commands`: builds
//                                     only if src/ changed since the last build (a check of a few ms)
//   node scripts/build.mjs --install  at `npm ci` (prepare): the same, but without TypeScript (installed
//                                     with --omit=dev) it only says how to build, and the install goes on
//   node scripts/build.mjs --always   `npm run build`
//
// Plain JavaScript on purpose: it runs before anything is compiled, and with or without dev dependencies.
// A build records a hash of its sources in dist/.source-hash; the check compares it with the sources now.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import process from 'node:process';

const ROOT = join(import.meta.dirname, '..');
const DIST = join(ROOT, 'dist');
const STAMP = join(DIST, '.source-hash');
/** What tsc's output depends on. */
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json'];
/** Exit code when dist/ cannot be built or is out of date without TypeScript: sysexits' EX_SOFTWARE. */
const EXIT_NOT_BUILT = 70;

const mode = process.argv[2] ?? 'check';
if (!['check', '--install', '--always'].includes(mode)) {
  process.stderr.write(`usage: node scripts/build.mjs [--install | --always]\n`);
  process.exit(64);
}

const hash = sourceHash();
const builtFrom = existsSync(STAMP) ? readFileSync(STAMP, 'utf8').trim() : undefined;
if (mode !== '--always' && builtFrom === hash) process.exit(0);

const tsc = resolveTsc();
if (!tsc) {
  const state =
    builtFrom === undefined ? 'dist/ has not been built' : 'src/ has changed since dist/ was built';
  const advice =
    'building needs TypeScript, a dev dependency that is not installed: run `npm ci` (with dev ' +
    'dependencies), then `npm prune --omit=dev` if you want them gone';
  process.stderr.write(`tierbot: ${state}, and ${advice}\n`);
  process.exit(mode === '--install' ? 0 : EXIT_NOT_BUILT);
}

if (mode === 'check') {
  const why = builtFrom === undefined ? 'dist/ has not been built' : 'src/ has changed since the last build';
  process.stderr.write(`tierbot: ${why}: building dist/ with tsc (about 20 s)…\n`);
}
rmSync(DIST, { recursive: true, force: true });
const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
  cwd: ROOT,
  stdio: 'inherit',
});
if (build.status !== 0) {
  process.stderr.write('tierbot: the build failed (tsc, above)\n');
  process.exit(build.status ?? EXIT_NOT_BUILT);
}
// The hash of the sources as they were when the build started: an edit made meanwhile rebuilds next time.
writeFileSync(STAMP, `${hash}\n`);

/** SHA-256 over every input file's path and content, in a stable order. */
function sourceHash() {
  const digest = createHash('sha256');
  for (const file of INPUTS.flatMap((input) => filesUnder(join(ROOT, input))).sort()) {
    digest.update(`${relative(ROOT, file)}\0`);
    digest.update(readFileSync(file));
    digest.update('\0');
  }
  return digest.digest('hex');
}

function filesUnder(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/** TypeScript's compiler, or undefined when it is not installed (npm ci --omit=dev, npm prune). */
function resolveTsc() {
  try {
    return createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}
