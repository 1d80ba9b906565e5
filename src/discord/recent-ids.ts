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
  /** When each id was taken, oldest first. */
  readonly #takenAt = new Map<string, number>();

  constructor(
    private readonly capacity = REMEMBERED_IDS,
    private readonly rememberMs = REMEMBERED_IDS_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** How many ids are remembered. */
  get size(): number {
    return this.#takenAt.size;
  }

  /** True the first time an id is offered; false for a repeat. */
  take(id: string): boolean {
    const now = this.now();
    // A Map iterates in insertion order: the first is the oldest.
    for (const [oldest, takenAt] of this.#takenAt) {
      if (takenAt + this.rememberMs > now) break;
      this.#takenAt.delete(oldest);
    }
    if (this.#takenAt.has(id)) return false;
    this.#takenAt.set(id, now);
    if (this.#takenAt.size > this.capacity) {
      const oldest = this.#takenAt.keys().next().value;
      if (oldest !== undefined) this.#takenAt.delete(oldest);
    }
    return true;
  }
}
