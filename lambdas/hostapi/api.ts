import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { VolumeState } from '../shared/model.js';
import type { VolumeRepository } from '../shared/repository.js';
import { instanceIdSchema, poolNameSchema } from '../shared/validate.js';
import {
  executionName,
  WorkflowAction,
  type WorkflowInput,
  workflowInputSchema,
} from '../shared/workflow-input.js';
import { type ExecutionResponse, HostRoute, type StartedResponse, type StatusResponse } from './contract.js';

/** The host API's configuration, read once at cold start (handler.ts). */
export interface HostApiConfig {
  pool: string;
  /** The pool's account: callers of another account are refused. */
  accountId: string;
  acquireStateMachineArn: string;
  releaseStateMachineArn: string;
}

/** What the routes need, injected so tests and the sandbox need no environment. */
export interface HostApiDeps {
  config: HostApiConfig;
  sfn: SFNClient;
  repo: Pick<VolumeRepository, 'getAssignment' | 'findVolume' | 'getPool'>;
}

/** A refusal the caller may see: HTTP status, a stable code and a one-line message. */
export class HostApiError extends Error {
  override name = 'HostApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

const requestIdSchema = z.string().regex(/^[A-Za-z0-9-]{1,36}$/, '1-36 of [A-Za-z0-9-]');
const acquireSchema = z
  .object({
    pool: poolNameSchema,
    requestId: requestIdSchema,
    mountPath: workflowInputSchema.shape.mountPath,
    expectedInstanceId: instanceIdSchema.optional(),
  })
  .strict();
const releaseSchema = z
  .object({
    pool: poolNameSchema,
    requestId: requestIdSchema,
    expectedInstanceId: instanceIdSchema.optional(),
  })
  .strict();
const statusSchema = z.object({ pool: poolNameSchema }).strict();
const executionSchema = z
  .object({
    executionArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[\w-]{1,80}:[\w-]{1,80}$/),
    step: z.boolean().optional(),
  })
  .strict();

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    throw new HostApiError(400, 'InvalidInput', `invalid request: ${detail}`);
  }
  return result.data;
}

/** Refuses a caller whose credentials prove another instance than the one it says it is. */
function expectedCaller(instanceId: string, expected: string | undefined): void {
  if (expected !== undefined && expected !== instanceId) {
    throw new HostApiError(
      403,
      'NotThisHost',
      `the credentials in use belong to ${instanceId}, not to ${expected}; nothing was started`,
      { instanceId, expectedInstanceId: expected },
    );
  }
}

function samePool(config: HostApiConfig, pool: string): void {
  if (pool !== config.pool) {
    throw new HostApiError(400, 'WrongPool', `this endpoint serves pool '${config.pool}', not '${pool}'`);
  }
}

/**
 * Refuses an acquire for an instance that already holds a volume or has an acquire or release in flight
 * (its assignment says so): acquiring twice would only remount the same volume.
 */
async function refuseIfHeld(deps: HostApiDeps, instanceId: string): Promise<void> {
  const assignment = await deps.repo.getAssignment(instanceId);
  if (!assignment) return;
  const details = { instanceId, pool: assignment.pool, volumeId: assignment.volumeId };
  if (assignment.pool !== deps.config.pool) {
    throw new HostApiError(
      409,
      'VolumeAlreadyHeld',
      `this host (${instanceId}) already has a volume of pool '${assignment.pool}'; release it there first`,
      details,
    );
  }
  const volume = assignment.volumeId ? await deps.repo.findVolume(assignment.volumeId) : undefined;
  if (volume?.state === VolumeState.InUse && volume.holder === instanceId) {
    throw new HostApiError(
      409,
      'VolumeAlreadyHeld',
      `this host (${instanceId}) already holds ${volume.volumeId}${volume.device ? ` on ${volume.device}` : ''}; run 'volsd-client release' first`,
      { ...details, state: volume.state, device: volume.device },
    );
  }
  throw new HostApiError(
    409,
    'AcquireInProgress',
    volume
      ? `an acquire or release is in progress for this host (${volume.volumeId} is ${volume.state})`
      : `an acquire is in progress for this host (${instanceId})`,
    { ...details, ...(volume ? { state: volume.state } : {}) },
  );
}

async function start(
  deps: HostApiDeps,
  stateMachineArn: string,
  input: WorkflowInput,
): Promise<StartedResponse> {
  const name = executionName(input);
  const out = await deps.sfn
    .send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }))
    .catch(async (err: unknown) => {
      // Step Functions answers a repeat of a running execution itself; one that ended comes here.
      if ((err as Error).name !== 'ExecutionAlreadyExists') throw err;
      const earlier = await startedBefore(deps, stateMachineArn, input);
      if (!earlier) throw err;
      return earlier;
    });
  if (!out.executionArn) throw new Error('StartExecution returned no ARN');
  return { instanceId: input.instanceId, executionArn: out.executionArn, executionName: name };
}

/** DescribeExecution's answer for an execution that does not exist (by class, or by name across SDK copies). */
function isMissingExecution(err: unknown): boolean {
  return err instanceof ExecutionDoesNotExist || (err as Error).name === 'ExecutionDoesNotExist';
}

