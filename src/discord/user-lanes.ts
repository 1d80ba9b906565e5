/** How many answers one person can have in progress at once; their further messages wait their turn. */
export const TURNS_IN_FLIGHT_PER_USER = 2;

/**
 * How many of one person's messages may wait behind their answers in progress. A few follow-ups sent
 * while an answer streams ("oh, and in Python?") are answered in order; more than that is a flood or a
 * script, whose every message would hold its place (and its discord.js message) in memory and be charged
 * to the person in turn. Refused messages call no model and charge nothing.
 */
export const MESSAGES_WAITING_PER_USER = 3;

/** What became of a task offered to a lane. */
export type LaneOffer<T> =
  | { isAccepted: true; result: Promise<T> }
  /** The lane was full. `isFirstRefusal`: the first refusal since the lane last accepted a task. */
  | { isAccepted: false; isFirstRefusal: boolean };

interface Lane {
  running: number;
  /** Tasks waiting their turn, in the order they came: each starts when called. */
  waiting: (() => void)[];
  /** A task was refused since the lane last accepted one (so that one notice covers a whole flood). */
  hasRefused: boolean;
}

/**
 * Per-person lanes: at most `limit` tasks of one person run at once, the rest start in the order they
 * came as earlier ones finish. Other people are never held up. A lane is forgotten as soon as nothing
 * runs or waits in it, so the lanes held are those of the people being answered right now.
 */
export class UserLanes {
  readonly #lanes = new Map<string, Lane>();

  constructor(
    private readonly limit = TURNS_IN_FLIGHT_PER_USER,
    private readonly maxWaiting = Number.POSITIVE_INFINITY,
  ) {}

  /** How many lanes are held: people with a task running or waiting. */
  get size(): number {
    return this.#lanes.size;
  }

  /** Whether the person has a task running or waiting. */
  has(userId: string): boolean {
    return this.#lanes.has(userId);
  }

  /**
   * Runs the task (now, or once its turn comes), unless `maxWaiting` tasks of this person already wait:
   * then it is refused, and nothing is kept of it.
   */
  offer<T>(userId: string, task: () => Promise<T>): LaneOffer<T> {
    const lane = this.#lanes.get(userId);
    if (lane && lane.running >= this.limit && lane.waiting.length >= this.maxWaiting) {
      const isFirstRefusal = !lane.hasRefused;
      lane.hasRefused = true;
      return { isAccepted: false, isFirstRefusal };
    }
    if (lane) lane.hasRefused = false;
    return { isAccepted: true, result: this.run(userId, task) };
  }

  /** Runs the task now or once its turn comes, however many wait: for lanes without a bound. */
  async run<T>(userId: string, task: () => Promise<T>): Promise<T> {
    await this.enter(userId);
    try {
      return await task();
    } finally {
      this.leave(userId);
    }
  }

  private enter(userId: string): Promise<void> {
    const lane = this.#lanes.get(userId);
    if (!lane) {
      this.#lanes.set(userId, { running: 1, waiting: [], hasRefused: false });
      return Promise.resolve();
    }
    if (lane.running < this.limit) {
      lane.running += 1;
      return Promise.resolve();
    }
    return new Promise((start) => lane.waiting.push(start));
  }

  private leave(userId: string): void {
    const lane = this.#lanes.get(userId);
    if (!lane) return;
    const next = lane.waiting.shift();
    if (next) {
      // The finishing task hands its place straight to the next in line.
      next();
      return;
    }
    lane.running -= 1;
    if (lane.running === 0) this.#lanes.delete(userId);
  }
}
