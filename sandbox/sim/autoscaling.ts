import type {
  Activity,
  AutoScalingGroup,
  AutoScalingGroupNamesType,
  AutoScalingInstanceDetails,
  CompleteLifecycleActionType,
  DescribeAutoScalingInstancesType,
  DescribeLifecycleHooksType,
  LifecycleHook,
  LifecycleState,
  RecordLifecycleActionHeartbeatType,
  SetDesiredCapacityType,
  TerminateInstanceInAutoScalingGroupType,
} from '@aws-sdk/client-auto-scaling';
import type { SimContext } from './context.js';
import type { Ec2Sim, InstanceEvent } from './ec2.js';
import { fail } from './errors.js';
import { applyFilters, paginate, required } from './util.js';

/** What a lifecycle action ends with. */
export type LifecycleResult = 'CONTINUE' | 'ABANDON';

/** A lifecycle hook of a group. */
export interface LifecycleHookSpec {
  name: string;
  /** Seconds to wait for CompleteLifecycleAction (30-7200). @default 3600 */
  heartbeatTimeout?: number;
  /** Applied on timeout. @default 'ABANDON' */
  defaultResult?: LifecycleResult;
  /** Passed as NotificationMetadata in the event when set. */
  notificationMetadata?: string;
}

/** Options of `createAutoScalingGroup`. */
export interface GroupOptions {
  name: string;
  azs: string[];
  /** Tags propagated to the instances at launch. */
  tags?: Record<string, string>;
  launchHook?: LifecycleHookSpec;
  terminateHook?: LifecycleHookSpec;
  /** @default 0 */
  desiredCapacity?: number;
  /** @default 0 */
  minSize?: number;
  /** @default 100 */
  maxSize?: number;
  /** @default 'm7g.large' */
  instanceType?: string;
  /** Modelled boot seconds of its instances. @default drawn from latency.instanceBoot */
  bootSeconds?: number;
  /** A launch ABANDONed is replaced (AWS behaviour); false lowers the desired capacity instead. @default true */
  replaceAbandoned?: boolean;
}

type Transition = 'autoscaling:EC2_INSTANCE_LAUNCHING' | 'autoscaling:EC2_INSTANCE_TERMINATING';

/** One lifecycle action, from Pending:Wait / Terminating:Wait to its result. Times are modelled seconds. */
export interface LifecycleActionRecord {
  token: string;
  groupName: string;
  hookName: string;
  instanceId: string;
  transition: Transition;
  heartbeatTimeout: number;
  defaultResult: LifecycleResult;
  startedAt: number;
  /** When the action times out unless completed or extended. */
  deadlineAt: number;
  /** Never extended beyond this (min(48 h, 100 x heartbeat timeout) after the start). */
  globalDeadlineAt: number;
  heartbeats: number[];
  completedAt?: number;
  result?: LifecycleResult;
  /** `api`: CompleteLifecycleAction; `timeout`: the default result; `instance-gone`: the instance terminated under it. */
  completedBy?: 'api' | 'timeout' | 'instance-gone';
  timedOut: boolean;
}

interface Member {
  instanceId: string;
  az: string;
  state: LifecycleState;
  launchedAt: number;
  action?: LifecycleActionRecord;
  cancelHookDelay?: () => void;
}

interface Group {
  name: string;
  arn: string;
  azs: string[];
  tags: Map<string, string>;
  launchHook?: Required<Omit<LifecycleHookSpec, 'notificationMetadata'>> & { notificationMetadata?: string };
  terminateHook?: Required<Omit<LifecycleHookSpec, 'notificationMetadata'>> & {
    notificationMetadata?: string;
  };
  desired: number;
  min: number;
  max: number;
  instanceType?: string;
  bootSeconds?: number;
  replaceAbandoned: boolean;
  members: Map<string, Member>;
  createdTime: Date;
}

/** A plain view of a group for scenarios and invariant checks. */
export interface GroupView {
  name: string;
  desiredCapacity: number;
  instances: { instanceId: string; az: string; lifecycleState: LifecycleState }[];
}

const groupNameTag = 'aws:autoscaling:groupName';

