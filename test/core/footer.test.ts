import { describe, expect, it } from 'vitest';
import type { BudgetDenial } from '../../src/core/budget.js';
import { footerLines } from '../../src/core/footer.js';
import type { TurnResult } from '../../src/core/turn.js';

const FAST = 'gpt-4o-mini';
const SMART = 'claude-haiku-4-5';

/** A turn answered by the draft alone; each story changes what it needs. */
function answered(overrides: Partial<TurnResult> = {}): TurnResult {
  return {
    turnId: 'turn-1',
    status: 'answered',
    text: 'Paris.',
    model: FAST,
    models: [FAST],
    calls: [],
    tokens: 312,
    costMicros: 180,
    smartOnlyCostMicros: 900,
    providerMs: 0,
    warnings: [],
    ...overrides,
  };
}

describe('footerLines', () => {
  it('when the draft was accepted, then one line names the model, the tokens and the cost', () => {
    expect(footerLines(answered())).toEqual(['gpt-4o-mini · 312 tokens · $0.0002']);
  });

  it('when the check sent the draft to be refined, then the line shows the route and the category', () => {
    const refined = answered({
      model: SMART,
      models: [FAST, SMART],
      escalation: {
        source: 'check',
        reason: 'code is always refined',
        category: 'code',
        confidence: 0.9,
      },
      tokens: 1_204,
      costMicros: 3_080,
    });
    expect(footerLines(refined)).toEqual(['gpt-4o-mini → claude-haiku-4-5 (code) · 1,204 tokens · $0.0031']);
  });

  it('when a free signal or the person sent it to Claude, then the line shows the reason', () => {
    const cutOff = answered({
      models: [FAST, SMART],
      escalation: { source: 'signal', reason: 'the draft was cut off' },
    });
    expect(footerLines(cutOff)[0]).toBe(
      'gpt-4o-mini → claude-haiku-4-5 (the draft was cut off) · 312 tokens · $0.0002',
    );
    const asked = answered({
      models: [SMART],
      escalation: { source: 'user', reason: 'requested by user' },
    });
    expect(footerLines(asked)[0]).toBe('claude-haiku-4-5 (requested by user) · 312 tokens · $0.0002');
  });

  it('when the router sent the question to Claude, then a line of its own says why, by triage or by rule', () => {
    const routed = answered({
      model: SMART,
      models: [SMART],
      escalation: {
        source: 'router',
        reason: 'routed to Claude Haiku: code',
        category: 'code',
        confidence: 0.9,
      },
    });
    expect(footerLines(routed)).toEqual([
      'claude-haiku-4-5 · 312 tokens · $0.0002',
      'routed to Claude Haiku: code',
    ]);
    const byRule = answered({
      model: SMART,
      models: [SMART],
      escalation: { source: 'rule', reason: 'routed to Claude Haiku: a stack trace', category: 'code' },
    });
    expect(footerLines(byRule).slice(1)).toEqual(['routed to Claude Haiku: a stack trace']);
  });

  it('when the turn was denied, then the footer is only the denial, with no route or cost', () => {
    const denial = {} as BudgetDenial;
    const warning =
      'Not enough left in your budget: $0.0000 of $0.0002 spent this month; $0.0002 left, and this answer ' +
      'could cost up to $0.0004. Resets Dec 1, 00:00 UTC.';
    const denied = answered({
      status: 'denied',
      text: '',
      model: '',
      models: [],
      denial,
      warnings: [warning],
    });
    expect(footerLines(denied)).toEqual([warning]);
  });

  it('when the budget could not cover the refinement, then a line says the draft was kept and why', () => {
    const keptDraft =
      "kept the GPT-4o Mini answer: your budget can't cover Claude Haiku; resets Dec 1, 00:00 UTC";
    expect(footerLines(answered({ keptDraft }))).toEqual(['gpt-4o-mini · 312 tokens · $0.0002', keptDraft]);
  });

  it('when the other provider answered, then a line says which model answered and why', () => {
    const fellBack = answered({
      model: SMART,
      models: [SMART],
      fallback: { from: 'openai', reason: 'OpenAI is unavailable' },
      escalation: {
        source: 'fallback',
        reason: 'fallback: OpenAI is unavailable',
      },
    });
    expect(footerLines(fellBack)).toEqual([
      'claude-haiku-4-5 (fallback: OpenAI is unavailable) · 312 tokens · $0.0002',
      'answered by claude-haiku-4-5: OpenAI is unavailable',
    ]);
  });

  it('when there are warnings, then they follow the summary and the notes, in order', () => {
    const warned = answered({
      keptDraft: "kept the GPT-4o Mini answer: your budget can't cover Claude Haiku; resets Dec 1, 00:00 UTC",
      warnings: ['⚠️ using the last 12 messages', '83% of your budget used; resets Dec 1, 00:00 UTC'],
    });
    expect(footerLines(warned)).toEqual([
      'gpt-4o-mini · 312 tokens · $0.0002',
      "kept the GPT-4o Mini answer: your budget can't cover Claude Haiku; resets Dec 1, 00:00 UTC",
      '⚠️ using the last 12 messages',
      '83% of your budget used; resets Dec 1, 00:00 UTC',
    ]);
  });
});
