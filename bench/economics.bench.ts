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
import {
  DEFAULT_ROUTER,
  routesToSmart,
  skipsCheck,
  TRIAGE_SCHEMA,
  TRIAGE_SYSTEM_PROMPT,
  triagePrompt,
} from '../src/core/router.js';
import { countOpenAITokens } from '../src/providers/estimate.js';
import { DEFAULT_ABORT_MARGIN_TOKENS } from '../src/providers/limits.js';
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
 * With the router in front (src/core/router.ts), every turn also pays
 * - triage, gpt-4o-mini: TRIAGE_SYSTEM_PROMPT + triagePrompt(question) + its JSON schema in, the fixture's
 *   triage label as compact JSON (confidence in whole percent) out;
 * and a turn the triage routes pays, instead of draft + check + refine,
 * - the aborted draft, gpt-4o-mini: its whole input, plus what it streamed while the triage wrote its
 *   verdict (both start together and write at the same speed: as many tokens as the verdict has) and
 *   ABORT_MARGIN_TOKENS for tokens in flight;
 * - the smart model answering directly: exactly the smart-only cost.
 * A chit-chat or factual question the triage is sure of skips the check (UNCHECKED_CATEGORIES).
 * Anthropic publishes no tokenizer, so Claude's counts are the same o200k counts; the rows "Claude tokens
 * × 1.2" show how much that matters. Every prompt here is one message far below the shortest cacheable
 * prompt (1,024 tokens at OpenAI, 2,048 or more at Anthropic), so no token is a cache read or write and
 * every input token is billed at the input price.
 */

const FAST_MODEL = 'gpt-4o-mini';
const SMART_MODELS = ['claude-haiku-4-5', 'claude-3-5-haiku'] as const;
const ACCEPTED_SHARE_TARGET_PERCENT = 25;
const ESCALATED_SHARE_TARGET_PERCENT = 175;
/** Issue 13's targets for the router, on claude-haiku-4-5 (its issue's smart model). */
const TARGETED_SMART_MODEL = 'claude-haiku-4-5';
const ROUTED_FIXTURES_TARGET_PERCENT = 65;
const ROUTED_TURN_TARGET_PERCENT = 106;
const ROUTER_ACCEPTED_TARGET_PERCENT = 19;
const ROUTER_BREAK_EVEN_TARGET_PERCENT = 75;
/** Escalation rates at which both paths' costs are tabled. */
const ESCALATION_RATES_PERCENT = [10, 20, 35, 60] as const;
const ROUTER_POLICY = { ...DEFAULT_POLICY, router: DEFAULT_ROUTER };
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
  triageInput: number;
  triageOutput: number;
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
  triageMicros: Micros;
  /** The draft aborted when the triage routes the turn: its input, what it streamed, and the margin. */
  abortedDraftMicros: Micros;
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
      const cascadeMicros = costs.reduce(
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
          value: (100 * cascadeMicros) / smartOnlyMicros,
          unit: '%',
        },
      );

      const router = routerSharesOf(turns, costs);
      const byLabels = costs.reduce((sum, cost, index) => sum + byLabelsMicros(item(turns, index), cost), 0);
      const isTargeted = smartModel === TARGETED_SMART_MODEL;
      const target = (bound: Figure['target']) => (isTargeted ? { target: bound } : {});
      console.log(
        `\nWith the router in front (${smartModel}): shares of its cost alone by escalation rate\n`,
      );
      console.log(rateTable(all, router));
      figures.push(
        {
          name: `${smartModel}: router: the fixtures routed by their own triage labels and verdicts, share of smart-only cost`,
          value: (100 * byLabels) / smartOnlyMicros,
          unit: '%',
          ...target({ atMost: ROUTED_FIXTURES_TARGET_PERCENT }),
        },
        {
          name: `${smartModel}: router: routed turn (triage + aborted draft + smart model), share of smart-only cost`,
          value: router.escalatedPercent,
          unit: '%',
          ...target({ atMost: ROUTED_TURN_TARGET_PERCENT }),
        },
        {
          name: `${smartModel}: router: accepted turn (triage + draft + check, chit-chat and factual unchecked), share of smart-only cost`,
          value: router.acceptedPercent,
          unit: '%',
          ...target({ atMost: ROUTER_ACCEPTED_TARGET_PERCENT }),
        },
        {
          name: `${smartModel}: router: break-even escalation rate`,
          value: router.breakEvenPercent,
          unit: '%',
          ...target({ atLeast: ROUTER_BREAK_EVEN_TARGET_PERCENT }),
        },
        ...ESCALATION_RATES_PERCENT.flatMap((rate) => [
          {
            name: `${smartModel}: at ${rate}% escalated, cascade alone, share of smart-only cost`,
            value: shareAtRate(all, rate),
            unit: '%',
          },
          {
            name: `${smartModel}: at ${rate}% escalated, router in front, share of smart-only cost`,
            value: shareAtRate(router, rate),
            unit: '%',
          },
        ]),
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
    triageInput:
      FRAMING_TOKENS +
      countOpenAITokens(TRIAGE_SYSTEM_PROMPT) +
      countOpenAITokens(triagePrompt([{ role: 'user', content: fixture.prompt }])) +
      countOpenAITokens(JSON.stringify(TRIAGE_SCHEMA)),
    triageOutput: countOpenAITokens(
      JSON.stringify({
        route: `${fixture.triage.route} ${fixture.triage.category}`,
        confidence: Math.round(fixture.triage.confidence * 100),
      }),
    ),
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
    triageMicros: costMicros(usage(turn.triageInput, turn.triageOutput), fast),
    abortedDraftMicros: costMicros(
      usage(turn.questionInput, Math.min(turn.answer, turn.triageOutput + DEFAULT_ABORT_MARGIN_TOKENS)),
      fast,
    ),
  };
}

