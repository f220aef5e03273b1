import { Duration, Tags } from 'aws-cdk-lib';
import {
  AutoScalingGroup,
  DefaultResult,
  type IAutoScalingGroup,
  LifecycleHook,
  LifecycleTransition,
} from 'aws-cdk-lib/aws-autoscaling';
import { Rule } from 'aws-cdk-lib/aws-events';
import { SqsQueue } from 'aws-cdk-lib/aws-events-targets';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { intakeDeliveryDelaySeconds } from '../lambdas/shared/intake.js';
import { poolTag, Role, roleTag } from '../lambdas/shared/tags.js';
import { createQueueWithDlq } from './queues.js';

/** EventBridge detail-types of Auto Scaling lifecycle actions. */
export const lifecycleDetailTypes = {
  launch: 'EC2 Instance-launch Lifecycle Action',
  terminate: 'EC2 Instance-terminate Lifecycle Action',
} as const;

/** A served Auto Scaling group: its name, or the group itself. */
export type ServedGroup = string | IAutoScalingGroup;

/** Names of the pool's lifecycle hooks. The intake rule matches them, so other hooks of a group are ignored. */
export function lifecycleHookNames(poolName: string): { launch: string; terminate: string } {
  return { launch: `volsd-${poolName}-launch`, terminate: `volsd-${poolName}-terminate` };
}

/** The name of a served group (a token for a group created in the same app). */
export function servedGroupName(group: ServedGroup): string {
  return typeof group === 'string' ? group : group.autoScalingGroupName;
}

/** Props of {@link LifecycleIntake}. */
export interface LifecycleIntakeProps {
  /** The pool's name (hook names, tags). */
  readonly poolName: string;
  /**
   * Auto Scaling groups the pool serves. Groups given as constructs get the `volsd:pool` and
   * `volsd:role=client` tags propagated to their instances; groups given by name must carry them
   * already (the IAM conditions of attach require a pool-tagged instance).
   * @default none: no hooks and no rule (volsd-client can still acquire by hand)
   */
  readonly autoScalingGroups?: readonly ServedGroup[];
  /**
   * How long an instance waits in Pending:Wait / Terminating:Wait without a heartbeat (30 s..2 h).
   * @default Duration.minutes(10)
   */
  readonly heartbeatTimeout?: Duration;
  /**
   * Result of the launch hook when it times out or acquire fails: ABANDON replaces the instance,
   * CONTINUE lets it serve without a volume. The terminate hook always defaults to CONTINUE, so
   * other terminate hooks of the group still run.
   * @default 'ABANDON'
   */
  readonly acquireFailureResult?: 'ABANDON' | 'CONTINUE';
  /**
   * Visibility timeout of the intake queue: at least six times the dispatcher function's timeout.
   * @default Duration.minutes(3)
   */
  readonly queueVisibilityTimeout?: Duration;
  /**
   * Receives of an intake message before it moves to the DLQ.
   * @default 5
   */
  readonly maxReceiveCount?: number;
}

/**
 * Lifecycle intake: for each served group, a launch and a terminate lifecycle hook; an EventBridge
 * rule matching their lifecycle actions (source aws.autoscaling, the two detail-types, the served
 * group names and the pool's hook names) delivering to an encrypted SQS intake queue whose policy
 * admits only that rule. Messages the consumer fails on, and events EventBridge cannot deliver, end in
 * one DLQ: both are the raw EventBridge event, so one redrive replays either.
 */
export class LifecycleIntake extends Construct {
  /** Intake queue: one EventBridge lifecycle event per message. */
  public readonly queue: Queue;
  /** DLQ of the intake queue and of the rule's target. */
  public readonly deadLetterQueue: Queue;
  /** The rule, when the pool serves at least one group. */
  public readonly rule?: Rule;
  /** The lifecycle hooks, two per served group. */
  public readonly hooks: readonly LifecycleHook[];
  /** Names of the served groups (tokens for groups built in the same app). */
  public readonly groupNames: readonly string[];
  /** Names of the pool's launch and terminate hooks. */
  public readonly hookNames: { readonly launch: string; readonly terminate: string };

  constructor(scope: Construct, id: string, props: LifecycleIntakeProps) {
    super(scope, id);
    const groups = props.autoScalingGroups ?? [];
    const heartbeatTimeout = props.heartbeatTimeout ?? Duration.minutes(10);
    this.hookNames = lifecycleHookNames(props.poolName);
    this.groupNames = groups.map(servedGroupName);

    const { queue, deadLetterQueue } = createQueueWithDlq(this, 'Queue', {
      visibilityTimeout: props.queueVisibilityTimeout ?? Duration.minutes(3),
      maxReceiveCount: props.maxReceiveCount,
      // Lets EC2 list a launch before its acquire first asks (lambdas/dispatcher/parse.ts).
      deliveryDelay: Duration.seconds(intakeDeliveryDelaySeconds),
    });
    this.queue = queue;
    this.deadLetterQueue = deadLetterQueue;

    // Arrives in the event's detail.NotificationMetadata, so the dispatcher can check the pool.
    const notificationMetadata = JSON.stringify({ pool: props.poolName });
    const hooks: LifecycleHook[] = [];
    groups.forEach((group, index) => {
      const autoScalingGroup =
        typeof group === 'string'
          ? AutoScalingGroup.fromAutoScalingGroupName(this, `Group${index}`, group)
          : group;
      if (typeof group !== 'string') {
        // Only the group resource: a tag on its launch template would also tag root volumes with
        // the pool, and the pool's IAM policies may delete pool-tagged volumes.
        for (const [key, value] of [
          [poolTag, props.poolName],
          [roleTag, Role.Client],
        ] as const) {
          Tags.of(group).add(key, value, {
            includeResourceTypes: ['AWS::AutoScaling::AutoScalingGroup'],
            applyToLaunchedInstances: true,
          });
        }
      }
      hooks.push(
        new LifecycleHook(this, `LaunchHook${index}`, {
          autoScalingGroup,
          lifecycleHookName: this.hookNames.launch,
          lifecycleTransition: LifecycleTransition.INSTANCE_LAUNCHING,
          heartbeatTimeout,
          defaultResult:
            props.acquireFailureResult === 'CONTINUE' ? DefaultResult.CONTINUE : DefaultResult.ABANDON,
          notificationMetadata,
        }),
        new LifecycleHook(this, `TerminateHook${index}`, {
          autoScalingGroup,
          lifecycleHookName: this.hookNames.terminate,
          lifecycleTransition: LifecycleTransition.INSTANCE_TERMINATING,
          heartbeatTimeout,
          defaultResult: DefaultResult.CONTINUE,
          notificationMetadata,
        }),
      );
    });
    this.hooks = hooks;

    if (groups.length > 0) {
      this.rule = new Rule(this, 'Rule', {
        description: `Volsd ${props.poolName}: lifecycle actions of the served groups`,
        eventPattern: {
          source: ['aws.autoscaling'],
          detailType: [lifecycleDetailTypes.launch, lifecycleDetailTypes.terminate],
          detail: {
            AutoScalingGroupName: [...this.groupNames],
            LifecycleHookName: [this.hookNames.launch, this.hookNames.terminate],
          },
        },
      });
      this.rule.addTarget(new SqsQueue(queue, { deadLetterQueue }));
    }
  }
}
