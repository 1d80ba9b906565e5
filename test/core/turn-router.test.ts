import { afterEach, describe, expect, it } from 'vitest';
import { CHECK_SCHEMA_NAME } from '../../src/core/escalation.js';
import type { CallPurpose } from '../../src/core/ledger.js';
import { TRIAGE_MAX_OUTPUT_TOKENS, TRIAGE_SCHEMA_NAME } from '../../src/core/router.js';
import type { RouterPolicy } from '../../src/core/router.js';
import type { TurnResult } from '../../src/core/turn.js';
import { countOpenAITokens } from '../../src/providers/estimate.js';
import type { SplitOpenAI } from '../fakes/openai-router.js';
import { openaiErrors } from '../fakes/openai.js';
import {
  checkSays,
  draftWorstCaseMicros,
  type EngineHarness,
  MAX_OUTPUT_TOKENS,
  runTurn,
  startRouterEngine,
  SYSTEM_PROMPT,
  triageSays,
  turnRequest,
  turnRow,
} from '../support/engine.js';
import { FAST_MODEL, SMART_MODEL } from '../support/ledger.js';
import type { ProviderHarnessOptions } from '../support/providers.js';

/*
 * The router through the real SDKs, gateway and ledger, against loopback OpenAI fakes told apart by what
 * each call is for (drafts streamed, triages and checks by their JSON schema's name) and the Anthropic
 * fake. Each test scripts exactly the calls it expects; an unscripted one fails the test.
 */

let engine: EngineHarness<SplitOpenAI> | undefined;
afterEach(async () => {
  await engine?.close();
  engine = undefined;
});

const ABORT_MARGIN_TOKENS = 32;

async function start(
  options: ProviderHarnessOptions & { router?: Partial<RouterPolicy> } = {},
): Promise<EngineHarness<SplitOpenAI>> {
  engine = await startRouterEngine({ abortMarginTokens: ABORT_MARGIN_TOKENS, ...options });
  return engine;
}

interface LedgerRow {
  purpose: CallPurpose;
  model: string;
  outcome: string;
  inputTokens: number;
  outputTokens: number;
  costMicros: number;
  reservedMicros: number;
}

async function ledgerRows(harness: EngineHarness<SplitOpenAI>, turnId: string): Promise<LedgerRow[]> {
  await harness.storage.flush();
  return harness.database.query<LedgerRow>(
    `SELECT purpose, model, outcome, input_tokens AS "inputTokens", output_tokens AS "outputTokens",
            cost_micros AS "costMicros", reserved_micros AS "reservedMicros"
       FROM usage_ledger WHERE turn_id = $1 ORDER BY purpose`,
    [turnId],
  );
}

/** Nothing reserved, nothing unscripted, and the ledger adds up to what the turn says it cost. */
async function expectAccountedFor(
  harness: EngineHarness<SplitOpenAI>,
  result: TurnResult,
  purposes: CallPurpose[],
) {
  expect(await harness.ledger.openReservationCount()).toBe(0);
  expect([...harness.openai.unexpected, ...harness.anthropic.unexpected]).toEqual([]);
  const rows = await ledgerRows(harness, result.turnId);
  expect(rows.map((row) => row.purpose).sort()).toEqual([...purposes].sort());
  expect(rows.reduce((sum, row) => sum + row.costMicros, 0)).toBe(result.costMicros);
}

const DRAFT_FIRST_WORDS = 'A draft nobody sees ';
const ACCEPT = checkSays('accept', 'complete', 'factual', 0.95);

