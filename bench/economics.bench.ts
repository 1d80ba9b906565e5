import { DEFAULT_SYSTEM_PROMPT } from '../src/config.js';
import {
  CHECK_SCHEMA,
  CHECK_SYSTEM_PROMPT,
  checkPrompt,
  DEFAULT_POLICY,
  decideFromVerdict,
  refineInstruction,
} from '../src/core/escalation.js';
import type { Micros } from '../src/core/money.js';
import { buildPriceTable, costMicros, DEFAULT_PRICES, type ModelPrice } from '../src/core/pricing.js';
import { countOpenAITokens } from '../src/providers/estimate.js';
import { CASCADE_FIXTURES, type CascadeCategory, type CascadeFixture } from './fixtures/cascade-prompts.js';
import { type Benchmark, type Figure, formatColumns, item } from './support.js';

/*
 * What the cascade costs against sending every turn to the smart model, on the twenty fixtures in
 * bench/fixtures/cascade-prompts.ts, at the built-in list prices and with every part counted by a real
 * tokenizer (o200k_base, what gpt-4o-mini bills by). Per turn:
 * - draft, gpt-4o-mini: system prompt + question in, the answer out;
 * - check, gpt-4o-mini: CHECK_SYSTEM_PROMPT + checkPrompt(question, draft) + the JSON schema in (structured
 *   outputs put the schema in the prompt), the fixture's verdict as compact JSON out;
 * - refine, smart model: system prompt + question + refineInstruction(draft, reason) in, an answer as long
 *   as the draft out;
 * - smart model alone: system prompt + question in, the answer out.
 * Anthropic publishes no tokenizer, so Claude's counts are the same o200k counts; the rows "Claude tokens
 * × 1.2" show how much that matters. Every prompt here is one message far below the shortest cacheable
 * prompt (1,024 tokens at OpenAI, 2,048 or more at Anthropic), so no token is a cache read or write and
 * every input token is billed at the input price.
 */

const FAST_MODEL = 'gpt-4o-mini';
const SMART_MODELS = ['claude-haiku-4-5', 'claude-3-5-haiku'] as const;
const ACCEPTED_SHARE_TARGET_PERCENT = 25;
const ESCALATED_SHARE_TARGET_PERCENT = 175;
/** OpenAI's cookbook counts 3 tokens of framing per message and 3 more priming the reply. */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_REPLY = 3;
/** Each call is a system prompt and one user message. */
const FRAMING_TOKENS = 2 * TOKENS_PER_MESSAGE + TOKENS_PER_REPLY;
/** If Claude's tokenizer turns the same text into this many times o200k's tokens. */
const CLAUDE_TOKEN_RATIO = 1.2;
/** Why a draft the check accepted would still be refined: the policy's confidence floor, just missed. */
const UNSURE_REASON = `the check was unsure (${(DEFAULT_POLICY.confidenceThreshold - 0.05).toFixed(2)})`;

/** Token counts of one fixture's calls; the same counts serve both vendors. */
interface TurnTokens {
  fixture: CascadeFixture;
  questionInput: number;
  answer: number;
  checkInput: number;
  checkOutput: number;
  refineInput: number;
}

/** How Claude's token counts are taken from o200k's: the plain approximation and the sensitivity rows. */
interface ClaudeScale {
  label: string;
  input: number;
  output: number;
}

const AS_COUNTED: ClaudeScale = { label: 'o200k counts', input: 1, output: 1 };
const MORE_CLAUDE_INPUT: ClaudeScale = {
  label: `Claude input × ${CLAUDE_TOKEN_RATIO}`,
  input: CLAUDE_TOKEN_RATIO,
  output: 1,
};
const MORE_CLAUDE_TOKENS: ClaudeScale = {
  label: `Claude input and output × ${CLAUDE_TOKEN_RATIO}`,
  input: CLAUDE_TOKEN_RATIO,
  output: CLAUDE_TOKEN_RATIO,
};
const SCALES: readonly ClaudeScale[] = [AS_COUNTED, MORE_CLAUDE_INPUT, MORE_CLAUDE_TOKENS];

