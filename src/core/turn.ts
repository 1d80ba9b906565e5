import { type BudgetDenial, describeDenial, formatResetTime } from './budget.js';
import {
  type Answered,
  CallAbortedError,
  type CallOutcome,
  type CallOwner,
  ProvidersUnavailableError,
} from './calls.js';
import {
  type ChatMessage,
  type ChatResult,
  type ContentPart,
  ProviderError,
  type ProviderName,
  providerLabel,
} from './chat.js';
import {
  CHECK_MAX_OUTPUT_TOKENS,
  CHECK_SCHEMA,
  CHECK_SCHEMA_NAME,
  CHECK_SYSTEM_PROMPT,
  type CheckCategory,
  type CheckVerdict,
  checkPrompt,
  type TriageVerdict,
  type Decision,
  decideFromVerdict,
  type EscalationMode,
  type EscalationPolicy,
  freeSignal,
  parseVerdict,
  refineInstruction,
} from './escalation.js';
import type { CallPurpose } from './ledger.js';
import type { Micros } from './money.js';
import type { Member, ModelCaller, Telemetry, TurnLog } from './ports.js';
import { type TokenUsage, totalTokens } from './pricing.js';
import {
  codeRule,
  HeldText,
  messageText,
  parseTriage,
  routerModeOf,
  routesToSmart,
  skipsCheck,
  TRIAGE_MAX_OUTPUT_TOKENS,
  TRIAGE_SCHEMA,
  TRIAGE_SCHEMA_NAME,
  TRIAGE_SYSTEM_PROMPT,
  triagePrompt,
} from './router.js';
import { routeOf } from './telemetry.js';

/** Which model a person asked for: /ask model:… (auto by default), or /escalate (smart). */
export type ModelChoice = 'auto' | 'fast' | 'smart';

const ESCALATION_OFF = 'escalation to the smart model is turned off in this server';

export interface TurnRequest {
  turnId: string;
  owner: Omit<CallOwner, 'turnId'>;
  /** The conversation, ending with the message to answer (from the user). */
  conversation: readonly ChatMessage[];
  mode: EscalationMode;
  choice: ModelChoice;
  /**
   * /escalate without a prompt: an earlier answer the smart model should improve on. No draft is
   * written; the smart model refines this one.
   */
  earlierAnswer?: string | undefined;
  /** Notes from building the conversation (e.g. "⚠️ using the last 12 messages"). */
  warnings?: readonly string[];
  /** The chat message that asked (a Discord message id), kept so that it can be answered again. */
  questionMessageId?: string | undefined;
  signal?: AbortSignal | undefined;
}

export type TurnEvent =
  /** Text as it streams. `draft` text may still be replaced; `final` text is the answer. */
  | { type: 'delta'; text: string; phase: 'draft' | 'final' }
  /** The draft will be replaced: the smart model is refining it. */
  | { type: 'refining'; model: string; reason: string };

/** What is kept of a turn: its route, reason and cost, and (clipped) its question and answer. */
export interface TurnRecord {
  turnId: string;
  userId: string;
  guildId: string | null;
  channelId: string | null;
  status: TurnResult['status'];
  models: string[];
  finalModel: string;
  escalation: TurnResult['escalation'];
  tokens: number;
  costMicros: Micros;
  smartOnlyCostMicros: Micros;
  question: string;
  answer: string;
  questionMessageId?: string | null;
  /** What the draft check said, when one ran. */
  check?: CheckVerdict | undefined;
  /** What the router's triage said of the question, when one ran (acted on or, in shadow mode, not). */
  triage?: TriageVerdict | undefined;
  createdAt: number;
}

export interface TurnDependencies {
  models: ModelCaller;
  fastModel: string;
  smartModel: string;
  /** Display names, for what people read ("refining with Claude Haiku…"). */
  modelLabel(model: string): string;
  systemPrompt: string;
  maxOutputTokens: number;
  policy: EscalationPolicy;
  /**
   * After the turn: a notice for the user if their spending just reached 80% or 100% of their budget
   * (each given once per period).
   */
  budgetNotice?(member: Member): Promise<string | undefined>;
  turns?: TurnLog;
  /** The operator's metrics: every turn's route and outcome. */
  telemetry?: Telemetry;
  now?: () => number;
}

