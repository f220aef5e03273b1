import { createHash } from 'node:crypto';
import {
  type AutoScalingClient,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
} from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand, DescribeVolumesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { ListExecutionsCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { commandOutcome, sendDocument } from '../shared/commands.js';
import { attachmentOf, creationTag, deleteVolume, describeVolume, detachVolume } from '../shared/ec2-ops.js';
import {
  CommandFailed,
  CommandPending,
  InvalidInput,
  VolumeHeldElsewhere,
  VolumeNotReady,
} from '../shared/errors.js';
import { logger, metrics } from '../shared/logger.js';
import { heldStates, type VolumeRecord, VolumeState } from '../shared/model.js';
import type { Step, StepDeps } from '../shared/steps.js';
import { poolTag, Role, roleTag } from '../shared/tags.js';
import { nowMs } from '../shared/time.js';
import { parseOrThrow, poolNameSchema } from '../shared/validate.js';
import { loadReconcileConfig, type ReconcileConfig } from './config.js';
import {
  defaultBounds,
  type Ec2VolumeFact,
  type Facts,
  type ForeignVolumeFact,
  type InstanceFact,
  type PendingLaunchFact,
  planRepairs,
  type ReconcileBounds,
  type Repair,
  type RepairKind,
  repairKinds,
} from './plan.js';

/** At most this many foreign volumes are named in the execution's output and the table's report. */
export const maxForeignReported = 50;

/** Seconds the pool's reconcile lease lasts (the state machine's own timeout). */
export const leaseSeconds = 1800;

/** Input of the reconcile state machine: `{pool, reason}` from the schedule, bounds for tests and operators. */
export const reconcileInputSchema = z.object({
  /** @default POOL_NAME */
  pool: poolNameSchema.optional(),
  reason: z.string().max(64).optional(),
  claimMaxAgeSeconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 86400)
    .optional(),
  graceSeconds: z.number().int().min(0).max(86400).optional(),
  maxRepairs: z.number().int().min(1).max(100).optional(),
});

/** The data of a reconcile execution. */
export interface ReconcileCtx {
  input?: unknown;
  /** The execution's name: owner of the pool's reconcile lease, part of the replenish names it starts. */
  runId?: string;
  pool?: string;
  reason?: string;
  bounds?: ReconcileBounds;
  leased?: boolean;
  repairs?: Repair[];
  /** Repairs found, before the per-run bound. */
  found?: number;
  truncated?: boolean;
  unresolved?: string[];
  /** Volumes tagged with the pool that Volsd cannot prove it created: reported, never touched. */
  foreign?: ForeignVolumeFact[];
  /** How many foreign volumes there were (`foreign` holds the first {@link maxForeignReported}). */
  foreignCount?: number;
  /** Repairs done, per kind (every kind present, 0 when none). */
  repaired?: Record<RepairKind, number>;
  failedRepairs?: number;
  /** AZs a replenish was started for. */
  replenished?: string[];
  outcome?: string;
  error?: { Error?: string; Cause?: string };
  waitError?: { Error?: string; Cause?: string };
}

const leaseName = (pool: string) => `reconcile#${pool}`;
const errorName = (err: unknown) => (err instanceof Error ? err.name : '');
const errorText = (err: unknown) =>
  (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 300);

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new InvalidInput(`reconcile step needs ${what}`);
  return value;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Every volume tagged with the pool, page by page; `deleting` and `deleted` ones are gone already. */
async function poolVolumes(ec2: EC2Client, pool: string): Promise<Map<string, Ec2VolumeFact>> {
  const out = new Map<string, Ec2VolumeFact>();
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeVolumesCommand({
        Filters: [{ Name: `tag:${poolTag}`, Values: [pool] }],
        MaxResults: 200,
        NextToken: token,
      }),
    );
    for (const v of page.Volumes ?? []) {
      if (!v.VolumeId || v.State === 'deleting' || v.State === 'deleted') continue;
      const at = attachmentOf(v);
      const role = v.Tags?.find((t) => t.Key === roleTag)?.Value;
      const creation = v.Tags?.find((t) => t.Key === creationTag)?.Value;
      out.set(v.VolumeId, {
        volumeId: v.VolumeId,
        az: v.AvailabilityZone ?? '',
        state: v.State ?? 'unknown',
        createdAt: v.CreateTime?.getTime() ?? 0,
        ...(role !== undefined ? { role } : {}),
        ...(creation !== undefined ? { creation } : {}),
        ...(at?.InstanceId
          ? { attachment: { instanceId: at.InstanceId, state: at.State ?? 'attached' } }
          : {}),
      });
    }
    token = page.NextToken;
  } while (token);
  return out;
}

