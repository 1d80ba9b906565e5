import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/core/chat.js';
import { DEFAULT_POLICY, type EscalationPolicy } from '../../src/core/escalation.js';
import {
  codeRule,
  DEFAULT_ROUTER,
  HeldText,
  parseTriage,
  type RouterPolicy,
  routesToSmart,
  skipsCheck,
  TRIAGE_SCHEMA_NAME,
  triagePrompt,
} from '../../src/core/router.js';
import { answerTurn, type TurnDependencies, type TurnEvent, type TurnRequest } from '../../src/core/turn.js';
import {
  deferred,
  SCRIPTED_ABORT_COST_MICROS,
  SCRIPTED_COST_MICROS,
  type ScriptedCall,
  ScriptedModels,
} from '../support/scripted-models.js';

const FAST = 'gpt-4o-mini';
const SMART = 'claude-haiku-4-5';
const ROUTER_ON: RouterPolicy = { ...DEFAULT_ROUTER, mode: 'on', confidenceThreshold: 0.7 };
const POLICY: EscalationPolicy = { ...DEFAULT_POLICY, router: ROUTER_ON };

const triage = (route: 'fast' | 'smart', category: string, confidencePercent: number): ScriptedCall => ({
  value: { route: `${route} ${category}`, confidence: confidencePercent },
});
const verdict = (verdict: 'accept' | 'refine', category = 'factual', confidence = 0.95): ScriptedCall => ({
  value: { verdict, reason: verdict === 'accept' ? 'complete' : 'too thin', category, confidence },
});

function dependencies(models: ScriptedModels, policy: EscalationPolicy = POLICY): TurnDependencies {
  return {
    models,
    fastModel: FAST,
    smartModel: SMART,
    modelLabel: (model) => (model === SMART ? 'Claude Haiku' : 'GPT-4o Mini'),
    systemPrompt: 'You are tierbot.',
    maxOutputTokens: 512,
    policy,
  };
}

function request(
  question: string | ChatMessage['content'],
  overrides: Partial<TurnRequest> = {},
): TurnRequest {
  return {
    turnId: 'turn-1',
    owner: { userId: 'user-1', guildId: 'guild-1', channelId: 'channel-1' },
    conversation: [{ role: 'user', content: question }],
    mode: 'auto',
    choice: 'auto',
    ...overrides,
  };
}

async function run(models: ScriptedModels, turn: TurnRequest, policy?: EscalationPolicy) {
  const events: TurnEvent[] = [];
  const result = await answerTurn(turn, dependencies(models, policy), (event) => events.push(event));
  // Every scripted call was made: a script the engine skipped is as wrong as a call it was not given.
  expect(models.unused()).toEqual([]);
  return { result, events };
}

const shown = (events: readonly TurnEvent[], phase: 'draft' | 'final') =>
  events.map((event) => (event.type === 'delta' && event.phase === phase ? event.text : '')).join('');

describe('the triage verdict', () => {
  it('when the JSON is what the schema promised, then it reads as a verdict with confidence from 0 to 1', () => {
    expect(parseTriage({ route: 'smart code', confidence: 90 })).toEqual({
      route: 'smart',
      category: 'code',
      confidence: 0.9,
    });
    expect(parseTriage({ route: 'fast chit-chat', confidence: 140 })?.confidence).toBe(1);
  });

  it('when the JSON is anything else, then there is no verdict', () => {
    for (const value of [
      undefined,
      null,
      'smart',
      { route: 'maybe code', confidence: 90 },
      { route: 'smart poetry', confidence: 90 },
      { route: 'smart', confidence: 90 },
      { route: 'smart code', confidence: '90' },
      { route: 'smart code', confidence: Number.NaN },
    ]) {
      expect(parseTriage(value)).toBeUndefined();
    }
  });

  it('when a question follows a conversation, then the triage sees it after a short, clipped tail of context', () => {
    const conversation: ChatMessage[] = [
      { role: 'user', content: 'first, never sent' },
      { role: 'assistant', content: `an earlier answer ${'x'.repeat(1_000)}` },
      { role: 'user', content: 'and what about this?' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'the question' },
          { type: 'pdf', data: new Uint8Array() },
        ],
      },
    ];
    const prompt = triagePrompt(conversation);
    expect(prompt).not.toContain('first, never sent');
    expect(prompt).toContain('assistant: an earlier answer');
    expect(prompt.length).toBeLessThan(800);
    expect(prompt.endsWith('Question:\nthe question\n[pdf]')).toBe(true);
    expect(triagePrompt([{ role: 'user', content: 'hi' }])).toBe('Question:\nhi');
  });
});