export interface CallSummary {
  purpose: CallPurpose;
  model: string;
  provider: ProviderName;
  usage: TokenUsage;
  costMicros: Micros;
}

/**
 * Why a turn went to the smart model: the router's triage, a free rule on the question (code, a stack
 * trace), the draft check, a free signal from the draft (cut off, empty, declined), the person, a PDF, or
 * the fast model's provider failing.
 */
export type EscalationSource = 'router' | 'rule' | 'check' | 'signal' | 'user' | 'pdf' | 'fallback';

export interface TurnResult {
  turnId: string;
  /** denied: a budget could not cover the call; refused: the request is not allowed here. */
  status: 'answered' | 'denied' | 'refused';
  /** The answer to show (empty when denied). */
  text: string;
  /** The model that wrote the final text. */
  model: string;
  /** The models that wrote, in order: one, or the draft's then the refiner's. */
  models: string[];
  escalation?: { source: EscalationSource; reason: string; category?: CheckCategory; confidence?: number };
  /** What the check said, when one ran. */
  check?: CheckVerdict;
  /** What the router's triage said, when one ran. */
  triage?: TriageVerdict;
  /** Why a refinement that was called for did not happen (the budget could not cover it). */
  keptDraft?: string;
  /** A provider failed and the other answered. */
  fallback?: { from: ProviderName; reason: string };
  denial?: BudgetDenial;
  calls: CallSummary[];
  tokens: number;
  costMicros: Micros;
  /** What the same turn would have cost sent to the smart model alone. */
  smartOnlyCostMicros: Micros;
  /**
   * Time spent inside the providers' calls, in ms: the rest of a turn's time is the bot's own overhead
   * (and, once shown, Discord's).
   */
  providerMs: number;
  warnings: string[];
}

/**
 * One turn of conversation, told as the product works:
 * pre-route on free signals (a PDF, a request for the smart model, code that shows as code); stream a
 * draft from the fast model while the router's triage reads the question, and when the triage sends it to
 * the smart model, abort the unseen draft and let the smart model answer; otherwise show the draft, check
 * it, and refine it with the smart model when the check, a free signal or the person asks and the budget
 * allows; every call is settled in the ledger under the turn's id.
 */
export async function answerTurn(
  turn: TurnRequest,
  dependencies: TurnDependencies,
  onEvent: (event: TurnEvent) => void = () => {},
): Promise<TurnResult> {
  let result: TurnResult;
  try {
    result = await tellTurn(turn, dependencies, onEvent);
  } catch (error) {
    // Both providers down, a request a provider refused, or the turn cancelled: no result to tell.
    const outcome = turn.signal?.aborted ? 'cancelled' : 'failed';
    dependencies.telemetry?.turnEnded({ route: 'none', outcome });
    throw error;
  }
  dependencies.telemetry?.turnEnded({ route: routeOf(result), outcome: result.status });
  // Only a turn that spent something can have moved the user across a threshold.
  if (result.costMicros > 0 && dependencies.budgetNotice) {
    const notice = await dependencies.budgetNotice(turn.owner);
    if (notice !== undefined) result.warnings.push(notice);
  }
  dependencies.turns?.record(toRecord(turn, result, dependencies.now?.() ?? Date.now()));
  return result;
}

