import { describe, expect, it } from 'vitest';
import { maxIntakeBodyBytes, parseIntakeMessage } from '../../lambdas/dispatcher/parse.js';
import { InvalidInput } from '../../lambdas/shared/errors.js';
import { fixture, fixtureText, realTokenFixture, served, sqsRecord } from './events.js';

const parse = (body: string | object) =>
  parseIntakeMessage(typeof body === 'string' ? body : JSON.stringify(body), served);

/** The error `parse` throws, or a failure when it throws none. */
function rejection(body: string | object): Error {
  try {
    parse(body);
  } catch (err) {
    if (err instanceof Error) return err;
    throw err;
  }
  throw new Error('parse accepted the message');
}

const launchInput = {
  pool: 'web',
  instanceId: 'i-1234567890abcdef0',
  action: 'launch',
  lifecycle: {
    hookName: 'my-lifecycle-hook',
    groupName: 'my-asg',
    token: '87654321-4321-4321-4321-210987654321',
  },
};

describe('parseIntakeMessage: lifecycle events', () => {
  it('turns the documented launch event into an acquire of that instance', () => {
    const decision = parse(fixtureText('eventbridge-asg-launch-lifecycle-action'));

    expect(decision).toEqual({ kind: 'start', stateMachine: 'acquire', input: launchInput });
  });

  it('turns the documented terminate event into a release of that instance', () => {
    const decision = parse(fixtureText('eventbridge-asg-terminate-lifecycle-action'));

    expect(decision).toEqual({
      kind: 'start',
      stateMachine: 'release',
      input: { ...launchInput, action: 'terminate' },
    });
  });

  it('reads the launch event from the body of an SQS record as EventBridge delivers it', () => {
    const envelope = JSON.parse(fixtureText('sqs-lambda-event-wrapping-eventbridge-launch-lifecycle'));

    const decision = parse(envelope.Records[0].body);

    expect(decision).toEqual({ kind: 'start', stateMachine: 'acquire', input: launchInput });
  });

  it('gives two deliveries of one event byte-identical workflow input', () => {
    const first = parse(fixtureText('eventbridge-asg-launch-lifecycle-action'));
    const second = parse(fixtureText('eventbridge-asg-launch-lifecycle-action'));

    expect(first.kind).toBe('start');
    expect(JSON.stringify(second)).toBe(JSON.stringify(first));
  });

  it('keeps the event id and time out of the workflow input', () => {
    const replay = { ...fixture('eventbridge-asg-launch-lifecycle-action'), id: 'another-id', time: 'later' };

    const decision = parse(replay);

    expect(decision).toEqual({ kind: 'start', stateMachine: 'acquire', input: launchInput });
  });

  it('accepts hook metadata that names this pool', () => {
    const event = fixture('eventbridge-asg-launch-lifecycle-action');
    event.detail.NotificationMetadata = JSON.stringify({ pool: 'web' });

    expect(parse(event).kind).toBe('start');
  });

  it('accepts a body of exactly the size limit', () => {
    const text = fixtureText('eventbridge-asg-launch-lifecycle-action');
    const padded = text + ' '.repeat(maxIntakeBodyBytes - Buffer.byteLength(text));

    expect(parse(padded).kind).toBe('start');
  });
});

describe('parseIntakeMessage: test notifications and warm pools', () => {
  it('ignores an Auto Scaling test notification', () => {
    const decision = parse(fixtureText('asg-lifecycle-test-notification-sqs-body'));

    expect(decision).toEqual({ kind: 'ignore', reason: 'Auto Scaling test notification' });
  });

  it('ignores a launch into the warm pool and asks to complete its lifecycle action', () => {
    const event = realTokenFixture('eventbridge-asg-launch-lifecycle-warmpool-ec2-to-warmpool');

    const decision = parse(event);

    expect(decision).toEqual({
      kind: 'ignore',
      reason: expect.stringContaining('warm pool'),
      completeLifecycle: {
        instanceId: 'i-1234567890abcdef0',
        hookName: 'my-launch-lifecycle-hook',
        groupName: 'my-asg',
        token: event.detail.LifecycleActionToken,
      },
    });
  });

  it('acquires for an instance leaving the warm pool into service', () => {
    const decision = parse(realTokenFixture('eventbridge-asg-launch-lifecycle-warmpool-to-asg'));

    expect(decision).toMatchObject({ kind: 'start', stateMachine: 'acquire', input: { action: 'launch' } });
  });

  it('acquires for a launch straight into service in a group that has a warm pool', () => {
    const decision = parse(realTokenFixture('eventbridge-asg-launch-lifecycle-ec2-to-asg-with-origin'));

    expect(decision).toMatchObject({ kind: 'start', stateMachine: 'acquire' });
  });

  it('releases for an instance scaled in back to the warm pool', () => {
    const decision = parse(realTokenFixture('eventbridge-asg-terminate-lifecycle-asg-to-warmpool'));

    expect(decision).toMatchObject({
      kind: 'start',
      stateMachine: 'release',
      input: { action: 'terminate' },
    });
  });
});