function hookWithDefaults(h: LifecycleHookSpec | undefined): Group['launchHook'] {
  if (!h) return undefined;
  const heartbeatTimeout = h.heartbeatTimeout ?? 3600;
  if (heartbeatTimeout < 30 || heartbeatTimeout > 7200) {
    throw new RangeError(`heartbeatTimeout must be 30-7200 s (AWS), got ${heartbeatTimeout}`);
  }
  return {
    name: h.name,
    heartbeatTimeout,
    defaultResult: h.defaultResult ?? 'ABANDON',
    ...(h.notificationMetadata !== undefined ? { notificationMetadata: h.notificationMetadata } : {}),
  };
}

/**
 * The Auto Scaling model: groups that keep a desired capacity across their AZs, with launch and
 * terminate lifecycle hooks that hold instances in Pending:Wait / Terminating:Wait, send the
 * EventBridge events AWS sends, and apply the default result at the heartbeat timeout.
 */
export class AutoScalingSim {
  private readonly groups = new Map<string, Group>();
  private readonly actions: LifecycleActionRecord[] = [];
  private readonly inServiceListeners: ((instanceId: string, groupName: string) => void)[] = [];

  constructor(
    private readonly ctx: SimContext,
    private readonly ec2: Ec2Sim,
  ) {
    ec2.onInstance((id, event) => this.onInstance(id, event));
  }

  /** The Auto Scaling commands the simulator answers, by operation name. */
  readonly commands: Record<string, (input: never) => object> = {
    CompleteLifecycleAction: (i: CompleteLifecycleActionType) => this.completeLifecycleAction(i),
    RecordLifecycleActionHeartbeat: (i: RecordLifecycleActionHeartbeatType) => this.recordHeartbeat(i),
    DescribeAutoScalingInstances: (i: DescribeAutoScalingInstancesType) => this.describeInstances(i),
    DescribeAutoScalingGroups: (i: AutoScalingGroupNamesType) => this.describeGroups(i),
    DescribeLifecycleHooks: (i: DescribeLifecycleHooksType) => this.describeHooks(i),
    SetDesiredCapacity: (i: SetDesiredCapacityType) => this.setDesiredCapacityCommand(i),
    TerminateInstanceInAutoScalingGroup: (i: TerminateInstanceInAutoScalingGroupType) =>
      this.terminateInGroup(i),
  };

  /** Creates a group and launches its desired capacity. */
  createGroup(o: GroupOptions): void {
    if (this.groups.has(o.name)) throw new Error(`group ${o.name} exists`);
    for (const az of o.azs) if (!this.ctx.azs.includes(az)) throw new RangeError(`unknown AZ ${az}`);
    if (o.azs.length === 0) throw new RangeError('a group needs at least one AZ');
    const group: Group = {
      name: o.name,
      arn: `arn:aws:autoscaling:${this.ctx.region}:${this.ctx.accountId}:autoScalingGroup:${this.ctx.ids.uuid()}:autoScalingGroupName/${o.name}`,
      azs: [...o.azs],
      tags: new Map(Object.entries(o.tags ?? {})),
      launchHook: hookWithDefaults(o.launchHook),
      terminateHook: hookWithDefaults(o.terminateHook),
      desired: o.desiredCapacity ?? 0,
      min: o.minSize ?? 0,
      max: o.maxSize ?? 100,
      instanceType: o.instanceType,
      bootSeconds: o.bootSeconds,
      replaceAbandoned: o.replaceAbandoned ?? true,
      members: new Map(),
      createdTime: this.ctx.clock.date(),
    };
    if (group.desired < group.min || group.desired > group.max)
      throw new RangeError('desired capacity outside [min, max]');
    this.groups.set(o.name, group);
    this.reconcile(group);
  }

  /** Sets the desired capacity (as SetDesiredCapacity) and launches or terminates to reach it. */
  setDesiredCapacity(name: string, desired: number): void {
    const group = this.group(name);
    if (desired > group.max) {
      fail(
        'ValidationError',
        `New SetDesiredCapacity value ${desired} is above max value ${group.max} for the AutoScalingGroup.`,
      );
    }
    if (desired < group.min) {
      fail(
        'ValidationError',
        `New SetDesiredCapacity value ${desired} is below min value ${group.min} for the AutoScalingGroup.`,
      );
    }
    group.desired = desired;
    this.reconcile(group);
  }

  /** Every lifecycle action so far (copies). */
  lifecycleActions(): LifecycleActionRecord[] {
    return this.actions.map((a) => ({ ...a, heartbeats: [...a.heartbeats] }));
  }

