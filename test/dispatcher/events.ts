import { readFileSync } from 'node:fs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import type { DispatcherConfig } from '../../lambdas/dispatcher/dispatch.js';

/**
 * Sample events copied verbatim from the AWS documentation (see the project's aws-reference
 * SOURCES.md): the lifecycle events of the EC2 Auto Scaling event reference and warm-pool pages, a real
 * TEST_NOTIFICATION body, and an SQS->Lambda envelope around them.
 */
export type Fixture =
  | 'asg-lifecycle-test-notification-sqs-body'
  | 'eventbridge-asg-launch-lifecycle-action'
  | 'eventbridge-asg-launch-lifecycle-ec2-to-asg-with-origin'
  | 'eventbridge-asg-launch-lifecycle-warmpool-ec2-to-warmpool'
  | 'eventbridge-asg-launch-lifecycle-warmpool-to-asg'
  | 'eventbridge-asg-terminate-lifecycle-action'
  | 'eventbridge-asg-terminate-lifecycle-asg-to-warmpool'
  | 'sqs-lambda-event-wrapping-asg-test-notification'
  | 'sqs-lambda-event-wrapping-eventbridge-launch-lifecycle';

/** The raw text of a fixture. */
export function fixtureText(name: Fixture): string {
  return readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8');
}

/** A fixture as a mutable JSON object (tests change one field at a time). */
export function fixture(name: Fixture): Record<string, unknown> & { detail: Record<string, unknown> } {
  return JSON.parse(fixtureText(name));
}

/**
 * A fixture whose documentation placeholder token (`...EXAMPLE`, not hex) is replaced by a real UUID,
 * as Auto Scaling sends: the warm-pool pages' samples carry such placeholders.
 */
export function realTokenFixture(name: Fixture) {
  const event = fixture(name);
  const token = String(event.detail.LifecycleActionToken);
  event.detail.LifecycleActionToken = token.replace('EXAMPLE', 'abcdef0');
  return event;
}

/** What every test dispatcher serves: the account, Region and group of the AWS samples. */
export const served = {
  account: '123456789012',
  region: 'us-west-2',
  groups: ['my-asg'],
  pool: 'web',
};

/** The dispatcher configuration matching {@link served}. */
export const testConfig: DispatcherConfig = {
  pool: served.pool,
  acquireStateMachineArn: 'arn:aws:states:us-west-2:123456789012:stateMachine:volsd-web-acquire',
  releaseStateMachineArn: 'arn:aws:states:us-west-2:123456789012:stateMachine:volsd-web-release',
  servedGroups: served.groups,
  expectedAccountId: served.account,
  region: served.region,
  verifyInstances: true,
};

/** An SQS record carrying `body`, shaped like the composed SQS->Lambda sample. */
export function sqsRecord(messageId: string, body: string | object): SQSRecord {
  const envelope: SQSEvent = JSON.parse(
    fixtureText('sqs-lambda-event-wrapping-eventbridge-launch-lifecycle'),
  );
  const [template] = envelope.Records;
  if (!template) throw new Error('the SQS sample has no record');
  return { ...template, messageId, body: typeof body === 'string' ? body : JSON.stringify(body) };
}

/** An SQS event of the given records. */
export function sqsEvent(...records: SQSRecord[]): SQSEvent {
  return { Records: records };
}
