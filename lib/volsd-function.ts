import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { type IGrantable, type PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStringParameter } from 'aws-cdk-lib/aws-ssm';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { metricsNamespace } from './monitoring.js';
import { acknowledgeWildcards, tableGrantAcknowledgements, volsdWildcardAcknowledgements } from './nag.js';

/** The repository root, found from this file so synthesis does not depend on the working directory. */
const projectRoot = fileURLToPath(new URL('..', import.meta.url));

/** Props of {@link VolsdFunction}. */
export interface VolsdFunctionProps {
  /** Path of the handler module (`lambdas/<name>/handler.ts`), absolute or relative to the project root. */
  readonly entry: string;
  /**
   * Exported name of the handler in `entry`.
   * @default 'handler'
   */
  readonly handler?: string;
  /**
   * Description shown in the console.
   * @default none
   */
  readonly description?: string;
  /**
   * Longest run of one invocation. Volsd steps are short AWS calls; waiting belongs in Step Functions.
   * @default Duration.seconds(30)
   */
  readonly timeout?: Duration;
  /**
   * Memory (and with it CPU) of the function, in MiB.
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Extra environment variables. Prefer the `bindX()` helpers, which grant access at the same time.
   * @default none
   */
  readonly environment?: Record<string, string>;
  /**
   * Powertools service name: the `service` key of every log line and metric.
   * @default the construct id
   */
  readonly serviceName?: string;
  /**
   * How long the function's log group keeps its events.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * What happens to the log group when the function leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Reserved concurrency, to protect a downstream API (EC2 mutating calls share one token bucket per
   * account and Region).
   * @default unreserved
   */
  readonly reservedConcurrentExecutions?: number;
  /**
   * Directory esbuild resolves modules from (must contain `entry`, `package-lock.json` and
   * `node_modules`).
   * @default the repository root
   */
  readonly projectRoot?: string;
}

/** Options of {@link VolsdFunction.consumeQueue}. */
export interface ConsumeQueueOptions {
  /**
   * Messages per invocation.
   * @default 10
   */
  readonly batchSize?: number;
  /**
   * How long Lambda gathers messages before it invokes, so a burst coalesces into few invocations.
   * @default no window
   */
  readonly maxBatchingWindow?: Duration;
  /**
   * Invocations running at once for this queue (2..1000).
   * @default no limit beyond the function's concurrency
   */
  readonly maxConcurrency?: number;
}

type TableAccess = 'read' | 'readWrite';
type BucketAccess = 'read' | 'readWrite';

/**
 * The item actions the functions' code uses (the document client's Get, Query, Put, Update, Delete;
 * test/infra/code-grants.test.ts holds every role to its bundle): not CDK's grantReadWriteData, which adds
 * Scan, the Batch and stream actions and DescribeTable, none of which Volsd calls.
 */
export const tableItemActions: Record<TableAccess, readonly string[]> = {
  read: ['dynamodb:GetItem', 'dynamodb:Query'],
  readWrite: [
    'dynamodb:GetItem',
    'dynamodb:Query',
    'dynamodb:PutItem',
    'dynamodb:UpdateItem',
    'dynamodb:DeleteItem',
  ],
};

/** On a table with a customer managed key: what DynamoDB needs of the caller to read, or to read and write. */
const tableKeyActions: Record<TableAccess, readonly string[]> = {
  read: ['kms:Decrypt', 'kms:DescribeKey'],
  readWrite: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'],
};
type StateMachineAccess = 'start' | 'startAndRead';

/**
 * A Volsd Lambda function: `NodejsFunction` with the project's defaults (Node.js 22 on ARM64, ESM
 * bundle built by the local esbuild with source maps, active tracing, a log group with retention, its
 * own role with no AWS managed policy) and `bindX()` helpers that grant access AND set the environment
 * variable naming the resource in one call, so grants and configuration never drift apart.
 */
export class VolsdFunction extends Construct {
  /** The Lambda function. */
  public readonly function: NodejsFunction;
  /** The function's execution role. */
  public readonly role: Role;
  /** The function's log group. */
  public readonly logGroup: LogGroup;
  /** Absolute path of the handler module (`lambdas/<name>/handler.ts`). */
  public readonly entry: string;
  /** Exported name of the handler in {@link entry}. */
  public readonly handlerName: string;
  private readonly environment = new Map<string, string>();
  private tableGrantsAcknowledged = false;