async function tellTurn(
  turn: TurnRequest,
  dependencies: TurnDependencies,
  onEvent: (event: TurnEvent) => void,
): Promise<TurnResult> {
  const story = new TurnStory(turn, dependencies, onEvent);

  const asksForSmartModel = turn.earlierAnswer !== undefined || turn.choice === 'smart';
  if (asksForSmartModel && turn.mode === 'off') return story.refused(ESCALATION_OFF);
  if (turn.earlierAnswer !== undefined) {
    return story.refine(turn.earlierAnswer, { source: 'user', reason: 'requested by user' }, 'refine');
  }
  const preRoute = preRouteOf(turn, dependencies);
  if (preRoute) return story.answerWithSmartModel(preRoute);

  // The draft starts at once; while a triage that may act runs beside it, its text is held back.
  const router = routerModeOf(turn, dependencies.policy.router);
  const draft = story.startDraft({ isHeld: router === 'on' });
  const triage = router === 'off' ? undefined : await story.triage();
  if (routesToSmart(triage, dependencies.policy.router)) {
    const routed = await story.route(draft, triage);
    // The budget could not cover the smart model: the draft, still running, answers after all.
    if (routed) return routed;
  }
  const drafted = await story.showDraft(draft);
  if (!drafted.ok) return story.denied(drafted.denial);
  // The person asked for the fast model: its answer is the answer, unchecked.
  if (turn.choice === 'fast') return story.finish(drafted.result);
  // The fast model's provider failed and the smart model wrote the draft: nothing left to refine.
  if (drafted.fallback) return story.finish(drafted.result);

  const decision = await story.decide(drafted.result, triage);
  if (!decision.refine) return story.finish(drafted.result);
  return story.refine(drafted.result.text, escalationOf(decision), 'refine');
}

/** Turns keep their question and answer for /escalate, clipped: enough to improve on, never unbounded. */
const KEPT_CHARACTERS = 16_000;

function toRecord(turn: TurnRequest, result: TurnResult, createdAt: number): TurnRecord {
  return {
    turnId: turn.turnId,
    userId: turn.owner.userId,
    guildId: turn.owner.guildId,
    channelId: turn.owner.channelId,
    status: result.status,
    models: result.models,
    finalModel: result.model,
    escalation: result.escalation,
    tokens: result.tokens,
    costMicros: result.costMicros,
    smartOnlyCostMicros: result.smartOnlyCostMicros,
    question: questionText(turn.conversation).slice(0, KEPT_CHARACTERS),
    answer: result.text.slice(0, KEPT_CHARACTERS),
    questionMessageId: turn.questionMessageId ?? null,
    check: result.check,
    triage: result.triage,
    createdAt,
  };
}

/**
 * Free, deterministic reasons to skip the draft: the person asked for the smart model, sent a PDF, or (with
 * the router on) asked about code that shows as code.
 */
function preRouteOf(
  turn: TurnRequest,
  dependencies: TurnDependencies,
): NonNullable<TurnResult['escalation']> | undefined {
  if (turn.choice === 'smart') return { source: 'user', reason: 'requested by user' };
  // With escalation off, a PDF goes to the fast model too (OpenAI reads it as a file part).
  if (turn.mode === 'off') return undefined;
  const question = turn.conversation.at(-1);
  const hasPdf =
    typeof question?.content !== 'string' && question?.content.some((part) => part.type === 'pdf');
  // GPT-4o Mini cannot read PDFs natively; Claude can.
  if (hasPdf) return { source: 'pdf', reason: 'PDF' };
  if (routerModeOf(turn, dependencies.policy.router) !== 'on') return undefined;
  const rule = codeRule(questionText(turn.conversation), dependencies.policy);
  if (rule === undefined) return undefined;
  return {
    source: 'rule',
    reason: `routed to ${dependencies.modelLabel(dependencies.smartModel)}: ${rule}`,
    category: 'code',
  };
}

function escalationOf(decision: Extract<Decision, { refine: true }>): NonNullable<TurnResult['escalation']> {
  if (!decision.verdict) return { source: 'signal', reason: decision.reason };
  return {
    source: 'check',
    reason: decision.reason,
    category: decision.verdict.category,
    confidence: decision.verdict.confidence,
  };
}

/** The draft while the triage decides: what it will come to, and whether it is shown or abandoned. */
interface RunningDraft {
  outcome: Promise<CallOutcome>;
  /** Shows what was held back, and the rest as it comes. */
  show(): void;
  /** Drops what was held back and aborts the draft (its own signal: the turn goes on). */
  abandon(): void;
}

