import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type VolumeRecord, VolumeState } from '../../lambdas/shared/model.js';
import { mountPathProblem } from '../../lambdas/shared/mount-path.js';
import { executionName, WorkflowAction, type WorkflowInput } from '../../lambdas/shared/workflow-input.js';
import { awsCall } from '../aws.js';
import { type CommandContext, type CommandResult, type HostSession, openHostSession } from '../context.js';
import { ClientError, ExitCode, UsageError } from '../errors.js';
import { renderPairs } from '../format.js';
import { requireArn } from '../pool-config.js';
import { createProgress } from '../progress.js';
import { type ExecutionOutcome, startExecution, waitForExecution } from '../workflow.js';

/** Workflow errors that mean "someone else holds it", reported as a conflict (exit 7). */
const conflictErrors = new Set(['AssignmentConflict', 'VolumeHeldElsewhere']);

/** Where the workflows mount when no --mount is given (the workflows' MOUNT_PATH default). */
const defaultMountPath = '/srv/www';

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

/**
 * Refuses to acquire for a host that already holds a volume or has an acquire or release in flight
 * (its assignment says so): acquiring twice would only remount the same volume.
 */
async function refuseIfHeld(session: HostSession): Promise<void> {
  const { host, repo, config } = session;
  const assignment = await awsCall('dynamodb:GetItem', () => repo.getAssignment(host.instanceId));
  if (!assignment) return;
  const details = { instanceId: host.instanceId, pool: assignment.pool, volumeId: assignment.volumeId };
  if (assignment.pool !== config.pool) {
    throw new ClientError(
      ExitCode.Conflict,
      'VolumeAlreadyHeld',
      `this host (${host.instanceId}) already has a volume of pool '${assignment.pool}'; release it there first`,
      details,
    );
  }
  const volumeId = assignment.volumeId;
  const volume = volumeId ? await awsCall('dynamodb:GetItem', () => repo.findVolume(volumeId)) : undefined;
  if (volume?.state === VolumeState.InUse && volume.holder === host.instanceId) {
    throw new ClientError(
      ExitCode.Conflict,
      'VolumeAlreadyHeld',
      `this host (${host.instanceId}) already holds ${volume.volumeId}${volume.device ? ` on ${volume.device}` : ''}; run 'volsd-client release' first`,
      { ...details, state: volume.state, device: volume.device },
    );
  }
  throw new ClientError(
    ExitCode.Conflict,
    'AcquireInProgress',
    volume
      ? `an acquire or release is in progress for this host (${volume.volumeId} is ${volume.state})`
      : `an acquire is in progress for this host (${host.instanceId})`,
    { ...details, ...(volume ? { state: volume.state } : {}) },
  );
}

/** Turns a workflow that did not succeed into the client error to exit with. */
function workflowFailure(label: string, outcome: ExecutionOutcome): ClientError {
  const error = outcome.error ?? outcome.status;
  const cause = (outcome.cause ?? '').split('\n')[0]?.slice(0, 500) ?? '';
  const details = { executionArn: outcome.executionArn, status: outcome.status, error, cause };
  if (conflictErrors.has(error)) {
    return new ClientError(
      ExitCode.Conflict,
      'VolumeAlreadyHeld',
      `${label} refused: ${error}${cause ? `: ${cause}` : ''}`,
      details,
    );
  }
  return new ClientError(
    ExitCode.WorkflowFailed,
    'WorkflowFailed',
    `${label} failed (${outcome.status}): ${error}${cause ? `: ${cause}` : ''}`,
    details,
  );
}

async function runWorkflow(
  ctx: CommandContext,
  session: HostSession,
  label: 'acquire' | 'release',
  stateMachineArn: string,
  input: WorkflowInput,
): Promise<{ started: { executionArn: string }; outcome?: ExecutionOutcome }> {
  const started = await startExecution(session.clients.sfn, stateMachineArn, executionName(input), input);
  if (ctx.args.noWait) return { started };
  const progress = createProgress(ctx.progressMode, label, ctx.progressSink, ctx.now);
  try {
    const outcome = await waitForExecution(session.clients.sfn, started.executionArn, {
      timeoutMs: ctx.args.timeoutSeconds * 1000,
      progress,
      label,
      steps: ctx.progressMode !== 'silent',
      now: ctx.now,
    });
    return { started, outcome };
  } finally {
    progress.stop();
  }
}

/** `acquire`: claims, attaches and mounts a pool volume on this host through the acquire workflow. */
export async function acquire(ctx: CommandContext): Promise<CommandResult> {
  const session = await openHostSession(ctx);
  const { host, config } = session;
  const stateMachineArn = requireArn(config, 'acquireStateMachineArn', 'the acquire workflow');
  await refuseIfHeld(session);
  if (ctx.args.mount) {
    // The workflow and the host refuse it too; refusing here saves a claim and says why. The pool
    // publishes its mount path only: further roots (the workflows' MOUNT_ROOTS) are checked there.
    const roots = [config.mountPath ?? defaultMountPath];
    const problem = mountPathProblem(ctx.args.mount, roots);
    if (problem) throw new UsageError(`--mount: ${problem}`, 'volsd-client acquire --help');
  }
  const input: WorkflowInput = {
    pool: config.pool,
    instanceId: host.instanceId,
    action: WorkflowAction.ManualAcquire,
    requestId: randomUUID(),
    ...(ctx.args.mount ? { mountPath: ctx.args.mount } : {}),
  };
  const { started, outcome } = await runWorkflow(ctx, session, 'acquire', stateMachineArn, input);
  if (!outcome) {
    return {
      data: {
        status: 'RUNNING',
        pool: config.pool,
        instanceId: host.instanceId,
        executionArn: started.executionArn,
      },
      text: `acquire started: ${started.executionArn}\n`,
    };
  }
  if (outcome.status !== 'SUCCEEDED') throw workflowFailure('acquire', outcome);
  const out = outcome.output ?? {};
  const data = {
    status: 'ACQUIRED',
    pool: config.pool,
    instanceId: host.instanceId,
    az: str(out.az) ?? host.az,
    volumeId: str(out.volumeId),
    device: str(out.device),
    mountPath: ctx.args.mount ?? str(out.mountPath) ?? config.mountPath ?? defaultMountPath,
    generation: num(out.generation),
    executionArn: outcome.executionArn,
  };
  return {
    data,
    text: renderPairs([
      ['volume', data.volumeId],
      ['device', data.device],
      ['mounted at', data.mountPath],
      ['generation', data.generation],
      ['az', data.az],
    ]),
  };
}

