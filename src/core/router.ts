import type { ChatMessage } from './chat.js';
import {
  CHECK_CATEGORIES,
  type CheckCategory,
  type EscalationMode,
  type EscalationPolicy,
  type TriageVerdict,
} from './escalation.js';

/**
 * The router in front of the cascade: a triage of the question by the fast model, run beside the draft,
 * that sends hard questions straight to the smart model (no draft thrown away, no draft shown), and free
 * rules that do the same without any call for questions that are code by their looks.
 */

/** `on`: the triage acts; `shadow`: it runs and is recorded, never acts; `off`: no triage, no rules. */
export const ROUTER_MODES = ['on', 'shadow', 'off'] as const;
export type RouterMode = (typeof ROUTER_MODES)[number];

export interface RouterPolicy {
  mode: RouterMode;
  /** A triage at least this sure sends a question to the smart model (or, unchecked, skips the check). */
  confidenceThreshold: number;
  /** How long the draft is held back for the triage; past it the triage is abandoned and the draft shown. */
  timeoutMs: number;
  /** Categories whose drafts a confident `fast` triage sends unchecked (see {@link skipsCheck}). */
  uncheckedCategories: readonly CheckCategory[];
}

/**
 * Categories whose drafts the check accepts so reliably that asking costs more than it catches. On the
 * benchmark's fixtures the check accepted every chit-chat draft (at 0.90 or more) and every factual one a
 * confident triage leaves to the fast model (0.72 to 0.94); those drafts are short, so the check's fixed
 * cost is the largest share of their turn. That is a small sample of one model's judgement of another's
 * answers: shadow mode records the check beside the triage on real traffic, so an operator can see how
 * often it refines these before trusting it (ROUTER_UNCHECKED_CATEGORIES).
 */
export const UNCHECKED_CATEGORIES: readonly CheckCategory[] = ['chit-chat', 'factual'];

export const DEFAULT_ROUTER: RouterPolicy = {
  mode: 'on',
  confidenceThreshold: 0.7,
  timeoutMs: 1_500,
  uncheckedCategories: UNCHECKED_CATEGORIES,
};

/**
 * The triage's prompt: fixed and short (it is paid on every turn), and its answer a few tokens of JSON,
 * so that it ends soon after its first token: the draft is held back until it does.
 */
export const TRIAGE_SYSTEM_PROMPT =
  'Route a chat question. "smart": a good answer needs code, careful multi-step reasoning or maths, ' +
  'costly advice, or exact instructions for something risky. "fast": chit-chat, simple facts, everyday ' +
  'questions. Answer the route with the category (e.g. "smart code") and your confidence (0-100).';

const ROUTES = ['fast', 'smart'] as const;
/** Route and category in one word pair ("smart code"): four tokens fewer than two fields, 40 ms sooner. */
export const TRIAGE_ROUTES = ROUTES.flatMap((route) =>
  CHECK_CATEGORIES.map((category) => `${route} ${category}`),
);

export const TRIAGE_SCHEMA_NAME = 'question_triage';
export const TRIAGE_SCHEMA: Record<string, unknown> = {
  type: 'object',
  properties: {
    route: { type: 'string', enum: TRIAGE_ROUTES },
    // A whole percentage is one token where 0.95 is three: the triage's output is its latency.
    confidence: { type: 'integer' },
  },
  required: ['route', 'confidence'],
  additionalProperties: false,
};
/** The verdict is about 10 tokens; the cap only bounds a model that rambles. */
export const TRIAGE_MAX_OUTPUT_TOKENS = 32;

/** The question is clipped, and at most a short tail of the conversation before it goes along. */
const TRIAGE_QUESTION_CHARACTERS = 2_000;
const TRIAGE_CONTEXT_MESSAGES = 2;
const TRIAGE_CONTEXT_CHARACTERS = 300;

/** The triage's one message: the question, after the last couple of messages (clipped) for context. */
export function triagePrompt(conversation: readonly ChatMessage[]): string {
  const question = conversation.at(-1);
  const before = conversation.slice(0, -1).slice(-TRIAGE_CONTEXT_MESSAGES);
  const asked = `Question:\n${clip(question ? messageText(question) : '', TRIAGE_QUESTION_CHARACTERS)}`;
  if (before.length === 0) return asked;
  const context = before
    .map((message) => `${message.role}: ${clip(messageText(message), TRIAGE_CONTEXT_CHARACTERS)}`)
    .join('\n');
  return `Earlier messages:\n${context}\n\n${asked}`;
}

