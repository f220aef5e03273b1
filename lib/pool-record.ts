import { Stack, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import {
  AwsCustomResource,
  AwsCustomResourcePolicy,
  type AwsSdkCall,
  PhysicalResourceId,
} from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { keys } from '../lambdas/shared/table-schema.js';

/** Props of {@link PoolRecord}. */
export interface PoolRecordProps {
  /** The pool's name. */
  readonly poolName: string;
  /** The volume table. */
  readonly table: ITable;
  /** The pool's AZs (tokens are fine: resolved at deploy). */
  readonly availabilityZones: readonly string[];
  /** Idle volumes wanted per AZ. */
  readonly idlePerAz: number;
}

/**
 * The pool's record in the volume table (`POOL#<pool>` / `POOL`), written at every deploy that changes
 * the AZs or the idle target: the workflows read their target from it and refuse to run for a pool
 * without one (UnknownPool). The same UpdateItem as `VolumeRepository.putPool`, so the content
 * generation and the latest snapshot survive redeploys; the record is kept when the stack goes, like
 * the table. Runs as CDK's AwsCustomResource (one singleton function per stack).
 */
export class PoolRecord extends Construct {
  /** The custom resource. */
  public readonly resource: AwsCustomResource;

  constructor(scope: Construct, id: string, props: PoolRecordProps) {
    super(scope, id);
    const key = keys.pool(props.poolName);
    const put: AwsSdkCall = {
      service: 'DynamoDB',
      action: 'updateItem',
      parameters: {
        TableName: props.table.tableName,
        Key: { pk: { S: key.pk }, sk: { S: key.sk } },
        UpdateExpression:
          'SET #pool = :pool, azs = :azs, targetIdlePerAz = :t, generation = if_not_exists(generation, :zero)',
        ExpressionAttributeNames: { '#pool': 'pool' },
        ExpressionAttributeValues: {
          ':pool': { S: props.poolName },
          ':azs': { L: props.availabilityZones.map((az) => ({ S: az })) },
          ':t': { N: String(props.idlePerAz) },
          ':zero': { N: '0' },
        },
      },
      physicalResourceId: PhysicalResourceId.of(`volsd-pool-${props.poolName}`),
    };
    this.resource = new AwsCustomResource(this, 'Resource', {
      resourceType: 'Custom::VolsdPoolRecord',
      onCreate: put,
      onUpdate: put,
      // Nothing on delete: the record goes with the (retained) table.
      policy: AwsCustomResourcePolicy.fromStatements([
        new PolicyStatement({ actions: ['dynamodb:UpdateItem'], resources: [props.table.tableArn] }),
      ]),
      // The SDK of the Lambda runtime: deploys stay offline-deterministic (no npm install at deploy).
      installLatestAwsSdk: false,
    });
    props.table.encryptionKey?.grant(this.resource, 'kms:Decrypt', 'kms:GenerateDataKey', 'kms:DescribeKey');
    acknowledgeCustomResourceProvider(this);
  }
}

/**
 * AwsCustomResource runs on one singleton function per stack whose code and role are CDK's own; its
 * role carries the AWS managed basic execution policy.
 */
function acknowledgeCustomResourceProvider(scope: Construct): void {
  const stack = Stack.of(scope);
  const provider = stack.node.children.find((c) =>
    c.node.id.startsWith('AWS679f53fac002430cb0da5b7982bd2287'),
  );
  if (!provider) return;
  const reason = "CDK's own AwsCustomResource provider; its code, runtime and role are not ours to change.";
  for (const id of [
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'AwsSolutions-L1',
  ]) {
    Validations.of(provider).acknowledge({ id, reason });
  }
}
