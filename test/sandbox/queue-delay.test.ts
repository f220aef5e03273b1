import { describe, expect, it } from 'vitest';
import { intakeDeliveryDelaySeconds } from '../../lambdas/shared/intake.js';
import { LocalQueue } from '../../sandbox/queue.js';
import { SimClock } from '../../sandbox/sim/clock.js';

// The intake queue's DelaySeconds (lib/lifecycle-intake.ts sets it from the same constant): the consumer
// sees no message before its delay has passed, in modelled time.

describe('LocalQueue deliveryDelaySeconds', () => {
  it('hands a message to the consumer only once its delay has passed', async () => {
    const clock = new SimClock(0.001);
    const received: number[] = [];
    const queue = new LocalQueue({
      name: 'intake',
      clock,
      consumer: async (event) => {
        for (const _ of event.Records) received.push(clock.now());
        return undefined;
      },
      deliveryDelaySeconds: intakeDeliveryDelaySeconds,
    });
    const sentAt = clock.now();
    queue.send('{"a":1}');
    await queue.drained();
    queue.close();

    expect(intakeDeliveryDelaySeconds).toBeGreaterThan(0);
    expect(received).toHaveLength(1);
    expect((received[0] ?? 0) - sentAt).toBeGreaterThanOrEqual(intakeDeliveryDelaySeconds);
  });
});
