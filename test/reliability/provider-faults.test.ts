import { describe, expect, it, vi } from 'vitest';
import { PROVIDERS_DOWN } from '../../src/discord/answer.js';
import { anthropicErrors } from '../fakes/anthropic.js';
import { type OpenAIScript, openaiErrors } from '../fakes/openai.js';
import { ACCEPT, type BotHarness, botPerTest } from '../support/bot.js';
import { checkVerdict } from '../support/verdicts.js';

/**
 * Provider faults end to end: the real bot, discord.js, SDKs, gateway and SQLite ledger against the
 * loopback fakes. Each row scripts a fault, asks the bot a question by mention and checks what the person
 * ends up seeing, how many requests each provider saw, what the ledger charged, and that nothing is left
 * reserved (the harness's close) or rejected unhandled.
 */

/** The shortest waits the configuration allows: retry-after capped at 1 s, a 5 s deadline, 1 s to first token. */
const QUICK_PROVIDERS = {
  RETRY_AFTER_CAP_SECONDS: '1',
  PROVIDER_DEADLINE_SECONDS: '5',
  FIRST_TOKEN_TIMEOUT_SECONDS: '1',
};

// Usage the fakes report, and what it costs at the built-in prices (USD per million tokens).
/** GPT-4o Mini draft: 1,000 × $0.15 + 500 × $0.60 = 450 micro-USD. */
const DRAFT_USAGE = { promptTokens: 1_000, completionTokens: 500 };
const DRAFT_MICROS = 450;
/** GPT-4o Mini check: 400 × $0.15 + 50 × $0.60 = 90 micro-USD. */
const CHECK_USAGE = { promptTokens: 400, completionTokens: 50 };
const CHECK_MICROS = 90;
/** Claude Haiku 4.5: 1,000 × $1 + 400 × $5 = 3,000 micro-USD. */
const HAIKU_USAGE = { inputTokens: 1_000, outputTokens: 400 };
const HAIKU_MICROS = 3_000;

const ANSWER = 'A monad chains computations that carry context.';
const CLAUDE_ANSWER = 'Claude here: a monad chains computations.';
const REFINE = checkVerdict('refine', 'misses the point', 'reasoning');

/** What the person sees when GPT-4o Mini drafts, the check accepts, and nothing went wrong in the end. */
const NORMAL_ANSWER = `${ANSWER}\n-# gpt-4o-mini · 1,950 tokens · $0.0005`;
/** What the person sees when Claude Haiku answered because OpenAI failed. */
const CLAUDE_FALLBACK_ANSWER = [
  CLAUDE_ANSWER,
  '-# claude-haiku-4-5 (fallback: OpenAI is unavailable) · 1,400 tokens · $0.0030',
  '-# answered by claude-haiku-4-5: OpenAI is unavailable',
].join('\n');

const normalDraft = () => [
  { type: 'stream' as const, text: ANSWER, usage: DRAFT_USAGE },
  { type: 'completion' as const, content: ACCEPT, usage: CHECK_USAGE },
];
const claudeAnswer = () => ({ type: 'stream' as const, text: CLAUDE_ANSWER, usage: HAIKU_USAGE });
const times = <T>(count: number, make: () => T): T[] => Array.from({ length: count }, make);

/** A cost, or 'estimated': charged what the adapter estimated (a cut OpenAI stream reports no usage). */
type LedgerRow = [purpose: string, outcome: string, provider: string, costMicros: number | 'estimated'];
const failedDraft: LedgerRow = ['draft', 'failed', 'openai', 0];

interface FaultCase {
  name: string;
  environment?: Record<string, string>;
  script(harness: BotHarness): void;
  /** The bot's reply, exactly (or matching in whole), once everything is over (answer and footer lines). */
  sees: string | RegExp;
  hasEscalateButton: boolean;
  /** How many requests OpenAI saw: exactly, or a range where the deadline (a clock) decides. */
  openaiRequests: number | { atLeast: number; atMost: number };
  anthropicRequests: number;
  /** OpenAI requests the bot hung up on (a first-token timeout aborts the HTTP request). */
  openaiClosedEarly?: number;
  /** Every ledger row, in order: purpose, outcome, provider, cost (given how many requests OpenAI saw). */
  ledger: LedgerRow[] | ((openaiRequests: number) => LedgerRow[]);
  /** The errors the bot logged; none by default. */
  loggedErrors?: string[];
  /** Whether the turn was kept (for /escalate and /usage); by default, when an answer was given. */
  isTurnKept?: boolean;
}

