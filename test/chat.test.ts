import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeAnthropic, startFakeAnthropic } from './fakes/anthropic.js';
import { type FakeOpenAI, startFakeOpenAI } from './fakes/openai.js';
import { PROJECT_ROOT, type ProcessOutcome, runEntryPoint } from './support/process.js';
import { loopbackEnvironment } from './support/environment.js';

let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let directory: string;

beforeEach(async () => {
  [openai, anthropic] = await Promise.all([startFakeOpenAI(), startFakeAnthropic()]);
  directory = mkdtempSync(join(tmpdir(), 'tierbot-chat-'));
});
afterEach(async () => {
  expect([...openai.unexpected, ...anthropic.unexpected]).toEqual([]);
  await Promise.all([openai.close(), anthropic.close()]);
  rmSync(directory, { recursive: true, force: true });
});

/** `npm run chat` with stdin piped: what it printed and how it ended. */
function chat(input: string, ...args: string[]): Promise<ProcessOutcome> {
  return runEntryPoint(join(PROJECT_ROOT, 'src/chat.ts'), args, {
    cwd: directory,
    input,
    env: {
      PATH: process.env.PATH,
      ...loopbackEnvironment({ openai, anthropic, databasePath: join(directory, 'tierbot.db') }),
    },
  });
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

  it('when a required key is missing, then it says which and exits non-zero without answering', async () => {
    const child = await runEntryPoint(join(PROJECT_ROOT, 'src/chat.ts'), [], {
      cwd: directory,
      input: 'hello\n',
      env: { PATH: process.env.PATH, OPENAI_API_KEY: 'sk-test', DATABASE_PATH: join(directory, 'x.db') },
    });
    expect(child.code).not.toBe(0);
    expect(child.stderr).toContain('ANTHROPIC_API_KEY: required but not set');
    expect(child.stderr).not.toContain('DISCORD_TOKEN');
  });
});
