import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { z } from 'zod';
import { dynamoDoc, sfn } from '../shared/clients.js';
import { syncMaxObjectBytes } from '../shared/commands.js';
import { env, loadConfig, once } from '../shared/config.js';
import { logger } from '../shared/logger.js';
import { VolumeRepository } from '../shared/repository.js';
import { TaskWaits } from '../shared/task-waits.js';
import { nowMs } from '../shared/time.js';
import { type BootSignalDeps, bootSignal, bootSignalSchema } from './signal.js';

/** The boot signal function's configuration, read once at cold start. */
export const bootConfig = once(() =>
  loadConfig({
    TABLE_NAME: env.tableName,
    PUSH_BUCKET: z.string().min(3),
    PUSH_PREFIX: z.string().default('live/'),
    /**
     * The instance role of the pool's hosts: only its sessions may signal. Unset: any role's instance
     * session that IAM let through (the URL's callers are those with the pool's instance policy).
     */
    HOST_ROLE_NAME: z
      .string()
      .regex(/^[\w+=,.@-]{1,64}$/)
      .optional(),
  }),
);

const deps = once((): BootSignalDeps => {
  const config = bootConfig();
  return {
    waits: new TaskWaits(dynamoDoc, config.TABLE_NAME, nowMs),
    repo: new VolumeRepository(dynamoDoc, { tableName: config.TABLE_NAME, now: () => new Date(nowMs()) }),
    sfn,
    pushBucket: config.PUSH_BUCKET,
    pushPrefix: config.PUSH_PREFIX,
    maxObjectBytes: syncMaxObjectBytes(),
  };
});

/**
 * The calling instance, from the IAM identity a Function URL with AWS_IAM auth puts in the request
 * context: an EC2 instance profile's session is `assumed-role/<role>/<instance id>` (EC2 names the
 * session after the instance, and a host cannot assume its role under another name: the role's trust
 * policy admits only ec2.amazonaws.com). Anything else is undefined.
 */
export function callerInstance(
  event: Pick<LambdaFunctionURLEvent, 'requestContext'>,
  hostRoleName: string | undefined,
): string | undefined {
  const iam = (event.requestContext as { authorizer?: { iam?: { userArn?: string } } }).authorizer?.iam;
  const match = /^arn:aws[a-z-]*:sts::\d{12}:assumed-role\/([\w+=,.@-]{1,64})\/(i-[0-9a-f]{8,17})$/.exec(
    iam?.userArn ?? '',
  );
  if (!match || (hostRoleName !== undefined && match[1] !== hostRoleName)) return undefined;
  return match[2];
}

const reply = (statusCode: number, body: object): LambdaFunctionURLResult => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** Handles one Function URL request: POST of a boot signal, answered with what the unit does next. */
export async function handleBootRequest(event: LambdaFunctionURLEvent): Promise<LambdaFunctionURLResult> {
  if (event.requestContext.http.method !== 'POST')
    return reply(405, { status: 'refused', reason: 'POST only' });
  const instanceId = callerInstance(event, bootConfig().HOST_ROLE_NAME);
  if (!instanceId) return reply(403, { status: 'refused', reason: 'caller is not an instance of the pool' });
  let parsed: unknown;
  try {
    const text = event.isBase64Encoded
      ? Buffer.from(event.body ?? '', 'base64').toString('utf8')
      : event.body;
    if ((text ?? '').length > 4096) return reply(413, { status: 'refused', reason: 'body over 4096 bytes' });
    parsed = JSON.parse(text ?? '');
  } catch {
    return reply(400, { status: 'refused', reason: 'body is not JSON' });
  }
  const signal = bootSignalSchema.safeParse(parsed);
  if (!signal.success)
    return reply(400, { status: 'refused', reason: signal.error.issues.map((i) => i.message).join('; ') });
  const answer = await bootSignal(instanceId, signal.data, deps());
  logger.info('boot signal', { instanceId, signal: signal.data.status, answer: answer.status });
  return reply(answer.status === 'refused' ? 409 : 200, answer);
}

/** Lambda entry point (Function URL, AWS_IAM auth). */
export const handler = middy(async (event: LambdaFunctionURLEvent, _context: Context) =>
  handleBootRequest(event),
).use(injectLambdaContext(logger));