  /** Plain views of the groups. */
  view(): GroupView[] {
    return [...this.groups.values()].map((g) => ({
      name: g.name,
      desiredCapacity: g.desired,
      instances: [...g.members.values()].map((m) => ({
        instanceId: m.instanceId,
        az: m.az,
        lifecycleState: m.state,
      })),
    }));
  }

  /** The group and lifecycle state of an instance, if it belongs to a group. */
  membership(instanceId: string): { groupName: string; lifecycleState: LifecycleState } | undefined {
    for (const g of this.groups.values()) {
      const m = g.members.get(instanceId);
      if (m) return { groupName: g.name, lifecycleState: m.state };
    }
    return undefined;
  }

  /** Cancels pending hook timers. */
  close(): void {
    for (const g of this.groups.values()) {
      for (const m of g.members.values()) m.cancelHookDelay?.();
    }
  }

  // ---------------------------------------------------------------- capacity

  private active(group: Group): Member[] {
    return [...group.members.values()].filter((m) => !m.state.startsWith('Terminat'));
  }

  private reconcile(group: Group): void {
    const active = this.active(group);
    for (let n = active.length; n < group.desired; n++) this.launch(group);
    const excess = active.length - group.desired;
    for (let n = 0; n < excess; n++) {
      const victim = this.pickVictim(group);
      if (victim) this.startTermination(group, victim);
    }
  }

  /** AZ with the fewest active members, ties in the group's AZ order. */
  private launch(group: Group): void {
    const counts = new Map(group.azs.map((az) => [az, 0]));
    for (const m of this.active(group)) counts.set(m.az, (counts.get(m.az) ?? 0) + 1);
    const az = group.azs.reduce((best, az) => ((counts.get(az) ?? 0) < (counts.get(best) ?? 0) ? az : best));
    const instanceId = this.ec2.launchInstance({
      az,
      tags: Object.fromEntries(group.tags),
      ...(group.instanceType ? { instanceType: group.instanceType } : {}),
      ...(group.bootSeconds !== undefined ? { bootSeconds: group.bootSeconds } : {}),
    });
    this.ec2.tagInstance(instanceId, groupNameTag, group.name);
    const member: Member = { instanceId, az, state: 'Pending', launchedAt: this.ctx.clock.now() };
    group.members.set(instanceId, member);
    const hook = group.launchHook;
    if (hook) {
      member.cancelHookDelay = this.ctx.clock.setTimer(
        this.ctx.delay(this.ctx.latency.lifecycleHookDelay),
        () => {
          member.cancelHookDelay = undefined;
          if (member.state !== 'Pending') return;
          member.state = 'Pending:Wait';
          this.startAction(group, member, hook, 'autoscaling:EC2_INSTANCE_LAUNCHING');
        },
      );
    }
    this.ctx.notify();
  }

  /** Default termination policy, simplified: the AZ with the most active members, oldest instance first. */
  private pickVictim(group: Group): Member | undefined {
    const active = this.active(group);
    const counts = new Map<string, number>();
    for (const m of active) counts.set(m.az, (counts.get(m.az) ?? 0) + 1);
    const sorted = [...active].sort(
      (a, b) => (counts.get(b.az) ?? 0) - (counts.get(a.az) ?? 0) || a.launchedAt - b.launchedAt,
    );
    return sorted[0];
  }

  private startTermination(group: Group, member: Member, runHook = true): void {
    member.cancelHookDelay?.();
    // A scale-in under a pending launch action ends that action: the instance leaves anyway.
    if (member.action && member.action.completedAt === undefined)
      this.close_(member.action, undefined, 'instance-gone');
    member.action = undefined;
    const hook = group.terminateHook;
    if (hook && runHook && this.ec2.instanceState(member.instanceId) !== 'terminated') {
      member.state = 'Terminating:Wait';
      this.startAction(group, member, hook, 'autoscaling:EC2_INSTANCE_TERMINATING');
    } else {
      member.state = 'Terminating:Proceed';
      this.ec2.terminateInstance(member.instanceId);
    }
    this.ctx.notify();
  }

  private onInstance(instanceId: string, event: InstanceEvent): void {
    const found = this.find(instanceId);
    if (!found) return;
    const { group, member } = found;
    if (event === 'running') {
      if (member.state === 'Pending:Proceed' || (member.state === 'Pending' && !group.launchHook)) {
        member.state = 'InService';
        this.inService(member.instanceId, group.name);
        this.ctx.notify();
      }
      return;
    }
    if (event === 'terminated') {
      if (member.action && member.action.completedAt === undefined)
        this.close_(member.action, undefined, 'instance-gone');
      member.cancelHookDelay?.();
      group.members.delete(instanceId);
      // An instance lost outside the group's own scale-in (EC2 API, fault) is replaced.
      this.reconcile(group);
      this.ctx.notify();
    }
  }

