/**
 * Writes that nobody waits for, batched into one transaction after the current piece of work: a turn's
 * answer is shown while its bookkeeping is written in the next turn of the event loop. Every commit costs
 * tens of microseconds on SQLite (and a round trip on PostgreSQL), and several writes share one.
 *
 * Readers that need the writes await {@link WriteBehind.flush} first. A failed write keeps its items and
 * is tried again with the next one (or the next flush); `onError` hears of it. One write runs at a time.
 */
/** Enough for every call settling in one turn of the event loop under load; readers scan what waits. */
const MAX_PENDING = 64;

export class WriteBehind<Item> {
  private waiting: Item[] = [];
  /** The batch being written: still pending until its transaction has committed. */
  private inFlight: readonly Item[] = [];
  private writing: Promise<void> | undefined;
  private isScheduled = false;

  constructor(
    private readonly write: (items: readonly Item[]) => Promise<void>,
    private readonly onError: (error: unknown) => void,
    /** More than this waiting (work that never yields to the event loop) is written at once. */
    private readonly maxPending = MAX_PENDING,
  ) {}

  /** What is waiting to be written or being written, oldest first. */
  get pending(): readonly Item[] {
    return this.inFlight.length === 0 ? this.waiting : [...this.inFlight, ...this.waiting];
  }

  add(item: Item): void {
    this.waiting.push(item);
    if (this.waiting.length >= this.maxPending) {
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
    this.flush().catch((error: unknown) => this.onError(error));
  }

  /** Writes everything waiting now (after the write in flight); rejects, keeping the items, if it fails. */
  async flush(): Promise<void> {
    for (;;) {
      if (this.writing) {
        // Someone else's write: its failure is theirs to report; what it kept is tried again below.
        await this.writing;
        continue;
      }
      if (this.waiting.length === 0) return;
      const batch = this.waiting;
      this.waiting = [];
      this.inFlight = batch;
      const writing = this.write(batch).then(
        () => {
          this.inFlight = [];
        },
        (error: unknown) => {
          this.inFlight = [];
          this.waiting = [...batch, ...this.waiting];
          throw error;
        },
      );
      this.writing = writing
        .catch(() => {})
        .finally(() => {
          this.writing = undefined;
        });
      await writing;
    }
  }
}
