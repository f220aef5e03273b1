import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TaskWaits, WaitKind } from '../../lambdas/shared/task-waits.js';
import { type LocalDynamo, startDynamo } from '../../sandbox/servers.js';

// The armed wait for `running` (Resolve arms it, the events function fires it, the detach step stores its
// token unless it fired): against DynamoDB's own conditional writes (dynalite), whichever comes first,
// exactly one of the step and the event answers, and an event is never lost.

let dynamo: LocalDynamo;
let waits: TaskWaits;
let tableCounter = 0;
const id = 'i-0123456789abcdef0';

beforeAll(async () => {
  dynamo = await startDynamo();
});
afterAll(async () => {
  await dynamo.stop();
});
beforeEach(async () => {
  const table = `waits-${++tableCounter}`;
  await dynamo.createVolumeTable(table);
  waits = new TaskWaits(dynamo.doc, table);
});

describe('an armed wait', () => {
  it('event after the token: the event answers it, once; the step does not', async () => {
    await waits.arm(WaitKind.Running, id, 3600);
    expect(await waits.putUnlessFired(WaitKind.Running, id, 'token-1', { step: 1 }, 3600)).toBe(true);

    const fired = await waits.fire(WaitKind.Running, id);
    expect(fired).toMatchObject({ token: 'token-1', ctx: { step: 1 } });
    expect(await waits.fire(WaitKind.Running, id)).toBeUndefined();
  });

  it('event before the token: the event answers nothing, the step finds it fired and answers itself', async () => {
    await waits.arm(WaitKind.Running, id, 3600);
    expect(await waits.fire(WaitKind.Running, id)).toBeUndefined();

    expect(await waits.putUnlessFired(WaitKind.Running, id, 'token-1', {}, 3600)).toBe(false);
    // A retried step with a new token finds it fired too; re-arming does not clear the mark.
    await waits.arm(WaitKind.Running, id, 3600);
    expect(await waits.putUnlessFired(WaitKind.Running, id, 'token-2', {}, 3600)).toBe(false);
  });

  it('a retried step replaces its token, and the event answers the newest', async () => {
    await waits.arm(WaitKind.Running, id, 3600);
    await waits.putUnlessFired(WaitKind.Running, id, 'token-1', {}, 3600);
    await waits.putUnlessFired(WaitKind.Running, id, 'token-2', {}, 3600);

    expect((await waits.fire(WaitKind.Running, id))?.token).toBe('token-2');
  });

  it('an event for an instance nobody armed is not recorded', async () => {
    expect(await waits.fire(WaitKind.Running, id)).toBeUndefined();
    expect(await waits.get(WaitKind.Running, id)).toBeUndefined();
  });

  it('concurrent event and step: exactly one answers, in 50 races', async () => {
    for (let i = 0; i < 50; i++) {
      const instance = `i-${String(i).padStart(17, '0')}`;
      await waits.arm(WaitKind.Running, instance, 3600);
      const [stored, fired] = await Promise.all([
        waits.putUnlessFired(WaitKind.Running, instance, `token-${i}`, {}, 3600),
        waits.fire(WaitKind.Running, instance),
      ]);
      // stored and fired with its token: the event answers; not stored: the step answers itself.
      const answers = (stored ? 0 : 1) + (fired ? 1 : 0);
      expect(answers, `race ${i}`).toBe(1);
      expect(stored).toBe(fired !== undefined);
    }
  });
});
