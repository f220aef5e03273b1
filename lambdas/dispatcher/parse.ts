import { z } from 'zod';
import { InvalidInput } from '../shared/errors.js';
import { instanceIdSchema, parseOrThrow } from '../shared/validate.js';
import {
  type LifecycleRef,
  WorkflowAction,
  type WorkflowInput,
  workflowInputSchema,
} from '../shared/workflow-input.js';

/**
 * Largest intake message accepted, in bytes. A lifecycle event is about 1 KB (its free-text
 * NotificationMetadata is at most 1,023 characters), so anything near SQS's own limit is not one; the
 * size is checked before JSON.parse so a huge body costs no parsing.
 */
export const maxIntakeBodyBytes = 64 * 1024;

/** EventBridge detail-types of the two Auto Scaling lifecycle actions. */
export const lifecycleDetailType = {
  launch: 'EC2 Instance-launch Lifecycle Action',
  terminate: 'EC2 Instance-terminate Lifecycle Action',
} as const;

/** What the dispatcher serves: the pool, and the account, Region and groups its events may come from. */
export interface IntakeExpectations {
  account: string;
  region: string;
  groups: string[];
  pool: string;
}

/** The lifecycle action an ignored event still holds open, and that the dispatcher completes. */
export interface PendingLifecycleAction extends LifecycleRef {
  instanceId: string;
}

/** The outcome of parsing one intake message. */
export type IntakeDecision =
  | {
      kind: 'ignore';
      reason: string;
      /**
       * Set when Auto Scaling waits on the pool's hook for this event although Volsd has nothing to do:
       * the caller completes it with CONTINUE so the instance is not held until the heartbeat timeout.
       */
      completeLifecycle?: PendingLifecycleAction;
    }
  | { kind: 'start'; input: WorkflowInput; stateMachine: 'acquire' | 'release' };

/**
 * The JSON body Auto Scaling sends when a hook's notification target is set (SQS targets only; with
 * EventBridge it never arrives, but a hook pointed straight at the queue sends one).
 */
const testNotificationSchema = z.object({ Event: z.literal('autoscaling:TEST_NOTIFICATION') }).passthrough();

/** `Origin` / `Destination` appear only for groups with a warm pool. */
const placeSchema = z.enum(['EC2', 'AutoScalingGroup', 'WarmPool']);

const detailSchema = z.object({
  LifecycleActionToken: z.string().uuid('lifecycle token must be a UUID'),
  AutoScalingGroupName: z.string().min(1).max(255),
  // Auto Scaling's own constraint on hook names.
  LifecycleHookName: z.string().regex(/^[A-Za-z0-9\-_/]{1,255}$/, 'malformed lifecycle hook name'),
  EC2InstanceId: instanceIdSchema,
  NotificationMetadata: z.string().max(1023).optional(),
  Origin: placeSchema.optional(),
  Destination: placeSchema.optional(),
});

function lifecycleEnvelope<D extends string, T extends string>(detailType: D, transition: T) {
  return z.object({
    'detail-type': z.literal(detailType),
    source: z.literal('aws.autoscaling'),
    id: z.string().min(1),
    account: z.string().regex(/^\d{12}$/, 'account must be 12 digits'),
    region: z.string().regex(/^[a-z]{2}(?:-[a-z]+)+-\d+$/, 'malformed Region'),
    // Not checked as a date: AWS's own documented samples carry placeholders here, and nothing reads it.
    time: z.string(),
    resources: z.array(z.string()),
    detail: detailSchema.extend({ LifecycleTransition: z.literal(transition) }),
  });
}

/** Schema of the EventBridge envelope and detail of both lifecycle actions. */
export const lifecycleEventSchema = z.discriminatedUnion('detail-type', [
  lifecycleEnvelope(lifecycleDetailType.launch, 'autoscaling:EC2_INSTANCE_LAUNCHING'),
  lifecycleEnvelope(lifecycleDetailType.terminate, 'autoscaling:EC2_INSTANCE_TERMINATING'),
]);
/** A validated lifecycle event. */
export type LifecycleEvent = z.infer<typeof lifecycleEventSchema>;

