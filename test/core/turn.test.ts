import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatResetTime, periodWindow } from '../../src/core/budget.js';
import type { ChatMessage } from '../../src/core/chat.js';
import {
  CHECK_MAX_OUTPUT_TOKENS,
  CHECK_SCHEMA_NAME,
  checkPrompt,
  refineInstruction,
} from '../../src/core/escalation.js';
import { footerLines } from '../../src/core/footer.js';
import type { CallPurpose } from '../../src/core/ledger.js';
import { formatUsd } from '../../src/core/money.js';
import type { TurnEvent, TurnResult } from '../../src/core/turn.js';
import { isCountRequest } from '../fakes/anthropic.js';
import { openaiErrors, type RecordedRequest } from '../fakes/openai.js';
import {
  checkSays,
  checkWorstCaseMicros,
  draftWorstCaseMicros,
  type EngineHarness,
  MAX_OUTPUT_TOKENS,
  PERSON,
  runTurn,
  startEngine,
  turnLedgerRows,
  turnRequest,
  turnRow,
} from '../support/engine.js';
import { FAST_MODEL, SMART_MODEL } from '../support/ledger.js';

let engine: EngineHarness;
beforeEach(async () => {
  engine = await startEngine();
});
afterEach(async () => {
  await engine.close();
});

/** Starts over with another budget (the default user budget is fixed when the ledger is built). */
async function restartWithUserBudget(userBudgetMicros: number): Promise<void> {
  await engine.close();
  engine = await startEngine({ userBudgetMicros });
}

/**
 * What every turn must leave behind: nothing still reserved, each fake saw exactly the requests the test
 * expected (and none it did not script), and the turn's ledger rows add up to what the turn says it cost.
 */
async function expectTurnAccountedFor(
  result: TurnResult,
  expected: {
    openaiRequests: number;
    anthropicRequests: number;
    purposes: CallPurpose[];
  },
): Promise<void> {
  expect(await engine.ledger.openReservationCount()).toBe(0);
  expect([...engine.openai.unexpected, ...engine.anthropic.unexpected]).toEqual([]);
  expect(engine.openai.requests).toHaveLength(expected.openaiRequests);
  expect(engine.anthropic.requests).toHaveLength(expected.anthropicRequests);
  const rows = await turnLedgerRows(engine, result.turnId);
  expect(rows.map((row) => row.purpose)).toEqual(expected.purposes);
  expect(rows.reduce((sum, row) => sum + row.costMicros, 0)).toBe(result.costMicros);
}

const textOf = (events: TurnEvent[], phase: 'draft' | 'final') =>
  events
    .filter((event) => event.type === 'delta' && event.phase === phase)
    .map((event) => (event.type === 'delta' ? event.text : ''))
    .join('');

const monthEnd = () => formatResetTime(periodWindow('month', Date.now()).endMs);

const lastMessageOf = (request: RecordedRequest | undefined) => request?.body.messages.at(-1);