  // ---------------------------------------------------------------- lifecycle actions

  private startAction(
    group: Group,
    member: Member,
    hook: NonNullable<Group['launchHook']>,
    transition: Transition,
  ): void {
    const now = this.ctx.clock.now();
    const action: LifecycleActionRecord = {
      token: this.ctx.ids.uuid(),
      groupName: group.name,
      hookName: hook.name,
      instanceId: member.instanceId,
      transition,
      heartbeatTimeout: hook.heartbeatTimeout,
      defaultResult: hook.defaultResult,
      startedAt: now,
      deadlineAt: now + hook.heartbeatTimeout,
      globalDeadlineAt: now + Math.min(48 * 3600, 100 * hook.heartbeatTimeout),
      heartbeats: [],
      timedOut: false,
    };
    member.action = action;
    this.actions.push(action);
    this.armTimeout(action);
    const launching = transition === 'autoscaling:EC2_INSTANCE_LAUNCHING';
    this.ctx.emit(
      this.ctx.envelope(
        'aws.autoscaling',
        launching ? 'EC2 Instance-launch Lifecycle Action' : 'EC2 Instance-terminate Lifecycle Action',
        [group.arn],
        {
          LifecycleActionToken: action.token,
          AutoScalingGroupName: group.name,
          LifecycleHookName: hook.name,
          EC2InstanceId: member.instanceId,
          LifecycleTransition: transition,
          ...(hook.notificationMetadata !== undefined
            ? { NotificationMetadata: hook.notificationMetadata }
            : {}),
          Origin: launching ? 'EC2' : 'AutoScalingGroup',
          Destination: launching ? 'AutoScalingGroup' : 'EC2',
        },
      ),
    );
    this.ctx.notify();
  }

  private readonly timeouts = new Map<string, () => void>();

  private armTimeout(action: LifecycleActionRecord): void {
    this.timeouts.get(action.token)?.();
    const cancel = this.ctx.clock.setTimer(action.deadlineAt - this.ctx.clock.now(), () => {
      this.timeouts.delete(action.token);
      if (action.completedAt !== undefined) return;
      action.timedOut = true;
      this.finish(action, action.defaultResult, 'timeout');
    });
    this.timeouts.set(action.token, cancel);
  }

  private close_(
    action: LifecycleActionRecord,
    result: LifecycleResult | undefined,
    by: LifecycleActionRecord['completedBy'],
  ): void {
    this.timeouts.get(action.token)?.();
    this.timeouts.delete(action.token);
    action.completedAt = this.ctx.clock.now();
    if (result) action.result = result;
    action.completedBy = by;
  }

  /**
   * Calls `listener` at the moment an instance of a group enters InService, synchronously, so a
   * scenario can read the simulator's ground truth (a volume's initialization) as it stood then.
   */
  onInService(listener: (instanceId: string, groupName: string) => void): void {
    this.inServiceListeners.push(listener);
  }

  private inService(instanceId: string, groupName: string): void {
    for (const listener of this.inServiceListeners) listener(instanceId, groupName);
  }

  /** Applies a lifecycle action's result to its instance. */
  private finish(action: LifecycleActionRecord, result: LifecycleResult, by: 'api' | 'timeout'): void {
    this.close_(action, result, by);
    const found = this.find(action.instanceId);
    if (!found) return;
    const { group, member } = found;
    member.action = undefined;
    if (action.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING') {
      if (result === 'CONTINUE') {
        member.state =
          this.ec2.instanceState(member.instanceId) === 'running' ? 'InService' : 'Pending:Proceed';
        if (member.state === 'InService') this.inService(member.instanceId, group.name);
      } else {
        if (!group.replaceAbandoned) group.desired = Math.max(group.min, group.desired - 1);
        this.startTermination(group, member, false);
      }
    } else {
      member.state = 'Terminating:Proceed';
      this.ec2.terminateInstance(member.instanceId);
    }
    this.ctx.notify();
  }

