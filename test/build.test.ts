import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProject, PROJECT_ROOT } from './support/process.js';

/**
 * scripts/build.mjs, which `npm ci` (prepare) and the pre-scripts of `npm start`, `npm run chat` and
 * `npm run deploy-commands` run: dist/ is built once and again only when src/ changed, and a deployment
 * without dev dependencies is told plainly what to do.
 */

let project: string;

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'tierbot-build-'));
  buildProject(project);
}, 120_000);
afterAll(() => rmSync(project, { recursive: true, force: true }));

function check(...args: string[]) {
  return spawnSync(process.execPath, ['scripts/build.mjs', ...args], { cwd: project, encoding: 'utf8' });
}

const builtAt = () => statSync(join(project, 'dist/main.js')).mtimeMs;

/** Points the project's node_modules at a copy of the checkout's without TypeScript (as after npm prune --omit=dev), or back. */
function withoutTypeScript(isWithout: boolean): void {
  const link = join(project, 'node_modules');
  unlinkSync(link);
  if (!isWithout) {
    symlinkSync(join(PROJECT_ROOT, 'node_modules'), link, 'dir');
    return;
  }
  const pruned = join(project, 'pruned_modules');
  rmSync(pruned, { recursive: true, force: true });
  mkdirSync(pruned);
  for (const name of readdirSync(join(PROJECT_ROOT, 'node_modules'))) {
    if (name === 'typescript' || name === '.bin') continue;
    symlinkSync(join(PROJECT_ROOT, 'node_modules', name), join(pruned, name));
  }
  symlinkSync(pruned, link, 'dir');
}

describe('scripts/build.mjs', () => {
  it('when dist/ was built from the sources as they are, then the check says nothing and builds nothing', () => {
    const before = builtAt();

    const result = check();

    expect(result).toMatchObject({ status: 0, stderr: '', stdout: '' });
    expect(builtAt()).toBe(before);
  });

  it('when `npm run chat` runs in a fresh build, then its pre-script passes and the compiled chat answers', () => {
    const result = spawnSync('npm', ['run', '--silent', 'chat', '--', '--help'], {
      cwd: project,
      encoding: 'utf8',
      // No look-up of npm's latest version on the registry: tests stay on this machine.
      env: { PATH: process.env.PATH, HOME: project, npm_config_update_notifier: 'false' },
    });

    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^usage: npm run chat -- /);
  });

  it('when TypeScript is not installed, then a fresh dist/ is used, a stale one refused in one line, and an install goes on', () => {
    withoutTypeScript(true);
    try {
      expect(check()).toMatchObject({ status: 0, stderr: '' });

      appendFileSync(join(project, 'src/log.ts'), '\n// changed after the build\n');
      const stale = check();
      const duringInstall = check('--install');

      expect(stale.status).toBe(70);
      expect(stale.stderr).toBe(
        'tierbot: src/ has changed since dist/ was built, and building needs TypeScript, a dev dependency ' +
          'that is not installed: run `npm ci` (with dev dependencies), then `npm prune --omit=dev` if you ' +
          'want them gone\n',
      );
      expect(duringInstall).toMatchObject({ status: 0, stderr: stale.stderr });
    } finally {
      withoutTypeScript(false);
    }
  });

  it('when a source file changed since the build, then the check rebuilds dist/, says why, and is quiet after', () => {
    appendFileSync(join(project, 'src/log.ts'), '\n// a newcomer edits src/\n');

    const rebuilt = check();

    expect(rebuilt.status).toBe(0);
    expect(rebuilt.stderr).toBe(
      'tierbot: src/ has changed since the last build: building dist/ with tsc (about 20 s)…\n',
    );
    expect(readFileSync(join(project, 'dist/log.js'), 'utf8')).toContain('// a newcomer edits src/');
    expect(check()).toMatchObject({ status: 0, stderr: '' });
  }, 120_000);
});
