import type { SFNClient } from '@aws-sdk/client-sfn';
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
} from '@aws-sdk/client-sfn';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { logger } from './logger.js';

/**
 * Waits of the acquire workflow on things AWS or the instance announces (the callback pattern,
 * `.waitForTaskToken`): a step stores its task token under what it waits for, and whoever learns that
 * the thing happened (the events function on an EventBridge event, the host function on the boot
 * unit's signal) takes the token and answers Step Functions. One item per wait, in the volume table:
 * | wait | pk WAIT#<kind>#<id> | sk WAIT | token, ctx, expiresAt, fired? |
 * A wait whose event may come before its step runs is armed first ({@link TaskWaits.arm}): the event then
 * marks it fired ({@link TaskWaits.fire}) and the step, finding it fired, answers itself
 * ({@link TaskWaits.putUnlessFired}), with no read of AWS's state in between.
 */
export const WaitKind = {
  /** An SSM command's final status (EC2 Command Status-change Notification). */
  Command: 'command',
  /** The instance reaching `running` (EC2 Instance State-change Notification). */
  Running: 'running',
  /** The boot unit's signal: the volume is mounted and current on the instance. */
  BootUnit: 'boot',
} as const;
export type WaitKind = (typeof WaitKind)[keyof typeof WaitKind];

/** A stored wait: the task token and the execution's data to answer with. */
export interface TaskWait {
  kind: WaitKind;
  id: string;
  token: string;
  /** The execution's data (WorkflowCtx) the waiting state continues with. */
  ctx: Record<string, unknown>;
  /** Epoch seconds after which the wait is stale (its task timed out long ago). */
  expiresAt: number;
}

/** The partition key of a wait (`*` as `id`: the pattern of every wait of `kind`, for IAM conditions). */
export const waitPartitionKey = (kind: WaitKind, id: string) => `WAIT#${kind}#${id}`;
const key = (kind: WaitKind, id: string) => ({ pk: waitPartitionKey(kind, id), sk: 'WAIT' });

/** The table's task waits. */
export class TaskWaits {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Stores (or replaces: a retried step has a new token) the wait for `kind`/`id`. */
  async put(kind: WaitKind, id: string, token: string, ctx: object, ttlSeconds: number): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...key(kind, id),
          kind,
          id,
          token,
          ctx,
          expiresAt: Math.ceil(this.now() / 1000) + ttlSeconds,
        },
      }),
    );
  }

  /**
   * Arms the wait for `kind`/`id` before whatever could make its event come (and before the state is
   * read): from now on the event is recorded on it by {@link fire} instead of being dropped. Re-arming
   * keeps a token and a fired mark already there.
   */
  async arm(kind: WaitKind, id: string, ttlSeconds: number): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: key(kind, id),
        UpdateExpression: 'SET #kind = :kind, #id = :id, expiresAt = :expires',
        ExpressionAttributeNames: { '#kind': 'kind', '#id': 'id' },
        ExpressionAttributeValues: {
          ':kind': kind,
          ':id': id,
          ':expires': Math.ceil(this.now() / 1000) + ttlSeconds,
        },
      }),
    );
  }

  /**
   * Stores the token on the wait unless its event fired already: false then, and the caller answers
   * itself. Replaces an older token (a retried step). Exactly one of this and {@link fire} answers.
   */
  async putUnlessFired(
    kind: WaitKind,
    id: string,
    token: string,
    ctx: object,
    ttlSeconds: number,
  ): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key(kind, id),
          UpdateExpression: 'SET #kind = :kind, #id = :id, #token = :token, ctx = :ctx, expiresAt = :expires',
          ConditionExpression: 'attribute_not_exists(fired)',
          ExpressionAttributeNames: { '#kind': 'kind', '#id': 'id', '#token': 'token' },
          ExpressionAttributeValues: {
            ':kind': kind,
            ':id': id,
            ':token': token,
            ':ctx': ctx,
            ':expires': Math.ceil(this.now() / 1000) + ttlSeconds,
          },
        }),
      );
      return true;
    } catch (err) {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }

  /**
   * Records that `kind`/`id` happened, on an armed wait only (once: a second delivery finds it fired).
   * Returns the wait when a token was stored on it, for the caller to answer; undefined when nothing
   * waits yet (the step will find it fired) or nothing was armed (not Volsd's, or not this acquire's).
   */
  async fire(kind: WaitKind, id: string): Promise<TaskWait | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key(kind, id),
          UpdateExpression: 'SET fired = :fired',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(fired)',
          ExpressionAttributeValues: { ':fired': true },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const wait = out.Attributes as TaskWait | undefined;
      return wait?.token ? wait : undefined;
    } catch (err) {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') return undefined;
      throw err;
    }
  }

  /** Reads the wait, if any (consistent read). */
  async get(kind: WaitKind, id: string): Promise<TaskWait | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: key(kind, id), ConsistentRead: true }),
    );
    return out.Item as TaskWait | undefined;
  }

  /**
   * Takes the wait (deletes it and returns what it held), so exactly one of several answerers (an
   * event and the step's own check, two deliveries of one event) answers. With `token`, only that
   * wait: a retried step's newer wait is left alone.
   */
  async take(kind: WaitKind, id: string, token?: string): Promise<TaskWait | undefined> {
    try {
      const out = await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: key(kind, id),
          ReturnValues: 'ALL_OLD',
          ...(token
            ? { ConditionExpression: '#t = :t', ExpressionAttributeNames: { '#t': 'token' } }
            : { ConditionExpression: 'attribute_exists(pk)' }),
          ...(token ? { ExpressionAttributeValues: { ':t': token } } : {}),
        }),
      );
      return out.Attributes as TaskWait | undefined;
    } catch (err) {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') return undefined;
      throw err;
    }
  }
}

/** Step Functions' answers for a token that is no longer waiting: nothing to do. */
const goneTokenErrors = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

async function answer(send: () => Promise<unknown>, what: string): Promise<boolean> {
  try {
    await send();
    return true;
  } catch (err) {
    const name = (err as { name?: string }).name ?? '';
    if (!goneTokenErrors.has(name)) throw err;
    logger.info('task token no longer waiting', { what, error: name });
    return false;
  }
}

/** SendTaskSuccess; false when the task no longer waits (timed out, answered, retried). */
export function resumeTask(sfn: SFNClient, token: string, output: object): Promise<boolean> {
  return answer(
    () => sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output) })),
    'success',
  );
}

/** SendTaskFailure with a named error (what the state's Retry and Catch match). */
export function failTask(sfn: SFNClient, token: string, error: string, cause: string): Promise<boolean> {
  return answer(
    () => sfn.send(new SendTaskFailureCommand({ taskToken: token, error, cause: cause.slice(0, 32_000) })),
    'failure',
  );
}

/** SendTaskHeartbeat: the task's HeartbeatSeconds start again. */
export function heartbeatTask(sfn: SFNClient, token: string): Promise<boolean> {
  return answer(() => sfn.send(new SendTaskHeartbeatCommand({ taskToken: token })), 'heartbeat');
}
