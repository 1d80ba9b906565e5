/** How many answers one person can have in progress at once; their further messages wait their turn. */
export const TURNS_IN_FLIGHT_PER_USER = 2;

/**
 * Per-person lanes: at most `limit` tasks of one person run at once, the rest start in the order they
 * came as earlier ones finish. Other people are never held up.
 */
export class UserLanes {
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(private readonly limit = TURNS_IN_FLIGHT_PER_USER) {}

  async run<T>(userId: string, task: () => Promise<T>): Promise<T> {
    await this.enter(userId);
    try {
      return await task();
    } finally {
      this.leave(userId);
    }
  }

  private enter(userId: string): Promise<void> {
    const running = this.running.get(userId) ?? 0;
    if (running < this.limit) {
      this.running.set(userId, running + 1);
      return Promise.resolve();
    }
    return new Promise((start) => {
      const queue = this.waiting.get(userId) ?? [];
      queue.push(start);
      this.waiting.set(userId, queue);
    });
  }

  private leave(userId: string): void {
    const next = this.waiting.get(userId)?.shift();
    if (next) {
      // The finishing task hands its place straight to the next in line.
      next();
      return;
    }
    this.waiting.delete(userId);
    const running = (this.running.get(userId) ?? 1) - 1;
    if (running === 0) this.running.delete(userId);
    else this.running.set(userId, running);
  }
}