/**
 * OpenAI fails the draft (every attempt as scripted here) before any text is shown, and Claude Haiku
 * answers as a fallback: each failed attempt is a $0 ledger row, then the fallback is charged.
 */
function claudeTakesOver(
  name: string,
  failures: () => OpenAIScript[],
  attempts: FaultCase['openaiRequests'] = failures().length,
): FaultCase {
  return {
    name,
    script({ openai, anthropic }) {
      openai.script(...failures());
      anthropic.script(claudeAnswer());
    },
    sees: CLAUDE_FALLBACK_ANSWER,
    hasEscalateButton: false,
    openaiRequests: attempts,
    anthropicRequests: 1,
    ledger: (seen) => [...times(seen, () => failedDraft), ['fallback', 'settled', 'anthropic', HAIKU_MICROS]],
  };
}

/**
 * OpenAI fails the draft's first attempt before any text is shown (as scripted here) and its retry
 * answers: the failed attempt is a $0 ledger row, then the draft and the check are charged as usual.
 */
function retryAnswers(name: string, failure: OpenAIScript, more: Partial<FaultCase> = {}): FaultCase {
  return {
    name,
    script({ openai }) {
      openai.script(failure, ...normalDraft());
    },
    sees: NORMAL_ANSWER,
    hasEscalateButton: true,
    openaiRequests: 3,
    anthropicRequests: 0,
    ledger: [
      failedDraft,
      ['draft', 'settled', 'openai', DRAFT_MICROS],
      ['check', 'settled', 'openai', CHECK_MICROS],
    ],
    ...more,
  };
}