interface TurnCosts {
  draftMicros: Micros;
  checkMicros: Micros;
  refineMicros: Micros;
  smartOnlyMicros: Micros;
}

/** Cost sums over a set of turns, and the shares and break-even rate they make. */
interface Shares {
  acceptedPercent: number;
  escalatedPercent: number;
  breakEvenPercent: number;
}

export const economicsBenchmark: Benchmark = {
  name: 'economics',
  async run(): Promise<Figure[]> {
    const built = buildPriceTable(DEFAULT_PRICES);
    if (!built.ok) throw new Error(built.problems.join('; '));
    const priceOf = (model: string): ModelPrice => {
      const price = built.table.get(model);
      if (!price) throw new Error(`no built-in price for ${model}`);
      return price;
    };
    const turns = CASCADE_FIXTURES.map(countTurn);
    console.log(`\nCascade economics: token counts of the ${turns.length} fixtures (o200k_base)\n`);
    console.log(tokenTable(turns));

    const isRefined = turns.map((turn) => decideFromVerdict(turn.fixture.verdict, DEFAULT_POLICY).refine);
    const routedRefinedPercent = (100 * isRefined.filter(Boolean).length) / turns.length;
    const figures: Figure[] = [
      {
        name: `escalation rate of the ${turns.length} fixtures’ own verdicts under the default policy`,
        value: routedRefinedPercent,
        unit: '%',
      },
    ];

    for (const smartModel of SMART_MODELS) {
      const costsAt = (scale: ClaudeScale) =>
        turns.map((turn) => costTurn(turn, priceOf(FAST_MODEL), priceOf(smartModel), scale));
      const costs = costsAt(AS_COUNTED);
      const all = sharesOf(costs);
      const routedMicros = costs.reduce(
        (sum, cost, index) =>
          sum + cost.draftMicros + cost.checkMicros + (isRefined[index] ? cost.refineMicros : 0),
        0,
      );
      const smartOnlyMicros = costs.reduce((sum, cost) => sum + cost.smartOnlyMicros, 0);
      const sensitivity = sharesOf(costsAt(MORE_CLAUDE_INPUT));

      console.log(`\nCascade economics with ${smartModel} as the smart model (shares of its cost alone)\n`);
      console.log(shareTable(turns, costsAt));

      figures.push(
        {
          name: `${smartModel}: accepted turn (draft + check), share of smart-only cost`,
          value: all.acceptedPercent,
          unit: '%',
          target: { atMost: ACCEPTED_SHARE_TARGET_PERCENT },
        },
        {
          name: `${smartModel}: escalated turn (draft + check + refine), share of smart-only cost`,
          value: all.escalatedPercent,
          unit: '%',
          target: { atMost: ESCALATED_SHARE_TARGET_PERCENT },
        },
        { name: `${smartModel}: break-even escalation rate`, value: all.breakEvenPercent, unit: '%' },
        {
          name: `${smartModel}: break-even escalation rate, Claude input tokens × ${CLAUDE_TOKEN_RATIO}`,
          value: sensitivity.breakEvenPercent,
          unit: '%',
        },
        {
          name: `${smartModel}: the fixtures routed by their own verdicts, share of smart-only cost`,
          value: (100 * routedMicros) / smartOnlyMicros,
          unit: '%',
        },
      );
    }
    return figures;
  },
};

function countTurn(fixture: CascadeFixture): TurnTokens {
  const decision = decideFromVerdict(fixture.verdict, DEFAULT_POLICY);
  const reason = decision.refine ? decision.reason : UNSURE_REASON;
  // The verdict as the model writes it under the schema: compact JSON, keys in the schema's order.
  const { verdict, reason: verdictReason, category, confidence } = fixture.verdict;
  const verdictJson = JSON.stringify({ verdict, reason: verdictReason, category, confidence });
  const systemAndQuestion = countOpenAITokens(DEFAULT_SYSTEM_PROMPT) + countOpenAITokens(fixture.prompt);
  return {
    fixture,
    questionInput: FRAMING_TOKENS + systemAndQuestion,
    answer: countOpenAITokens(fixture.answer),
    checkInput:
      FRAMING_TOKENS +
      countOpenAITokens(CHECK_SYSTEM_PROMPT) +
      countOpenAITokens(checkPrompt(fixture.prompt, fixture.answer)) +
      countOpenAITokens(JSON.stringify(CHECK_SCHEMA)),
    checkOutput: countOpenAITokens(verdictJson),
    // The question and the instruction travel as two text blocks of one user message.
    refineInput:
      FRAMING_TOKENS + systemAndQuestion + countOpenAITokens(refineInstruction(fixture.answer, reason)),
  };
}