/** The state of one turn as it unfolds; each method is one step of {@link answerTurn}. */
class TurnStory {
  private readonly calls: CallSummary[] = [];
  private readonly models: string[] = [];
  private costMicros = 0;
  private providerMs = 0;
  private smartOnlyCostMicros: Micros | undefined;
  private fallback: TurnResult['fallback'];
  private escalation: TurnResult['escalation'];
  private check: CheckVerdict | undefined;
  private triageVerdict: TriageVerdict | undefined;
  private keptDraft: string | undefined;
  /** The draft broke off mid-answer: if it stands, the person is told. */
  private isDraftCut = false;

  constructor(
    private readonly turn: TurnRequest,
    private readonly dependencies: TurnDependencies,
    private readonly onEvent: (event: TurnEvent) => void,
  ) {}

  private get owner(): CallOwner {
    return { ...this.turn.owner, turnId: this.turn.turnId };
  }

  /**
   * Starts the fast model's draft under its own abort signal (the turn's still aborts it too). Its text
   * is held back while `isHeld`, until {@link showDraft}; {@link route} abandons it instead.
   */
  startDraft({ isHeld }: { isHeld: boolean }): RunningDraft {
    const own = abortableWithin(this.turn.signal);
    const text = new HeldText(
      (piece) => this.onEvent({ type: 'delta', text: piece, phase: 'draft' }),
      isHeld,
    );
    const outcome = this.dependencies.models.stream(
      {
        owner: this.owner,
        purpose: 'draft',
        request: {
          ...this.request(this.dependencies.fastModel, this.turn.conversation),
          signal: own.signal,
        },
      },
      (piece) => text.push(piece),
    );
    // Awaited once the triage has answered: a draft that fails meanwhile is not an unhandled rejection.
    outcome.then(own.release, own.release);
    return {
      outcome,
      show: () => text.release(),
      abandon: () => {
        text.drop();
        own.abort(new Error('the router sent the question to the smart model'));
      },
    };
  }

  /** Shows the draft (what it held back, then the rest as it comes) and waits for it to end. */
  async showDraft(draft: RunningDraft): Promise<CallOutcome> {
    draft.show();
    const outcome = await draft.outcome;
    this.record(outcome, 'draft');
    this.isDraftCut = outcome.ok && outcome.result.finishReason === 'error';
    return outcome;
  }

  /**
   * The router's triage: one small structured call to the fast model on the question, beside the draft.
   * It never breaks or delays a turn beyond its timeout: failed, timed out, denied or unreadable, it gives
   * undefined and the draft goes on as if there were no router.
   */
  async triage(): Promise<TriageVerdict | undefined> {
    const router = this.dependencies.policy.router;
    if (!router) return undefined;
    const own = abortableWithin(this.turn.signal);
    const timer = setTimeout(() => own.abort(new Error('the triage took too long')), router.timeoutMs);
    const outcome = await this.unlessFailed(() =>
      this.dependencies.models.structured({
        owner: this.owner,
        purpose: 'triage',
        request: {
          model: this.dependencies.fastModel,
          system: TRIAGE_SYSTEM_PROMPT,
          messages: [{ role: 'user', content: triagePrompt(this.turn.conversation) }],
          maxOutputTokens: TRIAGE_MAX_OUTPUT_TOKENS,
          schemaName: TRIAGE_SCHEMA_NAME,
          schema: TRIAGE_SCHEMA,
          signal: own.signal,
        },
        // Asking the smart model whether to ask the smart model would cost more than it saves, and the
        // draft is held back meanwhile: a triage that fails once is given up.
        fallback: false,
        retry: false,
      }),
    ).finally(() => {
      clearTimeout(timer);
      own.release();
    });
    if (!outcome) return undefined;
    this.record(outcome, 'triage', { writesText: false });
    this.triageVerdict = outcome.ok ? parseTriage(outcome.result.value) : undefined;
    return this.triageVerdict;
  }