/** A turn the triage leaves to the fast model: triage, draft, and the check unless it is skipped. */
function acceptedByRouterMicros(turn: TurnTokens, cost: TurnCosts): Micros {
  const asFast = { ...turn.fixture.triage, route: 'fast' as const };
  const check = skipsCheck(asFast, ROUTER_POLICY) ? 0 : cost.checkMicros;
  return cost.triageMicros + cost.draftMicros + check;
}

/** A turn the triage routes: triage, the aborted draft, and the smart model answering directly. */
function routedMicros(cost: TurnCosts): Micros {
  return cost.triageMicros + cost.abortedDraftMicros + cost.smartOnlyMicros;
}

/** Each fixture as its own triage label and check verdict route it. */
function byLabelsMicros(turn: TurnTokens, cost: TurnCosts): Micros {
  if (routesToSmart(turn.fixture.triage, ROUTER_POLICY.router)) return routedMicros(cost);
  const isRefined = decideFromVerdict(turn.fixture.verdict, DEFAULT_POLICY).refine;
  return acceptedByRouterMicros(turn, cost) + (isRefined ? cost.refineMicros : 0);
}

/** The router's accepted and routed turns as shares of the smart model alone, and its break-even rate. */
function routerSharesOf(turns: readonly TurnTokens[], costs: readonly TurnCosts[]): Shares {
  const smartOnly = costs.reduce((total, cost) => total + cost.smartOnlyMicros, 0);
  const accepted =
    costs.reduce((total, cost, index) => total + acceptedByRouterMicros(item(turns, index), cost), 0) /
    smartOnly;
  const escalated = costs.reduce((total, cost) => total + routedMicros(cost), 0) / smartOnly;
  return {
    acceptedPercent: 100 * accepted,
    escalatedPercent: 100 * escalated,
    breakEvenPercent: (100 * (1 - accepted)) / (escalated - accepted),
  };
}

/** What a mix costs at an escalation rate: (1 − r)·accepted + r·escalated, in percent of smart alone. */
function shareAtRate(shares: Shares, ratePercent: number): number {
  const rate = ratePercent / 100;
  return (1 - rate) * shares.acceptedPercent + rate * shares.escalatedPercent;
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

function rateTable(cascade: Shares, router: Shares): string {
  const rows = ESCALATION_RATES_PERCENT.map((rate) => [
    `${rate}%`,
    `${shareAtRate(cascade, rate).toFixed(1)}%`,
    `${shareAtRate(router, rate).toFixed(1)}%`,
  ]);
  rows.push([
    'break-even',
    `${cascade.breakEvenPercent.toFixed(1)}%`,
    `${router.breakEvenPercent.toFixed(1)}%`,
  ]);
  return formatColumns(['escalated', 'cascade alone', 'router in front'], rows);
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
    String(turn.triageInput),
    String(turn.triageOutput),
    `${turn.fixture.triage.route} ${turn.fixture.triage.confidence.toFixed(2)}`,
  ]);
  return formatColumns(
    [
      '#',
      'category',
      'question in',
      'answer',
      'check in',
      'check out',
      'refine in',
      'verdict',
      'triage in',
      'triage out',
      'triage',
    ],
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