/** The instances by id (a filter, so an id EC2 no longer knows is simply absent, not an error). */
async function describeInstances(
  ec2: EC2Client,
  pool: string,
  ids: string[],
): Promise<Map<string, InstanceFact>> {
  const out = new Map<string, InstanceFact>();
  for (const batch of chunks([...new Set(ids)], 100)) {
    let token: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeInstancesCommand({
          Filters: [{ Name: 'instance-id', Values: batch }],
          MaxResults: 1000,
          NextToken: token,
        }),
      );
      for (const i of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
        if (!i.InstanceId) continue;
        const tag = (key: string) => i.Tags?.find((t) => t.Key === key)?.Value;
        out.set(i.InstanceId, {
          instanceId: i.InstanceId,
          state: i.State?.Name ?? 'unknown',
          worker: tag(poolTag) === pool && tag(roleTag) === Role.Worker,
          ...(i.Placement?.AvailabilityZone ? { az: i.Placement.AvailabilityZone } : {}),
          ...(i.LaunchTime ? { launchedAt: i.LaunchTime.getTime() } : {}),
        });
      }
      token = page.NextToken;
    } while (token);
  }
  return out;
}

/** Names of the acquire executions still running. */
async function runningExecutions(sfn: SFNClient, stateMachineArn: string): Promise<string[]> {
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await sfn.send(
      new ListExecutionsCommand({
        stateMachineArn,
        statusFilter: 'RUNNING',
        maxResults: 1000,
        nextToken: token,
      }),
    );
    for (const e of page.executions ?? []) if (e.name) names.push(e.name);
    token = page.nextToken;
  } while (token);
  return names;
}

/** Volsd's launch hook among a group's hooks (see `LAUNCH_HOOK_NAME`). */
export function launchHookName(hookNames: string[], pool: string, configured?: string): string | undefined {
  if (configured) return hookNames.includes(configured) ? configured : undefined;
  const conventional = `volsd-${pool}-launch`;
  if (hookNames.includes(conventional)) return conventional;
  const volsd = hookNames.filter((n) => n.startsWith('volsd'));
  if (volsd.length === 1) return volsd[0];
  return hookNames.length === 1 ? hookNames[0] : undefined;
}

/** Instances of the served groups waiting in Pending:Wait, with the group's Volsd launch hook. */
async function pendingLaunches(
  autoScaling: AutoScalingClient,
  groups: string[],
  pool: string,
  configuredHook?: string,
): Promise<PendingLaunchFact[]> {
  const out: PendingLaunchFact[] = [];
  for (const batch of chunks(groups, 50)) {
    let token: string | undefined;
    do {
      const page = await autoScaling.send(
        new DescribeAutoScalingGroupsCommand({
          AutoScalingGroupNames: batch,
          MaxRecords: 100,
          NextToken: token,
        }),
      );
      for (const g of page.AutoScalingGroups ?? []) {
        const waiting = (g.Instances ?? []).filter(
          (i) => i.LifecycleState === 'Pending:Wait' && i.InstanceId,
        );
        if (!waiting.length || !g.AutoScalingGroupName) continue;
        const hooks = await autoScaling.send(
          new DescribeLifecycleHooksCommand({ AutoScalingGroupName: g.AutoScalingGroupName }),
        );
        const launching = (hooks.LifecycleHooks ?? [])
          .filter((h) => h.LifecycleTransition === 'autoscaling:EC2_INSTANCE_LAUNCHING')
          .flatMap((h) => (h.LifecycleHookName ? [h.LifecycleHookName] : []));
        const hookName = launchHookName(launching, pool, configuredHook);
        for (const i of waiting) {
          out.push({
            instanceId: i.InstanceId ?? '',
            groupName: g.AutoScalingGroupName,
            ...(i.AvailabilityZone ? { az: i.AvailabilityZone } : {}),
            ...(hookName ? { hookName } : {}),
          });
        }
      }
      token = page.NextToken;
    } while (token);
  }
  return out;
}