describe('parseIntakeMessage: bad input', () => {
  const launch = () => fixture('eventbridge-asg-launch-lifecycle-action');
  const withDetail = (changes: Record<string, unknown>) => {
    const event = launch();
    Object.assign(event.detail, changes);
    return event;
  };
  const without = (field: string) => {
    const event = launch();
    delete event.detail[field];
    return event;
  };

  it.each<[string, () => string | object, RegExp]>([
    ['malformed JSON', () => '{"version":"0",', /^malformed JSON/],
    ['an empty body', () => '', /^malformed JSON/],
    ['a JSON array', () => '[]', /invalid lifecycle event/],
    ['no instance id', () => without('EC2InstanceId'), /EC2InstanceId: Required/],
    ['no lifecycle token', () => without('LifecycleActionToken'), /LifecycleActionToken: Required/],
    ['no hook name', () => without('LifecycleHookName'), /LifecycleHookName: Required/],
    ['no detail', () => ({ ...launch(), detail: undefined }), /detail: Required/],
    ['a malformed instance id', () => withDetail({ EC2InstanceId: 'i-xyz' }), /malformed instance id/],
    [
      "the documentation's placeholder token",
      () => fixture('eventbridge-asg-launch-lifecycle-warmpool-to-asg'),
      /lifecycle token must be a UUID/,
    ],
    ['another source', () => ({ ...launch(), source: 'aws.ec2' }), /source: Invalid literal value/],
    [
      'another detail-type',
      () => ({ ...launch(), 'detail-type': 'EC2 Instance Launch Successful' }),
      /detail-type: Invalid discriminator value/,
    ],
    [
      'a transition that contradicts the detail-type',
      () => withDetail({ LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING' }),
      /LifecycleTransition: Invalid literal value/,
    ],
    [
      'another account',
      () => ({ ...launch(), account: '999999999999' }),
      /account 999999999999 is not this pool's account 123456789012/,
    ],
    [
      'another Region',
      () => ({ ...launch(), region: 'eu-west-1' }),
      /Region eu-west-1 is not this pool's Region us-west-2/,
    ],
    [
      'a group the pool does not serve',
      () => withDetail({ AutoScalingGroupName: 'other-asg' }),
      /group other-asg is not served by pool web/,
    ],
    [
      'hook metadata naming another pool',
      () => withDetail({ NotificationMetadata: JSON.stringify({ pool: 'media' }) }),
      /hook metadata names pool media, not web/,
    ],
  ])('rejects %s with InvalidInput', (_what, body, message) => {
    const err = rejection(body());

    expect(err).toBeInstanceOf(InvalidInput);
    expect(err.message).toMatch(message);
  });

  it('rejects a 100 KB event by its size', () => {
    const event = withDetail({ NotificationMetadata: 'x'.repeat(100 * 1024) });

    const err = rejection(event);

    expect(err).toBeInstanceOf(InvalidInput);
    expect(err.message).toMatch(/^message body is \d+ bytes, over the 65536-byte limit$/);
  });

  it('checks the size before parsing, so a huge body that is not JSON is reported by size', () => {
    const err = rejection('{'.repeat(maxIntakeBodyBytes + 1));

    expect(err.message).toMatch(/over the 65536-byte limit/);
  });

  it('counts the size in bytes, not characters', () => {
    const event = withDetail({ NotificationMetadata: 'é'.repeat(1000) });
    const text = JSON.stringify(event);
    const padded = text + ' '.repeat(maxIntakeBodyBytes - text.length);

    expect(rejection(padded).message).toMatch(/over the 65536-byte limit/);
  });

  it('rejects a message that is neither a lifecycle event nor a test notification', () => {
    const err = rejection(sqsRecord('m1', { hello: 'world' }).body);

    expect(err).toBeInstanceOf(InvalidInput);
    expect(err.message).toMatch(/^invalid lifecycle event: detail-type/);
  });
});
