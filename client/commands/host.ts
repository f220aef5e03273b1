import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StartedResponse } from '../../lambdas/hostapi/contract.js';
import { VolumeState } from '../../lambdas/shared/model.js';
import { mountPathProblem } from '../../lambdas/shared/mount-path.js';
import { type CommandContext, type CommandResult, type HostSession, openHostSession } from '../context.js';
import { ClientError, ExitCode, UsageError } from '../errors.js';
import { renderPairs } from '../format.js';
import { createProgress } from '../progress.js';
import { type ExecutionOutcome, pollExecution } from '../workflow.js';

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
  startWorkflow: () => Promise<StartedResponse>,
): Promise<{ started: StartedResponse; outcome?: ExecutionOutcome }> {
  // The request names this host (expectedInstanceId): the host API refuses another instance's
  // credentials (403 NotThisHost) before anything starts. The answer is checked again here.
  const started = await startWorkflow();
  if (started.instanceId !== session.host.instanceId) {
    throw new ClientError(
      ExitCode.PermissionDenied,
      'NotThisHost',
      `the credentials in use belong to ${started.instanceId}, not to this host (${session.host.instanceId}); ${label} runs for ${started.instanceId}`,
      { executionArn: started.executionArn },
    );
  }
  if (ctx.args.noWait) return { started };
  const progress = createProgress(ctx.progressMode, label, ctx.progressSink, ctx.now);
  try {
    const outcome = await pollExecution(
      (executionArn, step) => session.hostApi.execution({ executionArn, step }),
      started.executionArn,
      {
        timeoutMs: ctx.args.timeoutSeconds * 1000,
        progress,
        label,
        steps: ctx.progressMode !== 'silent',
        now: ctx.now,
      },
    );
    return { started, outcome };
  } catch (err) {
    // The wait ended, not the workflow: say which execution goes on, as a timeout does.
    if (err instanceof ClientError && err.exitCode !== ExitCode.Timeout && !err.details.executionArn) {
      throw new ClientError(
        err.exitCode,
        err.code,
        `${err.message}; the ${label} goes on: ${started.executionArn}`,
        { ...err.details, executionArn: started.executionArn },
        { cause: err },
      );
    }
    throw err;
  } finally {
    progress.stop();
  }
}

/** `acquire`: claims, attaches and mounts a pool volume on this host through the acquire workflow. */
export async function acquire(ctx: CommandContext): Promise<CommandResult> {
  const session = await openHostSession(ctx);
  const { host, config } = session;
  if (ctx.args.mount) {
    // The workflow and the host refuse it too; refusing here saves a claim and says why. The pool
    // publishes its mount path only: further roots (the workflows' MOUNT_ROOTS) are checked there.
    const roots = [config.mountPath ?? defaultMountPath];
    const problem = mountPathProblem(ctx.args.mount, roots);
    if (problem) throw new UsageError(`--mount: ${problem}`, 'volsd-client acquire --help');
  }
  const request = {
    pool: config.pool,
    requestId: randomUUID(),
    expectedInstanceId: host.instanceId,
    ...(ctx.args.mount ? { mountPath: ctx.args.mount } : {}),
  };
  const { started, outcome } = await runWorkflow(ctx, session, 'acquire', () =>
    session.hostApi.acquire(request),
  );
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
  const { started, outcome } = await runWorkflow(ctx, session, 'release', () =>
    session.hostApi.release({
      pool: config.pool,
      requestId: randomUUID(),
      expectedInstanceId: host.instanceId,
    }),
  );
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
  const { host, config } = session;
  const answer = await session.hostApi.status({ pool: config.pool });
  const { assignment } = answer;
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
  const volume = answer.volume;
  if (!volume || volume.holder !== host.instanceId) {
    const data = { ...base, status: assignment ? 'PENDING' : 'NONE', volumeId: volumeId ?? null };
    return {
      data,
      text: assignment
        ? `this host (${host.instanceId}) has an acquire in progress${volumeId ? ` (${volumeId})` : ''}\n`
        : `this host (${host.instanceId}) holds no volume of pool '${config.pool}'\n`,
    };
  }
  const poolGeneration = answer.poolGeneration ?? volume.generation;
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
    poolGeneration,
    current: volume.generation >= poolGeneration,
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