  /**
   * The triage sent the question to the smart model: it answers directly (no draft in its prompt), and the
   * draft is aborted as soon as the smart model's reservation is granted, never shown. When the budget
   * cannot cover the smart model, nothing is aborted and undefined says the draft answers after all.
   */
  async route(draft: RunningDraft, triage: TriageVerdict): Promise<TurnResult | undefined> {
    const { smartModel, modelLabel } = this.dependencies;
    const outcome = await this.dependencies.models.stream(
      {
        owner: this.owner,
        purpose: 'direct',
        request: this.request(smartModel, this.turn.conversation),
        onStarted: () => draft.abandon(),
      },
      (text) => this.onEvent({ type: 'delta', text, phase: 'final' }),
    );
    if (!outcome.ok) return undefined;
    await this.settleAbandoned(draft);
    this.escalation = {
      source: 'router',
      reason: `routed to ${modelLabel(smartModel)}: ${triage.category}`,
      category: triage.category,
      confidence: triage.confidence,
    };
    this.record(outcome, 'direct');
    return this.finish(outcome.result);
  }

  /** The abandoned draft's charge counts in the turn: what it streamed and a margin, or all of it if done. */
  private async settleAbandoned(draft: RunningDraft): Promise<void> {
    let outcome: CallOutcome;
    try {
      outcome = await draft.outcome;
    } catch (error) {
      if (!(error instanceof CallAbortedError)) {
        // The draft had failed on its own (its providers down, or refused): the smart answer stands.
        await this.unlessProvidersDown(() => Promise.reject(error));
        return;
      }
      this.costMicros += error.costMicros;
      this.providerMs += error.providerMs;
      const usage = error.details.usage;
      if (usage) {
        const { fastModel } = this.dependencies;
        this.calls.push({
          purpose: 'draft',
          model: fastModel,
          provider: error.provider,
          usage,
          costMicros: error.costMicros,
        });
      }
      return;
    }
    // It ended before the smart model started: paid for in full, and still never shown.
    this.record(outcome, 'draft', { writesText: false });
  }

  /**
   * Free signals first; then, in auto mode, one small structured call to the fast model, unless a
   * confident triage found chit-chat (see skipsCheck).
   */
  async decide(draft: ChatResult, triage: TriageVerdict | undefined): Promise<Decision> {
    if (this.turn.mode !== 'auto') return { refine: false };
    const signal = freeSignal(draft);
    if (signal) return { refine: true, reason: signal };
    if (skipsCheck(triage, this.dependencies.policy)) return { refine: false };
    const outcome = await this.unlessProvidersDown(() =>
      this.dependencies.models.structured({
        owner: this.owner,
        purpose: 'check',
        request: {
          model: this.dependencies.fastModel,
          system: CHECK_SYSTEM_PROMPT,
          messages: [
            { role: 'user', content: checkPrompt(questionText(this.turn.conversation), draft.text) },
          ],
          maxOutputTokens: CHECK_MAX_OUTPUT_TOKENS,
          schemaName: CHECK_SCHEMA_NAME,
          schema: CHECK_SCHEMA,
          signal: this.turn.signal,
        },
      }),
    );
    // Neither provider could check it: the draft, already shown, stands.
    if (!outcome) return { refine: false };
    this.record(outcome, 'check', { writesText: false });
    // A check that could not run (denied, unreadable) leaves the draft as it is: it was already shown.
    const verdict = outcome.ok ? parseVerdict(outcome.result.value) : undefined;
    if (!verdict) return { refine: false };
    this.check = verdict;
    return decideFromVerdict(verdict, this.dependencies.policy);
  }

  /** The smart model answers directly: /escalate with a prompt, /ask model:smart, or a PDF. */
  async answerWithSmartModel(escalation: NonNullable<TurnResult['escalation']>): Promise<TurnResult> {
    this.escalation = escalation;
    const outcome = await this.dependencies.models.stream(
      {
        owner: this.owner,
        purpose: 'direct',
        request: this.request(this.dependencies.smartModel, this.turn.conversation),
      },
      (text) => this.onEvent({ type: 'delta', text, phase: 'final' }),
    );
    this.record(outcome, 'direct');
    if (!outcome.ok) return this.denied(outcome.denial);
    return this.finish(outcome.result);
  }