  constructor(scope: Construct, id: string, props: VolsdFunctionProps) {
    super(scope, id);
    const root = props.projectRoot ?? projectRoot;
    this.entry = props.entry.startsWith('/') ? props.entry : join(root, props.entry);
    this.handlerName = props.handler ?? 'handler';
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    // An own role instead of AWSLambdaBasicExecutionRole: logs go to this log group only.
    this.role = new Role(this, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, 'Function', {
      entry: this.entry,
      handler: this.handlerName,
      projectRoot: root,
      depsLockFilePath: join(root, 'package-lock.json'),
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      tracing: Tracing.ACTIVE,
      timeout: props.timeout ?? Duration.seconds(30),
      memorySize: props.memorySize ?? 256,
      role: this.role,
      logGroup: this.logGroup,
      description: props.description,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      environment: {
        POWERTOOLS_SERVICE_NAME: props.serviceName ?? id,
        POWERTOOLS_METRICS_NAMESPACE: metricsNamespace,
        // Stack traces point into the TypeScript sources.
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // The SDK ships with the runtime, but bundling pins the version the tests ran against.
        bundleAwsSDK: true,
        mainFields: ['module', 'main'],
        // Some CommonJS dependencies call require(); ESM output needs one.
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        forceDockerBundling: false,
      },
    });
    for (const [name, value] of Object.entries(props.environment ?? {})) this.setEnvironment(name, value);

    acknowledgeWildcards(this.role, volsdWildcardAcknowledgements);
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Node.js 22 is the runtime the project targets and tests (DESIGN.md); moving to 24 is a deliberate upgrade.',
    });
  }

  /** The function's principal, for grants made elsewhere. */
  public get grantPrincipal(): IGrantable['grantPrincipal'] {
    return this.function.grantPrincipal;
  }

  /**
   * Sets an environment variable. Setting one name twice to different values throws, so two
   * bindings can never fight over one variable.
   */
  public setEnvironment(name: string, value: string): this {
    const previous = this.environment.get(name);
    if (previous !== undefined && previous !== value) {
      throw new Error(`${this.node.path}: environment variable ${name} is already bound to another value`);
    }
    this.environment.set(name, value);
    this.function.addEnvironment(name, value);
    return this;
  }

  /**
   * Grants data access to `table` (its indexes and, for a table with a customer managed key, that key
   * included) and sets `envName` to its name.
   */
  public bindTable(table: ITable, envName = 'TABLE_NAME', access: TableAccess = 'readWrite'): this {
    table.grant(this.function, ...tableItemActions[access]);
    // The key actions CDK's grantReadData and grantReadWriteData give (table.grant gives none).
    table.encryptionKey?.grant(this.function, ...tableKeyActions[access]);
    if (!this.tableGrantsAcknowledged) {
      acknowledgeWildcards(this.role, tableGrantAcknowledgements);
      this.tableGrantsAcknowledged = true;
    }
    return this.setEnvironment(envName, table.tableName);
  }

  /**
   * Grants object access to `bucket` (optionally only to keys matching `keyPattern`, e.g. `live/*`)
   * and sets `envName` to its name.
   */
  public bindBucket(
    bucket: IBucket,
    envName = 'BUCKET_NAME',
    access: BucketAccess = 'read',
    keyPattern?: string,
  ): this {
    if (access === 'read') bucket.grantRead(this.function, keyPattern);
    else bucket.grantReadWrite(this.function, keyPattern);
    return this.setEnvironment(envName, bucket.bucketName);
  }

  /** Grants SendMessage on `queue` and sets `envName` to its URL. */
  public bindQueue(queue: IQueue, envName = 'QUEUE_URL'): this {
    queue.grantSendMessages(this.function);
    return this.setEnvironment(envName, queue.queueUrl);
  }

  /** Grants Publish on `topic` and sets `envName` to its ARN. */
  public bindTopic(topic: ITopic, envName = 'TOPIC_ARN'): this {
    topic.grantPublish(this.function);
    return this.setEnvironment(envName, topic.topicArn);
  }

  /**
   * Grants StartExecution on `stateMachine` (and, with `startAndRead`, reading its executions) and
   * sets `envName` to its ARN.
   */
  public bindStateMachine(
    stateMachine: IStateMachine,
    envName = 'STATE_MACHINE_ARN',
    access: StateMachineAccess = 'start',
  ): this {
    stateMachine.grantStartExecution(this.function);
    if (access === 'startAndRead') stateMachine.grantRead(this.function);
    return this.setEnvironment(envName, stateMachine.stateMachineArn);
  }

  /** Grants reading `parameter` and sets `envName` to its name. */
  public bindParameter(parameter: IStringParameter, envName: string): this {
    parameter.grantRead(this.function);
    return this.setEnvironment(envName, parameter.parameterName);
  }

  /** Adds statements (e.g. from `lib/permissions.ts`) to the function's role. */
  public addToRolePolicy(...statements: PolicyStatement[]): this {
    for (const statement of statements) this.role.addToPrincipalPolicy(statement);
    return this;
  }

  /**
   * Makes the function consume `queue` with partial batch responses (`ReportBatchItemFailures`), so
   * one bad message never re-drives the batch. The queue's visibility timeout must be at least the
   * function's timeout (AWS recommends six times).
   */
  public consumeQueue(queue: IQueue, options: ConsumeQueueOptions = {}): this {
    this.function.addEventSource(
      new SqsEventSource(queue, {
        batchSize: options.batchSize ?? 10,
        maxBatchingWindow: options.maxBatchingWindow,
        maxConcurrency: options.maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    return this;
  }
}
