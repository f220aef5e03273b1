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
function attachStep(
  instanceId: string,
  volumeId: string,
  stepName = 'attach',
  extra: Partial<WorkflowCtx> = {},
) {
  const transitions: unknown[] = [];
  const repo = {
    getVolume: async () => ({ volumeId, state: VolumeState.Detaching, holder: instanceId }),
    transition: async (t: unknown) => {
      transitions.push(t);
    },
  };
  const deps = { ec2: h.ec2, repo } as unknown as StepDeps;
  const ctx = { pool: 'web', instanceId, volumeId, ...extra } as WorkflowCtx;
  const attach = acquireSteps[stepName];
  if (!attach) throw new Error(`no ${stepName} step`);
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

describe('the boot-unit path attach (attachRunning), on the running event', () => {
  /** EC2 calls the operation made, by action. */
  function calls(op: string) {
    return h.accounting.forOperation(op).byDetail.awsCall;
  }

  /** A running instance and a detached volume; the step with the launch mappings Resolve saw. */
  async function ready() {
    h = await harness();
    const worker = await runningInstance(h.cloud);
    const instanceId = await runningInstance(h.cloud);
    const volumeId = await volumeOn(worker);
    const launched = await requireLiveInstance(h.ec2, instanceId);
    const launchDevices = (launched.BlockDeviceMappings ?? []).map((m) => m.DeviceName ?? '');
    expect(launchDevices.length).toBeGreaterThan(0);
    return { worker, instanceId, volumeId, launchDevices };
  }

  async function detached(worker: string, volumeId: string) {
    await detachFromInstance(h.ec2, volumeId, worker);
    await h.cloud.waitFor(() => volumeView(volumeId)?.attachment === undefined, 600, 'detached');
  }

  it('attaches with AttachVolume alone: no DescribeInstances, no DescribeVolumes', async () => {
    const { worker, instanceId, volumeId, launchDevices } = await ready();
    await detached(worker, volumeId);
    const step = attachStep(instanceId, volumeId, 'attachRunning', { launchDevices });

    const out = await h.accounting.withOperation('fast', () => step.run());

    expect(calls('fast')).toEqual({ 'ec2:AttachVolume': 1 });
    expect(volumeView(volumeId)?.attachment).toMatchObject({ instanceId, device: out.device });
    expect(launchDevices).not.toContain(out.device);
    expect(out.attachAttempts).toBe(1);
    expect(step.transitions).toHaveLength(1);
  });

  it('takes the next name when one is in use since the launch (something else attached there)', async () => {
    const { worker, instanceId, volumeId, launchDevices } = await ready();
    const other = await volumeOn(instanceId); // at /dev/sdf, after the launch mappings were read
    await detached(worker, volumeId);
    const step = attachStep(instanceId, volumeId, 'attachRunning', { launchDevices });

    const out = await step.run();

    expect(out.device).not.toBe('/dev/sdf');
    expect(volumeView(volumeId)?.attachment).toMatchObject({ instanceId, device: out.device });
    expect(volumeView(other)?.attachment).toMatchObject({ instanceId, device: '/dev/sdf' });
  });

  it('waits (VolumeNotReady) while the volume is still on the worker', async () => {
    const { worker, instanceId, volumeId, launchDevices } = await ready();
    const step = attachStep(instanceId, volumeId, 'attachRunning', { launchDevices });

    const error = await rejection(step.run());

    expect(error.name).toBe('VolumeNotReady');
    expect(volumeView(volumeId)?.attachedTo).toEqual([worker]);
  });

  it('a re-run whose attach happened (its result lost) finds the attachment and attaches nothing more', async () => {
    const { worker, instanceId, volumeId, launchDevices } = await ready();
    await detached(worker, volumeId);
    const step = attachStep(instanceId, volumeId, 'attachRunning', { launchDevices });

    const first = await step.run();
    const again = await step.run({ pool: 'web', instanceId, volumeId, launchDevices } as WorkflowCtx);

    expect(again.device).toBe(first.device);
    expect(volumeView(volumeId)?.attachedTo).toEqual([worker, instanceId]);
  });
});