  /**
   * The smart model rewrites an answer, given the conversation, the answer and why it falls short.
   * When the budget cannot cover it, the answer stands and the result says why.
   */
  async refine(
    answer: string,
    escalation: NonNullable<TurnResult['escalation']>,
    purpose: CallPurpose,
  ): Promise<TurnResult> {
    const { smartModel, modelLabel, fastModel } = this.dependencies;
    const conversation = withRefineInstruction(this.turn.conversation, answer, escalation.reason);
    const hasDraft = this.models.length > 0;
    const keep = (why: string) => {
      this.keptDraft = `kept the ${modelLabel(fastModel)} answer: ${why}`;
      return this.finish({
        text: answer,
        model: this.models.at(-1) ?? fastModel,
        ...(this.isDraftCut ? { finishReason: 'error' as const } : {}),
      });
    };
    const call = () =>
      this.dependencies.models.stream(
        {
          owner: this.owner,
          purpose,
          request: this.request(smartModel, conversation),
          // Announced once the budget has covered it: a refinement that cannot happen is never shown.
          onStarted: () => this.onEvent({ type: 'refining', model: smartModel, reason: escalation.reason }),
          // With a draft to fall back on, the smart model's provider failing leaves the draft standing.
          fallback: !hasDraft,
        },
        (text) => this.onEvent({ type: 'delta', text, phase: 'final' }),
      );
    let outcome: CallOutcome;
    try {
      outcome = await call();
    } catch (error) {
      if (!hasDraft) throw error;
      if (error instanceof ProvidersUnavailableError) {
        this.costMicros += error.costMicros;
        this.providerMs += error.providerMs;
        return keep(unavailable(error));
      }
      // The smart model's provider refused the request (a 4xx): the draft still answers.
      if (isRefusedRequest(error)) return keep(`${modelLabel(smartModel)} could not take this conversation`);
      throw error;
    }
    if (outcome.ok && outcome.result.finishReason === 'error' && hasDraft) {
      // The refinement broke off mid-answer: the whole draft is better than half an answer.
      this.record(outcome, purpose, { writesText: false });
      return keep(`${modelLabel(outcome.result.model)} stopped mid-answer`);
    }
    this.record(outcome, purpose);
    if (!outcome.ok) {
      if (this.models.length === 0) return this.denied(outcome.denial);
      return keep(
        `${outcome.denial.limit.kind === 'user' ? 'your' : "this server's"} budget can't cover ` +
          `${modelLabel(smartModel)}; resets ${formatResetTime(outcome.denial.resetsAtMs)}`,
      );
    }
    this.escalation = escalation;
    return this.finish(outcome.result);
  }

  denied(denial: BudgetDenial): TurnResult {
    const summary = this.summary();
    return {
      ...summary,
      status: 'denied',
      text: '',
      model: '',
      denial,
      warnings: [describeDenial(denial), ...summary.warnings],
    };
  }

  refused(reason: string): TurnResult {
    const summary = this.summary();
    return { ...summary, status: 'refused', text: '', model: '', warnings: [reason, ...summary.warnings] };
  }

  finish(final: Pick<ChatResult, 'text' | 'model'> & Partial<Pick<ChatResult, 'finishReason'>>): TurnResult {
    const summary = this.summary();
    if (final.finishReason === 'error') {
      summary.warnings.unshift(
        `⚠️ the answer was cut off: ${this.dependencies.modelLabel(final.model)} stopped mid-answer`,
      );
    }
    return { ...summary, status: 'answered', text: final.text, model: final.model };
  }