describe('when the draft is good enough', () => {
  it('when the check accepts the draft, then the draft is the answer, Claude is never called, and the turn cost less than Claude alone', async () => {
    const question = 'What is the capital of France?';
    const draft = 'The capital of France is Paris.';
    engine.openai.script(
      {
        type: 'stream',
        text: draft,
        usage: { promptTokens: 24, completionTokens: 120 },
      },
      checkSays('accept', 'correct and complete', 'factual', 0.95, {
        promptTokens: 260,
        completionTokens: 30,
      }),
    );

    const { result, events } = await runTurn(engine, turnRequest(question));

    expect(result).toMatchObject({
      status: 'answered',
      text: draft,
      model: FAST_MODEL,
      models: [FAST_MODEL],
      check: {
        verdict: 'accept',
        reason: 'correct and complete',
        category: 'factual',
        confidence: 0.95,
      },
    });
    expect(result.escalation).toBeUndefined();
    expect(textOf(events, 'draft')).toBe(draft);
    expect(events.some((event) => event.type === 'refining')).toBe(false);
    // Draft 24 × $0.15/M + 120 × $0.60/M = 75.6 → 76; check 260 × $0.15/M + 30 × $0.60/M = 57.
    // The same draft on Haiku: 24 × $1/M + 120 × $5/M = 624.
    expect(result.costMicros).toBe(76 + 57);
    expect(result.smartOnlyCostMicros).toBe(624);
    expect(result.smartOnlyCostMicros).toBeGreaterThan(result.costMicros);
    await expectTurnAccountedFor(result, {
      openaiRequests: 2,
      anthropicRequests: 0,
      purposes: ['draft', 'check'],
    });

    const [draftRequest, checkRequest] = engine.openai.requests;
    expect(draftRequest?.body).toMatchObject({
      model: FAST_MODEL,
      stream: true,
    });
    // The check is one small non-streaming call whose output must match the verdict schema.
    expect(checkRequest?.body.stream).toBeUndefined();
    expect(checkRequest?.body).toMatchObject({
      model: FAST_MODEL,
      max_completion_tokens: CHECK_MAX_OUTPUT_TOKENS,
      response_format: {
        type: 'json_schema',
        json_schema: { name: CHECK_SCHEMA_NAME, strict: true },
      },
    });
    expect(lastMessageOf(checkRequest)).toEqual({
      role: 'user',
      content: checkPrompt(question, draft),
    });
  });
});

describe('when the draft is refined by the smart model', () => {
  it('when the check says refine, then the person is told, Claude rewrites the answer from the draft and the reason, and the earlier messages reach it unchanged', async () => {
    const conversation: ChatMessage[] = [
      { role: 'user', content: 'Hi!' },
      { role: 'assistant', content: 'Hello! How can I help?' },
      { role: 'user', content: 'Why is the sky blue?' },
    ];
    const draft = 'Because the sky reflects the ocean.';
    const reason = 'wrong: it is Rayleigh scattering';
    const final = 'Air molecules scatter blue sunlight more than red (Rayleigh scattering).';
    engine.openai.script({ type: 'stream', text: draft }, checkSays('refine', reason, 'factual', 0.9));
    engine.anthropic.script({ type: 'stream', text: final });

    const { result, events } = await runTurn(engine, turnRequest(conversation));

    expect(result).toMatchObject({
      status: 'answered',
      text: final,
      model: SMART_MODEL,
      models: [FAST_MODEL, SMART_MODEL],
      escalation: {
        source: 'check',
        reason,
        category: 'factual',
        confidence: 0.9,
      },
    });
    // The draft streams first, then the person is told it will be replaced, then the final answer streams.
    const refiningAt = events.findIndex((event) => event.type === 'refining');
    expect(events[refiningAt]).toEqual({
      type: 'refining',
      model: SMART_MODEL,
      reason,
    });
    expect(
      events.slice(0, refiningAt).every((event) => event.type === 'delta' && event.phase === 'draft'),
    ).toBe(true);
    expect(
      events.slice(refiningAt + 1).every((event) => event.type === 'delta' && event.phase === 'final'),
    ).toBe(true);
    expect(textOf(events, 'draft')).toBe(draft);
    expect(textOf(events, 'final')).toBe(final);
    await expectTurnAccountedFor(result, {
      openaiRequests: 2,
      anthropicRequests: 1,
      purposes: ['draft', 'check', 'refine'],
    });

    const smartRequest = engine.anthropic.requests[0]?.body;
    expect(smartRequest).toMatchObject({
      model: SMART_MODEL,
      max_tokens: MAX_OUTPUT_TOKENS,
      stream: true,
    });
    // The history before the question is byte-identical (so it can be read from the prompt cache); the
    // draft and the reason travel with the question.
    expect(smartRequest.messages.slice(0, -1)).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Hi!' }] },
      {
        role: 'assistant',
        content: [{ type: 'text', text: 'Hello! How can I help?' }],
      },
    ]);
    expect(smartRequest.messages.at(-1)).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'Why is the sky blue?' },
        { type: 'text', text: refineInstruction(draft, reason) },
      ],
    });
    const instruction = smartRequest.messages.at(-1).content[1].text as string;
    expect(instruction).toContain(draft);
    expect(instruction).toContain(reason);
  });

  it('when the draft is cut off at the token limit, then it is refined without spending a check', async () => {
    const final = 'Step 1: install. Step 2: configure. Step 3: run.';
    engine.openai.script({
      type: 'stream',
      text: 'Step 1: install. Step 2: conf',
      finishReason: 'length',
    });
    engine.anthropic.script({ type: 'stream', text: final });

    const { result, events } = await runTurn(engine, turnRequest('How do I set this up?'));

    expect(result).toMatchObject({
      text: final,
      models: [FAST_MODEL, SMART_MODEL],
      escalation: { source: 'signal', reason: 'the draft was cut off' },
    });
    expect(result.check).toBeUndefined();
    expect(events).toContainEqual({
      type: 'refining',
      model: SMART_MODEL,
      reason: 'the draft was cut off',
    });
    await expectTurnAccountedFor(result, {
      openaiRequests: 1,
      anthropicRequests: 1,
      purposes: ['draft', 'refine'],
    });
  });

  it.each([
    {
      story: 'a code answer',
      category: 'code',
      confidence: 0.95,
      reason: 'code is always refined',
    },
    {
      story: 'an unsure answer',
      category: 'factual',
      confidence: 0.4,
      reason: 'the check was unsure (0.40)',
    },
  ])(
    'when the check accepts $story, then it is refined anyway ($reason)',
    async ({ category, confidence, reason }) => {
      engine.openai.script(
        { type: 'stream', text: 'def add(a, b): return a + b' },
        checkSays('accept', 'looks fine', category, confidence),
      );
      engine.anthropic.script({
        type: 'stream',
        text: 'def add(a: int, b: int) -> int:\n    return a + b',
      });

      const { result } = await runTurn(engine, turnRequest('Write an add function in Python'));

      expect(result).toMatchObject({
        model: SMART_MODEL,
        models: [FAST_MODEL, SMART_MODEL],
        escalation: { source: 'check', reason, category, confidence },
        check: { verdict: 'accept', category, confidence },
      });
      await expectTurnAccountedFor(result, {
        openaiRequests: 2,
        anthropicRequests: 1,
        purposes: ['draft', 'check', 'refine'],
      });
    },
  );
});

