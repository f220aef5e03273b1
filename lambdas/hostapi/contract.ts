/**
 * The host API's wire contract, shared by the function (lambdas/hostapi/), volsd-client (client/host-api.ts)
 * and the sandbox gateway; free of CDK and SDK imports so the client bundle stays small.
 *
 * Every route is `POST /<route>` with a JSON body, signed with SigV4 (service `lambda`) by the host's own
 * instance-profile credentials. The function never acts for an instance id read from the body: it acts for
 * the instance its caller's credentials name (see `identity.ts` and docs/decisions.md, "Host identity").
 * A body may name the instance the caller expects to be (`expectedInstanceId`, as S3's
 * `ExpectedBucketOwner`): another one is refused (403 `NotThisHost`) before anything starts.
 */

/** The routes of the host API. */
export const HostRoute = {
  /** Start the acquire workflow for the calling instance. */
  Acquire: 'acquire',
  /** Start the release workflow for the calling instance. */
  Release: 'release',
  /** The calling instance's assignment, its volume and the pool's generation. */
  Status: 'status',
  /** How one of the calling instance's own executions stands (and, when asked, its current step). */
  Execution: 'execution',
} as const;
export type HostRoute = (typeof HostRoute)[keyof typeof HostRoute];

/** Body of `acquire`. */
export interface AcquireRequest {
  pool: string;
  /** A fresh id per request (the execution name derives from it, so a retried call starts nothing new). */
  requestId: string;
  mountPath?: string;
  /** The instance the caller is: credentials of another instance are refused (403 NotThisHost). */
  expectedInstanceId?: string;
}

/** Body of `release`. */
export interface ReleaseRequest {
  pool: string;
  requestId: string;
  /** The instance the caller is: credentials of another instance are refused (403 NotThisHost). */
  expectedInstanceId?: string;
}

/** Body of `status`. */
export interface StatusRequest {
  pool: string;
}

/** Body of `execution`. */
export interface ExecutionRequest {
  executionArn: string;
  /** Also read the state the execution last entered (one GetExecutionHistory call). */
  step?: boolean;
}

/** Answer of `acquire` and `release`. */
export interface StartedResponse {
  instanceId: string;
  executionArn: string;
  executionName: string;
}

/** Answer of `status`. */
export interface StatusResponse {
  instanceId: string;
  assignment?: { pool: string; volumeId?: string };
  volume?: {
    volumeId: string;
    state: string;
    holder?: string;
    device?: string;
    generation: number;
    claimedAt?: string;
  };
  poolGeneration?: number;
}

/** Answer of `execution`. */
export interface ExecutionResponse {
  executionArn: string;
  status: string;
  output?: string;
  error?: string;
  cause?: string;
  step?: string;
}

/** An error answer: HTTP status 4xx/5xx with this body. `details` only where the caller may see them. */
export interface HostApiErrorBody {
  error: string;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * What the host policy allows (lib/permissions.ts builds the host policy from this list, and the sandbox
 * gateway enforces exactly this list for a host's own credentials): read the pool's configuration
 * parameters and invoke the host API through its function URL. Nothing of Step Functions or the table.
 * Since October 2025 a new function URL needs both `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction`
 * (AWS Lambda Developer Guide, "Control access to Lambda function URLs"); the latter is limited to calls
 * through the URL (`lambda:InvokedViaFunctionUrl`), so a host cannot invoke the function with an event
 * it wrote itself.
 */
export const hostPolicyActions = [
  'ssm:GetParameter',
  'ssm:GetParameters',
  'ssm:GetParametersByPath',
  'lambda:InvokeFunctionUrl',
  'lambda:InvokeFunction',
] as const;
