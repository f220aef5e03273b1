import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { tableSchema } from '../lambdas/shared/table-schema.js';

/** Props of {@link VolumeTable}. */
export interface VolumeTableProps {
  /**
   * Customer managed KMS key for the table. Without one the table is encrypted with the AWS managed
   * key (`aws/dynamodb`), which costs nothing and needs no key policy.
   * @default AWS managed key
   */
  readonly encryptionKey?: IKey;
  /**
   * What happens to the table when it leaves the stack. The table is the pool's only record of who
   * holds which volume, so it is kept unless the caller says otherwise.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Refuse `DeleteTable` until the protection is lifted. Follows `removalPolicy` unless set.
   * @default true when removalPolicy is RETAIN, else false
   */
  readonly deletionProtection?: boolean;
}

/**
 * The volume table: one item per volume, assignment, pool and push. Keys and the `byPool` GSI come
 * from `lambdas/shared/table-schema.ts`, the same definition the local DynamoDB is built from, so the
 * cloud and the sandbox cannot drift apart. On-demand billing (traffic follows scale-outs), point in
 * time recovery, encryption at rest and deletion protection.
 */
export class VolumeTable extends Construct {
  /** The DynamoDB table. */
  public readonly table: Table;

  constructor(scope: Construct, id: string, props: VolumeTableProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const { partitionKey, sortKey, byPoolIndex } = tableSchema;
    this.table = new Table(this, 'Table', {
      partitionKey: { name: partitionKey, type: AttributeType.STRING },
      sortKey: { name: sortKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      ...(props.encryptionKey
        ? { encryption: TableEncryption.CUSTOMER_MANAGED, encryptionKey: props.encryptionKey }
        : { encryption: TableEncryption.AWS_MANAGED }),
      deletionProtection: props.deletionProtection ?? removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: byPoolIndex.name,
      partitionKey: { name: byPoolIndex.partitionKey, type: AttributeType.STRING },
      sortKey: { name: byPoolIndex.sortKey, type: AttributeType.STRING },
    });
  }
}
