import { type RateLimitData, type REST, RESTEvents } from 'discord.js';

/**
 * Limits that have passed are swept out at most this often. discord.js's limits last seconds, so what is
 * held is about the keys limited in the last minute (an interaction's key holds its token: not kept for
 * nothing).
 */
const SWEEP_INTERVAL_MS = 60_000;

/**
 * What discord.js reports rate-limited, and until when. discord.js holds a request that would break a
 * limit and sends it once the limit passes; an interim edit held like that goes out stale, followed by the
 * next one. So interim edits ask here first and wait the limit out, then send the text as it is by then.
 *
 * Keys are discord.js's major parameters: a channel's id for its messages, `application id/token` for an
 * interaction's replies. A global limit (discord.js's own 50 requests/s, or Discord's) holds every key.
 *
 * discord.js reports a limit when it holds a request back: a bucket its headers said is empty (a 429 from
 * Discord says so too, so its retry is reported) or the global limit. A 429 for a sublimit, which comes
 * with a Retry-After but no empty bucket, is waited out by discord.js without a report, so not here.
 */
export class RateLimitWatch {
  readonly #limitedUntil = new Map<string, number>();
  #globalUntil = 0;
  #sweptAt: number;

  constructor(
    rest: REST,
    private readonly now: () => number = Date.now,
  ) {
    this.#sweptAt = now();
    rest.on(RESTEvents.RateLimited, (info) => this.note(info));
  }

  /** How many keys' limits are remembered. */
  get size(): number {
    return this.#limitedUntil.size;
  }

  /** How long writes under `key` should wait for a reported limit to pass: 0 when none is known. */
  waitMs(key: string): number {
    const now = this.now();
    this.#sweepIfDue(now);
    const keyUntil = this.#limitedUntil.get(key);
    if (keyUntil !== undefined && keyUntil <= now) this.#limitedUntil.delete(key);
    return Math.max(0, Math.max(this.#globalUntil, keyUntil ?? 0) - now);
  }

  private note(info: RateLimitData): void {
    const now = this.now();
    const until = now + info.timeToReset;
    if (info.global) {
      this.#globalUntil = Math.max(this.#globalUntil, until);
      return;
    }
    this.#sweepIfDue(now);
    this.#limitedUntil.set(
      info.majorParameter,
      Math.max(this.#limitedUntil.get(info.majorParameter) ?? 0, until),
    );
  }

  #sweepIfDue(now: number): void {
    if (now - this.#sweptAt < SWEEP_INTERVAL_MS) return;
    this.#sweptAt = now;
    for (const [key, until] of this.#limitedUntil) if (until <= now) this.#limitedUntil.delete(key);
  }
}
