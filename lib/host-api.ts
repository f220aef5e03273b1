import { Arn, ArnFormat, Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type FunctionUrl, FunctionUrlAuthType } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type ConfigParameters, configParameterNames } from './config-parameters.js';
import { acknowledgeWildcards, findingArn } from './nag.js';
import type { ClientPolicies } from './permissions.js';
import type { PoolSettings } from './pool-settings.js';
import { VolsdFunction } from './volsd-function.js';
import type { VolumeTable } from './volume-table.js';
import type { Workflows } from './workflows.js';

/** What the host API uses of its pool, and nothing more (a `VolsdPool` is one; no import of it here). */
export interface HostApiPool {
  readonly settings: Pick<PoolSettings, 'poolName'>;
  readonly workflows: Pick<Workflows, 'acquire' | 'release'>;
  readonly table: Pick<VolumeTable, 'table'>;
  readonly config: Pick<ConfigParameters, 'add'>;
  readonly clientPolicies: Pick<ClientPolicies, 'allowHostApi'>;
}

/** Props of {@link HostApi}. */
export interface HostApiProps {
  /** The pool's parts it uses: table, acquire and release workflows, configuration parameters, client policies. */
  readonly pool: HostApiPool;
  /**
   * How long the function's log group keeps events.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * What happens to the log group when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/**
 * The host API: how a host acquires, releases and reads its own state, acting only for itself.
 * A function (`lambdas/hostapi/`) behind a function URL with `AuthType: AWS_IAM`: Lambda authenticates
 * the SigV4 request and hands the caller's identity to the function, which takes the instance id from
 * the caller's role session (never from the request) and starts the acquire or release workflow for it,
 * or reads the table for it. Hosts get `lambda:InvokeFunctionUrl` (and `lambda:InvokeFunction` through
 * the URL only) in the client host policy, and no Step Functions or table rights at all; the URL is
 * published as `/volsd/<pool>/host-api-url`. See docs/decisions.md, "Host identity".
 */
export class HostApi extends Construct {
  /** The function behind the URL. */
  public readonly function: VolsdFunction;
  /** The function URL (AuthType AWS_IAM). */
  public readonly url: FunctionUrl;

  constructor(scope: Construct, id: string, props: HostApiProps) {
    super(scope, id);
    const { pool } = props;
    const { poolName } = pool.settings;
    const { acquire, release } = pool.workflows;
    const table = pool.table.table;
    this.function = new VolsdFunction(this, 'Function', {
      entry: 'lambdas/hostapi/handler.ts',
      description: `Volsd ${poolName}: host API (acquire, release, status for the calling instance only)`,
      serviceName: 'volsd-hostapi',
      timeout: Duration.seconds(10),
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
    })
      .setEnvironment('POOL_NAME', poolName)
      .setEnvironment('TABLE_NAME', table.tableName)
      .setEnvironment('EXPECTED_ACCOUNT_ID', Stack.of(this).account)
      .bindStateMachine(acquire.stateMachine, 'ACQUIRE_STATE_MACHINE_ARN')
      .bindStateMachine(release.stateMachine, 'RELEASE_STATE_MACHINE_ARN')
      .addToRolePolicy(
        // The caller's assignment, its volume and the pool record: single items, nothing else.
        new PolicyStatement({
          sid: 'ReadHostItems',
          actions: ['dynamodb:GetItem'],
          resources: [table.tableArn],
        }),
        new PolicyStatement({
          sid: 'FollowHostExecutions',
          actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
          resources: [executionsOf(this, acquire.stateMachine), executionsOf(this, release.stateMachine)],
        }),
      );
    table.encryptionKey?.grantDecrypt(this.function.function);
    acknowledgeWildcards(this.function.role, [
      {
        finding: findingArn('states', 'execution:.+:\\*'),
        reason:
          'Executions of the acquire and release state machines: their names are only known at run time; the function answers only for executions named after the calling instance.',
      },
    ]);
    this.url = this.function.function.addFunctionUrl({ authType: FunctionUrlAuthType.AWS_IAM });
    pool.config.add(configParameterNames.hostApiUrl, this.url.url, 'Volsd: the host API (function URL)');
    pool.clientPolicies.allowHostApi(this.function.function);
  }
}

/** ARN pattern of a state machine's executions (`...:execution:<name>:*`). */
function executionsOf(scope: Construct, stateMachine: IStateMachine): string {
  const name = Arn.split(stateMachine.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME).resourceName ?? '';
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'execution',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    resourceName: `${name}:*`,
  });
}
