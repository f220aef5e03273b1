import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { z } from 'zod';
import { type IamCaller, instanceOfCaller, NotAnInstanceSession } from '../hostapi/identity.js';
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
    /** The pool's account: a caller of another account is refused (as by the host API). */
    EXPECTED_ACCOUNT_ID: z.string().regex(/^\d{12}$/, 'account id must be 12 digits'),
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

const reply = (statusCode: number, body: object): LambdaFunctionURLResult => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** Handles one Function URL request: POST of a boot signal, answered with what the unit does next. */
export async function handleBootRequest(event: LambdaFunctionURLEvent): Promise<LambdaFunctionURLResult> {
  if (event.requestContext.http.method !== 'POST')
    return reply(405, { status: 'refused', reason: 'POST only' });
  // The caller's instance from its IAM identity, as the host API takes it (docs/decisions.md, "Host
  // identity"): the instance-profile session named after the instance, never a field of the body.
  let instanceId: string;
  try {
    const iam = (event.requestContext as { authorizer?: { iam?: IamCaller } }).authorizer?.iam;
    instanceId = instanceOfCaller(iam, bootConfig().EXPECTED_ACCOUNT_ID);
  } catch (err) {
    if (err instanceof NotAnInstanceSession) return reply(403, { status: 'refused', reason: err.message });
    throw err;
  }
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
