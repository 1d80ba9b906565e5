/** How many ids are remembered at most: far more than can be redelivered in {@link REMEMBERED_IDS_MS}. */
export const REMEMBERED_IDS = 10_000;

/**
 * How long an id is remembered. A redelivery comes within seconds: a resume replays the events a dropped
 * connection missed, and a connection down for longer starts a new session, which replays nothing.
 */
export const REMEMBERED_IDS_MS = 15 * 60_000;

/**
 * The ids of the messages and interactions already taken, so that one delivered twice (a gateway replay,
 * a duplicate dispatch) is answered once. Bounded by age and by count: the oldest are forgotten first.
 */
export class RecentIds {
  readonly #ids = new Set<string>();
  /**
   * The same ids in the order they were taken, with when: a ring whose oldest slot is `#oldest`. (Taking
   * the oldest from the Set itself would walk past every deleted entry V8 has not compacted yet.)
   */
  readonly #ring: (string | undefined)[];
  readonly #takenAt: Float64Array;
  #oldest = 0;

  constructor(
    private readonly capacity = REMEMBERED_IDS,
    private readonly rememberMs = REMEMBERED_IDS_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.#ring = new Array<string | undefined>(capacity).fill(undefined);
    this.#takenAt = new Float64Array(capacity);
  }

  /** How many ids are remembered. */
  get size(): number {
    return this.#ids.size;
  }

  /** True the first time an id is offered; false for a repeat. */
  take(id: string): boolean {
    const now = this.now();
    while (this.#ids.size > 0 && (this.#takenAt[this.#oldest] ?? 0) + this.rememberMs <= now) {
      this.#forgetOldest();
    }
    if (this.#ids.has(id)) return false;
    if (this.#ids.size >= this.capacity) this.#forgetOldest();
    const slot = (this.#oldest + this.#ids.size) % this.capacity;
    this.#ring[slot] = id;
    this.#takenAt[slot] = now;
    this.#ids.add(id);
    return true;
  }

  #forgetOldest(): void {
    const oldest = this.#ring[this.#oldest];
    if (oldest !== undefined) this.#ids.delete(oldest);
    this.#ring[this.#oldest] = undefined;
    this.#oldest = (this.#oldest + 1) % this.capacity;
  }
}
