import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { defaultAwsTimeoutSeconds } from './cli.js';
import { ClientError, ExitCode, UsageError } from './errors.js';

/** Tries of each AWS call (the SDK retries throttling, 5xx and timeouts with backoff in between). */
const awsMaxAttempts = 4;

/** The SDK clients a command uses, all in one Region with one credential chain. */
export interface AwsClients {
  region: string;
  sfn: SFNClient;
  ssm: SSMClient;
  doc: DynamoDBDocumentClient;
  /** The client under `doc` (the document client's destroy() leaves it open). */
  dynamo: DynamoDBClient;
}

/** How to reach AWS: `--region` and `--profile` as given (both optional), and the per-try timeouts. */
export interface AwsOptions {
  region?: string;
  profile?: string;
  /** Seconds an answer may take, per try (`--cli-read-timeout`); a try past it fails and is retried. */
  readTimeoutSeconds?: number;
  /** Seconds to connect, per try (`--cli-connect-timeout`). */
  connectTimeoutSeconds?: number;
}

/**
 * Resolves the Region: `--region`, else the SDK's own chain (`AWS_REGION`, the profile's `region`),
 * else `fallback` (an EC2 host's own Region from instance metadata). None: a usage error.
 */
export async function resolveRegion(options: AwsOptions, fallback?: string): Promise<string> {
  if (options.region) return options.region;
  const probe = new SSMClient(options.profile ? { profile: options.profile } : {});
  try {
    return await probe.config.region();
  } catch {
    if (fallback) return fallback;
    throw new UsageError('no AWS Region: pass --region or set AWS_REGION', 'volsd-client --help');
  } finally {
    probe.destroy();
  }
}

/**
 * Creates the clients. Endpoints come from the SDK's standard configuration
 * (`AWS_ENDPOINT_URL_SFN`, `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL_DYNAMODB`, or `endpoint_url` in the
 * profile), which is also how the sandbox is reached; credentials from the SDK's default chain (with
 * `--profile`, that profile).
 */
export function createClients(region: string, options: AwsOptions): AwsClients {
  // Without timeouts a try waits on an endpoint that accepts and never answers for the SDK's idle-socket
  // default (5-15 minutes), four tries in all; like the AWS CLI, 60 s each unless told otherwise.
  const requestHandler = {
    requestTimeout: (options.readTimeoutSeconds ?? defaultAwsTimeoutSeconds) * 1000,
    connectionTimeout: (options.connectTimeoutSeconds ?? defaultAwsTimeoutSeconds) * 1000,
    throwOnRequestTimeout: true,
  };
  const common = {
    region,
    maxAttempts: awsMaxAttempts,
    requestHandler,
    ...(options.profile ? { profile: options.profile } : {}),
  };
  const dynamo = new DynamoDBClient(common);
  return {
    region,
    sfn: new SFNClient(common),
    ssm: new SSMClient(common),
    doc: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
    dynamo,
  };
}

/** Closes the clients' connections so the process can exit at once. */
export function destroyClients(clients: AwsClients | undefined): void {
  clients?.sfn.destroy();
  clients?.ssm.destroy();
  clients?.doc.destroy();
  clients?.dynamo.destroy();
}

const deniedNames = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnauthorizedOperation',
  'UnauthorizedException',
  'AuthorizationError',
]);
const credentialNames = new Set([
  'CredentialsProviderError',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'ExpiredTokenException',
  'ExpiredToken',
  'InvalidClientTokenId',
]);

/** The IAM action an AccessDenied message names (`... not authorized to perform: states:StartExecution on ...`). */
export function deniedAction(message: string): string | undefined {
  return /perform:\s*([a-z0-9-]+:[A-Za-z0-9*]+)/.exec(message)?.[1];
}

/**
 * Runs one AWS call and turns its failures into client errors: AccessDenied -> PermissionDenied naming
 * the missing action (from AWS's message, else `action`); no or bad credentials -> PermissionDenied;
 * a table that does not exist -> UnknownPool; anything else -> Unexpected, naming the action.
 */
export async function awsCall<T>(action: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toClientError(err, action);
  }
}

/** The client error for an SDK failure of `action` (a ClientError passes through unchanged). */
export function toClientError(err: unknown, action: string): ClientError {
  if (err instanceof ClientError) return err;
  const e = err as {
    name?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    code?: string;
  };
  const name = e.name ?? 'Error';
  const message = e.message ?? String(err);
  if (deniedNames.has(name) || e.$metadata?.httpStatusCode === 403) {
    const missing = deniedAction(message) ?? action;
    return new ClientError(
      ExitCode.PermissionDenied,
      'PermissionDenied',
      `permission denied: this identity may not call ${missing}`,
      { action: missing, awsError: name, awsMessage: message },
      { cause: err },
    );
  }
  if (credentialNames.has(name)) {
    return new ClientError(
      ExitCode.PermissionDenied,
      'NoCredentials',
      `no usable AWS credentials for ${action}: ${firstLine(message)} (use --profile, the environment or an instance profile)`,
      { action, awsError: name },
      { cause: err },
    );
  }
  if (name === 'UnknownPool') {
    // The repository's own error: the parameters exist but the table has no pool record.
    return new ClientError(
      ExitCode.UnknownPool,
      'UnknownPool',
      firstLine(message),
      { action },
      { cause: err },
    );
  }
  if (name === 'ResourceNotFoundException' && action.startsWith('dynamodb:')) {
    return new ClientError(
      ExitCode.UnknownPool,
      'UnknownPool',
      `the pool's table does not exist (${firstLine(message)})`,
      { action, awsError: name },
      { cause: err },
    );
  }
  if (name === 'StateMachineDoesNotExist') {
    return new ClientError(
      ExitCode.NotDeployed,
      'NotDeployed',
      `the pool's configuration names a state machine that does not exist: ${firstLine(message)}`,
      { action, awsError: name },
      { cause: err },
    );
  }
  if (name === 'ZodError') {
    // A table item this client cannot read (written by a newer Volsd, or damaged): name it, not the call.
    const issues = (err as { issues?: { path?: unknown[]; message?: string }[] }).issues ?? [];
    const what = issues
      .slice(0, 3)
      .map((i) => `${(i.path ?? []).join('.') || 'item'}: ${i.message ?? 'invalid'}`)
      .join('; ');
    return new ClientError(
      ExitCode.Unexpected,
      'UnreadableItem',
      `an item ${action} returned cannot be read by this volsd-client (${what}); a newer Volsd may have written it`,
      { action, issues },
      { cause: err },
    );
  }
  if (name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    return new ClientError(
      ExitCode.Unexpected,
      'EndpointTimeout',
      `${action} got no answer in time after ${awsMaxAttempts} tries (${firstLine(message)}; see --cli-read-timeout, --cli-connect-timeout)`,
      { action, awsError: name },
      { cause: err },
    );
  }
  const network = e.code && /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN)$/.test(e.code);
  return new ClientError(
    ExitCode.Unexpected,
    network ? 'EndpointUnreachable' : 'AwsError',
    network
      ? `cannot reach the endpoint for ${action} (${e.code})`
      : `${action} failed: ${name}: ${firstLine(message)}`,
    { action, awsError: name, awsMessage: message },
    { cause: err },
  );
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