describe('escalation modes', () => {
  it.each(['manual', 'off'] as const)(
    'when the server sets escalation to %s, then the draft is never checked',
    async (mode) => {
      engine.openai.script({ type: 'stream', text: 'Probably Tuesday.' });

      const { result } = await runTurn(engine, turnRequest('What day is it?', { mode }));

      expect(result).toMatchObject({
        text: 'Probably Tuesday.',
        models: [FAST_MODEL],
      });
      expect(result.check).toBeUndefined();
      expect(result.escalation).toBeUndefined();
      await expectTurnAccountedFor(result, {
        openaiRequests: 1,
        anthropicRequests: 0,
        purposes: ['draft'],
      });
    },
  );

  // BUG (src/core/turn.ts): `choice: 'fast'` (/ask model:fast) is never read. In auto mode the draft is
  // checked and refined by Claude Haiku like any auto turn, so a person who asked for the fast model is
  // charged for the smart one. The check and refine responses are scripted only so that today's behaviour
  // shows up as a failed assertion rather than as unscripted requests; flip to `it` once fixed.
  it('when a person asks for the fast model, then the draft is the answer and it is never escalated', async () => {
    engine.openai.script(
      { type: 'stream', text: 'A draft.' },
      checkSays('refine', 'incomplete', 'factual', 0.9),
    );
    engine.anthropic.script({ type: 'stream', text: 'A refined answer.' });

    const { result } = await runTurn(engine, turnRequest('Explain TCP', { choice: 'fast' }));

    expect(engine.anthropic.requests).toHaveLength(0);
    expect(result).toMatchObject({ text: 'A draft.', models: [FAST_MODEL] });
    expect((await turnLedgerRows(engine, result.turnId)).map((row) => row.purpose)).not.toContain('refine');
  });
});