describe('when the triage sends the question to Claude', () => {
  it('then the draft is aborted (the fake sees it closed), Claude answers directly, and the draft is charged what it streamed plus the margin', async () => {
    const harness = await start();
    const question = 'how do I debounce a search box in javascript?';
    // The draft's first words come at once; the rest would take ten seconds.
    harness.openai.drafts.script({
      type: 'stream',
      chunks: [DRAFT_FIRST_WORDS, 'and the rest ', 'never comes.'],
      chunkDelayMs: 10_000,
    });
    harness.openai.triages.script({ ...triageSays('smart', 'code', 92), delayMs: 100 });
    harness.anthropic.script({
      type: 'stream',
      text: 'Use a debounce:',
      usage: { inputTokens: 30, outputTokens: 200 },
    });

    const { result, events } = await runTurn(harness, turnRequest(question));

    expect(result).toMatchObject({
      status: 'answered',
      text: 'Use a debounce:',
      model: SMART_MODEL,
      models: [SMART_MODEL],
      escalation: { source: 'router', reason: 'routed to Claude Haiku: code', category: 'code' },
      triage: { route: 'smart', category: 'code', confidence: 0.92 },
    });
    expect(events.some((event) => event.type === 'delta' && event.phase === 'draft')).toBe(false);
    expect(harness.openai.drafts.closedEarly).toBe(1);
    // Claude sees the conversation, not the draft.
    const claudeRequest = harness.anthropic.requests[0]?.body;
    expect(JSON.stringify(claudeRequest)).not.toContain(DRAFT_FIRST_WORDS.trim());
    expect(claudeRequest.messages.at(-1).content).toEqual([{ type: 'text', text: question }]);

    await expectAccountedFor(harness, result, ['triage', 'draft', 'direct']);
    const draft = (await ledgerRows(harness, result.turnId)).find((row) => row.purpose === 'draft');
    const estimatedInput = harness.openaiModel.estimateInputTokens({
      model: FAST_MODEL,
      system: SYSTEM_PROMPT,
      messages: [{ role: 'user', content: question }],
      maxOutputTokens: MAX_OUTPUT_TOKENS,
    });
    expect(draft).toMatchObject({
      outcome: 'failed',
      inputTokens: estimatedInput,
      outputTokens: countOpenAITokens(DRAFT_FIRST_WORDS) + ABORT_MARGIN_TOKENS,
    });
    // Honest: more than nothing, well under the worst case the draft reserved (all 512 output tokens).
    expect(draft?.costMicros).toBeGreaterThan(0);
    expect(draft?.costMicros).toBeLessThan(
      draftWorstCaseMicros(harness, [{ role: 'user', content: question }]) / 2,
    );
    expect(await turnRow(harness, result.turnId)).toMatchObject({
      escalation_source: 'router',
      triage_route: 'smart',
      triage_category: 'code',
      triage_confidence: 0.92,
      check_verdict: null,
    });
  });

  it('then the triage is a small structured call on the question alone, made beside the draft', async () => {
    const harness = await start();
    harness.openai.drafts.script({
      type: 'stream',
      chunks: [DRAFT_FIRST_WORDS, 'more'],
      chunkDelayMs: 10_000,
    });
    harness.openai.triages.script(triageSays('smart', 'reasoning', 90));
    harness.anthropic.script({ type: 'stream', text: 'Let us work it out.' });

    await runTurn(
      harness,
      turnRequest('5 of us split a $240 airbnb for 4 nights, 2 stayed 2 nights; fair split?'),
    );

    const triage = harness.openai.triages.requests[0]?.body;
    expect(triage).toMatchObject({
      model: FAST_MODEL,
      max_completion_tokens: TRIAGE_MAX_OUTPUT_TOKENS,
      response_format: { type: 'json_schema', json_schema: { name: TRIAGE_SCHEMA_NAME, strict: true } },
    });
    expect(triage.stream).toBeUndefined();
    expect(triage.messages.at(-1).content).toContain('fair split?');
  });

  it('when the budget cannot cover Claude, then the draft is never aborted and answers, checked as today', async () => {
    const question = 'should I pay off my 6% student loan or invest?';
    const probe = await start();
    const draftWorstCase = draftWorstCaseMicros(probe, [{ role: 'user', content: question }]);
    await probe.close();
    // Enough for the draft, the triage and the check, never for Claude's worst case beside them.
    const harness = await start({ userBudgetMicros: 3 * draftWorstCase });
    harness.openai.drafts.script({ type: 'stream', text: 'Compare the 6% to expected returns.' });
    harness.openai.triages.script(triageSays('smart', 'reasoning', 90));
    harness.openai.checks.script(checkSays('accept', 'sound', 'reasoning', 0.9));

    const { result } = await runTurn(harness, turnRequest(question));

    expect(result).toMatchObject({
      status: 'answered',
      models: [FAST_MODEL],
      text: 'Compare the 6% to expected returns.',
    });
    expect(harness.openai.drafts.closedEarly).toBe(0);
    expect(harness.anthropic.requests).toHaveLength(0);
    await expectAccountedFor(harness, result, ['draft', 'triage', 'check']);
  });
});

