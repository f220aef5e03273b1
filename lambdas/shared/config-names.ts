/**
 * Where a pool publishes its configuration for volsd-client: SSM Parameter Store under `/volsd/<pool>/`,
 * one String parameter per name below. Shared by the CDK construct (lib/config-parameters.ts), the client
 * and the sandbox; free of CDK imports so the client bundle stays small.
 */
export function configParameterPath(poolName: string): string {
  return `/volsd/${poolName}`;
}

/** Well-known parameter names volsd-client reads (under `/volsd/<pool>/`). */
export const configParameterNames = {
  tableName: 'table-name',
  pushBucketName: 'push-bucket-name',
  mountPath: 'mount-path',
  acquireStateMachineArn: 'acquire-state-machine-arn',
  releaseStateMachineArn: 'release-state-machine-arn',
  replenishStateMachineArn: 'replenish-state-machine-arn',
  snapshotStateMachineArn: 'snapshot-state-machine-arn',
  syncAllStateMachineArn: 'sync-all-state-machine-arn',
  /** The host API's function URL: hosts acquire, release and read their state only through it. */
  hostApiUrl: 'host-api-url',
} as const;