/** Reads the triage's JSON, or undefined when it is not what the schema promised. */
export function parseTriage(value: unknown): TriageVerdict | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { route: routeAndCategory, confidence } = value as Record<string, unknown>;
  if (typeof routeAndCategory !== 'string' || !TRIAGE_ROUTES.includes(routeAndCategory)) return undefined;
  if (typeof confidence !== 'number' || !Number.isFinite(confidence)) return undefined;
  const [route, category] = routeAndCategory.split(' ') as ['fast' | 'smart', CheckCategory];
  return { route, category, confidence: Math.min(1, Math.max(0, confidence / 100)) };
}

/** Whether a triage runs beside this turn's draft: only in auto mode, for a question sent to `auto`. */
export function routerModeOf(
  turn: { mode: EscalationMode; choice: 'auto' | 'fast' | 'smart' },
  router: RouterPolicy | undefined,
): RouterMode {
  if (!router || turn.mode !== 'auto' || turn.choice !== 'auto') return 'off';
  return router.mode;
}

/** The triage sends the question to the smart model: it said so, surely enough, and the router acts. */
export function routesToSmart(
  triage: TriageVerdict | undefined,
  router: RouterPolicy | undefined,
): triage is TriageVerdict {
  return (
    router?.mode === 'on' && triage?.route === 'smart' && triage.confidence >= router.confidenceThreshold
  );
}

/**
 * A confident `fast` triage of an unchecked category (chit-chat, factual) skips the check, unless the
 * policy always refines that category; the draft's free signals (cut off, empty, declined) still refine it.
 */
export function skipsCheck(triage: TriageVerdict | undefined, policy: EscalationPolicy): boolean {
  const router = policy.router;
  return (
    router?.mode === 'on' &&
    triage?.route === 'fast' &&
    triage.confidence >= router.confidenceThreshold &&
    router.uncheckedCategories.includes(triage.category) &&
    !policy.alwaysRefine.includes(triage.category)
  );
}

const CODE_BLOCK = /```[^\n`]*\n[\s\S]*?\S[\s\S]*?```/;
/** Stack traces as runtimes print them: two frames in a row, or a runtime's own header. */
const STACK_TRACES: readonly RegExp[] = [
  // JavaScript and JVM: "    at fn (file.js:10:5)", "    at com.example.Main.run(Main.java:12)".
  /^[ \t]+at [^\n]*[\w.)]:\d+(?::\d+)?\)?[ \t]*\n[ \t]+at [^\n]*:\d+(?::\d+)?\)?[ \t]*$/m,
  /Traceback \(most recent call last\):/,
  /^goroutine \d+ \[[^\]]+\]:$/m,
  /thread '[^']+' panicked at /,
  // .NET: "   at Program.Main() in C:\app\Program.cs:line 12".
  /^[ \t]+at [^\n]+ in [^\n]+:line \d+$/m,
];
const CODE_FILE =
  /<file name="[^"]+\.(?:js|jsx|mjs|cjs|ts|tsx|py|java|kt|go|rs|c|cc|cpp|h|hpp|cs|rb|php|swift|sh|sql|lua)">/i;

/**
 * Free rules: a question that is code by its looks (a code block, a stack trace, a source file attached)
 * goes straight to the smart model when the policy always refines code: the check would send its draft
 * there anyway. Returns what it saw, or undefined.
 */
export function codeRule(question: string, policy: EscalationPolicy): string | undefined {
  if (!policy.alwaysRefine.includes('code')) return undefined;
  if (CODE_BLOCK.test(question)) return 'a code block';
  if (STACK_TRACES.some((pattern) => pattern.test(question))) return 'a stack trace';
  if (CODE_FILE.test(question)) return 'a code file';
  return undefined;
}

/** The text of a message (attachments are noted, not sent). */
export function messageText(message: ChatMessage): string {
  if (typeof message.content === 'string') return message.content;
  return message.content.map((part) => (part.type === 'text' ? part.text : `[${part.type}]`)).join('\n');
}

/**
 * Draft text that may not be shown yet: held while the triage decides, then shown at once (all that came
 * meanwhile in one piece, the rest as it comes), or dropped when the smart model answers instead.
 */
export class HeldText {
  private held: string[] = [];
  private state: 'holding' | 'shown' | 'dropped';

  constructor(
    private readonly show: (text: string) => void,
    isHeld: boolean,
  ) {
    this.state = isHeld ? 'holding' : 'shown';
  }

  push(text: string): void {
    if (this.state === 'shown') this.show(text);
    else if (this.state === 'holding') this.held.push(text);
  }

  release(): void {
    if (this.state !== 'holding') return;
    this.state = 'shown';
    const text = this.held.join('');
    this.held = [];
    if (text !== '') this.show(text);
  }

  drop(): void {
    this.state = 'dropped';
    this.held = [];
  }
}

function clip(text: string, characters: number): string {
  return text.length > characters ? `${text.slice(0, characters)}…` : text;
}
