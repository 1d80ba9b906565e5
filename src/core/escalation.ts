import type { ChatResult } from './chat.js';
import type { RouterPolicy } from './router.js';

/** Per server: `auto` checks every draft; `manual` escalates only when asked; `off` never escalates. */
export const ESCALATION_MODES = ['auto', 'manual', 'off'] as const;
export type EscalationMode = (typeof ESCALATION_MODES)[number];

export const CHECK_CATEGORIES = [
  'chit-chat',
  'factual',
  'code',
  'reasoning',
  'instructions',
  'other',
] as const;
export type CheckCategory = (typeof CHECK_CATEGORIES)[number];

export interface EscalationPolicy {
  /** An accepted draft whose check is less confident than this is refined anyway. */
  confidenceThreshold: number;
  /** Categories whose drafts are always refined (Haiku writes better code than Mini). */
  alwaysRefine: readonly CheckCategory[];
  /** The router in front of the cascade (src/core/router.ts); absent: off, every question is drafted. */
  router?: RouterPolicy | undefined;
}

export const DEFAULT_POLICY: EscalationPolicy = { confidenceThreshold: 0.6, alwaysRefine: ['code'] };

/** What the check said about a draft. */
export interface CheckVerdict {
  verdict: 'accept' | 'refine';
  reason: string;
  category: CheckCategory;
  confidence: number;
}

/** What the router's triage said of a question: which model should answer it, and how sure it was. */
export interface TriageVerdict {
  route: 'fast' | 'smart';
  category: CheckCategory;
  confidence: number;
}

/**
 * The check's prompt: fixed and short, so its cost is small and predictable. It sees the question and the
 * draft, never the whole history.
 */
export const CHECK_SYSTEM_PROMPT =
  'You review a draft answer before it is sent to a user in a chat. Reply "refine" when a stronger model ' +
  'should rewrite it: the draft is wrong, incomplete, skips part of the question, contains code, or needs ' +
  'careful multi-step reasoning or detailed instructions it does not get right. Reply "accept" when the ' +
  'draft fully and correctly answers a simple question or chit-chat. Give a short reason (under 12 words), ' +
  "the question's category, and your confidence from 0 to 1.";

/** The question and the draft are clipped: a check never needs more to judge, and its cost stays bounded. */
export const CHECK_CLIP_CHARACTERS = 6_000;
export const CHECK_MAX_OUTPUT_TOKENS = 120;

export const CHECK_SCHEMA_NAME = 'draft_check';
export const CHECK_SCHEMA: Record<string, unknown> = {
  type: 'object',
  properties: {
    verdict: { type: 'string', enum: ['accept', 'refine'] },
    reason: { type: 'string' },
    category: { type: 'string', enum: [...CHECK_CATEGORIES] },
    confidence: { type: 'number' },
  },
  required: ['verdict', 'reason', 'category', 'confidence'],
  additionalProperties: false,
};

export function checkPrompt(question: string, draft: string): string {
  return `Question:\n${clip(question)}\n\nDraft answer:\n${clip(draft)}`;
}

/** Reads the check's JSON, or undefined when it is not what the schema promised. */
export function parseVerdict(value: unknown): CheckVerdict | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { verdict, reason, category, confidence } = value as Record<string, unknown>;
  if (verdict !== 'accept' && verdict !== 'refine') return undefined;
  if (typeof reason !== 'string' || typeof confidence !== 'number' || !Number.isFinite(confidence))
    return undefined;
  if (!CHECK_CATEGORIES.includes(category as CheckCategory)) return undefined;
  return {
    verdict,
    reason: reason.trim().slice(0, 200),
    category: category as CheckCategory,
    confidence: Math.min(1, Math.max(0, confidence)),
  };
}

/**
 * Signals that need no check, read from the draft itself: it was cut off, it is empty, or the model
 * declined. Returns the reason to refine, or undefined.
 */
export function freeSignal(draft: Pick<ChatResult, 'text' | 'finishReason'>): string | undefined {
  // Cut at the token limit, or broken off by the provider after it began.
  if (draft.finishReason === 'length' || draft.finishReason === 'error') return 'the draft was cut off';
  if (!/\S/.test(draft.text)) return 'the draft was empty';
  if (draft.finishReason === 'refusal' || draft.finishReason === 'content_filter')
    return 'the draft declined to answer';
  return undefined;
}

export type Decision =
  | { refine: false; verdict?: CheckVerdict | undefined }
  | { refine: true; reason: string; verdict?: CheckVerdict | undefined };

/** Whether a checked draft should be refined: the check said so, its category always is, or it was unsure. */
export function decideFromVerdict(verdict: CheckVerdict, policy: EscalationPolicy): Decision {
  if (verdict.verdict === 'refine') return { refine: true, reason: verdict.reason, verdict };
  if (policy.alwaysRefine.includes(verdict.category)) {
    return { refine: true, reason: `${verdict.category} is always refined`, verdict };
  }
  if (verdict.confidence < policy.confidenceThreshold) {
    return { refine: true, reason: `the check was unsure (${verdict.confidence.toFixed(2)})`, verdict };
  }
  return { refine: false, verdict };
}

/**
 * How the smart model is asked to refine: the draft and the reason travel with the newest question (the
 * history before it stays byte-identical, so it is read from the prompt cache), and it must answer the
 * user, not review the draft.
 */
export function refineInstruction(draft: string, reason: string): string {
  return (
    '\n\n---\nA faster model wrote the draft answer below, and a review found it not good enough ' +
    `(${reason}). Write the best final answer to my message above yourself, using the draft only where it ` +
    'is right. Answer me directly: do not mention the draft or the review.\n\n' +
    `<draft>\n${clip(draft)}\n</draft>`
  );
}

function clip(text: string): string {
  return text.length > CHECK_CLIP_CHARACTERS ? `${text.slice(0, CHECK_CLIP_CHARACTERS)}…` : text;
}