  private activeAction(input: {
    AutoScalingGroupName?: string;
    LifecycleHookName?: string;
    LifecycleActionToken?: string;
    InstanceId?: string;
  }): LifecycleActionRecord {
    const group = this.group(required(input.AutoScalingGroupName, 'AutoScalingGroupName', 'ValidationError'));
    const hookName = required(input.LifecycleHookName, 'LifecycleHookName', 'ValidationError');
    if (!input.LifecycleActionToken && !input.InstanceId) {
      fail('ValidationError', 'Either LifecycleActionToken or InstanceId must be specified.');
    }
    const action = this.actions.find(
      (a) =>
        a.completedAt === undefined &&
        a.groupName === group.name &&
        a.hookName === hookName &&
        (input.LifecycleActionToken
          ? a.token === input.LifecycleActionToken
          : a.instanceId === input.InstanceId),
    );
    if (!action) {
      fail(
        'ValidationError',
        input.LifecycleActionToken
          ? `No active Lifecycle Action found with token ${input.LifecycleActionToken}`
          : `No active Lifecycle Action found with instance ID ${input.InstanceId}`,
      );
    }
    return action;
  }

  private completeLifecycleAction(input: CompleteLifecycleActionType): object {
    const result = input.LifecycleActionResult;
    if (result !== 'CONTINUE' && result !== 'ABANDON') {
      fail(
        'ValidationError',
        `Invalid value for LifecycleActionResult: ${String(result)} (CONTINUE or ABANDON)`,
      );
    }
    this.finish(this.activeAction(input), result, 'api');
    return {};
  }

  private recordHeartbeat(input: RecordLifecycleActionHeartbeatType): object {
    const action = this.activeAction(input);
    const now = this.ctx.clock.now();
    action.heartbeats.push(now);
    // A heartbeat restarts the full timeout, capped by the global timeout (FACTS §4).
    action.deadlineAt = Math.min(now + action.heartbeatTimeout, action.globalDeadlineAt);
    this.armTimeout(action);
    return {};
  }

  // ---------------------------------------------------------------- commands

  private setDesiredCapacityCommand(input: SetDesiredCapacityType): object {
    const name = required(input.AutoScalingGroupName, 'AutoScalingGroupName', 'ValidationError');
    const desired = required(input.DesiredCapacity, 'DesiredCapacity', 'ValidationError');
    this.setDesiredCapacity(name, desired);
    return {};
  }

  private terminateInGroup(input: TerminateInstanceInAutoScalingGroupType): { Activity: Activity } {
    const instanceId = required(input.InstanceId, 'InstanceId', 'ValidationError');
    const decrement = required(
      input.ShouldDecrementDesiredCapacity,
      'ShouldDecrementDesiredCapacity',
      'ValidationError',
    );
    const found = this.find(instanceId);
    if (!found)
      fail(
        'ValidationError',
        `Instance Id not found - No managed instance found for instance ID: ${instanceId}`,
      );
    const { group, member } = found;
    if (decrement) {
      if (group.desired <= group.min) {
        fail(
          'ValidationError',
          `Currently, desiredSize equals minSize (${group.min}). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.`,
        );
      }
      group.desired -= 1;
    }
    if (!member.state.startsWith('Terminat')) this.startTermination(group, member);
    if (!decrement) this.reconcile(group);
    const description = `Terminating EC2 instance: ${instanceId}`;
    return {
      Activity: {
        ActivityId: this.ctx.ids.uuid(),
        AutoScalingGroupName: group.name,
        Description: description,
        Cause: `At ${this.ctx.clock.date().toISOString()} instance ${instanceId} was taken out of service in response to a user request${decrement ? ', shrinking the capacity' : ''}.`,
        StartTime: this.ctx.clock.date(),
        StatusCode: 'InProgress',
        Progress: 0,
        Details: JSON.stringify({ 'Availability Zone': member.az }),
      },
    };
  }