  /**
   * A call whose providers both failed, or that a provider refused, gives undefined (its cost still
   * counts) instead of throwing.
   */
  private async unlessProvidersDown<Outcome>(call: () => Promise<Outcome>): Promise<Outcome | undefined> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof ProvidersUnavailableError) {
        this.costMicros += error.costMicros;
        this.providerMs += error.providerMs;
      } else if (!isRefusedRequest(error)) throw error;
      return undefined;
    }
  }

  /**
   * Like {@link unlessProvidersDown}, and a call aborted by its own timeout gives undefined too (its cost
   * counts); one aborted because the turn was cancelled still throws.
   */
  private async unlessFailed<Outcome>(call: () => Promise<Outcome>): Promise<Outcome | undefined> {
    try {
      return await this.unlessProvidersDown(call);
    } catch (error) {
      if (!(error instanceof CallAbortedError) || this.turn.signal?.aborted) throw error;
      this.costMicros += error.costMicros;
      this.providerMs += error.providerMs;
      return undefined;
    }
  }

  private summary(): Omit<TurnResult, 'status' | 'text' | 'model'> {
    return {
      turnId: this.turn.turnId,
      models: [...this.models],
      ...(this.escalation ? { escalation: this.escalation } : {}),
      ...(this.check ? { check: this.check } : {}),
      ...(this.triageVerdict ? { triage: this.triageVerdict } : {}),
      ...(this.keptDraft ? { keptDraft: this.keptDraft } : {}),
      ...(this.fallback ? { fallback: this.fallback } : {}),
      calls: [...this.calls],
      tokens: this.calls.reduce((sum, call) => sum + totalTokens(call.usage), 0),
      costMicros: this.costMicros,
      smartOnlyCostMicros: this.smartOnlyCostMicros ?? this.costMicros,
      providerMs: this.providerMs,
      warnings: [...(this.turn.warnings ?? [])],
    };
  }

  /** Keeps the call's cost, its summary, who wrote text, and what it would have cost on the smart model. */
  private record(outcome: CallOutcome, purpose: CallPurpose, { writesText = true } = {}): void {
    this.costMicros += outcome.costMicros;
    this.providerMs += outcome.providerMs;
    if (!outcome.ok) return;
    const answered: Answered = outcome;
    this.calls.push({
      purpose: answered.fallback ? 'fallback' : purpose,
      model: answered.result.model,
      provider: answered.result.provider,
      usage: answered.result.usage,
      costMicros: answered.costMicros,
    });
    // A check answered by the other provider changes nothing the person sees.
    if (!writesText) return;
    if (answered.fallback) {
      this.fallback = answered.fallback;
      this.escalation ??= { source: 'fallback', reason: `fallback: ${answered.fallback.reason}` };
    }
    this.models.push(answered.result.model);
    // The first answer's tokens on the smart model are what the turn would have cost without the cascade.
    this.smartOnlyCostMicros ??= answered.smartCostMicros;
  }

  private request(model: string, messages: readonly ChatMessage[]) {
    return {
      model,
      system: this.dependencies.systemPrompt,
      messages,
      maxOutputTokens: this.dependencies.maxOutputTokens,
      signal: this.turn.signal,
    };
  }
}

/**
 * An abort signal of a call's own that the turn's signal aborts too; release() unhooks it from the turn's
 * signal once the call is over (the bot's shutdown signal lives as long as the process: AbortSignal.any
 * would leave a listener on it per call).
 */
function abortableWithin(parent: AbortSignal | undefined) {
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onParentAbort, { once: true });
  return {
    signal: controller.signal,
    abort: (reason: Error) => controller.abort(reason),
    release: () => parent?.removeEventListener('abort', onParentAbort),
  };
}

/** A provider refused the request itself (a 4xx such as an unreadable image): sending it again cannot help. */
function isRefusedRequest(error: unknown): error is ProviderError {
  return error instanceof ProviderError && error.kind === 'invalid_request';
}

/** "Anthropic is unavailable", or "both model providers are unavailable". */
function unavailable(error: ProvidersUnavailableError): string {
  const providers = [...new Set(error.failures.map((failure) => failure.provider))];
  const [only] = providers;
  return providers.length === 1 && only
    ? `${providerLabel(only)} is unavailable`
    : 'both model providers are unavailable';
}

/** The text of the newest message, for the check (attachments are noted, not sent). */
export function questionText(conversation: readonly ChatMessage[]): string {
  const question = conversation.at(-1);
  return question ? messageText(question) : '';
}

function withRefineInstruction(
  conversation: readonly ChatMessage[],
  answer: string,
  reason: string,
): ChatMessage[] {
  const question = conversation.at(-1);
  if (!question) return [{ role: 'user', content: refineInstruction(answer, reason) }];
  const instruction: ContentPart = { type: 'text', text: refineInstruction(answer, reason) };
  const content: ContentPart[] =
    typeof question.content === 'string'
      ? [{ type: 'text', text: question.content }, instruction]
      : [...question.content, instruction];
  return [...conversation.slice(0, -1), { role: question.role, content }];
}
