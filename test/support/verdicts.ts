/** What the check (a JSON-schema completion) answers, as the fake OpenAI should send it. */
export function checkVerdict(
  verdict: 'accept' | 'refine',
  reason: string,
  category = 'factual',
  confidence = verdict === 'accept' ? 0.95 : 0.9,
): string {
  return JSON.stringify({ verdict, reason, category, confidence });
}

/** The check accepts the draft. */
export const ACCEPT = checkVerdict('accept', 'complete');
/** The check asks for a refinement. */
export const REFINE = checkVerdict('refine', 'too thin');
