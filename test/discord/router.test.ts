import { describe, expect, it } from 'vitest';
import type { RecordedRequest } from '../fakes/discord/index.js';
import { registerCommands } from '../../src/discord/commands/register.js';
import { openaiErrors } from '../fakes/openai.js';
import { ACCEPT, botPerTest, until } from '../support/bot.js';
import { triageSays } from '../support/engine.js';

/*
 * The router as people see it in Discord: the real bot and discord.js against the loopback Discord, with
 * a loopback OpenAI fake per kind of call (drafts streamed, triages and checks by schema name) and the
 * Anthropic fake. What is asserted is what Discord received, and in which order.
 */

const startBot = botPerTest({ splitOpenAI: true });
const start = (environment: Record<string, string> = {}) =>
  startBot({
    environment: { ROUTER: 'on', ...environment },
    before: (_discord, config) => registerCommands(config.discord).then(() => {}),
  });

const isBotWrite = (request: RecordedRequest) =>
  request.route === 'POST /channels/:channel_id/messages' ||
  request.route === 'PATCH /channels/:channel_id/messages/:message_id';

/** Words no one may ever read: the draft of a routed turn, long enough to be cut off. */
const DRAFT_WORDS = ['Zebra-draft ', ...Array.from({ length: 40 }, (_, index) => `word${index} `)];

describe('a turn the triage sends to Claude', () => {
  it('when the triage says smart, then no create or edit ever carries the draft, and the footer says why', async () => {
    const harness = await start();
    const { discord, openai, anthropic } = harness;
    openai.drafts.script({ type: 'stream', chunks: DRAFT_WORDS, chunkDelayMs: 60 });
    openai.triages.script({ ...triageSays('smart', 'code', 95), delayMs: 200 });
    anthropic.script({
      type: 'stream',
      chunks: ['Use ', 'a ', 'debounce: ', 'wait ', 'for ', 'a ', 'pause.'],
      chunkDelayMs: 40,
    });

    discord.messageCreate({ content: `<@${discord.bot.id}> how do I debounce a search box in javascript?` });
    const final = await discord.waitForRequest(
      (request) => isBotWrite(request) && String(request.body?.content).includes('-# claude-haiku-4-5'),
      { timeoutMs: 10_000 },
    );

    expect(final.body.content).toBe(
      'Use a debounce: wait for a pause.\n-# claude-haiku-4-5 · ' +
        String(final.body.content).split('-# claude-haiku-4-5 · ')[1],
    );
    expect(final.body.content).toContain('\n-# routed to Claude Haiku: code');
    const writes = discord.requests.filter(isBotWrite);
    expect(writes.length).toBeGreaterThan(0);
    for (const write of writes) expect(JSON.stringify(write.body)).not.toContain('Zebra-draft');
    expect(openai.drafts.closedEarly).toBe(1);
  });
});

describe('a turn the triage leaves to the fast model', () => {
  it('when the triage says fast, then the draft is first shown once the triage has answered', async () => {
    const harness = await start();
    const { discord, openai } = harness;
    openai.drafts.script({ type: 'stream', text: 'Paris is the capital of France.' });
    openai.triages.script({ ...triageSays('fast', 'factual', 95), delayMs: 300 });
    openai.checks.script({ type: 'completion', content: ACCEPT });

    discord.messageCreate({ content: `<@${discord.bot.id}> capital of France?` });
    const final = await discord.waitForRequest(
      (request) => isBotWrite(request) && String(request.body?.content).includes('-# gpt-4o-mini'),
      { timeoutMs: 10_000 },
    );

    expect(final.body.content).toMatch(/^Paris is the capital of France\.\n-# gpt-4o-mini · /);
    const firstText = discord.requests.find((request) => isBotWrite(request) && request.body?.content);
    const triageAnswered = openai.ended.find((response) => response.kind === 'triage' && response.finished);
    const draftEnded = openai.ended.find((response) => response.kind === 'draft');
    expect(triageAnswered).toBeDefined();
    // The draft had all been written before the triage answered; none of it reached Discord until then.
    expect(draftEnded!.at).toBeLessThanOrEqual(triageAnswered!.at);
    expect(firstText!.receivedAt).toBeGreaterThanOrEqual(triageAnswered!.at);
  });

  it('when the triage fails, then the draft is shown as it streams, without waiting out the triage timeout', async () => {
    const harness = await start({ ROUTER_TIMEOUT_SECONDS: '10' });
    const { discord, openai } = harness;
    openai.triages.script(openaiErrors.server(500));
    openai.drafts.script({
      type: 'stream',
      chunks: ['A monad ', 'chains ', 'computations ', 'that ', 'carry ', 'context ', 'along.'],
      chunkDelayMs: 150,
    });
    openai.checks.script({ type: 'completion', content: ACCEPT });

    discord.messageCreate({ content: `<@${discord.bot.id}> what is a monad?` });
    await discord.waitForRequest(
      (request) => isBotWrite(request) && String(request.body?.content).includes('-# gpt-4o-mini'),
      { timeoutMs: 10_000 },
    );

    const firstText = discord.requests.find((request) => isBotWrite(request) && request.body?.content);
    const draftEnded = openai.ended.find((response) => response.kind === 'draft');
    // Text reached Discord while the draft was still streaming: the failed triage held nothing back.
    expect(firstText!.receivedAt).toBeLessThan(draftEnded!.at);
    expect(openai.triages.requests).toHaveLength(1);
  });
});

describe('/usage after routed turns', () => {
  it('when answers went to Claude by triage and by rule, then /usage counts them by those reasons and the savings stay true', async () => {
    const harness = await start();
    const { discord, openai, anthropic } = harness;
    const isFinal = (model: string) => (request: RecordedRequest) =>
      isBotWrite(request) && String(request.body?.content).includes(`-# ${model}`);

    openai.drafts.script({ type: 'stream', chunks: DRAFT_WORDS, chunkDelayMs: 60 });
    openai.triages.script(triageSays('smart', 'reasoning', 90));
    anthropic.script({ type: 'stream', text: 'Split by person-nights.' });
    discord.messageCreate({ content: `<@${discord.bot.id}> 5 of us split a $240 airbnb, fair split?` });
    await discord.waitForRequest(isFinal('claude-haiku-4-5'), { timeoutMs: 10_000 });

    anthropic.script({ type: 'stream', text: 'x is not a function because…' });
    const trace = 'TypeError: x is not a function\n    at run (/app/a.js:3:9)\n    at main (/app/a.js:9:1)';
    const before = discord.requests.length;
    discord.messageCreate({ content: `<@${discord.bot.id}> why?\n${trace}` });
    await until(() => discord.requests.slice(before).some(isFinal('claude-haiku-4-5')));

    const interaction = discord.chatInputCommand({ commandName: 'usage', subcommand: 'me' });
    let text = '';
    await until(() => {
      text = discord.interactionResponses(interaction.id).original?.content ?? '';
      return text.startsWith('Spent');
    });
    expect(text).toMatch(
      /\*\*Answers\*\*: 2 · escalated to Claude Haiku: 2 \((triage 1, code rule 1|code rule 1, triage 1)\)/,
    );
    // The triage and the aborted draft cost more than nothing: sending both to Claude alone saved nothing.
    expect(text).toContain('**Saved** $0.0000 against sending every answer to Claude Haiku');
  });
});