function costTurn(turn: TurnTokens, fast: ModelPrice, smart: ModelPrice, scale: ClaudeScale): TurnCosts {
  const usage = (input: number, output: number) => ({
    inputTokens: input,
    cachedInputTokens: 0,
    cacheWriteTokens: 0,
    outputTokens: output,
  });
  const claudeOutput = Math.round(turn.answer * scale.output);
  return {
    draftMicros: costMicros(usage(turn.questionInput, turn.answer), fast),
    checkMicros: costMicros(usage(turn.checkInput, turn.checkOutput), fast),
    refineMicros: costMicros(usage(Math.round(turn.refineInput * scale.input), claudeOutput), smart),
    smartOnlyMicros: costMicros(usage(Math.round(turn.questionInput * scale.input), claudeOutput), smart),
  };
}

/**
 * Σ(draft + check) and Σ(draft + check + refine) as shares of Σ(smart only), and the escalation rate r
 * at which the cascade costs what the smart model alone does: (1 − r)·accepted + r·escalated = 1.
 */
function sharesOf(costs: readonly TurnCosts[]): Shares {
  const sum = (pick: (cost: TurnCosts) => number) => costs.reduce((total, cost) => total + pick(cost), 0);
  const smartOnly = sum((cost) => cost.smartOnlyMicros);
  const accepted = sum((cost) => cost.draftMicros + cost.checkMicros) / smartOnly;
  const escalated = sum((cost) => cost.draftMicros + cost.checkMicros + cost.refineMicros) / smartOnly;
  return {
    acceptedPercent: 100 * accepted,
    escalatedPercent: 100 * escalated,
    breakEvenPercent: (100 * (1 - accepted)) / (escalated - accepted),
  };
}

function tokenTable(turns: readonly TurnTokens[]): string {
  const rows = turns.map((turn, index) => [
    String(index + 1),
    turn.fixture.category,
    String(turn.questionInput),
    String(turn.answer),
    String(turn.checkInput),
    String(turn.checkOutput),
    String(turn.refineInput),
    `${turn.fixture.verdict.verdict} ${turn.fixture.verdict.confidence.toFixed(2)}`,
  ]);
  return formatColumns(
    ['#', 'category', 'question in', 'answer', 'check in', 'check out', 'refine in', 'verdict'],
    rows,
  );
}

function shareTable(turns: readonly TurnTokens[], costsAt: (scale: ClaudeScale) => TurnCosts[]): string {
  const categories = [...new Set(turns.map((turn) => turn.fixture.category))];
  const row = (label: string, costs: readonly TurnCosts[], members: readonly TurnTokens[]) => {
    const shares = sharesOf(costs);
    const meanAnswer = members.reduce((sum, turn) => sum + turn.answer, 0) / members.length;
    return [
      label,
      String(members.length),
      meanAnswer.toFixed(0),
      `${shares.acceptedPercent.toFixed(1)}%`,
      `${shares.escalatedPercent.toFixed(1)}%`,
      `${shares.breakEvenPercent.toFixed(1)}%`,
    ];
  };
  const costs = costsAt(AS_COUNTED);
  const inCategory = (category: CascadeCategory) => (_: unknown, index: number) =>
    item(turns, index).fixture.category === category;
  const rows = [
    ...categories.map((category) =>
      row(category, costs.filter(inCategory(category)), turns.filter(inCategory(category))),
    ),
    ...SCALES.map((scale) => row(`all, ${scale.label}`, costsAt(scale), turns)),
  ];
  return formatColumns(
    ['turns', 'count', 'mean answer tokens', 'accepted', 'escalated', 'break-even rate'],
    rows,
  );
}
