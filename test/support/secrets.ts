/**
 * Finds secret-shaped strings in what the bot outputs (log lines, Discord message bodies, stdout and
 * stderr), so that a test fails when one gets out. Scan what the bot wrote, never the test's own inputs:
 * the fakes' tokens and keys are secrets too, and they legitimately sit in test code and request paths.
 */

/** The shapes of the secrets tierbot holds or handles; src/log.ts scrubs the same ones from its lines. */
export const SECRET_SHAPES: readonly { name: string; pattern: RegExp }[] = [
  { name: 'an Anthropic API key', pattern: /\bsk-ant-[\w-]{8,}/ },
  { name: 'an OpenAI API key', pattern: /\bsk-(?!ant-)[\w-]{16,}/ },
  // Three base64url segments: the bot's user id, a timestamp, an HMAC (the fake's tokens have the same shape).
  { name: 'a Discord bot token', pattern: /\b[\w-]{23,28}\.[\w-]{6,7}\.[\w-]{27,}/ },
  // Webhook and interaction URLs end in their token; log.ts keeps the path and writes [redacted] for it.
  {
    name: 'a webhook or interaction URL with its token',
    pattern: /\/(?:webhooks|interactions)\/\d{17,20}\/[\w.-]{20,}/,
  },
  // An interaction token is opaque, but Discord's (and the fake's) start with base64 of "interaction:".
  { name: 'an interaction token', pattern: /aW50ZXJhY3Rpb246[\w-]{16,}/ },
];

export interface SecretFinding {
  /** Where the text came from, e.g. "log line 3" or "POST /channels/:channel_id/messages body". */
  where: string;
  what: string;
  /** The start of the match only: a report must not leak what it found. */
  excerpt: string;
}

/**
 * Every secret-shaped string in `text`, and every occurrence of one of the `known` secrets (the
 * configuration's token and keys, the interactions' tokens), whatever its shape.
 */
export function findSecrets(
  text: string,
  where: string,
  known: readonly string[] = [],
  { shapes = true }: { shapes?: boolean } = {},
): SecretFinding[] {
  const findings: SecretFinding[] = [];
  for (const { name, pattern } of shapes ? SECRET_SHAPES : []) {
    const match = pattern.exec(text);
    if (match) findings.push({ where, what: name, excerpt: mask(match[0]) });
  }
  for (const secret of known) {
    if (secret.length >= 8 && text.includes(secret)) {
      findings.push({
        where,
        what: 'a secret from the configuration or an interaction',
        excerpt: mask(secret),
      });
    }
  }
  return findings;
}

/** Throws, listing where and what (masked), if any of the texts holds a secret-shaped or known secret. */
export function assertNoSecrets(
  texts: Iterable<{ where: string; text: string }>,
  known: readonly string[] = [],
  options: { shapes?: boolean } = {},
): void {
  const findings = [...texts].flatMap(({ where, text }) => findSecrets(text, where, known, options));
  if (findings.length > 0) {
    const lines = findings.map((finding) => `${finding.where}: ${finding.what} (${finding.excerpt})`);
    throw new Error(`secret-shaped strings in captured output:\n  ${lines.join('\n  ')}`);
  }
}

function mask(secret: string): string {
  return `${secret.slice(0, Math.min(8, Math.floor(secret.length / 3)))}…`;
}
