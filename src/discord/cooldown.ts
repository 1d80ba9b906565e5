/**
 * A pause a person must leave between questions (USER_COOLDOWN_SECONDS; 0 turns it off). Answers already
 * waiting their turn are not affected: only when a new message arrives is it checked.
 */
export class Cooldown {
  private readonly lastAskedAt = new Map<string, number>();

  constructor(
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** 0 when the person may ask now (and records it); otherwise how many milliseconds they must wait. */
  take(userId: string): number {
    if (this.cooldownMs <= 0) return 0;
    const now = this.now();
    const wait = (this.lastAskedAt.get(userId) ?? Number.NEGATIVE_INFINITY) + this.cooldownMs - now;
    if (wait > 0) return wait;
    this.lastAskedAt.set(userId, now);
    return 0;
  }
}