describe('pre-routes straight to the smart model', () => {
  it('when a person asks for the smart model (/ask model:smart), then Claude answers directly and no draft is written', async () => {
    engine.anthropic.script({ type: 'stream', text: 'A careful answer.' });

    const { result, events } = await runTurn(engine, turnRequest('Prove it', { choice: 'smart' }));

    expect(result).toMatchObject({
      text: 'A careful answer.',
      model: SMART_MODEL,
      models: [SMART_MODEL],
      escalation: { source: 'user', reason: 'requested by user' },
    });
    expect(textOf(events, 'final')).toBe('A careful answer.');
    expect(textOf(events, 'draft')).toBe('');
    await expectTurnAccountedFor(result, {
      openaiRequests: 0,
      anthropicRequests: 1,
      purposes: ['direct'],
    });
  });

  it('when the question carries a PDF, then Claude reads it as a document and GPT-4o Mini is never asked', async () => {
    const pdf = new TextEncoder().encode(
      '%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n' +
        '2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n' +
        '3 0 obj << /Type /Page /Parent 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n',
    );
    engine.anthropic.knowPdf(pdf, 1);
    engine.anthropic.script({
      type: 'stream',
      text: 'The report says revenue grew.',
    });

    const { result } = await runTurn(
      engine,
      turnRequest([
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Summarise this' },
            { type: 'pdf', data: pdf, name: 'report.pdf' },
          ],
        },
      ]),
    );

    expect(result).toMatchObject({
      text: 'The report says revenue grew.',
      models: [SMART_MODEL],
      escalation: { source: 'pdf', reason: 'PDF' },
    });
    // Anthropic counts the PDF first (free; see test/providers/pdf-reservations.test.ts), then answers.
    expect(engine.anthropic.requests.map(isCountRequest)).toEqual([true, false]);
    expect(engine.anthropic.requests[1]?.body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Summarise this' },
          {
            type: 'document',
            source: {
              type: 'base64',
              media_type: 'application/pdf',
              data: Buffer.from(pdf).toString('base64'),
            },
            title: 'report.pdf',
          },
        ],
      },
    ]);
    await expectTurnAccountedFor(result, {
      openaiRequests: 0,
      anthropicRequests: 2,
      purposes: ['direct'],
    });
  });
});

describe('/escalate', () => {
  it('when a person escalates without a prompt, then their latest question is found in the turn log and Claude improves the earlier answer', async () => {
    const question = 'What is a monad?';
    const earlierAnswer = 'A monad is a kind of list.';
    engine.openai.script(
      { type: 'stream', text: earlierAnswer },
      checkSays('accept', 'fine', 'factual', 0.8),
    );
    await runTurn(engine, turnRequest(question));

    const latest = await engine.turns.latest(PERSON.userId, PERSON.channelId);
    expect(latest).toMatchObject({
      turnId: 'turn-1',
      question,
      answer: earlierAnswer,
    });
    if (!latest) throw new Error('the first turn was not kept');

    engine.anthropic.script({
      type: 'stream',
      text: 'A monad wraps values and chains computations on them.',
    });
    const { result, events } = await runTurn(
      engine,
      turnRequest(latest.question, {
        turnId: 'turn-2',
        choice: 'smart',
        earlierAnswer: latest.answer,
      }),
    );

    expect(result).toMatchObject({
      text: 'A monad wraps values and chains computations on them.',
      models: [SMART_MODEL],
      escalation: { source: 'user', reason: 'requested by user' },
    });
    expect(events).toContainEqual({
      type: 'refining',
      model: SMART_MODEL,
      reason: 'requested by user',
    });
    expect(lastMessageOf(engine.anthropic.requests[0])).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: question },
        {
          type: 'text',
          text: refineInstruction(earlierAnswer, 'requested by user'),
        },
      ],
    });
    // The first turn's draft and check, then only the refinement: no new draft was written.
    await expectTurnAccountedFor(result, {
      openaiRequests: 2,
      anthropicRequests: 1,
      purposes: ['refine'],
    });
    expect(await engine.turns.latest(PERSON.userId, PERSON.channelId)).toMatchObject({
      turnId: 'turn-2',
      answer: 'A monad wraps values and chains computations on them.',
    });
  });

  it('when a person escalates with a prompt, then Claude answers it directly, with the conversation as it is', async () => {
    const conversation: ChatMessage[] = [
      { role: 'user', content: 'What is a monad?' },
      { role: 'assistant', content: 'A monad is a kind of list.' },
      { role: 'user', content: 'Explain it with Promise as the example' },
    ];
    engine.anthropic.script({
      type: 'stream',
      text: 'Promise.then chains computations…',
    });

    const { result } = await runTurn(engine, turnRequest(conversation, { choice: 'smart' }));

    expect(result).toMatchObject({
      models: [SMART_MODEL],
      escalation: { source: 'user' },
    });
    expect(lastMessageOf(engine.anthropic.requests[0])).toEqual({
      role: 'user',
      content: [{ type: 'text', text: 'Explain it with Promise as the example' }],
    });
    await expectTurnAccountedFor(result, {
      openaiRequests: 0,
      anthropicRequests: 1,
      purposes: ['direct'],
    });
  });
});