/**
 * Reads the pool the hook was created for from NotificationMetadata (the CDK construct writes
 * `{"pool":"<name>"}` there). Metadata that is not such JSON names no pool: hooks created by hand may
 * carry any text.
 */
function metadataPool(metadata: string | undefined): string | undefined {
  if (!metadata?.startsWith('{')) return undefined;
  try {
    const parsed = z.object({ pool: z.string() }).safeParse(JSON.parse(metadata));
    return parsed.success ? parsed.data.pool : undefined;
  } catch {
    return undefined;
  }
}

/** The checks that depend on where this dispatcher runs: account, Region, served groups, pool. */
function scopeSchema(expect: IntakeExpectations) {
  return z.object({
    account: z.string().refine(
      (a) => a === expect.account,
      (a) => ({ message: `account ${a} is not this pool's account ${expect.account}` }),
    ),
    region: z.string().refine(
      (r) => r === expect.region,
      (r) => ({ message: `Region ${r} is not this pool's Region ${expect.region}` }),
    ),
    detail: z.object({
      AutoScalingGroupName: z.string().refine(
        (g) => expect.groups.includes(g),
        (g) => ({ message: `group ${g} is not served by pool ${expect.pool}` }),
      ),
      NotificationMetadata: z
        .string()
        .optional()
        .refine(
          (m) => [undefined, expect.pool].includes(metadataPool(m)),
          (m) => ({ message: `hook metadata names pool ${metadataPool(m)}, not ${expect.pool}` }),
        ),
    }),
  });
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch (err) {
    throw new InvalidInput(`malformed JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Parses one intake message body (an EventBridge lifecycle event, or an Auto Scaling test
 * notification) and decides what to do with it. Throws {@link InvalidInput} with a one-line reason for
 * anything that is not a lifecycle event of a served group in this account and Region.
 */
export function parseIntakeMessage(body: string, expect: IntakeExpectations): IntakeDecision {
  const bytes = Buffer.byteLength(body, 'utf8');
  if (bytes > maxIntakeBodyBytes) {
    throw new InvalidInput(`message body is ${bytes} bytes, over the ${maxIntakeBodyBytes}-byte limit`);
  }
  const json = parseJson(body);

  if (testNotificationSchema.safeParse(json).success) {
    return { kind: 'ignore', reason: 'Auto Scaling test notification' };
  }

  const event = parseOrThrow(lifecycleEventSchema, json, 'lifecycle event');
  // The scope is checked after the shape, so a report says "wrong account" only for a real event.
  parseOrThrow(scopeSchema(expect), event, 'lifecycle event');

  const { detail } = event;
  const lifecycle: LifecycleRef = {
    hookName: detail.LifecycleHookName,
    groupName: detail.AutoScalingGroupName,
    token: detail.LifecycleActionToken,
  };
  const instanceId = detail.EC2InstanceId;

  if (event['detail-type'] === lifecycleDetailType.launch && detail.Destination === 'WarmPool') {
    // The instance is being prepared for the warm pool (stopped, hibernated or idle running), not put
    // in service: a volume attached now would sit on an instance that serves nothing, kept out of the
    // pool and going stale. When the instance leaves the warm pool, a second launch action (Origin
    // WarmPool, Destination AutoScalingGroup) arrives and that one acquires. The pool's hook still
    // holds the instance in Warmed:Pending:Wait, so the action is completed with CONTINUE rather than
    // left to time out (ABANDON would terminate the instance).
    return {
      kind: 'ignore',
      reason: 'launch into the warm pool: the instance does not enter service',
      completeLifecycle: { ...lifecycle, instanceId },
    };
  }

  // A terminate action whose Destination is WarmPool (scale-in back into the pool) is a release: the
  // instance leaves service and may stay stopped for long, so its volume goes back rather than aging
  // on it; it acquires again when it leaves the warm pool.
  const isLaunch = event['detail-type'] === lifecycleDetailType.launch;
  const input = workflowInputSchema.parse({
    pool: expect.pool,
    instanceId,
    action: isLaunch ? WorkflowAction.Launch : WorkflowAction.Terminate,
    lifecycle,
  });
  return { kind: 'start', input, stateMachine: isLaunch ? 'acquire' : 'release' };
}
