import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../src/exit-codes.js';
import { type FakeAnthropic, startFakeAnthropic } from './fakes/anthropic.js';
import { type FakeOpenAI, openaiErrors, startFakeOpenAI } from './fakes/openai.js';
import { buildProject, type ProcessOutcome, runNode, scriptArguments } from './support/process.js';
import { loopbackEnvironment } from './support/environment.js';

let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let directory: string;
/** The project built as `npm ci` builds it: `npm run chat` runs its dist/chat.js. */
let build: string;

beforeAll(() => {
  build = mkdtempSync(join(tmpdir(), 'tierbot-build-'));
  buildProject(build);
  // A copy of the checkout built once for the run (test/setup/build.ts).
}, 120_000);
afterAll(() => rmSync(build, { recursive: true, force: true }));

beforeEach(async () => {
  [openai, anthropic] = await Promise.all([startFakeOpenAI(), startFakeAnthropic()]);
  directory = mkdtempSync(join(tmpdir(), 'tierbot-chat-'));
});
afterEach(async () => {
  expect([...openai.unexpected, ...anthropic.unexpected]).toEqual([]);
  await Promise.all([openai.close(), anthropic.close()]);
  rmSync(directory, { recursive: true, force: true });
});

function environment(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    ...loopbackEnvironment({ openai, anthropic, databasePath: join(directory, 'tierbot.db') }),
  };
}

/** `npm run chat -- args` with stdin piped, in `directory` (where it reads .env): what it printed and how it ended. */
function chat(input: string, ...args: string[]): Promise<ProcessOutcome> {
  return runNode(scriptArguments(build, 'chat', ...args), { cwd: directory, input, env: environment() });
}

const accept = JSON.stringify({
  verdict: 'accept',
  reason: 'correct and complete',
  category: 'factual',
  confidence: 0.95,
});

describe('npm run chat with stdin piped', () => {
  it('when lines are piped in, then each gets an answer and a footer, commands work, and it exits at the end', async () => {
    openai.script(
      { type: 'stream', text: 'Paris is the capital of France.', finishReason: 'stop' },
      { type: 'completion', content: accept },
    );
    anthropic.script({
      type: 'stream',
      text: 'Paris, on the Seine, is the capital of France.',
      stopReason: 'end_turn',
    });

    const { code, stdout, stderr } = await chat(
      ['What is the capital of France?', '/escalate', '/budget 2.5', '/usage', ''].join('\n'),
      '--user',
      'alice',
    );

    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[0]).toBe('Paris is the capital of France.');
    expect(lines[1]).toMatch(/^-- gpt-4o-mini · [\d,]+ tokens · \$0\.\d{4}$/);
    expect(stdout).toContain('[refining with Claude Haiku: requested by user]');
    expect(stdout).toContain('Paris, on the Seine, is the capital of France.');
    expect(stdout).toMatch(/-- claude-haiku-4-5 \(requested by user\) · [\d,]+ tokens · \$0\.\d{4}/);
    expect(stdout).toContain('your budget is now $2.5000 per month');
    expect(stdout).toMatch(/Spent \$0\.\d{4} of \$2\.5000 this month/);
    expect(stdout).toMatch(/ {2}gpt-4o-mini: 2 calls/);
    expect(stdout).toMatch(/ {2}claude-haiku-4-5: 1 call · /);

    // The escalation carried the earlier answer for Haiku to improve on.
    const refine = anthropic.requests[0]?.body;
    expect(JSON.stringify(refine.messages)).toContain('Paris is the capital of France.');
    expect(openai.requests).toHaveLength(2);
  });

  it('when a required key is missing, then it says which and exits with the configuration code without answering', async () => {
    const child = await runNode(scriptArguments(build, 'chat'), {
      cwd: directory,
      input: 'hello\n',
      env: { PATH: process.env.PATH, OPENAI_API_KEY: 'sk-test', DATABASE_PATH: join(directory, 'x.db') },
    });
    expect(child.code).toBe(EXIT_CODES.configuration);
    expect(child.stderr).toContain('ANTHROPIC_API_KEY: required but not set');
    expect(child.stderr).not.toContain('DISCORD_TOKEN');
  });

  it('when .env holds placeholder Discord settings, then the chat ignores them and answers', async () => {
    writeFileSync(
      join(directory, '.env'),
      'DISCORD_TOKEN=paste-your-bot-token-here\nDISCORD_GUILD_ID=my server\nBOT_OPERATOR_IDS=me\n',
    );
    openai.script(
      { type: 'stream', text: 'Four.', finishReason: 'stop' },
      { type: 'completion', content: accept },
    );

    const { code, stdout, stderr } = await chat('What is 2 + 2?\n');

    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Four\.\n-- gpt-4o-mini · /);
  });

  it('when both providers fail after one reported usage, then it says what was charged, not that nothing was', async () => {
    // OpenAI's account is out of credit; Claude Haiku, asked instead, starts its stream (reporting the
    // input tokens it read) and ends it without a word or a stop reason.
    openai.script(openaiErrors.insufficientQuota());
    anthropic.script({
      type: 'stream',
      chunks: [],
      stopReason: null,
      usage: { inputTokens: 2_000, outputTokens: 0 },
    });

    const { code, stdout } = await chat('hello\n');

    expect(code).toBe(0);
    // 2,000 input tokens of Claude Haiku 4.5 at $1 per million.
    expect(stdout).toMatch(
      /^-- both model providers are unavailable right now; \$0\.0020 was charged for what they reported using$/m,
    );
    expect(stdout).not.toContain('nothing was charged');
  });
});