describe('budgets', () => {
  it('when the budget cannot cover even the draft, then no model is called and the person is told what is left and when it resets', async () => {
    const question = 'What is a monad?';
    const draftWorstCase = draftWorstCaseMicros(engine, [{ role: 'user', content: question }]);
    await restartWithUserBudget(200);
    expect(draftWorstCase).toBeGreaterThan(200);

    const { result } = await runTurn(engine, turnRequest(question));

    expect(result).toMatchObject({
      status: 'denied',
      text: '',
      models: [],
      costMicros: 0,
      denial: {
        limit: { kind: 'user', source: 'bot-default' },
        remainingMicros: 200,
        requestedMicros: draftWorstCase,
      },
    });
    expect(result.warnings).toEqual([
      `Not enough left in your budget: $0.0000 of $0.0002 spent this month; $0.0002 left, and this answer ` +
        `could cost up to ${formatUsd(draftWorstCase)}. Resets ${monthEnd()}.`,
    ]);
    expect(footerLines(result)).toEqual(result.warnings);
    await expectTurnAccountedFor(result, {
      openaiRequests: 0,
      anthropicRequests: 0,
      purposes: [],
    });
  });

  it('when the budget covers GPT-4o Mini but not Claude Haiku, then the draft is kept and the person is told why', async () => {
    const question = 'Why is the sky blue?';
    const draft = 'Because of the ocean.';
    const conversation: ChatMessage[] = [{ role: 'user', content: question }];
    // Enough for the draft's and the check's worst cases, never for a refinement: its 512 output tokens
    // alone cost 512 × $5/M = 2,560 micro-USD on Haiku.
    const budgetMicros =
      draftWorstCaseMicros(engine, conversation) + checkWorstCaseMicros(engine, conversation, draft);
    expect(budgetMicros).toBeLessThan(engine.ledger.worstCaseMicros(SMART_MODEL, 0, MAX_OUTPUT_TOKENS));
    await restartWithUserBudget(budgetMicros);
    engine.openai.script({ type: 'stream', text: draft }, checkSays('refine', 'wrong', 'factual', 0.9));

    const { result, events } = await runTurn(engine, turnRequest(question));

    // A refinement the budget cannot cover is never announced.
    expect(events.map((event) => event.type)).not.toContain('refining');
    expect(result).toMatchObject({
      status: 'answered',
      text: draft,
      model: FAST_MODEL,
      models: [FAST_MODEL],
      check: { verdict: 'refine' },
      keptDraft: `kept the GPT-4o Mini answer: your budget can't cover Claude Haiku; resets ${monthEnd()}`,
    });
    expect(result.escalation).toBeUndefined();
    expect(footerLines(result)).toContain(result.keptDraft);
    await expectTurnAccountedFor(result, {
      openaiRequests: 2,
      anthropicRequests: 0,
      purposes: ['draft', 'check'],
    });
  });

  it('when escalation is off in the server, then asking for the smart model is refused and nothing is called', async () => {
    for (const overrides of [{ choice: 'smart' as const }, { earlierAnswer: 'An earlier answer.' }]) {
      const { result } = await runTurn(engine, turnRequest('Explain monads', { mode: 'off', ...overrides }));
      expect(result).toMatchObject({ status: 'refused', text: '', calls: [] });
      expect(footerLines(result)).toEqual(['escalation to the smart model is turned off in this server']);
    }
    expect(engine.openai.requests).toHaveLength(0);
    expect(engine.anthropic.requests).toHaveLength(0);
  });

  it('when a turn is denied, then the notes from building the conversation are kept after the denial', async () => {
    await restartWithUserBudget(1);
    const { result } = await runTurn(
      engine,
      turnRequest('Hello?', { warnings: ['⚠️ using the last 12 messages'] }),
    );
    expect(result.status).toBe('denied');
    expect(result.warnings).toHaveLength(2);
    expect(result.warnings[1]).toBe('⚠️ using the last 12 messages');
  });

  it('when a turn takes the user past 80% of their budget, then they are told once in the period, with the share used and the reset', async () => {
    await restartWithUserBudget(3_400);
    // An earlier turn on Claude: 40 × $1/M + 500 × $5/M = 2,540 of 3,400 (74%): no warning yet.
    engine.anthropic.script({
      type: 'stream',
      text: 'A long answer.',
      usage: { inputTokens: 40, outputTokens: 500 },
    });
    const { result: earlier } = await runTurn(engine, turnRequest('Tell me a story', { choice: 'smart' }));
    expect(earlier.costMicros).toBe(2_540);
    expect(earlier.warnings).toEqual([]);

    engine.openai.script(
      {
        type: 'stream',
        text: 'Paris.',
        usage: { promptTokens: 24, completionTokens: 400 },
      },
      checkSays('accept', 'correct', 'factual', 0.95, {
        promptTokens: 260,
        completionTokens: 30,
      }),
    );
    const { result } = await runTurn(engine, turnRequest('Capital of France?', { turnId: 'turn-2' }));

    // Draft 24 × $0.15/M + 400 × $0.60/M = 243.6 → 244; check 57: 2,540 + 301 = 2,841 of 3,400 = 83.6%.
    expect(result.costMicros).toBe(301);
    expect(result.warnings).toEqual([
      `80% of your budget used ($0.0028 of $0.0034 this month); resets ${monthEnd()}`,
    ]);
    expect(footerLines(result).at(-1)).toBe(result.warnings[0]);
    await expectTurnAccountedFor(result, {
      openaiRequests: 2,
      anthropicRequests: 1,
      purposes: ['draft', 'check'],
    });

    // Still past 80% but not 100%: nothing new to tell.
    engine.openai.script(
      { type: 'stream', text: 'Berlin.', usage: { promptTokens: 24, completionTokens: 10 } },
      checkSays('accept', 'correct', 'factual', 0.95, { promptTokens: 260, completionTokens: 30 }),
    );
    const { result: again } = await runTurn(engine, turnRequest('Capital of Germany?', { turnId: 'turn-3' }));
    expect(again.status).toBe('answered');
    expect(again.warnings).toEqual([]);
  });
});