const CASES: FaultCase[] = [
  // Attempts at about 0, 1, 2, 3 and 4 s; a sixth would start at the 5 s deadline. A loaded machine's
  // slower attempts fit fewer before it (the clock decides), but never fewer than a retry, nor more than
  // five: a 120 s wait was capped to 1 s, not honoured and not skipped.
  claudeTakesOver(
    'when OpenAI answers every attempt with 429 and retry-after 120 s, then it is retried each capped second until the deadline and Claude answers',
    () => times(6, (): OpenAIScript => openaiErrors.rateLimited(120)),
    { atLeast: 2, atMost: 5 },
  ),
  retryAnswers(
    'when OpenAI answers 429 once with retry-after 120 s, then the retry a capped second later answers and only the answer is charged',
    openaiErrors.rateLimited(120),
  ),
  claudeTakesOver(
    'when OpenAI answers 500 to every attempt, then its circuit opens after five and Claude answers',
    () => times(5, (): OpenAIScript => openaiErrors.server(500)),
  ),
  {
    name: 'when OpenAI answers 503 and Claude 529 to every attempt, then both circuits open and the person is told nothing was charged',
    // A deadline long enough for both circuits to open, whatever the backoff jitter.
    environment: { PROVIDER_DEADLINE_SECONDS: '30' },
    script({ openai, anthropic }) {
      openai.script(...times(5, () => openaiErrors.unavailable()));
      anthropic.script(...times(5, () => anthropicErrors.overloaded()));
    },
    sees: PROVIDERS_DOWN,
    hasEscalateButton: false,
    openaiRequests: 5,
    anthropicRequests: 5,
    ledger: [
      ...times(5, () => failedDraft),
      ...times(5, (): LedgerRow => ['fallback', 'failed', 'anthropic', 0]),
    ],
    loggedErrors: ['both model providers failed'],
    isTurnKept: false,
  },
  {
    name: 'when Claude answers 529 to every refinement attempt, then the draft stands and the footer says why (GPT-4o Mini does not rewrite its own draft)',
    script({ openai, anthropic }) {
      openai.script(
        { type: 'stream', text: 'A monad is a burrito.', usage: DRAFT_USAGE },
        { type: 'completion', content: REFINE, usage: CHECK_USAGE },
      );
      anthropic.script(...times(5, () => anthropicErrors.overloaded()));
    },
    sees: [
      'A monad is a burrito.',
      '-# gpt-4o-mini · 1,950 tokens · $0.0005',
      '-# kept the GPT-4o Mini answer: Anthropic is unavailable',
    ].join('\n'),
    hasEscalateButton: true,
    openaiRequests: 2,
    anthropicRequests: 5,
    ledger: [
      ['draft', 'settled', 'openai', DRAFT_MICROS],
      ['check', 'settled', 'openai', CHECK_MICROS],
      ...times(5, (): LedgerRow => ['refine', 'failed', 'anthropic', 0]),
    ],
  },
  {
    name: 'when both providers fail the check, then the draft already shown stands, charged what it cost',
    environment: { PROVIDER_DEADLINE_SECONDS: '30' },
    script({ openai, anthropic }) {
      openai.script(
        { type: 'stream', text: 'A monad is a burrito.', usage: DRAFT_USAGE },
        ...times(5, () => openaiErrors.server(500)),
      );
      anthropic.script(...times(5, () => anthropicErrors.overloaded()));
    },
    sees: ['A monad is a burrito.', '-# gpt-4o-mini · 1,500 tokens · $0.0005'].join('\n'),
    hasEscalateButton: true,
    openaiRequests: 6,
    anthropicRequests: 5,
    ledger: [
      ['draft', 'settled', 'openai', DRAFT_MICROS],
      ...times(5, (): LedgerRow => ['check', 'failed', 'openai', 0]),
      ...times(5, (): LedgerRow => ['fallback', 'failed', 'anthropic', 0]),
    ],
  },
  retryAnswers(
    'when the first token never comes, then the request is hung up on after the first-token timeout and the retry answers',
    { type: 'stream', hang: true },
    { openaiClosedEarly: 1 },
  ),
  {
    name: 'when the draft stream is cut after text was shown, then it is not restarted: Claude refines what was cut off, and the cut draft is charged an estimate of what OpenAI streamed',
    script({ openai, anthropic }) {
      openai.script({
        type: 'stream',
        chunks: ['The answer ', 'is ', 'forty', '-two.'],
        cutAfterChunks: 2,
        usage: DRAFT_USAGE,
      });
      anthropic.script(claudeAnswer());
    },
    sees: new RegExp(
      `^${CLAUDE_ANSWER.replace(/[.:]/g, '\\$&')}\\n-# gpt-4o-mini → claude-haiku-4-5 \\(the draft was cut off\\) · [\\d,]+ tokens · \\$0\\.003\\d$`,
    ),
    hasEscalateButton: false,
    openaiRequests: 1,
    anthropicRequests: 1,
    // OpenAI reports usage only in a stream's last chunk: the cut draft is charged the estimate.
    ledger: [
      ['draft', 'failed', 'openai', 'estimated'],
      ['refine', 'settled', 'anthropic', HAIKU_MICROS],
    ],
  },
  claudeTakesOver(
    'when the draft stream is cut before its first word, then nothing was shown and Claude answers',
    () => [{ type: 'stream', chunks: ['never ', 'seen'], cutAfterChunks: 0 }],
  ),
  {
    name: "when Claude's refinement stream is cut after text was shown, then it is not restarted: the whole draft comes back, and the footer says why",
    script({ openai, anthropic }) {
      openai.script(
        { type: 'stream', text: 'A monad is a burrito.', usage: DRAFT_USAGE },
        { type: 'completion', content: REFINE, usage: CHECK_USAGE },
      );
      anthropic.script({
        type: 'stream',
        chunks: ['A monad ', 'chains ', 'computations ', 'in sequence.'],
        cutAfterChunks: 2,
        usage: HAIKU_USAGE,
      });
    },
    sees: [
      'A monad is a burrito.',
      // message_start reported 1,000 input tokens and 1 output token: 1,000 × $1 + 1 × $5 = 1,005.
      '-# gpt-4o-mini · 2,951 tokens · $0.0015',
      '-# kept the GPT-4o Mini answer: Claude Haiku stopped mid-answer',
    ].join('\n'),
    hasEscalateButton: true,
    openaiRequests: 2,
    anthropicRequests: 1,
    ledger: [
      ['draft', 'settled', 'openai', DRAFT_MICROS],
      ['check', 'settled', 'openai', CHECK_MICROS],
      ['refine', 'failed', 'anthropic', 1_005],
    ],
  },
  claudeTakesOver(
    'when the OpenAI account is out of quota, then OpenAI is asked once and Claude answers',
    () => [openaiErrors.insufficientQuota()],
  ),
  {
    name: 'when both accounts are out of credit, then each provider is asked once and the person is told nothing was charged',
    script({ openai, anthropic }) {
      openai.script(openaiErrors.spendLimit());
      anthropic.script(anthropicErrors.creditBalance());
    },
    sees: PROVIDERS_DOWN,
    hasEscalateButton: false,
    openaiRequests: 1,
    anthropicRequests: 1,
    ledger: [failedDraft, ['fallback', 'failed', 'anthropic', 0]],
    loggedErrors: ['both model providers failed'],
    isTurnKept: false,
  },
];

