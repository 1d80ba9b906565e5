import { describe, expect, it } from 'vitest';
import { UserLanes } from '../../src/discord/user-lanes.js';

/** A task that records when it starts and finishes when the test releases it. */
function controlledTask(log: string[], name: string) {
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  return {
    run: async () => {
      log.push(`start ${name}`);
      await finished;
      log.push(`end ${name}`);
    },
    finish: () => finish(),
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('UserLanes', () => {
  it('when one person sends five messages, then two run at a time and the rest start in order', async () => {
    const log: string[] = [];
    const lanes = new UserLanes(2);
    const tasks = ['a', 'b', 'c', 'd', 'e'].map((name) => controlledTask(log, name));
    const done = tasks.map((task) => lanes.run('alice', task.run));
    await tick();
    expect(log).toEqual(['start a', 'start b']);

    tasks[1]?.finish();
    await tick();
    expect(log).toEqual(['start a', 'start b', 'end b', 'start c']);

    for (const task of tasks) task.finish();
    await Promise.all(done);
    expect(log.filter((line) => line.startsWith('start'))).toEqual([
      'start a',
      'start b',
      'start c',
      'start d',
      'start e',
    ]);
  });

  it("when one person's lane is full, then someone else's message still starts at once", async () => {
    const log: string[] = [];
    const lanes = new UserLanes(2);
    const busy = [controlledTask(log, 'a1'), controlledTask(log, 'a2'), controlledTask(log, 'a3')];
    const other = controlledTask(log, 'b1');
    const done = [...busy.map((task) => lanes.run('alice', task.run)), lanes.run('bob', other.run)];
    await tick();
    expect(log).toEqual(['start a1', 'start a2', 'start b1']);
    for (const task of [...busy, other]) task.finish();
    await Promise.all(done);
    expect(log).toContain('start a3');
  });

  it('when a person has their limit running and the most waiting, then a further task is refused, and one notice covers the whole run of refusals', async () => {
    const log: string[] = [];
    const lanes = new UserLanes(2, 3);
    const tasks = ['a', 'b', 'c', 'd', 'e'].map((name) => controlledTask(log, name));
    const offers = tasks.map((task) => lanes.offer('alice', task.run));
    expect(offers.every((offer) => offer.isAccepted)).toBe(true);

    const refused = [lanes.offer('alice', async () => log.push('f')), lanes.offer('alice', async () => 0)];
    expect(refused).toEqual([
      { isAccepted: false, isFirstRefusal: true },
      { isAccepted: false, isFirstRefusal: false },
    ]);
    // Someone else is not affected.
    expect(lanes.offer('bob', async () => 'bob').isAccepted).toBe(true);

    // Once one of alice's tasks is done, a waiting one starts and there is room again.
    tasks[0]?.finish();
    await tick();
    const later = controlledTask(log, 'later');
    expect(lanes.offer('alice', later.run).isAccepted).toBe(true);
    // A refusal after that is the first of a new run, told again.
    expect(lanes.offer('alice', async () => 0)).toEqual({ isAccepted: false, isFirstRefusal: true });

    for (const task of [...tasks, later]) task.finish();
    await Promise.all(offers.map((offer) => (offer.isAccepted ? offer.result : undefined)));
    expect(log.filter((line) => line.startsWith('start'))).toEqual([
      'start a',
      'start b',
      'start c',
      'start d',
      'start e',
      'start later',
    ]);
    expect(log).not.toContain('f');
  });

  it('when a task fails, then its place goes to the next one', async () => {
    const lanes = new UserLanes(1);
    const failing = lanes.run('alice', async () => {
      throw new Error('boom');
    });
    const next = lanes.run('alice', async () => 'ran');
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ran');
  });
});
