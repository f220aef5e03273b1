import {
  CompleteLifecycleActionCommand,
  DescribeAutoScalingInstancesCommand,
} from '@aws-sdk/client-auto-scaling';
import { ExecutionAlreadyExists, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatchRecord, truncate } from '../../lambdas/dispatcher/dispatch.js';
import { fixture, fixtureText, realTokenFixture, sqsRecord, testConfig } from './events.js';
import {
  asgMock,
  FakeStepFunctions,
  installAutoScaling,
  noActiveLifecycleAction,
  sfnMock,
  sfnThrottling,
  testDeps,
} from './fakes.js';

expect.extend(allCustomMatcher);

const instance = 'i-1234567890abcdef0';
const token = '87654321-4321-4321-4321-210987654321';
const lifecycle = { hookName: 'my-lifecycle-hook', groupName: 'my-asg', token };
const launchRecord = () => sqsRecord('m-launch', fixtureText('eventbridge-asg-launch-lifecycle-action'));
const terminateRecord = () =>
  sqsRecord('m-terminate', fixtureText('eventbridge-asg-terminate-lifecycle-action'));

let stepFunctions: FakeStepFunctions;

beforeEach(() => {
  stepFunctions = new FakeStepFunctions();
  stepFunctions.install();
  installAutoScaling({ [instance]: 'my-asg' });
});

afterEach(() => {
  sfnMock.reset();
  asgMock.reset();
});

describe('dispatchRecord: starting workflows', () => {
  it('starts the acquire workflow for the documented launch event, named after instance and token', async () => {
    const { deps } = testDeps();

    const result = await dispatchRecord(launchRecord(), deps);

    expect(result).toMatchObject({ outcome: 'Started', executionName: `launch-${instance}-${token}` });
    expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: testConfig.acquireStateMachineArn,
      name: `launch-${instance}-${token}`,
      input: JSON.stringify({ pool: 'web', instanceId: instance, action: 'launch', lifecycle }),
    });
  });

  it('starts the release workflow for the documented terminate event', async () => {
    const { deps } = testDeps();

    await dispatchRecord(terminateRecord(), deps);

    expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: testConfig.releaseStateMachineArn,
      name: `terminate-${instance}-${token}`,
      input: JSON.stringify({ pool: 'web', instanceId: instance, action: 'terminate', lifecycle }),
    });
  });

  it('checks with Auto Scaling that the instance is in the group before starting', async () => {
    const { deps } = testDeps();

    await dispatchRecord(launchRecord(), deps);

    expect(asgMock).toHaveReceivedCommandWith(DescribeAutoScalingInstancesCommand, {
      InstanceIds: [instance],
    });
  });

  it('skips the Auto Scaling check when the configuration turns it off', async () => {
    const { deps } = testDeps({ config: { ...testConfig, verifyInstances: false } });

    await dispatchRecord(launchRecord(), deps);

    expect(asgMock).not.toHaveReceivedCommand(DescribeAutoScalingInstancesCommand);
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
  });

  it('counts a started workflow', async () => {
    const { deps, count } = testDeps();

    await dispatchRecord(launchRecord(), deps);

    expect(count.mock.calls).toEqual([['Started']]);
  });
});