  private describeInstances(input: DescribeAutoScalingInstancesType): {
    AutoScalingInstances: AutoScalingInstanceDetails[];
    NextToken?: string;
  } {
    const wanted = input.InstanceIds?.length ? new Set(input.InstanceIds) : undefined;
    const all: AutoScalingInstanceDetails[] = [];
    for (const g of this.groups.values()) {
      for (const m of g.members.values()) {
        if (wanted && !wanted.has(m.instanceId)) continue;
        all.push({
          InstanceId: m.instanceId,
          InstanceType: g.instanceType ?? 'm7g.large',
          AutoScalingGroupName: g.name,
          AvailabilityZone: m.az,
          LifecycleState: m.state,
          HealthStatus: 'HEALTHY',
          ProtectedFromScaleIn: false,
        });
      }
    }
    const { page, nextToken } = paginate(all, {
      maxResults: input.MaxRecords,
      nextToken: input.NextToken,
      defaultSize: 50,
      min: 1,
      max: 50,
      badTokenCode: 'InvalidNextToken',
      badSizeCode: 'ValidationError',
    });
    return { AutoScalingInstances: page, ...(nextToken ? { NextToken: nextToken } : {}) };
  }

  private describeGroups(input: AutoScalingGroupNamesType): {
    AutoScalingGroups: AutoScalingGroup[];
    NextToken?: string;
  } {
    let groups = [...this.groups.values()];
    if (input.AutoScalingGroupNames?.length) {
      const wanted = new Set(input.AutoScalingGroupNames);
      groups = groups.filter((g) => wanted.has(g.name));
    }
    groups = applyFilters(groups, input.Filters, new Set(['tag-key', 'tag-value']), (name, g) => {
      if (name.startsWith('tag:')) return [g.tags.get(name.slice(4))];
      return name === 'tag-key' ? [...g.tags.keys()] : [...g.tags.values()];
    });
    const { page, nextToken } = paginate(groups, {
      maxResults: input.MaxRecords,
      nextToken: input.NextToken,
      defaultSize: 50,
      min: 1,
      max: 100,
      badTokenCode: 'InvalidNextToken',
      badSizeCode: 'ValidationError',
    });
    return {
      AutoScalingGroups: page.map((g) => ({
        AutoScalingGroupName: g.name,
        AutoScalingGroupARN: g.arn,
        MinSize: g.min,
        MaxSize: g.max,
        DesiredCapacity: g.desired,
        DefaultCooldown: 300,
        AvailabilityZones: [...g.azs],
        HealthCheckType: 'EC2',
        HealthCheckGracePeriod: 300,
        CreatedTime: g.createdTime,
        Instances: [...g.members.values()].map((m) => ({
          InstanceId: m.instanceId,
          InstanceType: g.instanceType ?? 'm7g.large',
          AvailabilityZone: m.az,
          LifecycleState: m.state,
          HealthStatus: 'Healthy',
          ProtectedFromScaleIn: false,
        })),
        Tags: [...g.tags].map(([Key, Value]) => ({
          ResourceId: g.name,
          ResourceType: 'auto-scaling-group',
          Key,
          Value,
          PropagateAtLaunch: true,
        })),
        TerminationPolicies: ['Default'],
        NewInstancesProtectedFromScaleIn: false,
      })),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private describeHooks(input: DescribeLifecycleHooksType): { LifecycleHooks: LifecycleHook[] } {
    const group = this.group(required(input.AutoScalingGroupName, 'AutoScalingGroupName', 'ValidationError'));
    const hooks: LifecycleHook[] = [];
    for (const [hook, transition] of [
      [group.launchHook, 'autoscaling:EC2_INSTANCE_LAUNCHING'],
      [group.terminateHook, 'autoscaling:EC2_INSTANCE_TERMINATING'],
    ] as const) {
      if (!hook) continue;
      if (input.LifecycleHookNames?.length && !input.LifecycleHookNames.includes(hook.name)) continue;
      hooks.push({
        LifecycleHookName: hook.name,
        AutoScalingGroupName: group.name,
        LifecycleTransition: transition,
        HeartbeatTimeout: hook.heartbeatTimeout,
        GlobalTimeout: Math.min(48 * 3600, 100 * hook.heartbeatTimeout),
        DefaultResult: hook.defaultResult,
        ...(hook.notificationMetadata !== undefined
          ? { NotificationMetadata: hook.notificationMetadata }
          : {}),
      });
    }
    return { LifecycleHooks: hooks };
  }

  // ---------------------------------------------------------------- lookups

  private group(name: string): Group {
    const g = this.groups.get(name);
    if (!g) fail('ValidationError', `AutoScalingGroup name not found - AutoScalingGroup ${name} not found`);
    return g;
  }

  private find(instanceId: string): { group: Group; member: Member } | undefined {
    for (const group of this.groups.values()) {
      const member = group.members.get(instanceId);
      if (member) return { group, member };
    }
    return undefined;
  }
}