/** The ARN of the execution `name` of `stateMachineArn` (`...:stateMachine:m` -> `...:execution:m:name`). */
function executionArnOf(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

/**
 * The execution an earlier try of this very request started (same request id, so same name), or
 * undefined: a client that lost the answer and asks again is told the execution it started, not
 * refused because that execution already claimed a volume for it.
 */
async function startedBefore(
  deps: HostApiDeps,
  stateMachineArn: string,
  input: WorkflowInput,
): Promise<StartedResponse | undefined> {
  const name = executionName(input);
  const executionArn = executionArnOf(stateMachineArn, name);
  try {
    const described = await deps.sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (described.input !== JSON.stringify(input)) return undefined;
  } catch (err) {
    if (isMissingExecution(err)) return undefined;
    throw err;
  }
  return { instanceId: input.instanceId, executionArn, executionName: name };
}

/** The execution names of `instanceId`'s workflows: `<action>-<instance id>-...` (executionName). */
function ownsExecution(instanceId: string, name: string): boolean {
  return Object.values(WorkflowAction).some((action) => name.startsWith(`${action}-${instanceId}-`));
}

/** The state machine name of an ARN (`...:stateMachine:<name>` or `...:execution:<name>:<execution>`). */
function machineOf(arn: string): string | undefined {
  return /:(?:stateMachine|execution):([\w-]+)/.exec(arn)?.[1];
}

async function describe(
  deps: HostApiDeps,
  instanceId: string,
  request: z.infer<typeof executionSchema>,
): Promise<ExecutionResponse> {
  const { executionArn } = request;
  const [, , , region, account, , machine, name] = executionArn.split(':');
  const ours = [deps.config.acquireStateMachineArn, deps.config.releaseStateMachineArn].some((arn) => {
    const parts = arn.split(':');
    return parts[3] === region && parts[4] === account && machineOf(arn) === machine;
  });
  // The same answer for another instance's execution and for one that does not exist: nothing to learn.
  if (!ours || !name || !ownsExecution(instanceId, name)) {
    throw new HostApiError(404, 'ExecutionNotFound', `no execution of this host: ${executionArn}`);
  }
  const described = await deps.sfn
    .send(new DescribeExecutionCommand({ executionArn }))
    .catch((err: unknown) => {
      if (isMissingExecution(err)) {
        throw new HostApiError(404, 'ExecutionNotFound', `no execution of this host: ${executionArn}`);
      }
      throw err;
    });
  const status = described.status ?? 'UNKNOWN';
  let step: string | undefined;
  if (request.step && status === 'RUNNING') {
    // Only for the progress display: a history that cannot be read hides the step, never fails the call.
    const history = await deps.sfn
      .send(new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 20 }))
      .catch(() => undefined);
    step = history?.events?.find((e) => e.stateEnteredEventDetails?.name)?.stateEnteredEventDetails?.name;
  }
  return {
    executionArn,
    status,
    ...(described.output ? { output: described.output } : {}),
    ...(described.error ? { error: described.error } : {}),
    ...(described.cause ? { cause: described.cause } : {}),
    ...(step ? { step } : {}),
  };
}

async function status(deps: HostApiDeps, instanceId: string): Promise<StatusResponse> {
  const assignment = await deps.repo.getAssignment(instanceId);
  if (!assignment) return { instanceId };
  const answer: StatusResponse = {
    instanceId,
    assignment: { pool: assignment.pool, ...(assignment.volumeId ? { volumeId: assignment.volumeId } : {}) },
  };
  if (assignment.pool !== deps.config.pool || !assignment.volumeId) return answer;
  const volume = await deps.repo.findVolume(assignment.volumeId);
  // Only a volume this instance holds: the assignment could name one that moved on.
  if (!volume || volume.holder !== instanceId) return answer;
  const pool = await deps.repo.getPool(deps.config.pool);
  return {
    ...answer,
    volume: {
      volumeId: volume.volumeId,
      state: volume.state,
      holder: volume.holder,
      ...(volume.device ? { device: volume.device } : {}),
      generation: volume.generation,
      ...(volume.claimedAt ? { claimedAt: volume.claimedAt } : {}),
    },
    poolGeneration: pool.generation,
  };
}

/**
 * Runs one host API route for `instanceId`, the instance the caller's credentials prove (never one named
 * in `body`): acquire and release start the pool's workflows for that instance only; status and
 * execution read only what concerns it. Throws HostApiError for what the caller should be told.
 */
export async function runRoute(
  deps: HostApiDeps,
  instanceId: string,
  route: string,
  body: unknown,
): Promise<StartedResponse | StatusResponse | ExecutionResponse> {
  const { config } = deps;
  switch (route) {
    case HostRoute.Acquire: {
      const request = parse(acquireSchema, body);
      expectedCaller(instanceId, request.expectedInstanceId);
      samePool(config, request.pool);
      const input: WorkflowInput = {
        pool: config.pool,
        instanceId,
        action: WorkflowAction.ManualAcquire,
        requestId: request.requestId,
        ...(request.mountPath ? { mountPath: request.mountPath } : {}),
      };
      try {
        await refuseIfHeld(deps, instanceId);
      } catch (err) {
        // Held or in flight because of this very request (a retry after a lost answer): its execution.
        const earlier =
          err instanceof HostApiError && (await startedBefore(deps, config.acquireStateMachineArn, input));
        if (earlier) return earlier;
        throw err;
      }
      return start(deps, config.acquireStateMachineArn, input);
    }
    case HostRoute.Release: {
      const request = parse(releaseSchema, body);
      expectedCaller(instanceId, request.expectedInstanceId);
      samePool(config, request.pool);
      return start(deps, config.releaseStateMachineArn, {
        pool: config.pool,
        instanceId,
        action: WorkflowAction.ManualRelease,
        requestId: request.requestId,
      });
    }
    case HostRoute.Status:
      samePool(config, parse(statusSchema, body).pool);
      return status(deps, instanceId);
    case HostRoute.Execution:
      return describe(deps, instanceId, parse(executionSchema, body));
    default:
      throw new HostApiError(404, 'UnknownRoute', `no route '${route}'`);
  }
}
