import { readFileSync } from 'node:fs';
import {
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  RecordLifecycleActionHeartbeatCommand,
  SetDesiredCapacityCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GroupOptions } from '../../sandbox/sim/autoscaling.js';
import { type Harness, harness, rejection } from './harness.js';

interface LifecycleEvent {
  'detail-type': string;
  source: string;
  detail: Record<string, string>;
}

let h: Harness;
let events: LifecycleEvent[];

beforeEach(async () => {
  h = await harness();
  events = [];
  h.cloud.events.on('event', (e: LifecycleEvent) => events.push(e));
});

afterEach(async () => {
  await h.dispose();
});

const group = (o: Partial<GroupOptions> = {}): GroupOptions => ({
  name: 'web',
  azs: ['us-east-1a', 'us-east-1b'],
  tags: { 'volsd:pool': 'web' },
  // Long timeouts (1 modelled hour = 3.6 s here) keep tests that complete actions clear of them.
  launchHook: { name: 'volsd-launch', heartbeatTimeout: 3600, defaultResult: 'ABANDON' },
  terminateHook: { name: 'volsd-terminate', heartbeatTimeout: 3600, defaultResult: 'CONTINUE' },
  ...o,
});

function lifecycleEvents(kind: 'launch' | 'terminate'): LifecycleEvent[] {
  return events.filter((e) => e['detail-type'] === `EC2 Instance-${kind} Lifecycle Action`);
}

async function launchEvent(count = 1): Promise<LifecycleEvent> {
  await h.cloud.waitFor(() => lifecycleEvents('launch').length >= count, 600, 'launch lifecycle event');
  const event = lifecycleEvents('launch')[count - 1];
  if (!event) throw new Error('no event');
  return event;
}

function lifecycleState(instanceId: string): string | undefined {
  return h.cloud.autoscaling.membership(instanceId)?.lifecycleState;
}