/** Gathers the facts: the table, EC2's pool volumes and the instances they name, acquires, launches. */
export async function gatherFacts(deps: StepDeps, extra: ReconcileConfig, poolName: string): Promise<Facts> {
  const { repo, ec2, sfn, autoScaling } = deps;
  const pool = await repo.getPool(poolName);
  const records = await repo.listVolumes({ pool: poolName });
  // Read before EC2: a creation recorded after this read has a volume younger than the grace.
  const creations = (await repo.listCreations(poolName)).map((c) => ({
    key: c.key,
    az: c.az,
    nonce: c.nonce,
    createdAt: Date.parse(c.createdAt),
    ...(c.volumeId ? { volumeId: c.volumeId } : {}),
  }));
  const volumes = await poolVolumes(ec2, poolName);
  const launches = extra.SERVED_GROUPS.length
    ? await pendingLaunches(autoScaling, extra.SERVED_GROUPS, poolName, extra.LAUNCH_HOOK_NAME)
    : [];
  const ids = [
    ...records.flatMap((r) => (r.holder ? [r.holder] : [])),
    ...[...volumes.values()].flatMap((v) => (v.attachment ? [v.attachment.instanceId] : [])),
    ...launches.map((l) => l.instanceId),
  ];
  const instances = ids.length
    ? await describeInstances(ec2, poolName, ids)
    : new Map<string, InstanceFact>();
  const runningAcquires = extra.ACQUIRE_STATE_MACHINE_ARN
    ? await runningExecutions(sfn, extra.ACQUIRE_STATE_MACHINE_ARN)
    : undefined;
  return {
    now: nowMs(),
    pool: { name: pool.pool, azs: pool.azs },
    records,
    volumes,
    instances,
    ...(runningAcquires ? { runningAcquires } : {}),
    pendingLaunches: launches,
    creations,
  };
}

/**
 * Plans the repairs on the items, not on the index. The facts' records come from the byPool index,
 * which lags the table (eventually consistent): a record may show a state, holder or age its item has
 * left, and a volume registered a moment ago may be missing (untracked, to EC2's eyes). Every volume a
 * first plan would touch (and the volume a waiting launch's assignment names) is read again from its
 * item, consistently, and the plan is made again over those items. Each repair then carries the
 * version it was planned on, and acts only on the item at that version.
 */
export async function planOnItems(
  repo: StepDeps['repo'],
  facts: Facts,
  bounds: ReconcileBounds,
  failureResult: 'CONTINUE' | 'ABANDON',
): Promise<ReturnType<typeof planRepairs>> {
  const unbounded = { ...bounds, maxRepairs: Number.MAX_SAFE_INTEGER };
  const first = planRepairs(facts, unbounded, failureResult);
  const ids = new Set<string>();
  for (const r of first.repairs) {
    if (r.volumeId) ids.add(r.volumeId);
    if (r.action === 'complete' && r.instanceId) {
      const assignment = await repo.getAssignment(r.instanceId);
      if (assignment?.volumeId) ids.add(assignment.volumeId);
    }
  }
  if (ids.size === 0) return planRepairs(facts, bounds, failureResult);
  const records = new Map(facts.records.map((r) => [r.volumeId, r]));
  const volumes = new Map(facts.volumes);
  for (const batch of chunks([...ids], 25)) {
    const items = await Promise.all(batch.map((id) => repo.findVolume(id)));
    batch.forEach((id, i) => {
      const item = items[i];
      if (item?.pool === facts.pool.name) records.set(id, item);
      else records.delete(id);
      // Another pool's item on a volume tagged with this pool: not this run's to repair, nor to adopt.
      if (item && item.pool !== facts.pool.name) volumes.delete(id);
    });
  }
  return planRepairs({ ...facts, records: [...records.values()], volumes }, bounds, failureResult);
}

/**
 * Builds reconcile's steps over its own configuration (read once, at the first step of a container).
 * @param config reconcile's configuration beside the workflow configuration
 */
