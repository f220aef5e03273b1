import { AttachVolumeCommand, CreateVolumeCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireSteps } from '../../lambdas/acquire/steps.js';
import { attachmentsOn, detachFromInstance, requireLiveInstance } from '../../lambdas/shared/ec2-ops.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import type { StepDeps, WorkflowCtx } from '../../lambdas/shared/steps.js';
import { type Harness, harness, rejection, runningInstance, untilConsistent } from '../sim/harness.js';

// The acquire's detach and attach without describing the volume first (docs/decisions.md, "Ready at
// boot: the p99 and the priced orchestration"), against the simulator with its AWS-strict rules: what
// EC2 answers is what the steps decide on, so the answers are checked on EC2's own state.

let h: Harness;

afterEach(async () => {
  await h.dispose();
});

const volumeView = (volumeId: string) => h.cloud.snapshotState().volumes.find((v) => v.volumeId === volumeId);

async function volumeOn(instanceId: string): Promise<string> {
  const out = await h.ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', Size: 10 }));
  const volumeId = out.VolumeId ?? '';
  await h.cloud.waitFor(() => volumeView(volumeId)?.state === 'available', 600, 'available');
  await untilConsistent(h.cloud);
  await h.ec2.send(
    new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
  );
  await h.cloud.waitFor(() => volumeView(volumeId)?.attachment?.state === 'attached', 600, 'attached');
  return volumeId;
}

/** The attach step with the table's part faked: the volume is DETACHING, held by `instanceId`. */
function attachStep(instanceId: string, volumeId: string) {
  const transitions: unknown[] = [];
  const repo = {
    getVolume: async () => ({ volumeId, state: VolumeState.Detaching, holder: instanceId }),
    transition: async (t: unknown) => {
      transitions.push(t);
    },
  };
  const deps = { ec2: h.ec2, repo } as unknown as StepDeps;
  const ctx = { pool: 'web', instanceId, volumeId } as WorkflowCtx;
  const attach = acquireSteps.attach;
  if (!attach) throw new Error('no attach step');
  return { run: (c: WorkflowCtx = ctx) => attach(c, deps), transitions };
}

describe('detachFromInstance', () => {
  it('detaches only from the instance named, and says false when the volume is not attached there', async () => {
    h = await harness();
    const worker = await runningInstance(h.cloud);
    const other = await runningInstance(h.cloud);
    const volumeId = await volumeOn(worker);

    expect(await detachFromInstance(h.ec2, volumeId, other)).toBe(false);
    expect(volumeView(volumeId)?.attachment?.state).toBe('attached');

    expect(await detachFromInstance(h.ec2, volumeId, worker)).toBe(true);
    expect(['detaching', 'busy']).toContain(volumeView(volumeId)?.attachment?.state);
    await h.cloud.waitFor(() => volumeView(volumeId)?.attachment === undefined, 600, 'detached');
    expect(await detachFromInstance(h.ec2, volumeId, worker)).toBe(false);
  });
});

describe('attachmentsOn', () => {
  it("lists the instance's volumes with their devices, and no other instance's", async () => {
    h = await harness();
    const a = await runningInstance(h.cloud);
    const b = await runningInstance(h.cloud);
    const volumeId = await volumeOn(a);

    const onA = await attachmentsOn(h.ec2, await requireLiveInstance(h.ec2, a));
    const onB = await attachmentsOn(h.ec2, await requireLiveInstance(h.ec2, b));

    expect(onA.volumes.get(volumeId)).toBe('/dev/sdf');
    expect(onA.devices.has('/dev/sdf')).toBe(true);
    expect(onB.volumes.has(volumeId)).toBe(false);
  });
});

describe('the acquire attach step, without describing the volume', () => {
  it('waits (VolumeNotReady) while the volume is still on the worker, and attaches nothing', async () => {
    h = await harness();
    const worker = await runningInstance(h.cloud);
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await volumeOn(worker);
    const step = attachStep(instanceId, volumeId);

    const error = await rejection(step.run());

    expect(error.name).toBe('VolumeNotReady');
    expect(volumeView(volumeId)?.attachment?.instanceId).toBe(worker);
    expect(volumeView(volumeId)?.attachedTo).toEqual([worker]);
  });

  it('attaches once detached, and a re-run finds the attachment instead of attaching again', async () => {
    h = await harness();
    const worker = await runningInstance(h.cloud);
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await volumeOn(worker);
    await detachFromInstance(h.ec2, volumeId, worker);
    await h.cloud.waitFor(() => volumeView(volumeId)?.attachment === undefined, 600, 'detached');
    const step = attachStep(instanceId, volumeId);

    const first = await step.run();
    await untilConsistent(h.cloud);
    const again = await step.run();

    expect(volumeView(volumeId)?.attachment?.instanceId).toBe(instanceId);
    expect(volumeView(volumeId)?.attachedTo).toEqual([worker, instanceId]);
    expect(again.device).toBe(first.device);
    expect(step.transitions).toHaveLength(1);
  });
});