describe('dispatchRecord: duplicates', () => {
  it('sends the same name and identical input for the same event delivered twice', async () => {
    const { deps } = testDeps();

    await dispatchRecord(launchRecord(), deps);
    await dispatchRecord(launchRecord(), deps);

    const calls = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(calls).toHaveLength(2);
    expect(calls[1]).toEqual(calls[0]);
    expect(stepFunctions.executions.size).toBe(1);
  });

  it('treats ExecutionAlreadyExists as a handled duplicate', async () => {
    const { deps, count } = testDeps();
    await dispatchRecord(launchRecord(), deps);
    stepFunctions.closeAll();

    const result = await dispatchRecord(launchRecord(), deps);

    expect(result).toEqual({ outcome: 'Duplicate', executionName: `launch-${instance}-${token}` });
    expect(count.mock.calls).toEqual([['Started'], ['Duplicate']]);
    expect(stepFunctions.executions.size).toBe(1);
  });

  it('treats an ExecutionAlreadyExists thrown by any client (matched by name) as a duplicate', async () => {
    const { deps } = testDeps();
    sfnMock
      .on(StartExecutionCommand)
      .rejects(Object.assign(new Error('Execution Already Exists'), { name: 'ExecutionAlreadyExists' }));

    const result = await dispatchRecord(launchRecord(), deps);

    expect(result.outcome).toBe('Duplicate');
  });

  it('logs a duplicate with its execution name', async () => {
    const { deps, lines } = testDeps();
    sfnMock
      .on(StartExecutionCommand)
      .rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));

    await dispatchRecord(launchRecord(), deps);

    expect(lines).toContainEqual({
      level: 'info',
      message: 'duplicate lifecycle event: execution already exists',
      attributes: { stateMachine: 'acquire', executionName: `launch-${instance}-${token}` },
    });
  });

  it('handles ten concurrent deliveries of one event as one execution', async () => {
    const { deps } = testDeps();

    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        dispatchRecord(sqsRecord(`m-${i}`, fixtureText('eventbridge-asg-launch-lifecycle-action')), deps),
      ),
    );

    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    const names = new Set(sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name));
    expect([...names]).toEqual([`launch-${instance}-${token}`]);
    expect(stepFunctions.executions.size).toBe(1);
  });

  it('handles ten concurrent deliveries after the execution closed as ten duplicates', async () => {
    const { deps } = testDeps();
    await dispatchRecord(launchRecord(), deps);
    stepFunctions.closeAll();

    const results = await Promise.all(Array.from({ length: 10 }, () => dispatchRecord(launchRecord(), deps)));

    expect(results.map((r) => r.outcome)).toEqual(Array(10).fill('Duplicate'));
    expect(stepFunctions.executions.size).toBe(1);
  });
});

describe('dispatchRecord: messages with nothing to do', () => {
  it('ignores a TEST_NOTIFICATION without calling AWS', async () => {
    const { deps, count } = testDeps();

    const result = await dispatchRecord(
      sqsRecord('m-test', fixtureText('asg-lifecycle-test-notification-sqs-body')),
      deps,
    );

    expect(result).toEqual({ outcome: 'Ignored', reason: 'Auto Scaling test notification' });
    expect(sfnMock.calls()).toHaveLength(0);
    expect(asgMock.calls()).toHaveLength(0);
    expect(count.mock.calls).toEqual([['Ignored']]);
  });

  it('completes the lifecycle action of a launch into the warm pool with CONTINUE and starts nothing', async () => {
    const { deps } = testDeps();
    const event = realTokenFixture('eventbridge-asg-launch-lifecycle-warmpool-ec2-to-warmpool');

    const result = await dispatchRecord(sqsRecord('m-warm', event), deps);

    expect(result.outcome).toBe('Ignored');
    expect(asgMock).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'my-asg',
      LifecycleHookName: 'my-launch-lifecycle-hook',
      LifecycleActionToken: String(event.detail.LifecycleActionToken),
      InstanceId: instance,
      LifecycleActionResult: 'CONTINUE',
    });
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('accepts a warm-pool action that was already completed', async () => {
    const { deps } = testDeps();
    asgMock.on(CompleteLifecycleActionCommand).rejects(noActiveLifecycleAction(instance));
    const event = realTokenFixture('eventbridge-asg-launch-lifecycle-warmpool-ec2-to-warmpool');

    const result = await dispatchRecord(sqsRecord('m-warm', event), deps);

    expect(result.outcome).toBe('Ignored');
  });
});

