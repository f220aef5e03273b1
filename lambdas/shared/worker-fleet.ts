import {
  type AutoScalingClient,
  type AutoScalingGroup,
  DescribeAutoScalingGroupsCommand,
  SetDesiredCapacityCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand, type EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { devicesInUse } from './ec2-ops.js';
import { InstanceGone } from './errors.js';
import { workersFor } from './fleet-size.js';
import { logger, metrics } from './logger.js';
import { poolTag, Role, roleTag } from './tags.js';
import { attachmentLimit } from './workers.js';

export { workersFor };

/** One running sync worker of an AZ, with what it holds and what it can still take. */
export interface FleetWorker {
  instance: Instance;
  instanceId: string;
  /** EBS attachments its type allows, root included. */
  limit: number;
  /** Device names attached (root included), both views (mappings lag attaches). */
  attached: number;
  /** Attachments it can still take. */
  room: number;
  /** Its SSM agent is registered and online: it can take commands (a new worker needs a minute). */
  online: boolean;
}

/**
 * The sync workers of one pool and AZ: the running instances and the Auto Scaling group that keeps
 * them (found by the pool and worker tags and the AZ, so the workflow needs no group name).
 */
export interface WorkerFleet {
  /** Running workers: most volumes first, then oldest first (the order they are kept in). */
  workers: FleetWorker[];
  group?: { name: string; desired: number; min: number; max: number };
  /** Volumes one worker holds besides its root volume (the smallest limit of the running types). */
  perWorker: number;
}

/** Every running sync worker of a pool in an AZ. */
export async function runningWorkers(ec2: EC2Client, pool: string, az: string): Promise<Instance[]> {
  const out: Instance[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: `tag:${poolTag}`, Values: [pool] },
          { Name: `tag:${roleTag}`, Values: [Role.Worker] },
          { Name: 'availability-zone', Values: [az] },
          { Name: 'instance-state-name', Values: ['running'] },
        ],
        NextToken: nextToken,
      }),
    );
    for (const r of page.Reservations ?? []) for (const i of r.Instances ?? []) if (i.InstanceId) out.push(i);
    nextToken = page.NextToken;
  } while (nextToken);
  return out;
}

/** The worker group of a pool in an AZ (tagged with the pool and `volsd:role=worker`), if any. */
export async function workerGroup(
  autoScaling: AutoScalingClient,
  pool: string,
  az: string,
): Promise<AutoScalingGroup | undefined> {
  let nextToken: string | undefined;
  do {
    const page = await autoScaling.send(
      new DescribeAutoScalingGroupsCommand({
        Filters: [
          { Name: `tag:${poolTag}`, Values: [pool] },
          { Name: `tag:${roleTag}`, Values: [Role.Worker] },
        ],
        NextToken: nextToken,
      }),
    );
    const group = (page.AutoScalingGroups ?? []).find((g) => g.AvailabilityZones?.includes(az));
    if (group) return group;
    nextToken = page.NextToken;
  } while (nextToken);
  return undefined;
}

/**
 * Reads the AZ's fleet: every running worker with its room (limit from `limitOverride`, else from
 * DescribeInstanceTypes, once per type), and its group. No running worker is InstanceGone, as before.
 */
export async function describeFleet(
  deps: { ec2: EC2Client; autoScaling: AutoScalingClient; ssm: SSMClient },
  pool: string,
  az: string,
  limitOverride?: number,
): Promise<WorkerFleet> {
  const [instances, group] = await Promise.all([
    runningWorkers(deps.ec2, pool, az),
    workerGroup(deps.autoScaling, pool, az),
  ]);
  if (instances.length === 0) throw new InstanceGone(`pool ${pool} has no running sync worker in ${az}`);
  const online = await onlineAgents(
    deps.ssm,
    instances.map((i) => i.InstanceId ?? ''),
  );
  const limits = new Map<string, number>();
  const workers: FleetWorker[] = [];
  for (const instance of instances) {
    const type = instance.InstanceType ?? '';
    let limit = limitOverride ?? limits.get(type);
    if (limit === undefined) {
      limit = await attachmentLimit(deps.ec2, instance.InstanceType);
      limits.set(type, limit);
    }
    const attached = (await devicesInUse(deps.ec2, instance)).size;
    workers.push({
      instance,
      instanceId: instance.InstanceId ?? '',
      limit,
      attached,
      room: Math.max(0, limit - attached),
      online: online.has(instance.InstanceId ?? ''),
    });
  }
  workers.sort(
    (a, b) =>
      b.attached - a.attached ||
      (a.instance.LaunchTime?.getTime() ?? 0) - (b.instance.LaunchTime?.getTime() ?? 0) ||
      a.instanceId.localeCompare(b.instanceId),
  );
  return {
    workers,
    perWorker: Math.max(1, Math.min(...workers.map((w) => w.limit)) - 1),
    ...(group?.AutoScalingGroupName
      ? {
          group: {
            name: group.AutoScalingGroupName,
            desired: group.DesiredCapacity ?? instances.length,
            min: group.MinSize ?? 1,
            max: group.MaxSize ?? instances.length,
          },
        }
      : {}),
  };
}