describe('when a provider is down', () => {
  it('when OpenAI fails every draft attempt, then Claude writes the answer, the ledger says fallback, no check is spent, and the footer says so', async () => {
    engine.openai.script(...Array.from({ length: 5 }, () => openaiErrors.server()));
    engine.anthropic.script({ type: 'stream', text: 'Claude stepped in.' });

    const { result } = await runTurn(engine, turnRequest('What is a monad?'));

    expect(result).toMatchObject({
      status: 'answered',
      text: 'Claude stepped in.',
      model: SMART_MODEL,
      models: [SMART_MODEL],
      fallback: { from: 'openai', reason: 'OpenAI is unavailable' },
      escalation: {
        source: 'fallback',
        reason: 'fallback: OpenAI is unavailable',
      },
      calls: [{ purpose: 'fallback', provider: 'anthropic', model: SMART_MODEL }],
    });
    expect(result.check).toBeUndefined();
    // Five draft attempts, all streams: the check was never sent.
    expect(engine.openai.requests.every((request) => request.body.stream === true)).toBe(true);
    await expectTurnAccountedFor(result, {
      openaiRequests: 5,
      anthropicRequests: 1,
      purposes: ['draft', 'draft', 'draft', 'draft', 'draft', 'fallback'],
    });
    const [summary, note] = footerLines(result);
    expect(summary?.startsWith(`${SMART_MODEL} (fallback: OpenAI is unavailable) · `)).toBe(true);
    expect(note).toBe(`answered by ${SMART_MODEL}: OpenAI is unavailable`);
  });

  // BUG (src/core/turn.ts, TurnStory.record): a call that writes no text (the check) still sets the turn's
  // `fallback` and `escalation` when it fell back. Here GPT-4o Mini wrote the answer and Claude only
  // checked it, yet the turn is told as escalated by fallback, the footer says "answered by gpt-4o-mini:
  // OpenAI is unavailable", and the turn log keeps escalation_source 'fallback'. Flip to `it` once fixed.
  it("when OpenAI fails only the check, then Claude checks the draft and the answer is still told as GPT-4o Mini's", async () => {
    engine.openai.script(
      { type: 'stream', text: 'Paris.' },
      ...Array.from({ length: 5 }, () => openaiErrors.server()),
    );
    engine.anthropic.script({
      type: 'message',
      text: JSON.stringify({ verdict: 'accept', reason: 'correct', category: 'factual', confidence: 0.95 }),
    });

    const { result } = await runTurn(engine, turnRequest('Capital of France?'));

    expect(result).toMatchObject({ text: 'Paris.', model: FAST_MODEL, models: [FAST_MODEL] });
    await expectTurnAccountedFor(result, {
      openaiRequests: 6,
      anthropicRequests: 1,
      purposes: ['draft', 'check', 'check', 'check', 'check', 'check', 'fallback'],
    });
    expect(result.escalation).toBeUndefined();
    expect(footerLines(result)).toEqual([expect.stringMatching(/^gpt-4o-mini · /)]);
  });
});