export function reconcileSteps(
  config: () => ReconcileConfig = loadReconcileConfig,
): Record<string, Step<ReconcileCtx>> {
  /**
   * Takes the pool's reconcile lease (another run holding it ends this one), gathers the facts and plans
   * the repairs, at most `maxRepairs`.
   */
  const scan: Step<ReconcileCtx> = async (ctx, deps) => {
    const input = parseOrThrow(reconcileInputSchema, ctx.input ?? {}, 'reconcile input');
    const runId = need(ctx.runId, 'runId (the execution name)');
    const pool = input.pool ?? deps.config.POOL_NAME;
    const bounds: ReconcileBounds = {
      claimMaxAgeSeconds: input.claimMaxAgeSeconds ?? defaultBounds.claimMaxAgeSeconds,
      graceSeconds: input.graceSeconds ?? defaultBounds.graceSeconds,
      maxRepairs: input.maxRepairs ?? defaultBounds.maxRepairs,
    };
    const base: ReconcileCtx = { runId, pool, reason: input.reason ?? 'schedule', bounds };
    if (!(await deps.repo.acquireLease(leaseName(pool), runId, leaseSeconds))) {
      logger.info('another reconcile holds the pool; this one ends', { pool });
      return { ...base, leased: false, repairs: [], found: 0, outcome: 'busy' };
    }
    const facts = await gatherFacts(deps, config(), pool);
    const plan = await planOnItems(deps.repo, facts, bounds, deps.config.ACQUIRE_FAILURE_RESULT);
    for (const u of plan.unresolved)
      logger.warn('reconcile: drift left for an operator', { pool, detail: u });
    for (const f of plan.foreign)
      logger.warn('reconcile: a volume tagged with the pool that Volsd did not create; left alone', {
        pool,
        ...f,
      });
    // Counted every run (0 too), so an alarm sees it clear; the report is what volsd-client shows.
    metrics.addMetric('ForeignVolumes', 'Count', plan.foreign.length);
    // Bounded: tagging volumes by the thousand must not overflow the execution's state or the item.
    await deps.repo.putForeignVolumes(pool, plan.foreign.slice(0, maxForeignReported));
    for (const key of plan.staleCreations) await deps.repo.dropCreation(pool, key);
    if (plan.found > plan.repairs.length) {
      logger.warn('reconcile: more drift than one run repairs', {
        pool,
        found: plan.found,
        bound: bounds.maxRepairs,
      });
    }
    return {
      ...base,
      leased: true,
      repairs: plan.repairs,
      found: plan.found,
      truncated: plan.found > plan.repairs.length,
      unresolved: plan.unresolved,
      foreign: plan.foreign.slice(0, maxForeignReported),
      foreignCount: plan.foreign.length,
    };
  };

  /**
   * First part of every repair: those that need no wait are done here; the others send their worker
   * command (remount, unmount) or wait for the Detach step.
   */
  const repair: Step<ReconcileCtx> = async (ctx, deps) => {
    const repairs: Repair[] = [];
    for (const r of ctx.repairs ?? []) {
      if (r.status) {
        repairs.push(r);
        continue;
      }
      try {
        if (r.action === 'remount' || (r.action === 'retire' && r.detach === 'afterUnmount')) {
          repairs.push(await sendWorkerCommand(r, deps));
        } else if (r.detach === 'force') {
          repairs.push({ ...r, status: 'waiting' });
        } else {
          repairs.push(await finishRepair(r, ctx, deps));
        }
      } catch (err) {
        repairs.push({ ...r, status: 'failed', note: errorText(err) });
      }
    }
    return { ...ctx, repairs };
  };

  /** Polled until every worker command of the run has ended (CommandPending meanwhile). */
  const waitCommands: Step<ReconcileCtx> = async (ctx, { ssm }) => {
    let pending = 0;
    const repairs: Repair[] = [];
    for (const r of ctx.repairs ?? []) {
      if (r.status !== 'waiting' || !r.command || r.commandOk !== undefined) {
        repairs.push(r);
        continue;
      }
      try {
        await commandOutcome(ssm, r.command.commandId, r.command.instanceId);
        repairs.push({ ...r, commandOk: true });
      } catch (err) {
        if (err instanceof CommandPending) pending++;
        else if (err instanceof CommandFailed) {
          repairs.push({ ...r, commandOk: false, note: errorText(err) });
          continue;
        } else throw err;
        repairs.push(r);
      }
    }
    if (pending) throw new CommandPending(`${pending} reconcile command(s) still running`);
    return { ...ctx, repairs };
  };

  /** Detaches what must leave an instance: forced from dead or wrong ones, normally after an unmount. */
  const detach: Step<ReconcileCtx> = async (ctx, { ec2 }) => {
    const repairs: Repair[] = [];
    for (const r of ctx.repairs ?? []) {
      if (r.status !== 'waiting' || !r.detach || !r.volumeId) {
        repairs.push(r);
        continue;
      }
      if (r.detach === 'afterUnmount' && r.commandOk !== true) {
        repairs.push({ ...r, status: 'failed', note: r.note ?? 'the unmount did not succeed' });
        continue;
      }
      try {
        const volume = await describeVolume(ec2, r.volumeId);
        if (volume) await detachVolume(ec2, volume, { force: r.detach === 'force' });
        repairs.push(r);
      } catch (err) {
        repairs.push({ ...r, status: 'failed', note: errorText(err) });
      }
    }
    return { ...ctx, repairs };
  };

  /** Polled until every detaching volume of the run is detached (or gone). */
  const waitDetached: Step<ReconcileCtx> = async (ctx, { ec2 }) => {
    const moving: string[] = [];
    for (const r of ctx.repairs ?? []) {
      if (r.status !== 'waiting' || !r.detach || !r.volumeId) continue;
      const volume = await describeVolume(ec2, r.volumeId);
      const attachment = volume ? attachmentOf(volume) : undefined;
      if (attachment) moving.push(`${r.volumeId} ${attachment.State}`);
    }
    if (moving.length) throw new VolumeNotReady(`still attached: ${moving.join(', ')}`);
    return ctx;
  };

  /**
   * Completes the repairs that waited, gives the lease back, starts a replenish for every AZ that got
   * volumes back, and counts, logs and reports each repair.
   */
  const finish: Step<ReconcileCtx> = async (ctx, deps) => {
    const repairs: Repair[] = [];
    for (const r of ctx.repairs ?? []) {
      if (r.status !== 'waiting') {
        repairs.push(r);
        continue;
      }
      try {
        repairs.push(await completeWaiting(r, ctx, deps));
      } catch (err) {
        repairs.push({ ...r, status: 'failed', note: errorText(err) });
      }
    }
    const azs = [
      ...new Set(
        repairs
          .filter((r) => r.status === 'done' && needsReplenish(r, deps))
          .flatMap((r) => (r.az ? [r.az] : [])),
      ),
    ].sort();
    const pool = need(ctx.pool, 'pool');
    const runId = need(ctx.runId, 'runId');
    if (ctx.leased) await deps.repo.releaseLease(leaseName(pool), runId);
    const replenished: string[] = [];
    for (const az of azs) {
      if (await startReplenish(deps.sfn, deps.config.REPLENISH_STATE_MACHINE_ARN, pool, az, runId)) {
        replenished.push(az);
      }
    }
    const repaired = Object.fromEntries(repairKinds.map((k) => [k, 0])) as Record<RepairKind, number>;
    let failedRepairs = 0;
    for (const r of repairs) {
      const detail = {
        pool,
        kind: r.kind,
        action: r.action,
        volumeId: r.volumeId,
        instanceId: r.instanceId,
        status: r.status,
        why: r.why,
        note: r.note,
      };
      if (r.status === 'done') {
        repaired[r.kind]++;
        logger.info('reconcile repair', detail);
      } else if (r.status === 'failed') {
        failedRepairs++;
        logger.warn('reconcile repair failed', detail);
      } else logger.info('reconcile repair skipped', detail);
    }
    for (const kind of repairKinds) {
      if (repaired[kind])
        metrics.addMetric(`Reconcile${kind[0]?.toUpperCase()}${kind.slice(1)}`, 'Count', repaired[kind]);
    }
    if (failedRepairs) metrics.addMetric('ReconcileRepairFailed', 'Count', failedRepairs);
    logger.info('reconcile done', { pool, found: ctx.found ?? 0, repaired, failedRepairs, replenished });
    return {
      ...ctx,
      repairs,
      repaired,
      failedRepairs,
      replenished,
      leased: false,
      outcome: ctx.outcome ?? (ctx.leased === false ? 'busy' : 'reconciled'),
    };
  };

  /** After a failure: the lease is given back; the next run starts over from what EC2 shows. */
  const failed: Step<ReconcileCtx> = async (ctx, deps) => {
    logger.error('reconcile failed', { pool: ctx.pool, error: ctx.error });
    metrics.addMetric('ReconcileFailed', 'Count', 1);
    // Also when `leased` is unknown (scan failed right after taking it): the release is conditional on
    // this run owning the lease, so it never frees another run's.
    const input = ctx.input as { pool?: unknown } | undefined;
    const pool =
      ctx.pool ?? (typeof input?.pool === 'string' ? input.pool : undefined) ?? deps.config.POOL_NAME;
    if (ctx.leased !== false && ctx.runId) await deps.repo.releaseLease(leaseName(pool), ctx.runId);
    return { ...ctx, leased: false, outcome: `failed: ${ctx.error?.Error ?? 'unknown'}` };
  };

  return { scan, repair, waitCommands, detach, waitDetached, finish, failed };
}

