import { formatUsd } from './money.js';
import type { TurnResult } from './turn.js';

/**
 * What a turn cost and why it went where it did, as short lines for a footer under the answer:
 * `gpt-4o-mini → claude-haiku-4-5 (code) · 1,204 tokens · $0.0031`, then one line per note or warning
 * (a routed turn's first note says why: "routed to Claude Haiku: code").
 * Renderers add their own prefix (Discord subtext `-# `, the terminal `-- `).
 */
export function footerLines(result: TurnResult): string[] {
  if (result.status !== 'answered') return result.warnings;
  const { escalation } = result;
  // A routed turn says why on a line of its own: "routed to Claude Haiku: code".
  const isRouted = escalation?.source === 'router' || escalation?.source === 'rule';
  const reason = escalation && !isRouted ? ` (${escalation.category ?? escalation.reason})` : '';
  const summary = [
    `${result.models.join(' → ')}${reason}`,
    `${result.tokens.toLocaleString('en-US')} tokens`,
    formatUsd(result.costMicros),
  ].join(' · ');
  const notes: string[] = [];
  if (isRouted) notes.push(escalation.reason);
  if (result.fallback) notes.push(`answered by ${result.model}: ${result.fallback.reason}`);
  if (result.keptDraft) notes.push(result.keptDraft);
  return [summary, ...notes, ...result.warnings];
}
