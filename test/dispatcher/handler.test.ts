import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { SQSEvent } from 'aws-lambda';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configFromEnv, createHandler, handler } from '../../lambdas/dispatcher/handler.js';
import { fixture, fixtureText, sqsEvent, sqsRecord, testConfig } from './events.js';
import {
  asgMock,
  FakeStepFunctions,
  installAutoScaling,
  lambdaContext,
  sfnMock,
  sfnThrottling,
  testDeps,
} from './fakes.js';

expect.extend(allCustomMatcher);

const instance = 'i-1234567890abcdef0';
const launch = () => fixture('eventbridge-asg-launch-lifecycle-action');
const changed = (change: (e: ReturnType<typeof launch>) => void) => {
  const event = launch();
  change(event);
  return event;
};

/** One valid message per kind plus every kind of bad input, as one batch. */
function mixedBatch(): SQSEvent {
  return sqsEvent(
    sqsRecord('ok-launch', fixtureText('eventbridge-asg-launch-lifecycle-action')),
    sqsRecord('bad-json', '{"version":"0","detail-type":'),
    sqsRecord(
      'bad-missing-fields',
      changed((e) => {
        delete e.detail.EC2InstanceId;
        delete e.detail.LifecycleActionToken;
      }),
    ),
    sqsRecord(
      'bad-unknown-group',
      changed((e) => {
        e.detail.AutoScalingGroupName = 'not-served';
      }),
    ),
    sqsRecord(
      'late-unknown-instance',
      changed((e) => {
        e.detail.EC2InstanceId = 'i-0000000000000dead';
      }),
    ),
    sqsRecord('bad-account', { ...launch(), account: '999999999999' }),
    sqsRecord('bad-region', { ...launch(), region: 'eu-central-1' }),
    sqsRecord(
      'bad-100kb',
      changed((e) => {
        e.detail.NotificationMetadata = 'x'.repeat(100 * 1024);
      }),
    ),
    sqsRecord('ok-terminate', fixtureText('eventbridge-asg-terminate-lifecycle-action')),
    sqsRecord('ok-test-notification', fixtureText('asg-lifecycle-test-notification-sqs-body')),
  );
}

const badIds = [
  'bad-json',
  'bad-missing-fields',
  'bad-unknown-group',
  'bad-account',
  'bad-region',
  'bad-100kb',
];

beforeEach(() => {
  new FakeStepFunctions().install();
  installAutoScaling({ [instance]: 'my-asg' });
});

afterEach(() => {
  sfnMock.reset();
  asgMock.reset();
});