/** `release`: unmounts and gives back this host's volume through the release workflow. */
export async function release(ctx: CommandContext): Promise<CommandResult> {
  const session = await openHostSession(ctx);
  const { host, config } = session;
  const stateMachineArn = requireArn(config, 'releaseStateMachineArn', 'the release workflow');
  const input: WorkflowInput = {
    pool: config.pool,
    instanceId: host.instanceId,
    action: WorkflowAction.ManualRelease,
    requestId: randomUUID(),
  };
  const { started, outcome } = await runWorkflow(ctx, session, 'release', stateMachineArn, input);
  if (!outcome) {
    return {
      data: {
        status: 'RUNNING',
        pool: config.pool,
        instanceId: host.instanceId,
        executionArn: started.executionArn,
      },
      text: `release started: ${started.executionArn}\n`,
    };
  }
  if (outcome.status !== 'SUCCEEDED') throw workflowFailure('release', outcome);
  const out = outcome.output ?? {};
  const found = out.found === true;
  const data = {
    status: found ? 'RELEASED' : 'NOTHING_HELD',
    pool: config.pool,
    instanceId: host.instanceId,
    volumeId: found ? str(out.volumeId) : undefined,
    outcome: str(out.outcome),
    executionArn: outcome.executionArn,
  };
  return {
    data,
    text: found
      ? renderPairs([
          ['released', data.volumeId],
          ['outcome', data.outcome],
        ])
      : `this host (${host.instanceId}) holds no volume of pool '${config.pool}'\n`,
  };
}

/**
 * Where the volume is mounted on this host: the record Volsd-Mount keeps in
 * `/etc/volsd/mounts.d/<volumeId>` (under `VOLSD_ROOT`, the host-root prefix the Volsd scripts use).
 */
async function recordedMountPath(env: Record<string, string | undefined>, volumeId: string) {
  try {
    const text = await readFile(join(env.VOLSD_ROOT ?? '/', 'etc/volsd/mounts.d', volumeId), 'utf8');
    return text.split('\n')[0]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** `status`: the volume this host holds (if any): state, device, mount point, generation, currency. */
export async function status(ctx: CommandContext): Promise<CommandResult> {
  const session = await openHostSession(ctx);
  const { host, config, repo } = session;
  const assignment = await awsCall('dynamodb:GetItem', () => repo.getAssignment(host.instanceId));
  const base = { pool: config.pool, instanceId: host.instanceId, az: host.az };
  if (assignment && assignment.pool !== config.pool) {
    return {
      data: {
        ...base,
        status: 'OTHER_POOL',
        assignedPool: assignment.pool,
        volumeId: assignment.volumeId ?? null,
      },
      text: `this host (${host.instanceId}) is assigned to pool '${assignment.pool}', not '${config.pool}'\n`,
    };
  }
  const volumeId = assignment?.volumeId;
  const volume: VolumeRecord | undefined = volumeId
    ? await awsCall('dynamodb:GetItem', () => repo.findVolume(volumeId))
    : undefined;
  if (!volume || volume.holder !== host.instanceId) {
    const data = { ...base, status: assignment ? 'PENDING' : 'NONE', volumeId: volumeId ?? null };
    return {
      data,
      text: assignment
        ? `this host (${host.instanceId}) has an acquire in progress${volumeId ? ` (${volumeId})` : ''}\n`
        : `this host (${host.instanceId}) holds no volume of pool '${config.pool}'\n`,
    };
  }
  const pool = await awsCall('dynamodb:GetItem', () => repo.getPool(config.pool));
  const mountPath =
    volume.state === VolumeState.InUse
      ? ((await recordedMountPath(ctx.env, volume.volumeId)) ?? config.mountPath ?? defaultMountPath)
      : undefined;
  const data = {
    ...base,
    status: volume.state === VolumeState.InUse ? 'HELD' : 'PENDING',
    volumeId: volume.volumeId,
    state: volume.state,
    device: volume.device,
    mountPath,
    generation: volume.generation,
    poolGeneration: pool.generation,
    current: volume.generation >= pool.generation,
    claimedAt: volume.claimedAt,
  };
  return {
    data,
    text: renderPairs([
      ['volume', data.volumeId],
      ['state', data.state],
      ['device', data.device],
      ['mounted at', data.mountPath],
      [
        'generation',
        `${data.generation} (pool: ${data.poolGeneration}${data.current ? ', current' : ', behind'})`,
      ],
      ['held since', data.claimedAt],
    ]),
  };
}