describe('the turn log', () => {
  it('when a turn is answered, then its route, reason, cost and smart-only cost are kept in the turns table', async () => {
    engine.openai.script(
      { type: 'stream', text: 'for i in range(3): print(i)' },
      checkSays('accept', 'works', 'code', 0.9),
    );
    engine.anthropic.script({
      type: 'stream',
      text: 'for number in range(3):\n    print(number)',
    });

    const { result } = await runTurn(engine, turnRequest('Print 0 to 2 in Python'));

    expect(await turnRow(engine, 'turn-1')).toMatchObject({
      user_id: PERSON.userId,
      guild_id: PERSON.guildId,
      channel_id: PERSON.channelId,
      status: 'answered',
      models: `${FAST_MODEL},${SMART_MODEL}`,
      final_model: SMART_MODEL,
      escalation_source: 'check',
      escalation_reason: 'code is always refined',
      category: 'code',
      confidence: 0.9,
      tokens: result.tokens,
      cost_micros: result.costMicros,
      smart_only_cost_micros: result.smartOnlyCostMicros,
      question: 'Print 0 to 2 in Python',
      answer: 'for number in range(3):\n    print(number)',
    });
    expect(result.tokens).toBeGreaterThan(0);
    await expectTurnAccountedFor(result, {
      openaiRequests: 2,
      anthropicRequests: 1,
      purposes: ['draft', 'check', 'refine'],
    });
  });
});