describe('dispatchRecord: late events', () => {
  const unknownInstanceRecord = () => {
    const event = fixture('eventbridge-asg-launch-lifecycle-action');
    event.detail.EC2InstanceId = 'i-0000000000000dead';
    return sqsRecord('m-late', event);
  };

  it('acknowledges an event about an instance Auto Scaling no longer manages as late', async () => {
    const { deps } = testDeps();

    const result = await dispatchRecord(unknownInstanceRecord(), deps);

    expect(result).toMatchObject({ outcome: 'Late', reason: 'Auto Scaling no longer manages the instance' });
  });

  it('starts nothing for a late event', async () => {
    const { deps } = testDeps();

    await dispatchRecord(unknownInstanceRecord(), deps);

    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('counts a late event as Late, not as a rejection', async () => {
    const { deps, count } = testDeps();

    await dispatchRecord(unknownInstanceRecord(), deps);

    expect(count.mock.calls).toEqual([['Late']]);
  });

  it('logs a late event on one info line with its reason', async () => {
    const { deps, lines } = testDeps();

    await dispatchRecord(unknownInstanceRecord(), deps);

    expect(lines).toEqual([
      expect.objectContaining({
        level: 'info',
        message: 'late lifecycle event acknowledged and dropped',
        attributes: expect.objectContaining({ instanceId: 'i-0000000000000dead' }),
      }),
    ]);
  });

  it('acknowledges a terminate event about an instance already Terminated as late', async () => {
    const { deps } = testDeps();
    installAutoScaling({ [instance]: 'my-asg' }, { [instance]: 'Terminated' });

    const result = await dispatchRecord(terminateRecord(), deps);

    expect(result.outcome).toBe('Late');
  });

  it('acknowledges a launch event about an instance already terminating as late', async () => {
    const { deps } = testDeps();
    installAutoScaling({ [instance]: 'my-asg' }, { [instance]: 'Terminating:Wait' });

    const result = await dispatchRecord(launchRecord(), deps);

    expect(result).toMatchObject({
      outcome: 'Late',
      reason: 'launch event for an instance already Terminating:Wait',
    });
  });

  it('starts the release for a terminate event of an instance waiting on its terminate hook', async () => {
    const { deps } = testDeps();
    installAutoScaling({ [instance]: 'my-asg' }, { [instance]: 'Terminating:Wait' });

    const result = await dispatchRecord(terminateRecord(), deps);

    expect(result.outcome).toBe('Started');
  });
});

describe('dispatchRecord: rejections and failures', () => {
  it('rejects an instance that belongs to another group', async () => {
    const { deps } = testDeps();
    installAutoScaling({ [instance]: 'other-asg' });

    const act = dispatchRecord(launchRecord(), deps);

    await expect(act).rejects.toThrow(`instance ${instance} belongs to group other-asg, not my-asg`);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it('logs a rejection on one warn line with the reason and a truncated preview of the body', async () => {
    const { deps, lines } = testDeps();
    const event = fixture('eventbridge-asg-launch-lifecycle-action');
    event.detail.NotificationMetadata = 'x'.repeat(100 * 1024);

    await dispatchRecord(sqsRecord('m-huge', event), deps).catch(() => undefined);

    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe('warn');
    expect(lines[0]?.message).toMatch(/^intake message rejected: message body is \d+ bytes, over the 65536/);
    expect(lines[0]?.attributes).toMatchObject({ messageId: 'm-huge', receiveCount: '1' });
    expect(String(lines[0]?.attributes.bodyPreview).length).toBeLessThan(300);
  });

  it('lets a Step Functions throttling error through, so SQS delivers the message again', async () => {
    const { deps, count } = testDeps();
    sfnMock.on(StartExecutionCommand).rejects(sfnThrottling());

    const act = dispatchRecord(launchRecord(), deps);

    await expect(act).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(count.mock.calls).toEqual([['Failed']]);
  });

  it('logs a transient failure as an error, not as a rejection', async () => {
    const { deps, lines } = testDeps();
    sfnMock.on(StartExecutionCommand).rejects(sfnThrottling());

    await dispatchRecord(launchRecord(), deps).catch(() => undefined);

    expect(lines.map((l) => [l.level, l.attributes.errorName])).toEqual([['error', 'ThrottlingException']]);
  });

  it('lets an Auto Scaling failure other than "no active action" through', async () => {
    const { deps } = testDeps();
    asgMock.on(CompleteLifecycleActionCommand).rejects(new Error('Rate exceeded'));
    const event = realTokenFixture('eventbridge-asg-launch-lifecycle-warmpool-ec2-to-warmpool');

    await expect(dispatchRecord(sqsRecord('m-warm', event), deps)).rejects.toThrow('Rate exceeded');
  });
});

describe('truncate', () => {
  it('keeps a short text as it is', () => {
    expect(truncate('short', 10)).toBe('short');
  });

  it('cuts a long text and says how much was cut', () => {
    expect(truncate('a'.repeat(25), 10)).toBe(`${'a'.repeat(10)}... (15 more characters)`);
  });
});
