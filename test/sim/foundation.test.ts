import { Readable } from 'node:stream';
import { DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeVolumesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { describe, expect, it, vi } from 'vitest';
import { Accounting, countingMiddleware } from '../../sandbox/sim/accounting.js';
import { SimClock, SimClockClosed } from '../../sandbox/sim/clock.js';
import { Faults } from '../../sandbox/sim/faults.js';
import { attachSimulator } from '../../sandbox/sim/middleware.js';
import { Rng } from '../../sandbox/sim/rng.js';
import { clientConfig, harness, rejection } from './harness.js';

describe('SimClock', () => {
  it('runs modelled time 1/timeScale faster than wall time', async () => {
    const clock = new SimClock(0.001);

    await clock.sleep(20);

    expect(clock.now()).toBeGreaterThanOrEqual(20);
    clock.close();
  });

  it('never fires a timer before its modelled time', async () => {
    const clock = new SimClock(0.0001);
    const due = clock.now() + 50;
    let firedAt = 0;

    await new Promise<void>((done) =>
      clock.setTimer(50, () => {
        firedAt = clock.now();
        done();
      }),
    );

    expect(firedAt).toBeGreaterThanOrEqual(due);
    clock.close();
  });

  it("arms a timer past setTimeout's 2^31 - 1 ms limit at the limit, not at 1 ms", async () => {
    const clock = new SimClock(0.1);
    const armed: number[] = [];
    const real = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      armed.push(ms ?? 0);
      return real(fn, ms);
    }) as typeof setTimeout);
    let fired = false;
    try {
      // A year of modelled time at 0.1: 3.15e9 wall ms, past Node's cap (it would fire after 1 ms).
      const cancel = clock.setTimer(365 * 24 * 3600, () => {
        fired = true;
      });
      await new Promise((resolve) => real(resolve, 30));
      cancel();
    } finally {
      spy.mockRestore();
      clock.close();
    }

    expect(fired).toBe(false);
    expect(armed).toEqual([2 ** 31 - 1]);
  });

  it('cancels a timer with the returned function', async () => {
    const clock = new SimClock(0.001);
    let fired = false;
    const cancel = clock.setTimer(1, () => {
      fired = true;
    });

    cancel();
    await clock.sleep(5);

    expect(fired).toBe(false);
    clock.close();
  });

  it('close() drops every timer and rejects pending sleeps', async () => {
    const clock = new SimClock(1);
    clock.setTimer(1000, () => {});
    const sleeping = clock.sleep(1000);

    clock.close();

    await expect(sleeping).rejects.toBeInstanceOf(SimClockClosed);
    expect(clock.pendingTimers).toBe(0);
  });

  it('does not count a stall of the process as modelled time, even read before the probe runs', () => {
    // 1 modelled second = 10 ms of wall time: the 400 ms stall below would be 40 modelled seconds.
    const clock = new SimClock(0.01);
    const before = clock.now();

    // The process stands still (descheduled, or one long callback): no timer, no probe runs meanwhile.
    const until = performance.now() + 400;
    while (performance.now() < until) {
      /* stall */
    }
    const after = clock.now();

    expect({ advanced: after - before < 10, lagSeconds: clock.lagSeconds >= 0.3 }).toEqual({
      advanced: true,
      lagSeconds: true,
    });
    clock.close();
  });

  it('does not count a busy process as modelled time either, busy in callbacks shorter than the lateness threshold', async () => {
    // 1 modelled second = 10 ms of wall time: 500 ms of busy wall time would be 50 modelled seconds.
    // The work comes in 2 ms callbacks, each under the probe's 5 ms lateness threshold: only the event
    // loop's utilization shows it (the local servers and handlers of a loaded sandbox work this way).
    const clock = new SimClock(0.01);
    const before = clock.now();

    const start = performance.now();
    await new Promise<void>((done) => {
      const step = () => {
        const chunk = performance.now();
        while (performance.now() - chunk < 2) {
          /* busy */
        }
        if (performance.now() - start < 500) setImmediate(step);
        else done();
      };
      step();
    });
    const advanced = clock.now() - before;

    // The busy tolerance (1 ms per 10 ms probe) leaves about 5 of the 50; a loaded machine leaves less.
    expect(advanced).toBeLessThan(20);
    clock.close();
  });

  it('runs on wall time again without lag compensation', () => {
    const clock = new SimClock(0.01, { compensateLag: false });
    const before = clock.now();

    const until = performance.now() + 100;
    while (performance.now() < until) {
      /* stall */
    }

    expect(clock.now() - before).toBeGreaterThanOrEqual(10);
    clock.close();
  });

  it('gives modelled instants as Dates', () => {
    const clock = new SimClock(1);

    const at = clock.date(60);

    expect(at.getTime() - clock.date(0).getTime()).toBe(60_000);
    clock.close();
  });
});

describe('Rng', () => {
  it('gives the same sequence for the same seed', () => {
    const a = new Rng(42);
    const b = new Rng(42);

    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
  });

  it('gives different sequences for different seeds', () => {
    expect(new Rng(1).hex(17)).not.toBe(new Rng(2).hex(17));
  });

  it('forks independent streams', () => {
    const root = new Rng(5);

    expect(root.fork('ids').hex(8)).toBe(new Rng(5).fork('ids').hex(8));
    expect(root.fork('ids').hex(8)).not.toBe(root.fork('jitter').hex(8));
  });
});

