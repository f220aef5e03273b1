import { configParameterNames, configParameterPath } from '../../client/pool-config.js';
import type { Sandbox } from '../runtime.js';

/** A configuration parameter name of a pool (`table-name`, `acquire-state-machine-arn`, ...). */
export type ConfigParameterKey = keyof typeof configParameterNames;

/** Options of {@link publishConfig}. */
export interface PublishConfigOptions {
  /** Mount path on served hosts. @default '/srv/www' (the workflows' default MOUNT_PATH) */
  mountPath?: string;
  /**
   * Extra or replacement values by key, e.g. `{ snapshotStateMachineArn: '...' }` to pretend a workflow
   * the sandbox does not run is deployed; `null` leaves a parameter out.
   */
  values?: Partial<Record<ConfigParameterKey, string | null>>;
}

/**
 * Publishes the sandbox pool's configuration in the simulator's Parameter Store, one String parameter
 * per name under `/volsd/<pool>/`, as the CDK construct's `ConfigParameters` does: table, push bucket,
 * mount path, and the ARN of each workflow the sandbox runs (acquire, release, replenish; snapshot and
 * sync-all when the sandbox registers them). Returns what it published, by parameter name.
 */
export async function publishConfig(
  sandbox: Pick<Sandbox, 'cloud' | 'wiring' | 'options'>,
  options: PublishConfigOptions = {},
): Promise<Record<string, string>> {
  const { wiring } = sandbox;
  const machines: Record<string, string | undefined> = wiring.stateMachines;
  const values: Partial<Record<ConfigParameterKey, string | null | undefined>> = {
    tableName: wiring.tableName,
    pushBucketName: wiring.bucket,
    mountPath: options.mountPath ?? '/srv/www',
    acquireStateMachineArn: machines.acquire,
    releaseStateMachineArn: machines.release,
    replenishStateMachineArn: machines.replenish,
    snapshotStateMachineArn: machines.snapshot,
    syncAllStateMachineArn: machines.syncall,
    ...options.values,
  };
  const path = configParameterPath(sandbox.options.pool);
  const published: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === null || value === undefined) continue;
    const name = `${path}/${configParameterNames[key as ConfigParameterKey]}`;
    await sandbox.cloud.handle('ssm', 'PutParameter', {
      Name: name,
      Value: value,
      Type: 'String',
      Overwrite: true,
    });
    published[name] = value;
  }
  return published;
}