describe('the router’s rules', () => {
  it('when the triage says smart at or above the threshold with the router on, then it routes; otherwise not', () => {
    const smart = { route: 'smart' as const, category: 'code' as const, confidence: 0.7 };
    expect(routesToSmart(smart, ROUTER_ON)).toBe(true);
    expect(routesToSmart({ ...smart, confidence: 0.69 }, ROUTER_ON)).toBe(false);
    expect(routesToSmart({ ...smart, route: 'fast' }, ROUTER_ON)).toBe(false);
    expect(routesToSmart(smart, { ...ROUTER_ON, mode: 'shadow' })).toBe(false);
    expect(routesToSmart(undefined, ROUTER_ON)).toBe(false);
  });

  it('when a confident triage says fast for chit-chat or a factual question, then the check is skipped; for any other category, or unsure, not', () => {
    const chat = { route: 'fast' as const, category: 'chit-chat' as const, confidence: 0.9 };
    expect(skipsCheck(chat, POLICY)).toBe(true);
    expect(skipsCheck({ ...chat, category: 'factual' }, POLICY)).toBe(true);
    expect(skipsCheck({ ...chat, confidence: 0.5 }, POLICY)).toBe(false);
    expect(skipsCheck({ ...chat, category: 'reasoning' }, POLICY)).toBe(false);
    expect(
      skipsCheck(
        { ...chat, category: 'factual' },
        { ...POLICY, router: { ...ROUTER_ON, uncheckedCategories: ['chit-chat'] } },
      ),
    ).toBe(false);
    expect(skipsCheck(chat, { ...POLICY, alwaysRefine: ['chit-chat'] })).toBe(false);
    expect(skipsCheck(chat, { ...POLICY, router: { ...ROUTER_ON, mode: 'shadow' } })).toBe(false);
  });

  it('when a question shows code (a code block, a stack trace, a source file), then the code rule sees it', () => {
    expect(codeRule('why does this fail?\n```js\nconst x = 1;\n```', POLICY)).toBe('a code block');
    const nodeTrace =
      'TypeError: x is not a function\n    at main (/app/index.js:10:5)\n    at Object.<anonymous> (/app/index.js:20:1)';
    expect(codeRule(nodeTrace, POLICY)).toBe('a stack trace');
    expect(codeRule('Traceback (most recent call last):\n  File "a.py", line 1', POLICY)).toBe(
      'a stack trace',
    );
    const javaTrace =
      'Exception in thread "main" java.lang.NullPointerException\n\tat com.example.Main.run(Main.java:12)\n\tat com.example.Main.main(Main.java:5)';
    expect(codeRule(javaTrace, POLICY)).toBe('a stack trace');
    expect(codeRule('<file name="bot.py">\nprint(1)\n</file>\nwhat is wrong', POLICY)).toBe('a code file');
  });

  it('when a question only talks about code, or code is not always refined, then the rule stays quiet', () => {
    expect(codeRule('how do I debounce a function in javascript?', POLICY)).toBeUndefined();
    expect(codeRule('we met at 10:30 at the station', POLICY)).toBeUndefined();
    expect(codeRule('<file name="notes.txt">\nshopping\n</file>', POLICY)).toBeUndefined();
    expect(codeRule('```js\nconst x = 1;\n```', { ...POLICY, alwaysRefine: [] })).toBeUndefined();
  });

  it('when held text is released, then what came meanwhile shows in one piece and the rest as it comes', () => {
    const pieces: string[] = [];
    const held = new HeldText((text) => pieces.push(text), true);
    held.push('Hel');
    held.push('lo');
    expect(pieces).toEqual([]);
    held.release();
    held.push(' there');
    expect(pieces).toEqual(['Hello', ' there']);
    const dropped = new HeldText((text) => pieces.push(text), true);
    dropped.push('never');
    dropped.drop();
    dropped.release();
    dropped.push('shown');
    expect(pieces).toEqual(['Hello', ' there']);
  });
});

