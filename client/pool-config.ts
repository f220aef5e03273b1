import { GetParametersByPathCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { configParameterNames, configParameterPath } from '../lambdas/shared/config-names.js';
import { awsCall } from './aws.js';
import { ClientError, ExitCode } from './errors.js';

export { configParameterNames, configParameterPath };

/** A pool's published configuration; what the pool does not deploy is absent. */
export interface PoolConfig {
  pool: string;
  /** The Region the configuration was read in (the pool's Region). */
  region: string;
  tableName: string;
  pushBucketName?: string;
  mountPath?: string;
  acquireStateMachineArn?: string;
  releaseStateMachineArn?: string;
  replenishStateMachineArn?: string;
  snapshotStateMachineArn?: string;
  syncAllStateMachineArn?: string;
  /** The host API's function URL (host commands). */
  hostApiUrl?: string;
}

/**
 * Reads the pool's configuration from Parameter Store (one GetParametersByPath on `/volsd/<pool>`,
 * paginated). No parameters at all: UnknownPool. No table name: the pool is half deployed, also
 * reported as unknown, naming the missing parameter.
 */
export async function loadPoolConfig(ssm: SSMClient, pool: string, region: string): Promise<PoolConfig> {
  const path = configParameterPath(pool);
  const values = new Map<string, string>();
  let nextToken: string | undefined;
  do {
    const page = await awsCall('ssm:GetParametersByPath', () =>
      ssm.send(new GetParametersByPathCommand({ Path: path, Recursive: false, NextToken: nextToken })),
    );
    for (const parameter of page.Parameters ?? []) {
      if (parameter.Name && parameter.Value !== undefined) {
        values.set(parameter.Name.slice(path.length + 1), parameter.Value);
      }
    }
    nextToken = page.NextToken;
  } while (nextToken);
  if (values.size === 0) {
    throw new ClientError(
      ExitCode.UnknownPool,
      'UnknownPool',
      `unknown pool '${pool}': no configuration under ${path} in ${region} (check --pool and --region)`,
      { pool, region, path },
    );
  }
  const read = (key: keyof typeof configParameterNames) => values.get(configParameterNames[key]);
  const tableName = read('tableName');
  if (!tableName) {
    throw new ClientError(
      ExitCode.UnknownPool,
      'UnknownPool',
      `pool '${pool}' is incompletely deployed: ${path}/${configParameterNames.tableName} is missing`,
      { pool, region, path },
    );
  }
  const config: PoolConfig = { pool, region, tableName };
  for (const key of Object.keys(configParameterNames) as (keyof typeof configParameterNames)[]) {
    if (key === 'tableName') continue;
    const value = read(key);
    if (value) config[key] = value;
  }
  return config;
}

/** The ARN a command needs, or NotDeployed naming the parameter that would hold it. */
export function requireArn(
  config: PoolConfig,
  key:
    | 'acquireStateMachineArn'
    | 'releaseStateMachineArn'
    | 'replenishStateMachineArn'
    | 'snapshotStateMachineArn'
    | 'syncAllStateMachineArn',
  what: string,
): string {
  const arn = config[key];
  if (arn) return arn;
  const parameter = `${configParameterPath(config.pool)}/${configParameterNames[key]}`;
  throw new ClientError(
    ExitCode.NotDeployed,
    'NotDeployed',
    `${what} is not deployed in pool '${config.pool}' (no parameter ${parameter})`,
    { pool: config.pool, parameter },
  );
}
