/** How many ids are remembered: far more than can be redelivered (a resume replays seconds of events). */
export const REMEMBERED_IDS = 10_000;

/**
 * The ids of the messages and interactions already taken, so that one delivered twice (a gateway replay,
 * a duplicate dispatch) is answered once. Bounded: the oldest are forgotten first.
 */
export class RecentIds {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = REMEMBERED_IDS) {}

  /** True the first time an id is offered; false for a repeat. */
  take(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > this.capacity) {
      // A Set iterates in insertion order: the first is the oldest.
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    return true;
  }
}