const startBot = botPerTest();

describe('provider faults, as the person asking sees them', () => {
  for (const fault of CASES) {
    it(fault.name, async () => {
      const harness = await startBot({
        environment: { ...QUICK_PROVIDERS, ...fault.environment },
        // Stopping the bot then waits for the answer in progress, however long its retries take.
        bot: { shutdownGraceMs: 60_000 },
      });
      const { discord, openai, anthropic, app } = harness;
      fault.script(harness);

      const question = discord.messageCreate({ content: `<@${discord.bot.id}> what is a monad?` });
      const replies = () =>
        discord.messagesIn(discord.channel.id).filter((message) => message.author.id === discord.bot.id);
      const seen = () => replies().map((message) => message.content);
      const sees = typeof fault.sees === 'string' ? fault.sees : expect.stringMatching(fault.sees);
      await vi.waitFor(() => expect(seen()).toEqual([sees]), { timeout: 20_000, interval: 20 });
      // Stopping waits for whatever the bot still had in hand: after it, nothing more can change.
      await harness.bot.stop();

      expect(seen()).toEqual([sees]);
      const [reply] = replies();
      expect(reply?.message_reference?.message_id).toBe(question.id);
      expect((reply?.components ?? []).length > 0).toBe(fault.hasEscalateButton);
      const openaiRequests = openai.requests.length;
      const expected = fault.openaiRequests;
      if (typeof expected === 'number') expect(openaiRequests).toBe(expected);
      else
        expect(openaiRequests).toSatisfy(
          (seen: number) => seen >= expected.atLeast && seen <= expected.atMost,
        );
      expect(anthropic.requests).toHaveLength(fault.anthropicRequests);
      expect(openai.closedEarly).toBe(fault.openaiClosedEarly ?? 0);

      await app.storage.flush();
      const rows = await harness.database.query<{
        purpose: string;
        outcome: string;
        provider: string;
        cost_micros: number;
        user_id: string;
      }>('SELECT purpose, outcome, provider, cost_micros, user_id FROM usage_ledger ORDER BY id');
      expect(rows.map((row) => [row.purpose, row.outcome, row.provider, row.cost_micros])).toEqual(
        (typeof fault.ledger === 'function' ? fault.ledger(openaiRequests) : fault.ledger).map(
          ([purpose, outcome, provider, cost]) => [
            purpose,
            outcome,
            provider,
            cost === 'estimated' ? expect.toSatisfy((micros: number) => micros > 0) : cost,
          ],
        ),
      );
      expect(new Set(rows.map((row) => row.user_id))).toEqual(new Set([discord.user.id]));
      // The person's spend is what the ledger charged (what the providers reported, or the estimate of a
      // cut stream), and nothing is still held.
      const charged = rows.reduce((sum, row) => sum + row.cost_micros, 0);
      const [standing] = await app.storage.budgets.standings({
        userId: discord.user.id,
        guildId: discord.guild.id,
      });
      expect(standing).toMatchObject({ spentMicros: charged, reservedMicros: 0 });

      const kept = await app.storage.turns.latest(discord.user.id, discord.channel.id);
      expect(kept !== undefined).toBe(fault.isTurnKept ?? true);
      const errors = harness.logs.filter((line) => line.level === 50).map((line) => line.msg);
      expect(errors).toEqual(fault.loggedErrors ?? []);
    });
  }
});