describe('launch lifecycle hook', () => {
  it('emits the AWS event with the fields of the sample event', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1 }));

    const event = await launchEvent();

    const sample = JSON.parse(
      readFileSync(
        '/work/shared/aws-reference/events/eventbridge-asg-launch-lifecycle-ec2-to-asg-with-origin.json',
        'utf8',
      ),
    ) as { detail: Record<string, string> } & Record<string, unknown>;
    expect(Object.keys(event).sort()).toEqual(Object.keys(sample).sort());
    expect(Object.keys(event.detail).sort()).toEqual(
      Object.keys(sample.detail)
        .filter((k) => k !== 'NotificationMetadata')
        .sort(),
    );
    expect(event).toMatchObject({
      source: 'aws.autoscaling',
      'detail-type': 'EC2 Instance-launch Lifecycle Action',
      account: '123456789012',
      region: 'us-east-1',
      detail: {
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'volsd-launch',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        Origin: 'EC2',
        Destination: 'AutoScalingGroup',
      },
    });
    expect(event.detail.EC2InstanceId).toMatch(/^i-[0-9a-f]{17}$/);
  });

  it('passes NotificationMetadata when the hook has it', async () => {
    h.cloud.createAutoScalingGroup(
      group({
        desiredCapacity: 1,
        launchHook: { name: 'l', heartbeatTimeout: 300, notificationMetadata: 'pool=web' },
      }),
    );

    const event = await launchEvent();

    expect(event.detail.NotificationMetadata).toBe('pool=web');
  });

  it('holds the instance in Pending:Wait until CONTINUE puts it InService', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1 }));
    const { detail } = await launchEvent();
    const instanceId = detail.EC2InstanceId ?? '';
    const waiting = lifecycleState(instanceId);

    await h.asg.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'volsd-launch',
        LifecycleActionToken: detail.LifecycleActionToken,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
    await h.cloud.waitFor(() => lifecycleState(instanceId) === 'InService', 600);

    expect(waiting).toBe('Pending:Wait');
    expect(h.cloud.lifecycleActions()[0]).toMatchObject({
      result: 'CONTINUE',
      completedBy: 'api',
      timedOut: false,
    });
  });

  it('terminates and replaces the instance on ABANDON', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1 }));
    const { detail } = await launchEvent();
    const instanceId = detail.EC2InstanceId ?? '';

    await h.asg.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'volsd-launch',
        InstanceId: instanceId,
        LifecycleActionResult: 'ABANDON',
      }),
    );
    await h.cloud.waitFor(() => h.cloud.ec2.instanceState(instanceId) === 'terminated', 600);
    const replacement = await launchEvent(2);

    expect(replacement.detail.EC2InstanceId).not.toBe(instanceId);
    // An abandoned launch runs no terminate hook.
    expect(lifecycleEvents('terminate')).toEqual([]);
  });

  it('takes the default result when not completed within the heartbeat timeout', async () => {
    h.cloud.createAutoScalingGroup(
      group({
        desiredCapacity: 1,
        launchHook: { name: 'l', heartbeatTimeout: 30, defaultResult: 'CONTINUE' },
      }),
    );
    const { detail } = await launchEvent();
    const instanceId = detail.EC2InstanceId ?? '';

    await h.cloud.waitFor(() => lifecycleState(instanceId) === 'InService', 600);

    const [action] = h.cloud.lifecycleActions();
    expect(action).toMatchObject({ result: 'CONTINUE', completedBy: 'timeout', timedOut: true });
    expect((action?.completedAt ?? 0) - (action?.startedAt ?? 0)).toBeGreaterThanOrEqual(30);
  });

  it('terminates the instance when the default ABANDON applies at the timeout', async () => {
    h.cloud.createAutoScalingGroup(
      group({ desiredCapacity: 1, launchHook: { name: 'l', heartbeatTimeout: 30 } }),
    );
    const { detail } = await launchEvent();
    const instanceId = detail.EC2InstanceId ?? '';

    await h.cloud.waitFor(() => h.cloud.ec2.instanceState(instanceId) === 'terminated', 600);

    expect(h.cloud.lifecycleActions()[0]).toMatchObject({ result: 'ABANDON', timedOut: true });
  });

  it('extends the wait by a full heartbeat timeout on RecordLifecycleActionHeartbeat', async () => {
    h.cloud.createAutoScalingGroup(
      group({ desiredCapacity: 1, launchHook: { name: 'l', heartbeatTimeout: 1000 } }),
    );
    const { detail } = await launchEvent();

    await h.asg.send(
      new RecordLifecycleActionHeartbeatCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'l',
        InstanceId: detail.EC2InstanceId,
      }),
    );
    await h.cloud.waitFor(() => h.cloud.lifecycleActions()[0]?.completedAt !== undefined, 5000);

    const [action] = h.cloud.lifecycleActions();
    const heartbeat = action?.heartbeats[0] ?? Number.NaN;
    expect(action?.heartbeats).toHaveLength(1);
    expect(action?.timedOut).toBe(true);
    expect(action?.completedAt).toBeGreaterThanOrEqual(heartbeat + 1000);
  });

  it('refuses a second CompleteLifecycleAction with ValidationError', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1 }));
    const { detail } = await launchEvent();
    const complete = new CompleteLifecycleActionCommand({
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'volsd-launch',
      InstanceId: detail.EC2InstanceId,
      LifecycleActionResult: 'CONTINUE',
    });
    await h.asg.send(complete);

    const error = await rejection(h.asg.send(complete));

    expect(error.name).toBe('ValidationError');
    expect(error.message).toBe(`No active Lifecycle Action found with instance ID ${detail.EC2InstanceId}`);
  });

  it('puts the instance InService once running when there is no launch hook', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1, launchHook: undefined }));
    await h.cloud.waitFor(
      () => h.cloud.snapshotState().groups[0]?.instances[0]?.lifecycleState === 'InService',
      600,
    );

    expect(lifecycleEvents('launch')).toEqual([]);
  });

  it('tags instances with the group tags and aws:autoscaling:groupName', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1 }));
    const { detail } = await launchEvent();

    const tags = Object.fromEntries(h.cloud.ec2.instanceTags(detail.EC2InstanceId ?? ''));

    expect(tags).toEqual({ 'volsd:pool': 'web', 'aws:autoscaling:groupName': 'web' });
  });
});