describe('npm run chat arguments', () => {
  it('when --help is given, then it prints how to use it and exits 0 without reading any configuration', async () => {
    const outcome = await runNode(scriptArguments(build, 'chat', '--help'), {
      cwd: directory,
      env: { PATH: process.env.PATH },
    });

    expect(outcome.code).toBe(0);
    expect(outcome.stdout).toMatch(/^usage: npm run chat -- \[--user NAME\] \[--help\]\n/);
    expect(outcome.stdout).toContain('--user NAME');
    expect(outcome.stderr).toBe('');
  });

  it('when an unknown flag is given, then it prints the problem and the usage line and exits with the usage code', async () => {
    const outcome = await chat('', '--model', 'smart');

    expect(outcome.code).toBe(EXIT_CODES.usage);
    expect(outcome.stderr).toBe(
      'npm run chat: unknown option --model\nusage: npm run chat -- [--user NAME] [--help]\n',
    );
    expect(outcome.stdout).toBe('');
    expect(openai.requests).toEqual([]);
  });

  it('when --user has no name or a stray argument follows, then each is a usage error', async () => {
    const withoutName = await chat('', '--user');
    const stray = await chat('', 'hello');

    expect(withoutName).toMatchObject({
      code: EXIT_CODES.usage,
      stderr: expect.stringContaining('--user needs a name'),
    });
    expect(stray).toMatchObject({
      code: EXIT_CODES.usage,
      stderr: expect.stringContaining('unexpected argument "hello"'),
    });
  });
});

describe('npm run chat in a terminal', () => {
  it('when run in a terminal, then it shows a prompt, echoes what is typed, answers, and quits on Ctrl-D', async () => {
    openai.script(
      { type: 'stream', text: 'Hello to you too.', finishReason: 'stop' },
      { type: 'completion', content: accept },
    );
    // script(1) runs the chat on a pseudo-terminal and copies what it draws there to our stdout.
    const command = ['node', ...scriptArguments(build, 'chat')].map(shellQuote).join(' ');
    const terminal = spawn('script', ['--quiet', '--flush', '--return', '--command', command, '/dev/null'], {
      cwd: directory,
      env: { ...environment(), SHELL: '/bin/sh', TERM: 'dumb' },
    });
    let screen = '';
    terminal.stdout.on('data', (chunk) => {
      screen += chunk;
    });
    const exited = new Promise<number | null>((resolve) => terminal.on('close', resolve));
    const until = async (condition: () => boolean, what: string) => {
      const deadline = Date.now() + 30_000;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`no ${what} on the terminal; it shows:\n${screen}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };

    await until(() => screen.includes('tierbot in your terminal') && screen.endsWith('> '), 'prompt');
    terminal.stdin.write('say hello');
    await until(() => screen.includes('say hello'), 'echo of the typed text');
    terminal.stdin.write('\r');
    await until(() => /-- gpt-4o-mini · /.test(screen), 'answer');
    await until(() => screen.endsWith('> '), 'prompt after the answer');
    terminal.stdin.write('\u0004');

    expect(await exited).toBe(0);
    expect(screen).toContain('Hello to you too.');
    expect(openai.requests[0]?.body.messages.at(-1)).toMatchObject({ role: 'user', content: 'say hello' });
  });
});

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
