import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from '../../sandbox/runtime.js';

// The intake DLQ's count, as the scenarios report it: only messages Volsd cannot parse or act on
// reach it; a late lifecycle event is acknowledged by the dispatcher and does not.

let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await Sandbox.start({ timeScale: 0.01, idlePerAz: 0, seed: 16 });
}, 120_000);
afterAll(async () => {
  await sandbox?.stop();
});

/** A well-formed launch event of the served group about an instance Auto Scaling never had. */
function lateLaunchEvent(): string {
  const event = JSON.parse(
    readFileSync(
      new URL('../dispatcher/fixtures/eventbridge-asg-launch-lifecycle-action.json', import.meta.url),
      'utf8',
    ),
  );
  event.region = 'us-east-1';
  event.detail.AutoScalingGroupName = sandbox.wiring.groupName;
  event.detail.LifecycleHookName = sandbox.wiring.hookName;
  event.detail.EC2InstanceId = 'i-0000000000000dead';
  return JSON.stringify(event);
}

describe('Sandbox.intakeDeadLetters', () => {
  it('does not count a late lifecycle event', async () => {
    // Prepare
    sandbox.intake.send(lateLaunchEvent());
    // Act
    await sandbox.settle();
    // Assess
    expect(sandbox.intakeDeadLetters()).toBe(0);
  }, 300_000);

  it('counts a message the dispatcher cannot parse once its receives are spent', async () => {
    // Prepare
    const before = sandbox.intakeDeadLetters();
    sandbox.intake.send('{"not": "a lifecycle event"');
    // Act
    await sandbox.settle();
    // Assess
    expect(sandbox.intakeDeadLetters()).toBe(before + 1);
  }, 300_000);
});
