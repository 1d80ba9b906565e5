/** Whether a person may ask now, and if not, for how long they must wait. */
export type CooldownCheck =
  | { isAllowed: true }
  /** `isFirstRefusal`: the first refusal in this cooldown (so that one notice covers a burst of messages). */
  | { isAllowed: false; waitMs: number; isFirstRefusal: boolean };

interface Asked {
  askedAt: number;
  hasBeenTold: boolean;
}

/**
 * A pause a person must leave between questions (USER_COOLDOWN_SECONDS; 0 turns it off). Answers already
 * waiting their turn are not affected: only when a new message arrives is it checked.
 *
 * Only people inside their cooldown matter. Those whose cooldown has passed are swept out once per
 * cooldown, so each is looked at about twice before it goes, and at most two cooldowns' worth of people
 * are held.
 */
export class Cooldown {
  readonly #asked = new Map<string, Asked>();
  #sweptAt: number;

  constructor(
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#sweptAt = now();
  }

  /** How many people are remembered. */
  get size(): number {
    return this.#asked.size;
  }

  /** Allowed when the person may ask now (and records it); otherwise how many milliseconds they must wait. */
  take(userId: string): CooldownCheck {
    if (this.cooldownMs <= 0) return { isAllowed: true };
    const now = this.now();
    if (now - this.#sweptAt >= this.cooldownMs) this.#sweep(now);
    const last = this.#asked.get(userId);
    const waitMs = last === undefined ? 0 : last.askedAt + this.cooldownMs - now;
    if (last && waitMs > 0) {
      const isFirstRefusal = !last.hasBeenTold;
      last.hasBeenTold = true;
      return { isAllowed: false, waitMs, isFirstRefusal };
    }
    this.#asked.set(userId, { askedAt: now, hasBeenTold: false });
    return { isAllowed: true };
  }

  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const [userId, asked] of this.#asked) {
      if (asked.askedAt + this.cooldownMs <= now) this.#asked.delete(userId);
    }
  }
}
