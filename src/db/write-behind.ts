/**
 * Writes that nobody waits for, batched into one transaction after the current piece of work: a turn's
 * answer is shown while its bookkeeping is written in the next turn of the event loop. Every commit costs
 * tens of microseconds on its own, and several writes share one.
 *
 * Readers that need the writes call {@link WriteBehind.flush} first. A failed write keeps its items and
 * is tried again with the next one (or the next flush); `onError` hears of it.
 */
/** Enough for every call settling in one turn of the event loop under load; readers scan what waits. */
const MAX_PENDING = 64;

export class WriteBehind<Item> {
  private items: Item[] = [];
  private isScheduled = false;

  constructor(
    private readonly write: (items: readonly Item[]) => void,
    private readonly onError: (error: unknown) => void,
    /** More than this waiting (work that never yields to the event loop) is written at once. */
    private readonly maxPending = MAX_PENDING,
  ) {}

  /** What is waiting to be written, oldest first. */
  get pending(): readonly Item[] {
    return this.items;
  }

  add(item: Item): void {
    this.items.push(item);
    if (this.items.length >= this.maxPending) {
      this.flushReporting();
      return;
    }
    if (this.isScheduled) return;
    this.isScheduled = true;
    setImmediate(() => {
      this.isScheduled = false;
      this.flushReporting();
    });
  }

  private flushReporting(): void {
    try {
      this.flush();
    } catch (error) {
      this.onError(error);
    }
  }

  /** Writes everything waiting now; throws (keeping the items) if the write fails. */
  flush(): void {
    if (this.items.length === 0) return;
    const batch = this.items;
    this.items = [];
    try {
      this.write(batch);
    } catch (error) {
      this.items = [...batch, ...this.items];
      throw error;
    }
  }
}