describe('when the triage says fast', () => {
  it('then it is today’s path: the same draft request, shown, checked and settled, beside the triage', async () => {
    const harness = await start();
    harness.openai.drafts.script({
      type: 'stream',
      text: 'Paris.',
      usage: { promptTokens: 24, completionTokens: 3 },
    });
    harness.openai.triages.script(
      triageSays('fast', 'factual', 95, { promptTokens: 150, completionTokens: 14 }),
    );
    harness.openai.checks.script(ACCEPT);

    const { result, events } = await runTurn(harness, turnRequest('What is the capital of France?'));

    expect(result).toMatchObject({
      text: 'Paris.',
      models: [FAST_MODEL],
      triage: { route: 'fast', category: 'factual', confidence: 0.95 },
      check: { verdict: 'accept' },
    });
    expect(result.escalation).toBeUndefined();
    expect(events).toEqual([{ type: 'delta', text: 'Paris.', phase: 'draft' }]);
    expect(harness.openai.drafts.requests[0]?.body).toMatchObject({
      model: FAST_MODEL,
      stream: true,
      messages: [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: 'What is the capital of France?' },
      ],
    });
    expect(harness.openai.checks.requests[0]?.body.response_format.json_schema.name).toBe(CHECK_SCHEMA_NAME);
    // The triage's cost is part of the turn's: 150 × $0.15/M + 14 × $0.60/M = 30.9 → 31.
    expect(result.calls.find((call) => call.purpose === 'triage')?.costMicros).toBe(31);
    await expectAccountedFor(harness, result, ['draft', 'triage', 'check']);
  });

  it('then a confident chit-chat triage skips the check', async () => {
    const harness = await start();
    harness.openai.drafts.script({ type: 'stream', text: 'Morning! ☕' });
    harness.openai.triages.script(triageSays('fast', 'chit-chat', 97));

    const { result } = await runTurn(harness, turnRequest('gm everyone'));

    expect(result).toMatchObject({ text: 'Morning! ☕', models: [FAST_MODEL] });
    expect(result.check).toBeUndefined();
    expect(harness.openai.checks.requests).toHaveLength(0);
    await expectAccountedFor(harness, result, ['draft', 'triage']);
  });
});

describe('when the triage fails, then it is today’s path', () => {
  const todaysPath = async (harness: EngineHarness<SplitOpenAI>) => {
    harness.openai.drafts.script({ type: 'stream', text: 'A monad chains computations.' });
    harness.openai.checks.script(ACCEPT);
    const { result, events } = await runTurn(harness, turnRequest('what is a monad?'));
    expect(result).toMatchObject({
      status: 'answered',
      text: 'A monad chains computations.',
      models: [FAST_MODEL],
    });
    expect(result.triage).toBeUndefined();
    expect(new Set(events.map((event) => (event.type === 'delta' ? event.phase : event.type)))).toEqual(
      new Set(['draft']),
    );
    return result;
  };

  it('when OpenAI answers the triage 500, then it is not retried and the draft is shown', async () => {
    const harness = await start();
    harness.openai.triages.script(openaiErrors.server(500));
    const result = await todaysPath(harness);
    expect(harness.openai.triages.requests).toHaveLength(1);
    expect(harness.waits).toEqual([]);
    await expectAccountedFor(harness, result, ['draft', 'triage', 'check']);
    expect((await ledgerRows(harness, result.turnId)).find((row) => row.purpose === 'triage')).toMatchObject({
      outcome: 'failed',
      costMicros: 0,
    });
  });

  it('when the triage hangs past its timeout, then it is aborted (and charged its input and allowance)', async () => {
    const harness = await start({ router: { timeoutMs: 150 } });
    harness.openai.triages.script({ ...triageSays('smart', 'code', 99), delayMs: 30_000 });
    const result = await todaysPath(harness);
    expect(harness.openai.triages.closedEarly).toBe(1);
    await expectAccountedFor(harness, result, ['draft', 'triage', 'check']);
    const triage = (await ledgerRows(harness, result.turnId)).find((row) => row.purpose === 'triage');
    expect(triage).toMatchObject({ outcome: 'failed', outputTokens: TRIAGE_MAX_OUTPUT_TOKENS });
    expect(triage?.costMicros).toBeGreaterThan(0);
  });

  it('when the triage answers unreadable JSON, then it is settled and ignored', async () => {
    const harness = await start();
    harness.openai.triages.script({ type: 'completion', content: 'smart, I think' });
    const result = await todaysPath(harness);
    await expectAccountedFor(harness, result, ['draft', 'triage', 'check']);
  });

  it('when the budget cannot cover the triage beside the draft, then the draft (reserved first) goes ahead alone', async () => {
    const question = 'what is a monad?';
    const probe = await start();
    const draftWorstCase = draftWorstCaseMicros(probe, [{ role: 'user', content: question }]);
    await probe.close();
    const harness = await start({ userBudgetMicros: draftWorstCase + 1 });
    const result = await todaysPath(harness);
    expect(harness.openai.triages.requests).toHaveLength(0);
    await expectAccountedFor(harness, result, ['draft', 'check']);
  });
});

