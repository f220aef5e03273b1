import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Sandbox } from '../../sandbox/runtime.js';
import { localCredentials, localRegion } from '../../sandbox/servers.js';

/** Puts an object in the sandbox's push bucket, as `aws s3 cp` would (no fan-out involved). */
export async function putContent(sandbox: Sandbox, key: string, body: string): Promise<void> {
  const s3 = new S3Client({
    endpoint: sandbox.s3.endpoint,
    region: localRegion,
    credentials: localCredentials,
    forcePathStyle: true,
  });
  try {
    await s3.send(new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: key, Body: body }));
  } finally {
    s3.destroy();
  }
}

/**
 * Publishes `body` at `key` as the pool's next generation, fills the pool with it and snapshots the pool
 * (the snapshot workflow, run to its end, as execution `snapshot-<name>`); returns the snapshot the pool
 * then records.
 */
export async function contentAndSnapshot(
  sandbox: Sandbox,
  name: string,
  key = 'live/index.html',
  body = '<h1>v1</h1>',
): Promise<string> {
  await putContent(sandbox, key, body);
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  await sandbox.replenishAll();
  const arn = sandbox.wiring.stateMachines.snapshot;
  if (!arn) throw new Error('the sandbox runs no snapshot state machine');
  sandbox.sfn.start(arn, `snapshot-${name}`, JSON.stringify({ pool: sandbox.options.pool, reason: 'test' }));
  await sandbox.settle();
  const latest = (await sandbox.repo.getPool(sandbox.options.pool)).latestSnapshot;
  if (!latest) throw new Error('the snapshot workflow recorded no snapshot');
  return latest.snapshotId;
}

/** Retires the pool's idle volumes and refills it to `target`, so each idle volume is made from the latest snapshot. */
export async function refillFromSnapshot(sandbox: Sandbox, target: number): Promise<void> {
  await sandbox.repo.setTarget(sandbox.options.pool, 0);
  await sandbox.replenishAll();
  await sandbox.repo.setTarget(sandbox.options.pool, target);
  await sandbox.replenishAll();
}

/** The instances of the served group, by lifecycle state. */
export function groupMembers(sandbox: Sandbox) {
  const group = sandbox.cloud.snapshotState().groups.find((g) => g.name === sandbox.wiring.groupName);
  return group?.instances ?? [];
}

/** Executions of one state machine whose name starts with `prefix`. */
export function executions(sandbox: Sandbox, prefix: string) {
  return [...sandbox.sfn.executions.values()].filter((e) => e.name.startsWith(prefix));
}

/** Scales the served group to `desired` and waits until everything settled; returns the new members. */
export async function scaleAndSettle(sandbox: Sandbox, desired: number): Promise<string[]> {
  const before = new Set(sandbox.cloud.snapshotState().instances.map((i) => i.instanceId));
  sandbox.scaleTo(desired);
  await sandbox.settle();
  return sandbox.cloud
    .snapshotState()
    .instances.filter(
      (i) => !before.has(i.instanceId) && i.autoScaling?.groupName === sandbox.wiring.groupName,
    )
    .map((i) => i.instanceId);
}

/** Why a launch left no instance behind: the last launch actions and acquires, for a failing test's message. */
export function launchOutcomes(sandbox: Sandbox): string {
  const actions = sandbox.cloud
    .lifecycleActions()
    .filter((a) => a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING')
    .slice(-3)
    .map(
      (a) =>
        `${a.instanceId} ${a.result ?? 'open'} by ${a.completedBy ?? '-'}${a.timedOut ? ' (timed out)' : ''}`,
    );
  const acquires = executions(sandbox, 'launch-')
    .slice(-3)
    .map((e) => `${e.name} ${e.status}${e.error ? ` ${e.error}: ${e.cause?.slice(0, 200)}` : ''}`);
  return `actions: ${actions.join('; ')}; acquires: ${acquires.join('; ')}`;
}
