import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { commandOutcome, type ScriptResult } from './commands.js';
import { InvalidInput } from './errors.js';
import { recordHeartbeat } from './lifecycle.js';
import type { VolumeRepository } from './repository.js';
import { nowMs } from './time.js';
import type { WorkflowConfig } from './workflow-config.js';
import type { WorkflowInput } from './workflow-input.js';

/** What every workflow step gets injected: the table, the AWS clients and the configuration. */
export interface StepDeps {
  repo: VolumeRepository;
  ec2: EC2Client;
  ssm: SSMClient;
  autoScaling: AutoScalingClient;
  sfn: SFNClient;
  config: WorkflowConfig;
}

/** An SSM command a later `waitCommand` step polls. */
export interface PendingCommand {
  commandId: string;
  instanceId: string;
  document: string;
}

/**
 * The state an acquire or release execution carries from step to step (the whole state machine data;
 * each Task returns it updated). Small by design: ids and a few facts, never listings.
 */
export interface WorkflowCtx extends WorkflowInput {
  az?: string;
  volumeId?: string;
  /** Instance that held the volume before (the AZ's sync worker). */
  workerId?: string;
  device?: string;
  /** Device names not to attach at again (a forced detach may leave one unusable until reboot). */
  avoidDevices?: string[];
  /**
   * Device names in the instance's block device mappings when Resolve described it (its launch mappings):
   * what the first attach on the boot-unit path avoids without describing the instance again.
   */
  launchDevices?: string[];
  command?: PendingCommand;
  /** Results of the last finished command (its VOLSD_RESULT lines). */
  lastResults?: ScriptResult[];
  /** Content generation the volume holds, as the last mount or sync reported it. */
  generation?: number;
  /** Generation a running sync brings the volume to. */
  syncingTo?: number;
  current?: boolean;
  syncRounds?: number;
  attachRequestedAt?: number;
  attachAttempts?: number;
  /** Volsd-Mount commands sent to the instance so far (a timed-out one is sent again, within a bound). */
  mountAttempts?: number;
  /** Set by WaitMount's Catch: the timed-out mount that is being sent again. */
  mountError?: { Error?: string; Cause?: string };
  heartbeatAt?: number;
  startedAt?: number;
  force?: boolean;
  /** The volume was created from a snapshot for this instance (no idle volume in its AZ). */
  direct?: boolean;
  /**
   * How the volume stood in its EBS initialization when the instance went InService: `warm` (pool
   * volume, or a direct one already initialized), `held` (the launch waited for it), `cold` (handed over
   * still initializing: COLD_DIRECT_VOLUME=continue, or the hold ran out). Set by CheckInitialized.
   */
  initialization?: 'warm' | 'held' | 'cold';
  /** When the acquire started holding for a direct volume's initialization (epoch ms). */
  holdingSince?: number;
  /** Seconds CheckInitialized's Wait lasts before the next look. */
  initializationWaitSeconds?: number;
  /** How the workflow ended, for the record and the metrics. */
  outcome?: string;
  /** Set by a Catch: the error that sent the execution to compensation. */
  error?: { Error?: string; Cause?: string };
  compensation?: string;
  /** Set by a Catch when the compensation's own command failed. */
  compensationError?: { Error?: string; Cause?: string };
  found?: boolean;
  /** The instance runs Volsd's boot unit (instance tag volsd:boot-unit=1): it mounts and signals. */
  bootUnit?: boolean;
  /** Set by a Catch: the boot unit failed or was silent; the acquire mounts over SSM. */
  bootUnitError?: { Error?: string; Cause?: string };
  /** The boot-unit path attached and the Task waited for the unit's signal (lambdas/acquire/callbacks.ts). */
  attachedForUnit?: boolean;
  /** A callback Task's token (`$$.Task.Token`), given to the step only; never part of its output. */
  taskToken?: string;
}

/** A step: takes the execution's data, returns it updated. */
export type Step<C = WorkflowCtx> = (ctx: C, deps: StepDeps) => Promise<C>;

/** Runs the named step of a step table; an unknown step is a programming error. */
export async function runStep<C>(
  steps: Record<string, Step<C>>,
  event: { step?: unknown; ctx?: unknown },
  deps: StepDeps,
): Promise<C> {
  const name = typeof event.step === 'string' ? event.step : '';
  const step = steps[name];
  if (!step) throw new InvalidInput(`unknown step "${name}"`);
  if (!event.ctx || typeof event.ctx !== 'object') throw new InvalidInput(`step ${name} got no ctx`);
  return step(event.ctx as C, deps);
}

/**
 * Polls the pending command (CommandPending while it runs: the state machine retries this step) and
 * records its results. Sends a lifecycle heartbeat when due, since a long sync is where a wait could
 * outlast the hook's timeout.
 */
export const waitCommand: Step = async (ctx, deps) => {
  const command = ctx.command;
  if (!command) return ctx;
  const next = await maybeHeartbeat(ctx, deps);
  const outcome = await commandOutcome(deps.ssm, command.commandId, command.instanceId);
  const { command: _done, ...rest } = next;
  return { ...rest, lastResults: outcome.results };
};

/**
 * Records a lifecycle heartbeat when a third of the heartbeat timeout has passed since the start or the
 * last heartbeat, so no wait of Volsd's can run the action into its timeout.
 */
export async function maybeHeartbeat(ctx: WorkflowCtx, deps: StepDeps): Promise<WorkflowCtx> {
  if (!ctx.lifecycle) return ctx;
  const now = nowMs();
  const last = ctx.heartbeatAt ?? ctx.startedAt ?? now;
  if (now - last < (deps.config.HEARTBEAT_TIMEOUT * 1000) / 3) return { ...ctx, heartbeatAt: last };
  await recordHeartbeat(deps.autoScaling, ctx.lifecycle, ctx.instanceId);
  return { ...ctx, heartbeatAt: now };
}

/** The value of `field` in the last results that names `volumeId`, as a number. */
export function resultNumber(ctx: WorkflowCtx, volumeId: string, field: string): number | undefined {
  const result = ctx.lastResults?.find((r) => r.volumeId === volumeId) ?? ctx.lastResults?.[0];
  const value = result?.[field];
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  return undefined;
}