describe('what makes no triage call', () => {
  it('when the router is in shadow mode, then the triage is recorded beside the check and never acts', async () => {
    const harness = await start({ router: { mode: 'shadow' } });
    harness.openai.drafts.script({ type: 'stream', text: 'Use a for loop.' });
    harness.openai.triages.script(triageSays('smart', 'code', 99));
    harness.openai.checks.script(checkSays('accept', 'fine', 'code', 0.9));
    harness.anthropic.script({ type: 'stream', text: 'Refined loop.' });

    const { result, events } = await runTurn(harness, turnRequest('how do I loop over a list in python?'));

    // The check's verdict, not the triage's, decided: code is always refined.
    expect(result).toMatchObject({
      models: [FAST_MODEL, SMART_MODEL],
      escalation: { source: 'check', category: 'code' },
      triage: { route: 'smart', category: 'code', confidence: 0.99 },
    });
    expect(events[0]).toMatchObject({ type: 'delta', phase: 'draft' });
    expect(harness.openai.drafts.closedEarly).toBe(0);
    expect(await turnRow(harness, result.turnId)).toMatchObject({
      triage_route: 'smart',
      check_verdict: 'accept',
      check_category: 'code',
    });
    await expectAccountedFor(harness, result, ['draft', 'triage', 'check', 'refine']);
  });

  it('when the question carries a stack trace, then the rule routes it to Claude with no triage and no draft', async () => {
    const harness = await start();
    harness.anthropic.script({ type: 'stream', text: 'x is undefined because…' });
    const question =
      'help\nTypeError: x is not a function\n    at run (/app/a.js:3:9)\n    at main (/app/a.js:9:1)';

    const { result } = await runTurn(harness, turnRequest(question));

    expect(result.escalation).toEqual({
      source: 'rule',
      reason: 'routed to Claude Haiku: a stack trace',
      category: 'code',
    });
    expect(harness.openai.requests).toHaveLength(0);
    await expectAccountedFor(harness, result, ['direct']);
  });

  it.each([
    ['escalation is manual', { mode: 'manual' as const }],
    ['escalation is off', { mode: 'off' as const }],
    ['the person asked for the fast model', { choice: 'fast' as const }],
  ])('when %s, then only the draft is made', async (_, overrides) => {
    const harness = await start();
    harness.openai.drafts.script({ type: 'stream', text: 'The draft.' });
    const { result } = await runTurn(harness, turnRequest('how do I debounce in javascript?', overrides));
    expect(result).toMatchObject({ text: 'The draft.', models: [FAST_MODEL] });
    expect(harness.openai.triages.requests).toHaveLength(0);
    await expectAccountedFor(harness, result, ['draft']);
  });

  it('when the person asks for Claude or sends a PDF, then Claude answers with no triage', async () => {
    const harness = await start();
    harness.anthropic.script({ type: 'stream', text: 'Asked.' }, { type: 'stream', text: 'The PDF says…' });
    await runTurn(harness, turnRequest('hi', { choice: 'smart' }));
    const data = new TextEncoder().encode('%PDF-1.4\n/Type /Page\n');
    // Its reservation is counted by Anthropic first (a free count request, not a triage).
    harness.anthropic.knowPdf(data, 1);
    const pdf = [
      {
        role: 'user' as const,
        content: [
          { type: 'text' as const, text: 'summarise' },
          { type: 'pdf' as const, data },
        ],
      },
    ];
    const { result } = await runTurn(harness, turnRequest(pdf, { turnId: 'turn-2' }));
    expect(result.escalation).toMatchObject({ source: 'pdf' });
    expect(harness.openai.requests).toHaveLength(0);
    expect(await harness.ledger.openReservationCount()).toBe(0);
  });
});