describe('Faults', () => {
  it('fire a one-shot once, on the matching site only', () => {
    const faults = new Faults(1);
    faults.once('stuckAttach', { volumeId: 'vol-b' });

    const hits = ['vol-a', 'vol-b', 'vol-b'].map((volumeId) =>
      faults.strike('stuckAttach', { action: 'AttachVolume', volumeId }),
    );

    expect(hits).toEqual([false, true, false]);
    expect(faults.counts().stuckAttach).toBe(1);
  });

  it('choose by seed and site, not by the order of concurrent calls', () => {
    const sites = ['vol-a', 'vol-b', 'vol-c'].flatMap((v) => [v, v, v]);
    const decide = (order: string[]) => {
      const faults = new Faults(99);
      faults.set({ stuckAttachRate: 0.5 });
      const seen = new Map<string, boolean[]>();
      for (const volumeId of order) {
        seen.set(volumeId, [
          ...(seen.get(volumeId) ?? []),
          faults.strike('stuckAttach', { action: 'AttachVolume', volumeId }),
        ]);
      }
      return Object.fromEntries([...seen].sort());
    };

    expect(decide(sites)).toEqual(decide([...sites].reverse()));
  });

  it('reproduce the same faults through the SDK with the same seed', async () => {
    const pattern = async (seed: number) => {
      const h = await harness({ seed, throttling: false }, 1);
      h.cloud.faults.set({ throttleRate: 0.3 });
      const outcomes: string[] = [];
      for (let n = 0; n < 30; n++) {
        outcomes.push(
          await h.ec2.send(new DescribeVolumesCommand({})).then(
            () => 'ok',
            (e: Error) => e.name,
          ),
        );
      }
      const injected = h.cloud.faults.counts().throttle;
      await h.dispose();
      return { outcomes, injected };
    };

    const first = await pattern(11);
    const again = await pattern(11);
    const other = await pattern(12);

    expect(again).toEqual(first);
    expect(first.injected).toBeGreaterThan(0);
    expect(first.outcomes.filter((o) => o === 'RequestLimitExceeded')).toHaveLength(first.injected);
    expect(other.outcomes).not.toEqual(first.outcomes);
  });

  it('give the same resource ids for the same seed', async () => {
    const ids = async () => {
      const h = await harness({ seed: 3 });
      const id = h.cloud.launchInstance({ az: 'us-east-1a' });
      await h.dispose();
      return id;
    };

    expect(await ids()).toBe(await ids());
  });
});

describe('Accounting', () => {
  it('attributes counts to the operation of the async context, through awaits and timers', async () => {
    const accounting = new Accounting();

    await Promise.all([
      accounting.withOperation('a', async () => {
        accounting.count('awsCall', 'ec2:AttachVolume');
        await new Promise((r) => setTimeout(r, 2));
        accounting.count('tableWrite', 'dynamodb:PutItem');
      }),
      accounting.withOperation('b', async () => {
        await new Promise((r) => setTimeout(r, 1));
        accounting.count('lambdaInvocation', 'claim');
      }),
    ]);
    accounting.count('stateTransition', 'unattributed');

    expect(accounting.forOperation('a')).toMatchObject({
      awsCall: 1,
      tableWrite: 1,
      lambdaInvocation: 0,
      byDetail: { awsCall: { 'ec2:AttachVolume': 1 } },
    });
    expect(accounting.forOperation('b').lambdaInvocation).toBe(1);
    expect(accounting.totals()).toMatchObject({
      awsCall: 1,
      tableWrite: 1,
      lambdaInvocation: 1,
      stateTransition: 1,
    });
    expect(accounting.operations()).toEqual(['a', 'b']);
  });

  it('countingMiddleware counts DynamoDB calls and writes and passes them through', async () => {
    const accounting = new Accounting();
    const requestHandler = {
      handle: async () => ({
        response: {
          statusCode: 200,
          headers: { 'content-type': 'application/x-amz-json-1.0' },
          body: Readable.from([Buffer.from('{}')]),
        },
      }),
      updateHttpClientConfig() {},
      httpHandlerConfigs: () => ({}),
    };
    const dynamo = new DynamoDBClient({ ...clientConfig, endpoint: 'http://127.0.0.1:9', requestHandler });
    countingMiddleware(dynamo, accounting, 'dynamodb');
    const key = { pk: { S: 'a' }, sk: { S: 'b' } };

    await accounting.withOperation('op', async () => {
      await dynamo.send(new PutItemCommand({ TableName: 't', Item: key }));
      await dynamo.send(new GetItemCommand({ TableName: 't', Key: key }));
      await dynamo.send(new DeleteItemCommand({ TableName: 't', Key: key }));
    });

    expect(accounting.forOperation('op')).toMatchObject({
      awsCall: 3,
      tableWrite: 2,
      byDetail: { tableWrite: { 'dynamodb:PutItem': 1, 'dynamodb:DeleteItem': 1 } },
    });
    dynamo.destroy();
  });
});

describe('Cloud.close', () => {
  it('leaves no timer behind', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const h = await harness({ timeScale: 1 });
    h.cloud.createAutoScalingGroup({
      name: 'g',
      azs: ['us-east-1a'],
      desiredCapacity: 3,
      launchHook: { name: 'l' },
    });
    h.cloud.launchInstance({ az: 'us-east-1b' });
    const pending = rejection(h.ec2.send(new DescribeVolumesCommand({})));

    await h.dispose();

    expect(h.cloud.clock.pendingTimers).toBe(0);
    expect((await pending).name).toBe('SimClockClosed');
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(
      before,
    );
  });

  it('makes later calls fail instead of hanging', async () => {
    const h = await harness();
    const client = new EC2Client(clientConfig);
    attachSimulator(client, h.cloud);
    await h.dispose();

    const error = await rejection(client.send(new DescribeVolumesCommand({})));

    expect(error.name).toBe('SimClockClosed');
    client.destroy();
  });
});
