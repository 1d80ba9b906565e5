/**
 * How long a starting bot waits before logging in, given when it started recently. Discord limits how
 * often a bot may identify, and a process that crashes at start-up would otherwise hammer the gateway:
 * the third start within the window waits 5 s, then each further one twice as long, up to 5 minutes.
 */
export const RESTART_WINDOW_MS = 5 * 60_000;
export const FIRST_BACKOFF_MS = 5_000;
export const MAX_BACKOFF_MS = 5 * 60_000;
/** Starts within the window that are ordinary (a deploy, a manual restart) and wait nothing. */
const FREE_STARTS = 2;

export function loginBackoffMs(recentStartsMs: readonly number[], nowMs: number): number {
  const starts = recentStartsMs.filter((startedAt) => nowMs - startedAt < RESTART_WINDOW_MS).length;
  if (starts < FREE_STARTS) return 0;
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (starts - FREE_STARTS));
}
