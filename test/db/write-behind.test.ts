import { describe, expect, it } from 'vitest';
import { WriteBehind } from '../../src/db/write-behind.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('WriteBehind', () => {
  it('when items are added in one piece of work, then they are written together on the next turn of the event loop', async () => {
    const batches: number[][] = [];
    const writes = new WriteBehind<number>(
      async (items) => {
        batches.push([...items]);
      },
      (error) => {
        throw error;
      },
    );
    writes.add(1);
    writes.add(2);
    expect(batches).toEqual([]);
    expect(writes.pending).toEqual([1, 2]);
    await nextTurn();
    expect(batches).toEqual([[1, 2]]);
    expect(writes.pending).toEqual([]);
  });

  it('when work never yields to the event loop, then each batch is written once the limit is reached, without waiting for the next turn', async () => {
    const batches: number[][] = [];
    const writes = new WriteBehind<number>(
      async (items) => {
        batches.push([...items]);
      },
      () => {},
      3,
    );
    for (let item = 1; item <= 7; item += 1) writes.add(item);
    // The first batch starts at once; the rest follows as soon as it has committed (one write at a time),
    // which takes microtasks, not a turn of the event loop.
    expect(batches).toEqual([[1, 2, 3]]);
    for (let microtask = 0; microtask < 10; microtask += 1) await Promise.resolve();
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5, 6, 7],
    ]);
    expect(writes.pending).toEqual([]);
  });

  it('when a write fails, then its items are kept, the error is reported, and the next write carries them', async () => {
    const errors: unknown[] = [];
    const batches: number[][] = [];
    let fails = true;
    const writes = new WriteBehind<number>(
      async (items) => {
        if (fails) throw new Error('database is locked');
        batches.push([...items]);
      },
      (error) => errors.push(error),
    );
    writes.add(1);
    await nextTurn();
    expect(errors).toHaveLength(1);
    expect(writes.pending).toEqual([1]);
    fails = false;
    writes.add(2);
    await nextTurn();
    expect(batches).toEqual([[1, 2]]);
  });

  it('when a write is in flight, then its items stay pending until it commits, and a flush waits for it', async () => {
    let commit: () => void = () => {};
    const written: number[][] = [];
    const writes = new WriteBehind<number>(
      (items) =>
        new Promise<void>((resolve) => {
          commit = () => {
            written.push([...items]);
            resolve();
          };
        }),
      () => {},
    );
    writes.add(1);
    await nextTurn();
    writes.add(2);
    expect(writes.pending).toEqual([1, 2]);
    const flushed = writes.flush();
    commit();
    await nextTurn();
    commit();
    await flushed;
    expect(written).toEqual([[1], [2]]);
    expect(writes.pending).toEqual([]);
  });
});