/** The instances among `ids` whose SSM agent is online (DescribeInstanceInformation, 50 ids a call). */
async function onlineAgents(ssm: SSMClient, ids: readonly string[]): Promise<Set<string>> {
  const online = new Set<string>();
  for (let i = 0; i < ids.length; i += 50) {
    let nextToken: string | undefined;
    do {
      const page = await ssm.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: 'InstanceIds', Values: ids.slice(i, i + 50) }],
          NextToken: nextToken,
        }),
      );
      for (const info of page.InstanceInformationList ?? [])
        if (info.InstanceId && info.PingStatus === 'Online') online.add(info.InstanceId);
      nextToken = page.NextToken;
    } while (nextToken);
  }
  return online;
}

/** What the fleet plan decides for one AZ (see {@link planFleet}). */
export interface FleetPlan {
  /** Workers the target needs, capped by the group's maximum. */
  needed: number;
  /** Online workers that keep and receive volumes (the first `needed` in fleet order). */
  keep: FleetWorker[];
  /** Online workers beyond `needed`: drained, then retired once empty. */
  surplus: FleetWorker[];
  /** Running workers whose agent is not online (starting, or lost): neither given volumes nor retired. */
  unreachable: FleetWorker[];
  /** The group's desired capacity should rise to this (workers to start), if above the current. */
  startTo?: number;
  /** The target needs more workers than the group's maximum allows. */
  cappedByMax: boolean;
}

/**
 * Sizes the fleet for `volumes` (the AZ's target plus instances waiting): as many workers as they
 * need, never above the group's maximum nor below its minimum. Keeps the fullest (then oldest)
 * workers, so a drained one holds the fewest volumes to move.
 */
export function planFleet(fleet: WorkerFleet, volumes: number): FleetPlan {
  const wanted = workersFor(volumes, fleet.perWorker);
  const max = fleet.group?.max ?? fleet.workers.length;
  const min = fleet.group?.min ?? 1;
  const needed = Math.max(min, Math.min(wanted, max));
  const desired = fleet.group?.desired ?? fleet.workers.length;
  const reachable = fleet.workers.filter((w) => w.online);
  return {
    needed,
    keep: reachable.slice(0, needed),
    surplus: reachable.slice(needed),
    unreachable: fleet.workers.filter((w) => !w.online),
    ...(fleet.group && needed > desired ? { startTo: needed } : {}),
    cappedByMax: wanted > max,
  };
}

/** Raises the worker group's desired capacity (never lowers it: workers are retired one by one, drained). */
export async function startWorkers(
  autoScaling: AutoScalingClient,
  group: string,
  desired: number,
  why: { pool: string; az: string; from: number; needed: number },
): Promise<void> {
  await autoScaling.send(
    new SetDesiredCapacityCommand({
      AutoScalingGroupName: group,
      DesiredCapacity: desired,
      HonorCooldown: false,
    }),
  );
  logger.info('sync workers started for the target', { ...why, group, desired });
  metrics.addMetric('WorkersStarted', 'Count', desired - why.from);
}

/**
 * Retires one drained worker: terminated through its group with the desired capacity decremented, so
 * the group neither replaces it nor picks another instance to terminate.
 */
export async function retireWorker(
  autoScaling: AutoScalingClient,
  instanceId: string,
  why: { pool: string; az: string },
): Promise<void> {
  await autoScaling.send(
    new TerminateInstanceInAutoScalingGroupCommand({
      InstanceId: instanceId,
      ShouldDecrementDesiredCapacity: true,
    }),
  );
  logger.info('drained sync worker retired', { ...why, instanceId });
  metrics.addMetric('WorkersRetired', 'Count', 1);
}