/** Remount on the worker (stale claim) or unmount there (retire); the repair then waits for the command. */
async function sendWorkerCommand(r: Repair, { ssm, config }: StepDeps): Promise<Repair> {
  const volumeId = need(r.volumeId, 'volumeId');
  const workerId = need(r.workerId, 'workerId');
  const remount = r.action === 'remount';
  const document = remount ? config.MOUNT_DOCUMENT : config.UNMOUNT_DOCUMENT;
  const commandId = await sendDocument(ssm, {
    documentName: document,
    instanceId: workerId,
    parameters: remount
      ? {
          VolumeId: volumeId,
          MountPath: `${config.WORKER_MOUNT_ROOT}/${volumeId}`,
          MountOptions: config.MOUNT_OPTIONS,
        }
      : { VolumeId: volumeId },
    comment: `volsd reconcile ${remount ? 'remount' : 'unmount'} ${volumeId}`,
  });
  return { ...r, status: 'waiting', command: { commandId, instanceId: workerId, document } };
}

/** A waiting repair whose command and detach are over: checks them, then finishes it. */
async function completeWaiting(r: Repair, ctx: ReconcileCtx, deps: StepDeps): Promise<Repair> {
  if (r.command && r.commandOk !== true) {
    if (r.action === 'remount' && r.volumeId) {
      // The worker did not take the volume back: its real state is unknown, the next run resolves ERROR.
      const record = await deps.repo.findVolume(r.volumeId);
      if (record && record.state === r.from && (r.version === undefined || record.version === r.version)) {
        await deps.repo.transition({
          volumeId: r.volumeId,
          from: record.state,
          to: VolumeState.Error,
          expectedVersion: record.version,
          set: {
            holder: null,
            claimedAt: null,
            reason: `reconcile remount failed: ${r.note ?? 'no result'}`.slice(0, 300),
          },
        });
        await dropAssignment(deps, record);
      }
    }
    return { ...r, status: 'failed', note: r.note ?? 'the worker command did not end' };
  }
  if (r.detach && r.volumeId) {
    const volume = await describeVolume(deps.ec2, r.volumeId);
    if (volume && attachmentOf(volume))
      return { ...r, status: 'failed', note: r.note ?? 'the detach did not complete' };
  }
  return finishRepair(r, ctx, deps);
}

