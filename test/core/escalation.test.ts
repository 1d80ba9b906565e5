import { describe, expect, it } from 'vitest';
import {
  CHECK_CATEGORIES,
  CHECK_CLIP_CHARACTERS,
  CHECK_SCHEMA,
  type CheckVerdict,
  checkPrompt,
  DEFAULT_POLICY,
  decideFromVerdict,
  freeSignal,
  parseVerdict,
  refineInstruction,
} from '../../src/core/escalation.js';

describe('freeSignal', () => {
  it('when the draft stopped normally with text, then there is no reason to refine it for free', () => {
    expect(freeSignal({ text: 'Paris.', finishReason: 'stop' })).toBeUndefined();
  });

  it('when the draft hit the token limit, then it was cut off (even if it is empty)', () => {
    expect(freeSignal({ text: 'Step 1: inst', finishReason: 'length' })).toBe('the draft was cut off');
    expect(freeSignal({ text: '', finishReason: 'length' })).toBe('the draft was cut off');
  });

  it('when the draft is empty or only whitespace, then it was empty', () => {
    expect(freeSignal({ text: '', finishReason: 'stop' })).toBe('the draft was empty');
    expect(freeSignal({ text: ' \n\t', finishReason: 'stop' })).toBe('the draft was empty');
  });

  it.each(['refusal', 'content_filter'] as const)(
    'when the draft ended with %s, then it declined to answer',
    (finishReason) => {
      expect(freeSignal({ text: "I can't help with that.", finishReason })).toBe(
        'the draft declined to answer',
      );
    },
  );
});

describe('parseVerdict', () => {
  const valid = {
    verdict: 'refine',
    reason: 'misses part two',
    category: 'reasoning',
    confidence: 0.7,
  };

  it('when the check answers as its schema promises, then the verdict is read as is', () => {
    expect(parseVerdict(valid)).toEqual(valid);
  });

  it('when every verdict and category the schema allows comes back, then each is read', () => {
    for (const verdict of ['accept', 'refine'] as const) {
      for (const category of CHECK_CATEGORIES) {
        expect(parseVerdict({ ...valid, verdict, category })).toMatchObject({
          verdict,
          category,
        });
      }
    }
  });

  it('when the confidence is outside 0..1, then it is clamped into it', () => {
    expect(parseVerdict({ ...valid, confidence: 1.7 })?.confidence).toBe(1);
    expect(parseVerdict({ ...valid, confidence: -0.2 })?.confidence).toBe(0);
  });

  it('when the reason is padded or long, then it is trimmed and kept to 200 characters', () => {
    expect(parseVerdict({ ...valid, reason: '  misses part two \n' })?.reason).toBe('misses part two');
    expect(parseVerdict({ ...valid, reason: 'x'.repeat(500) })?.reason).toHaveLength(200);
  });

  it.each([
    ['nothing', undefined],
    ['null', null],
    ['a string', 'refine'],
    ['an array', [valid]],
    ['an unknown verdict', { ...valid, verdict: 'maybe' }],
    ['a missing reason', { ...valid, reason: undefined }],
    ['a reason that is not text', { ...valid, reason: 42 }],
    ['a confidence given as text', { ...valid, confidence: '0.9' }],
    ['a confidence that is not finite', { ...valid, confidence: Number.POSITIVE_INFINITY }],
    ['a confidence that is NaN', { ...valid, confidence: Number.NaN }],
    ['an unknown category', { ...valid, category: 'poetry' }],
  ])('when the check returns %s, then there is no verdict', (_story, value) => {
    expect(parseVerdict(value)).toBeUndefined();
  });
});