describe('dispatcher handler: partial batch failures', () => {
  it('reports exactly the bad messages of a mixed batch as item failures', async () => {
    const { deps } = testDeps();

    const response = await createHandler(() => deps)(mixedBatch(), lambdaContext);

    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual([...badIds].sort());
  });

  it('still starts the workflows of the valid messages of a mixed batch', async () => {
    const { deps } = testDeps();

    await createHandler(() => deps)(mixedBatch(), lambdaContext);

    const started = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.stateMachineArn);
    expect(started.sort()).toEqual(
      [testConfig.acquireStateMachineArn, testConfig.releaseStateMachineArn].sort(),
    );
  });

  it('logs one rejection line per bad message, none carrying a body over a few hundred characters', async () => {
    const { deps, lines } = testDeps();

    await createHandler(() => deps)(mixedBatch(), lambdaContext);

    const rejected = lines.filter((l) => l.level === 'warn');
    expect(rejected.map((l) => l.attributes.messageId).sort()).toEqual([...badIds].sort());
    expect(rejected.every((l) => JSON.stringify(l).length < 1500)).toBe(true);
  });

  it('counts each outcome of a mixed batch', async () => {
    const { deps, count } = testDeps();

    await createHandler(() => deps)(mixedBatch(), lambdaContext);

    const tally = count.mock.calls.reduce<Record<string, number>>((acc, [outcome]) => {
      acc[outcome] = (acc[outcome] ?? 0) + 1;
      return acc;
    }, {});
    expect(tally).toEqual({ Started: 2, Late: 1, Ignored: 1, Rejected: 6 });
  });

  it('reports a batch where every message is bad as item failures instead of failing the invocation', async () => {
    const { deps } = testDeps();
    const event = sqsEvent(sqsRecord('a', 'not json'), sqsRecord('b', '{}'));

    const response = await createHandler(() => deps)(event, lambdaContext);

    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(['a', 'b']);
  });

  it('reports a message whose StartExecution is throttled as an item failure and processes the rest', async () => {
    const { deps } = testDeps();
    sfnMock
      .on(StartExecutionCommand)
      .rejects(sfnThrottling())
      .on(StartExecutionCommand, { stateMachineArn: testConfig.releaseStateMachineArn })
      .resolves({
        executionArn: 'arn:aws:states:us-west-2:123456789012:execution:x:y',
        startDate: new Date(),
      });
    const event = sqsEvent(
      sqsRecord('launch', fixtureText('eventbridge-asg-launch-lifecycle-action')),
      sqsRecord('terminate', fixtureText('eventbridge-asg-terminate-lifecycle-action')),
    );

    const response = await createHandler(() => deps)(event, lambdaContext);

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'launch' }]);
    expect(sfnMock).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: testConfig.releaseStateMachineArn,
    });
  });

  it('processes the composed SQS sample event with no failures and one acquire', async () => {
    const { deps } = testDeps();
    const event: SQSEvent = JSON.parse(fixtureText('sqs-lambda-event-wrapping-eventbridge-launch-lifecycle'));

    const response = await createHandler(() => deps)(event, lambdaContext);

    expect(response.batchItemFailures).toEqual([]);
    expect(sfnMock).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
  });

  it('processes the same event twice in one batch as one execution and no failures', async () => {
    const { deps } = testDeps();
    const body = fixtureText('eventbridge-asg-launch-lifecycle-action');

    const response = await createHandler(() => deps)(
      sqsEvent(sqsRecord('first', body), sqsRecord('second', body)),
      lambdaContext,
    );

    expect(response.batchItemFailures).toEqual([]);
    const names = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name);
    expect(new Set(names).size).toBe(1);
  });
});

describe('dispatcher configuration', () => {
  const environment = {
    POOL_NAME: 'web',
    ACQUIRE_STATE_MACHINE_ARN: testConfig.acquireStateMachineArn,
    RELEASE_STATE_MACHINE_ARN: testConfig.releaseStateMachineArn,
    SERVED_GROUPS: 'my-asg, other-asg',
    EXPECTED_ACCOUNT_ID: '123456789012',
    AWS_REGION: 'us-west-2',
  };

  it('reads the configuration from the environment, checking instances by default', () => {
    expect(configFromEnv(environment)).toEqual({
      pool: 'web',
      acquireStateMachineArn: testConfig.acquireStateMachineArn,
      releaseStateMachineArn: testConfig.releaseStateMachineArn,
      servedGroups: ['my-asg', 'other-asg'],
      expectedAccountId: '123456789012',
      region: 'us-west-2',
      verifyInstances: true,
    });
  });

  it('turns the instance check off with VERIFY_INSTANCES=false', () => {
    expect(configFromEnv({ ...environment, VERIFY_INSTANCES: 'false' }).verifyInstances).toBe(false);
  });

  it('refuses a configuration without served groups', () => {
    expect(() => configFromEnv({ ...environment, SERVED_GROUPS: ' , ' })).toThrow(
      /SERVED_GROUPS: at least one group/,
    );
  });

  it('names every missing variable', () => {
    expect(() => configFromEnv({ AWS_REGION: 'us-west-2' })).toThrow(
      /POOL_NAME.*ACQUIRE_STATE_MACHINE_ARN.*RELEASE_STATE_MACHINE_ARN.*EXPECTED_ACCOUNT_ID/,
    );
  });

  it('makes the deployed handler fail loudly when its environment is incomplete', async () => {
    const event = sqsEvent(sqsRecord('m', fixtureText('eventbridge-asg-launch-lifecycle-action')));

    await expect(handler(event, lambdaContext)).rejects.toThrow(/configuration error: POOL_NAME/);
  });
});