/** Whether a done repair put a volume where a replenish has to pick it up. */
function needsReplenish(r: Repair, { config }: StepDeps): boolean {
  if (r.action === 'toPool' || r.action === 'adopt' || r.action === 'replenish') return true;
  return r.action === 'dispose' && config.RELEASE_POLICY === 'recycle';
}

const clearHold = { device: null, claimedAt: null } as const;

/** Drops the assignment of the instance that held the volume, unless it names another volume. */
async function dropAssignment(deps: StepDeps, record: VolumeRecord): Promise<void> {
  if (!record.holder?.startsWith('i-')) return;
  try {
    await deps.repo.dropAssignment(record.holder, record.volumeId);
  } catch (err) {
    if (!(err instanceof VolumeHeldElsewhere)) throw err;
  }
}

/**
 * The table (and EC2) side of a repair. Every action re-reads the volume first: one that moved on since
 * the plan (a workflow got to it) is skipped, one already where the repair would put it is done.
 */
export async function finishRepair(r: Repair, ctx: ReconcileCtx, deps: StepDeps): Promise<Repair> {
  const { repo, ec2, autoScaling, config } = deps;
  const pool = need(ctx.pool, 'pool');
  const done = (note?: string): Repair => ({ ...r, status: 'done', ...(note ? { note } : {}) });
  const skipped = (note: string): Repair => ({ ...r, status: 'skipped', note });
  const reason = `reconcile: ${r.why}`.slice(0, 300);

  if (r.action === 'complete') {
    try {
      await autoScaling.send(
        new CompleteLifecycleActionCommand({
          AutoScalingGroupName: need(r.groupName, 'groupName'),
          LifecycleHookName: need(r.hookName, 'hookName'),
          InstanceId: need(r.instanceId, 'instanceId'),
          LifecycleActionResult: need(r.result, 'result'),
        }),
      );
      return done(`completed with ${r.result}`);
    } catch (err) {
      if (
        errorName(err) === 'ValidationError' &&
        /No active Lifecycle Action/i.test(String((err as Error).message))
      )
        return skipped('the lifecycle action is no longer active');
      throw err;
    }
  }

  const volumeId = need(r.volumeId, 'volumeId');
  if (r.action === 'delete') {
    // Irreversible: the table must still not know the volume (a registration since the plan wins).
    if (await repo.findVolume(volumeId)) return skipped('now in the table');
    await deleteVolume(ec2, volumeId);
    return done();
  }
  if (r.action === 'adopt' || r.action === 'adoptInUse') {
    // Proven by its creation tag: the id is bound to the record first, so the proof no longer rests on
    // the tag (and no second volume can claim the record).
    if (r.creationKey && !(await repo.bindCreation(pool, r.creationKey, volumeId)))
      return skipped('its creation record now names another volume');
    const record = await repo.registerVolume({
      volumeId,
      pool,
      az: need(r.az, 'az'),
      state: r.action === 'adopt' ? VolumeState.Syncing : VolumeState.InUse,
      ...(r.action === 'adopt' && r.workerId ? { holder: r.workerId } : {}),
      ...(r.action === 'adoptInUse' && r.instanceId ? { holder: r.instanceId } : {}),
      // Whoever had it while the table did not know it (a web host, a dead instance) may have changed its
      // files, their timestamps and its generation marker: the replenish rebuilds it from the bucket. One in
      // use is marked when its release hands it back.
      ...(r.action === 'adopt' ? { untrusted: true } : {}),
    });
    return done(`registered ${record.state}`);
  }

  const record = await repo.findVolume(volumeId);
  if (!record)
    return r.action === 'forget' || r.action === 'retire' || r.action === 'dispose'
      ? done()
      : skipped('no longer in the table');
  if (r.action === 'replenish') return done();
  // The item as planned: in the planned state at the planned version. In that state at another version,
  // it moved on and came back (another holder, another age): what the plan decided on may not hold.
  const asPlanned = record.state === r.from && (r.version === undefined || record.version === r.version);
  const movedOn = `now ${record.state} v${record.version} (planned ${r.from} v${r.version ?? '-'})`;
  if (r.action === 'forget') {
    if (record.state !== VolumeState.Retiring && record.state !== VolumeState.Error) {
      if (!asPlanned) return skipped(movedOn);
      await repo.transition({
        volumeId,
        from: record.state,
        to: VolumeState.Error,
        expectedVersion: record.version,
        set: { reason },
      });
    }
    await repo.forgetVolume(volumeId);
    if (heldStates.includes(record.state)) await dropAssignment(deps, record);
    return done();
  }
  if (r.action === 'setHolder') {
    if (record.state !== VolumeState.Idle || !asPlanned) return skipped(movedOn);
    await repo.setHolder(volumeId, VolumeState.Idle, need(r.workerId, 'workerId'));
    return done();
  }
  if (r.action === 'remount') {
    const workerId = need(r.workerId, 'workerId');
    if (record.state === VolumeState.Idle && record.holder === workerId)
      return done('already IDLE on the worker');
    if (!asPlanned || record.holder !== r.instanceId) return skipped(`${movedOn}/${record.holder ?? '-'}`);
    const set = { ...clearHold, holder: workerId, reason: null };
    if (record.state === VolumeState.Claimed) {
      await repo.transition({
        volumeId,
        from: record.state,
        to: VolumeState.Idle,
        expectedVersion: record.version,
        set,
      });
    } else {
      await repo.transition({
        volumeId,
        from: record.state,
        to: VolumeState.Syncing,
        expectedVersion: record.version,
        set,
      });
      await repo.transition({ volumeId, from: VolumeState.Syncing, to: VolumeState.Idle });
    }
    await dropAssignment(deps, record);
    return done();
  }
  if (r.action === 'toPool') {
    if (record.state === VolumeState.Syncing) return done('already SYNCING');
    if (!asPlanned) return skipped(movedOn);
    const set = { ...clearHold, holder: r.workerId ?? null, reason };
    let version = record.version;
    if (record.state === VolumeState.Claimed) {
      // CLAIMED cannot go to SYNCING directly: through ERROR, which the model resolves to SYNCING.
      const error = await repo.transition({
        volumeId,
        from: record.state,
        to: VolumeState.Error,
        expectedVersion: version,
        set,
      });
      version = error.version;
    }
    const from = record.state === VolumeState.Claimed ? VolumeState.Error : record.state;
    await repo.transition({ volumeId, from, to: VolumeState.Syncing, expectedVersion: version, set });
    if (heldStates.includes(record.state)) await dropAssignment(deps, record);
    return done();
  }
  if (r.action === 'dispose') {
    if (!asPlanned || record.holder !== r.instanceId) return skipped(`${movedOn}/${record.holder ?? '-'}`);
    const clear = { ...clearHold, holder: null, reason };
    if (record.state === VolumeState.InUse) {
      await repo.transition({
        volumeId,
        from: record.state,
        to: VolumeState.Releasing,
        expectedVersion: record.version,
      });
    }
    if (config.RELEASE_POLICY === 'recycle') {
      // generation 0: a recycled volume is resynced in full before it is idle again (as release does).
      await repo.transition({
        volumeId,
        from: VolumeState.Releasing,
        to: VolumeState.Syncing,
        set: { ...clear, generation: 0 },
      });
    } else {
      await repo.transition({ volumeId, from: VolumeState.Releasing, to: VolumeState.Retiring, set: clear });
      await deleteVolume(ec2, volumeId);
      await repo.forgetVolume(volumeId);
    }
    await dropAssignment(deps, record);
    return done(config.RELEASE_POLICY === 'recycle' ? 'recycled' : 'deleted');
  }
  if (r.action === 'retire') {
    if (record.state !== VolumeState.Retiring && record.state !== VolumeState.Error)
      return skipped(`now ${record.state}`);
    if (record.state === r.from && !asPlanned) return skipped(movedOn);
    if (record.state === VolumeState.Error) {
      await repo.transition({
        volumeId,
        from: record.state,
        to: VolumeState.Retiring,
        expectedVersion: record.version,
        set: { holder: null },
      });
    }
    await deleteVolume(ec2, volumeId);
    await repo.forgetVolume(volumeId);
    return done();
  }
  return skipped(`unknown action ${r.action}`);
}

/**
 * Starts a replenish for the AZ under a name of this run, so that a retried step starts nothing twice
 * and an earlier replenish that closed within the same time bucket (the naming of `requestReplenish`)
 * cannot swallow the request. Returns whether a replenish runs or ran for it.
 */
async function startReplenish(
  sfn: SFNClient,
  stateMachineArn: string | undefined,
  pool: string,
  az: string,
  runId: string,
): Promise<boolean> {
  if (!stateMachineArn) {
    logger.info('replenish wanted but no replenish workflow is configured', { pool, az });
    return false;
  }
  let name = `reconcile-${az}-${runId}`.replace(/[^A-Za-z0-9_-]/g, '-');
  if (name.length > 80)
    name = `reconcile-${az}-${createHash('sha256').update(runId).digest('hex').slice(0, 24)}`;
  try {
    await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name,
        input: JSON.stringify({ pool, az, reason: 'reconcile' }),
      }),
    );
  } catch (err) {
    if (errorName(err) !== 'ExecutionAlreadyExists') throw err;
  }
  return true;
}
