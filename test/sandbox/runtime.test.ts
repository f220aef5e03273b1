import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Sandbox } from '../../sandbox/runtime.js';

/** Resolves true when something accepts a TCP connection on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const portOf = (endpoint: string) => Number(new URL(endpoint).port);

describe('sandbox runtime', () => {
  it('sends malformed intake messages to the DLQ after five receives, and starts nothing for them', async () => {
    const sandbox = await Sandbox.start({ azs: 1, idlePerAz: 0, timeScale: 0.02, seed: 3 });
    try {
      const bad = [
        '{not json',
        JSON.stringify({ source: 'aws.autoscaling', detail: {} }),
        'x'.repeat(100_000),
      ];
      for (const body of bad) sandbox.intake.send(body);
      await sandbox.settle();
      expect(sandbox.intake.dlq.map((m) => m.body)).toEqual(bad);
      expect(sandbox.intake.dlq.every((m) => m.receiveCount === 5)).toBe(true);
      expect(sandbox.sfn.executions.size).toBe(0);
    } finally {
      await sandbox.stop();
    }
  });

  it('gives both lifecycle hooks the heartbeat timeout the handlers pace their heartbeats to', async () => {
    const sandbox = await Sandbox.start({
      azs: 1,
      idlePerAz: 0,
      timeScale: 0.02,
      seed: 5,
      heartbeatTimeout: 450,
    });
    try {
      const out = (await sandbox.cloud.handle('autoscaling', 'DescribeLifecycleHooks', {
        AutoScalingGroupName: sandbox.wiring.groupName,
      })) as { LifecycleHooks: { LifecycleTransition: string; HeartbeatTimeout: number }[] };
      const byTransition = Object.fromEntries(
        out.LifecycleHooks.map((h) => [h.LifecycleTransition, h.HeartbeatTimeout]),
      );
      expect(byTransition).toEqual({
        'autoscaling:EC2_INSTANCE_LAUNCHING': 450,
        'autoscaling:EC2_INSTANCE_TERMINATING': 450,
      });
      expect(process.env.HEARTBEAT_TIMEOUT).toBe('450');
    } finally {
      await sandbox.stop();
    }
  });

  it('leaves no server listening and no timer or socket alive after stop', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length;
    const sandbox = await Sandbox.start({ azs: 1, idlePerAz: 1, timeScale: 0.02, seed: 4 });
    const ports = [portOf(sandbox.dynamo.endpoint), portOf(sandbox.s3.endpoint)];
    await sandbox.replenishAll();
    expect(await listening(ports[0] ?? 0)).toBe(true);

    await sandbox.stop();

    for (const port of ports) expect(await listening(port)).toBe(false);
    // Give closed handles one turn of the event loop to be released.
    await new Promise((resolve) => setImmediate(resolve));
    const after = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Immediate');
    expect(after.length).toBeLessThanOrEqual(before);
  });
});