describe('terminate lifecycle hook', () => {
  async function inService(): Promise<string> {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1 }));
    const { detail } = await launchEvent();
    const instanceId = detail.EC2InstanceId ?? '';
    await h.asg.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'volsd-launch',
        InstanceId: instanceId,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
    await h.cloud.waitFor(() => lifecycleState(instanceId) === 'InService', 600);
    return instanceId;
  }

  it('holds a scale-in in Terminating:Wait and terminates after completion', async () => {
    const instanceId = await inService();

    await h.asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 0 }));
    await h.cloud.waitFor(() => lifecycleEvents('terminate').length === 1, 600);
    const waiting = lifecycleState(instanceId);
    const event = lifecycleEvents('terminate')[0];
    await h.asg.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'volsd-terminate',
        LifecycleActionToken: event?.detail.LifecycleActionToken,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
    await h.cloud.waitFor(() => h.cloud.ec2.instanceState(instanceId) === 'terminated', 600);

    expect(waiting).toBe('Terminating:Wait');
    expect(event?.detail).toMatchObject({
      EC2InstanceId: instanceId,
      LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
      Origin: 'AutoScalingGroup',
      Destination: 'EC2',
    });
    expect(lifecycleState(instanceId)).toBeUndefined();
  });

  it('TerminateInstanceInAutoScalingGroup without decrement starts a replacement', async () => {
    const instanceId = await inService();

    const out = await h.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: instanceId,
        ShouldDecrementDesiredCapacity: false,
      }),
    );
    await launchEvent(2);

    expect(out.Activity?.StatusCode).toBe('InProgress');
    expect(lifecycleState(instanceId)).toBe('Terminating:Wait');
  });

  it('TerminateInstanceInAutoScalingGroup fails with ValidationError for an unknown instance', async () => {
    const error = await rejection(
      h.asg.send(
        new TerminateInstanceInAutoScalingGroupCommand({
          InstanceId: 'i-0123456789abcdef0',
          ShouldDecrementDesiredCapacity: true,
        }),
      ),
    );

    expect(error.name).toBe('ValidationError');
  });
});

describe('groups', () => {
  it('spread instances across AZs and describe them', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 4, launchHook: undefined }));
    await h.cloud.waitFor(
      () =>
        h.cloud.snapshotState().groups[0]?.instances.every((i) => i.lifecycleState === 'InService') ?? false,
      600,
    );

    const groups = await h.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['web'] }));
    const instances = await h.asg.send(new DescribeAutoScalingInstancesCommand({}));

    const azs = groups.AutoScalingGroups?.[0]?.Instances?.map((i) => i.AvailabilityZone).sort();
    expect(azs).toEqual(['us-east-1a', 'us-east-1a', 'us-east-1b', 'us-east-1b']);
    expect(groups.AutoScalingGroups?.[0]).toMatchObject({ DesiredCapacity: 4, MinSize: 0, MaxSize: 100 });
    expect(instances.AutoScalingInstances).toHaveLength(4);
    expect(instances.AutoScalingInstances?.[0]).toMatchObject({
      AutoScalingGroupName: 'web',
      LifecycleState: 'InService',
    });
  });

  it('refuse a desired capacity above the maximum', async () => {
    h.cloud.createAutoScalingGroup(group({ maxSize: 2 }));

    const error = await rejection(
      h.asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 3 })),
    );

    expect(error.name).toBe('ValidationError');
    expect(error.message).toBe(
      'New SetDesiredCapacity value 3 is above max value 2 for the AutoScalingGroup.',
    );
  });

  it('replace an instance terminated through EC2', async () => {
    h.cloud.createAutoScalingGroup(group({ desiredCapacity: 1, launchHook: undefined }));
    await h.cloud.waitFor(
      () => h.cloud.snapshotState().groups[0]?.instances[0]?.lifecycleState === 'InService',
      600,
    );
    const first = h.cloud.snapshotState().groups[0]?.instances[0]?.instanceId ?? '';

    h.cloud.terminateInstance(first);
    await h.cloud.waitFor(
      () => h.cloud.snapshotState().groups[0]?.instances.some((i) => i.instanceId !== first) ?? false,
      600,
    );

    expect(h.cloud.snapshotState().groups[0]?.instances.map((i) => i.instanceId)).not.toContain(first);
  });
});