describe('decideFromVerdict', () => {
  const verdict = (overrides: Partial<CheckVerdict>): CheckVerdict => ({
    verdict: 'accept',
    reason: 'correct',
    category: 'factual',
    confidence: 0.9,
    ...overrides,
  });

  it('when the check says refine, then the draft is refined for the check’s reason', () => {
    const refine = verdict({ verdict: 'refine', reason: 'wrong year' });
    expect(decideFromVerdict(refine, DEFAULT_POLICY)).toEqual({
      refine: true,
      reason: 'wrong year',
      verdict: refine,
    });
  });

  it('when the check confidently accepts a factual draft, then it stands', () => {
    const accept = verdict({});
    expect(decideFromVerdict(accept, DEFAULT_POLICY)).toEqual({
      refine: false,
      verdict: accept,
    });
  });

  it('when the check accepts code, then it is refined anyway, because code is always refined by default', () => {
    expect(decideFromVerdict(verdict({ category: 'code', confidence: 1 }), DEFAULT_POLICY)).toMatchObject({
      refine: true,
      reason: 'code is always refined',
    });
  });

  it('when the check accepts below the confidence threshold, then it is refined; at the threshold, it stands', () => {
    expect(decideFromVerdict(verdict({ confidence: 0.59 }), DEFAULT_POLICY)).toMatchObject({
      refine: true,
      reason: 'the check was unsure (0.59)',
    });
    expect(
      decideFromVerdict(verdict({ confidence: DEFAULT_POLICY.confidenceThreshold }), DEFAULT_POLICY),
    ).toMatchObject({ refine: false });
  });

  it('when a server always refines nothing and trusts any confidence, then an accepted draft always stands', () => {
    const trusting = { confidenceThreshold: 0, alwaysRefine: [] };
    expect(decideFromVerdict(verdict({ category: 'code', confidence: 0 }), trusting)).toMatchObject({
      refine: false,
    });
  });
});

describe('checkPrompt and refineInstruction', () => {
  it('when the question and draft are short, then the check sees both whole', () => {
    expect(checkPrompt('What is 2 + 2?', '4')).toBe('Question:\nWhat is 2 + 2?\n\nDraft answer:\n4');
  });

  it('when the question or draft is longer than the clip, then each is cut to the clip and marked, so a check’s cost stays bounded', () => {
    const atLimit = 'q'.repeat(CHECK_CLIP_CHARACTERS);
    expect(checkPrompt(atLimit, 'a')).toContain(`${atLimit}\n\n`);

    const prompt = checkPrompt('q'.repeat(50_000), 'd'.repeat(50_000));
    expect(prompt).toBe(
      `Question:\n${'q'.repeat(CHECK_CLIP_CHARACTERS)}…\n\nDraft answer:\n${'d'.repeat(CHECK_CLIP_CHARACTERS)}…`,
    );
  });

  it('when a draft is sent to be refined, then the instruction carries the reason and the (clipped) draft', () => {
    const instruction = refineInstruction('The sky reflects the sea.', 'wrong: Rayleigh scattering');
    expect(instruction).toContain('(wrong: Rayleigh scattering)');
    expect(instruction.endsWith('<draft>\nThe sky reflects the sea.\n</draft>')).toBe(true);
    expect(refineInstruction('d'.repeat(50_000), 'long')).toContain(
      `${'d'.repeat(CHECK_CLIP_CHARACTERS)}…\n</draft>`,
    );
  });
});

describe('CHECK_SCHEMA', () => {
  /** OpenAI's strict structured outputs: every object lists all its properties as required and allows no others. */
  function strictProblems(schema: unknown, path = '$'): string[] {
    if (typeof schema !== 'object' || schema === null) return [];
    const node = schema as Record<string, unknown>;
    const problems: string[] = [];
    if (node.type === 'object') {
      const keys = Object.keys((node.properties as Record<string, unknown> | undefined) ?? {});
      const required = (node.required as string[] | undefined) ?? [];
      if (node.additionalProperties !== false) problems.push(`${path}: additionalProperties is not false`);
      for (const key of keys) if (!required.includes(key)) problems.push(`${path}.${key}: not required`);
      for (const key of required)
        if (!keys.includes(key)) problems.push(`${path}.${key}: required but absent`);
    }
    for (const [key, value] of Object.entries(node))
      problems.push(...strictProblems(value, `${path}.${key}`));
    return problems;
  }

  it('when sent with strict: true, then OpenAI accepts it: every property required, no additional properties', () => {
    expect(CHECK_SCHEMA.type).toBe('object');
    expect(strictProblems(CHECK_SCHEMA)).toEqual([]);
  });

  it('when the check fills it in, then its enums are exactly what parseVerdict accepts', () => {
    const properties = CHECK_SCHEMA.properties as Record<string, { enum?: string[] }>;
    expect(properties.verdict?.enum).toEqual(['accept', 'refine']);
    expect(properties.category?.enum).toEqual([...CHECK_CATEGORIES]);
  });
});