describe('the engine’s route (scripted model calls, by purpose)', () => {
  it('when the triage says smart with confidence, then the draft is aborted unseen and Claude answers directly', async () => {
    const models = new ScriptedModels({
      draft: { untilAborted: true, text: 'a draft nobody may see' },
      triage: triage('smart', 'code', 90),
      direct: { text: 'Haiku answers.' },
    });

    const { result, events } = await run(models, request('how do I debounce a search box in javascript?'));

    expect(models.purposes()).toEqual(['draft', 'triage', 'direct']);
    expect(models.calls[0]?.wasAborted).toBe(true);
    expect(models.calls[2]?.request.model).toBe(SMART);
    // Claude gets the conversation alone: no draft, no review.
    expect(JSON.stringify(models.calls[2]?.request.messages)).not.toContain('draft');
    expect(shown(events, 'draft')).toBe('');
    expect(shown(events, 'final')).toBe('Haiku answers.');
    expect(result).toMatchObject({
      status: 'answered',
      text: 'Haiku answers.',
      models: [SMART],
      escalation: {
        source: 'router',
        reason: 'routed to Claude Haiku: code',
        category: 'code',
        confidence: 0.9,
      },
      triage: { route: 'smart', category: 'code', confidence: 0.9 },
    });
    expect(result.check).toBeUndefined();
    // Triage, the aborted draft's charge, and Claude.
    expect(result.costMicros).toBe(SCRIPTED_COST_MICROS + SCRIPTED_ABORT_COST_MICROS + SCRIPTED_COST_MICROS);
    expect(result.calls.map((call) => call.purpose)).toEqual(['triage', 'draft', 'direct']);
  });

  it('when the draft is held, then none of its text is shown until the triage answers', async () => {
    const triageAnswers = deferred();
    const models = new ScriptedModels({
      draft: { text: 'Paris.' },
      triage: { ...triage('fast', 'reasoning', 95), after: triageAnswers.promise },
      check: verdict('accept'),
    });
    const events: TurnEvent[] = [];
    const turn = answerTurn(request('capital of France?'), dependencies(models), (event) =>
      events.push(event),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events).toEqual([]);
    triageAnswers.resolve();
    const result = await turn;
    expect(shown(events, 'draft')).toBe('Paris.');
    expect(result).toMatchObject({ text: 'Paris.', models: [FAST], triage: { route: 'fast' } });
  });

  it('when the triage says smart below the threshold, then it is today’s path: the draft is shown and checked', async () => {
    const models = new ScriptedModels({
      draft: { text: 'A decent draft.' },
      triage: triage('smart', 'reasoning', 60),
      check: verdict('accept', 'reasoning'),
    });
    const { result, events } = await run(models, request('should I pay off my loan first?'));
    expect(models.purposes()).toEqual(['draft', 'triage', 'check']);
    expect(shown(events, 'draft')).toBe('A decent draft.');
    expect(result.escalation).toBeUndefined();
    expect(result.triage).toEqual({ route: 'smart', category: 'reasoning', confidence: 0.6 });
    expect(result.check).toMatchObject({ verdict: 'accept' });
  });

  it('when the triage says fast for chit-chat with confidence, then the check is skipped; a cut-off draft is still refined', async () => {
    const chat = new ScriptedModels({
      draft: { text: 'Morning! ☕' },
      triage: triage('fast', 'chit-chat', 95),
    });
    const { result } = await run(chat, request('gm everyone'));
    expect(chat.purposes()).toEqual(['draft', 'triage']);
    expect(result).toMatchObject({ text: 'Morning! ☕', models: [FAST] });

    const cut = new ScriptedModels({
      draft: { text: 'Morning, and here is a very long', finishReason: 'length' },
      triage: triage('fast', 'chit-chat', 95),
      refine: { text: 'Morning!' },
    });
    const refined = await run(cut, request('gm everyone'));
    expect(cut.purposes()).toEqual(['draft', 'triage', 'refine']);
    expect(refined.result.escalation).toMatchObject({ source: 'signal', reason: 'the draft was cut off' });
  });

  it('when the triage says fast for a category that is checked (reasoning), then the check still runs and may refine', async () => {
    const models = new ScriptedModels({
      draft: { text: 'Thin.' },
      triage: triage('fast', 'reasoning', 95),
      check: verdict('refine'),
      refine: { text: 'Better.' },
    });
    const { result } = await run(models, request('when did the berlin wall fall and why?'));
    expect(models.purposes()).toEqual(['draft', 'triage', 'check', 'refine']);
    expect(result.escalation).toMatchObject({ source: 'check' });
    expect(result.models).toEqual([FAST, SMART]);
  });

  it.each<[string, ScriptedCall]>([
    ['both providers are down', { unavailable: true }],
    ['the budget denies it', { denied: true }],
    ['it answers something unreadable', { value: { route: 'smart code' } }],
    ['the provider refuses it', { refused: true }],
  ])('when the triage fails because %s, then it is today’s path', async (_, failure) => {
    const models = new ScriptedModels({
      draft: { text: 'The draft.' },
      triage: failure,
      check: verdict('accept'),
    });
    const { result, events } = await run(models, request('what is a monad?'));
    expect(models.purposes()).toEqual(['draft', 'triage', 'check']);
    expect(shown(events, 'draft')).toBe('The draft.');
    expect(result).toMatchObject({ status: 'answered', text: 'The draft.', models: [FAST] });
    expect(result.triage).toBeUndefined();
  });

  it('when the triage is slower than its timeout, then it is abandoned and the draft shown', async () => {
    const models = new ScriptedModels({
      draft: { text: 'The draft.' },
      triage: { untilAborted: true },
      check: verdict('accept'),
    });
    const policy = { ...POLICY, router: { ...ROUTER_ON, timeoutMs: 30 } };
    const { result } = await run(models, request('what is a monad?'), policy);
    expect(models.calls[1]).toMatchObject({ purpose: 'triage', wasAborted: true });
    expect(result).toMatchObject({ text: 'The draft.', models: [FAST] });
    // The abandoned triage's charge still counts.
    expect(result.costMicros).toBe(SCRIPTED_COST_MICROS + SCRIPTED_ABORT_COST_MICROS + SCRIPTED_COST_MICROS);
  });

  it('when the budget cannot cover Claude after a smart triage, then nothing is aborted and the draft answers', async () => {
    const models = new ScriptedModels({
      draft: { text: 'The draft.' },
      triage: triage('smart', 'reasoning', 90),
      direct: { denied: true },
      check: verdict('accept', 'reasoning'),
    });
    const { result, events } = await run(models, request('should I pay off my loan first?'));
    expect(models.purposes()).toEqual(['draft', 'triage', 'direct', 'check']);
    expect(models.calls[0]?.wasAborted).toBe(false);
    expect(shown(events, 'draft')).toBe('The draft.');
    expect(result).toMatchObject({ status: 'answered', text: 'The draft.', models: [FAST] });
  });

  it('when the router is in shadow mode, then the triage is recorded beside the check and never acts', async () => {
    const models = new ScriptedModels({
      draft: { text: 'A chit-chat draft.' },
      triage: triage('smart', 'code', 99),
      check: verdict('accept', 'chit-chat'),
    });
    const shadow = { ...POLICY, router: { ...ROUTER_ON, mode: 'shadow' as const } };
    const { result, events } = await run(models, request('how do I write a for loop?'), shadow);
    expect(models.purposes()).toEqual(['draft', 'triage', 'check']);
    expect(shown(events, 'draft')).toBe('A chit-chat draft.');
    expect(result.triage).toEqual({ route: 'smart', category: 'code', confidence: 0.99 });
    expect(result.check).toMatchObject({ verdict: 'accept' });
    expect(result.escalation).toBeUndefined();
  });

  it('when the question shows code, then the rule sends it to Claude with no triage and no draft', async () => {
    const models = new ScriptedModels({ direct: { text: 'Fixed.' } });
    const { result } = await run(models, request('why?\n```py\nprint(x)\n```'));
    expect(models.purposes()).toEqual(['direct']);
    expect(result).toMatchObject({
      models: [SMART],
      escalation: { source: 'rule', reason: 'routed to Claude Haiku: a code block', category: 'code' },
    });
    expect(result.triage).toBeUndefined();
  });

  it('when the router is off, then code in the question goes through today’s path', async () => {
    const models = new ScriptedModels({
      draft: { text: 'Fixed?' },
      check: verdict('refine', 'code'),
      refine: { text: 'Fixed.' },
    });
    const off = { ...POLICY, router: { ...ROUTER_ON, mode: 'off' as const } };
    const { result } = await run(models, request('why?\n```py\nprint(x)\n```'), off);
    expect(models.purposes()).toEqual(['draft', 'check', 'refine']);
    expect(result.escalation).toMatchObject({ source: 'check' });
  });

  it.each<[string, Partial<TurnRequest>, ScriptedCall[]]>([
    ['escalation is manual', { mode: 'manual' }, []],
    ['escalation is off', { mode: 'off' }, []],
    ['the person asked for the fast model', { choice: 'fast' }, []],
  ])('when %s, then no triage is made', async (_, overrides) => {
    const models = new ScriptedModels({ draft: { text: 'The draft.' } });
    const { result } = await run(models, request('how do I debounce in javascript?', overrides));
    expect(models.purposes()).toEqual(['draft']);
    expect(result.triage).toBeUndefined();
  });

  it('when the person asks for the smart model or sends a PDF, then Claude answers with no triage', async () => {
    const asked = new ScriptedModels({ direct: { text: 'Haiku.' } });
    await run(asked, request('hi', { choice: 'smart' }));
    expect(asked.purposes()).toEqual(['direct']);
    const pdf = new ScriptedModels({ direct: { text: 'The PDF says…' } });
    const { result } = await run(
      pdf,
      request([
        { type: 'text', text: 'summarise' },
        { type: 'pdf', data: new Uint8Array([37, 80, 68, 70]) },
      ]),
    );
    expect(pdf.purposes()).toEqual(['direct']);
    expect(result.escalation).toMatchObject({ source: 'pdf' });
  });

  it('when the triage is made, then it is one small structured call to the fast model with no fallback', async () => {
    const models = new ScriptedModels({
      draft: { text: 'Paris.' },
      triage: triage('fast', 'reasoning', 95),
      check: verdict('accept'),
    });
    await run(models, request('capital of France?'));
    const made = models.calls[1]?.request as { schemaName?: string; model: string; maxOutputTokens: number };
    expect(made).toMatchObject({ model: FAST, schemaName: TRIAGE_SCHEMA_NAME });
    expect(made.maxOutputTokens).toBeLessThanOrEqual(32);
  });
});
