import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { z } from 'zod';
import { dynamoDoc, sfn } from '../shared/clients.js';
import { env, loadConfig, once } from '../shared/config.js';
import { logger } from '../shared/logger.js';
import { VolumeRepository } from '../shared/repository.js';
import { nowMs } from '../shared/time.js';
import { type HostApiConfig, type HostApiDeps, HostApiError, runRoute } from './api.js';
import type { HostApiErrorBody } from './contract.js';
import { type IamCaller, instanceOfCaller, NotAnInstanceSession } from './identity.js';

/** Environment variables of the host API function. */
export const hostApiEnv = {
  POOL_NAME: env.poolName,
  TABLE_NAME: env.tableName,
  ACQUIRE_STATE_MACHINE_ARN: env.arn,
  RELEASE_STATE_MACHINE_ARN: env.arn,
  EXPECTED_ACCOUNT_ID: z.string().regex(/^\d{12}$/, 'account id must be 12 digits'),
};

/** Reads and validates the function's configuration from `source` (default `process.env`). */
export function hostApiConfigFromEnv(
  source: Record<string, string | undefined> = process.env,
): HostApiConfig & { tableName: string } {
  const c = loadConfig(hostApiEnv, source);
  return {
    pool: c.POOL_NAME,
    tableName: c.TABLE_NAME,
    accountId: c.EXPECTED_ACCOUNT_ID,
    acquireStateMachineArn: c.ACQUIRE_STATE_MACHINE_ARN,
    releaseStateMachineArn: c.RELEASE_STATE_MACHINE_ARN,
  };
}

/** The largest request body read (every route's body is a few hundred bytes). */
const maxBodyBytes = 4096;

function reply(statusCode: number, body: unknown): LambdaFunctionURLResult {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

function refusal(status: number, error: string, message: string, details?: Record<string, unknown>) {
  const body: HostApiErrorBody = { error, message, ...(details ? { details } : {}) };
  return reply(status, body);
}

/**
 * Answers one function URL request: the caller's instance from its IAM identity (403 for anything
 * else), the route from the path (`POST /<route>`), the JSON body validated by the route. Errors the
 * caller caused are answered with their code; anything else is logged and answered 500 without detail.
 */
export async function handleHostRequest(
  event: LambdaFunctionURLEvent,
  deps: HostApiDeps,
): Promise<LambdaFunctionURLResult> {
  const method = event.requestContext?.http?.method;
  const route = (event.rawPath ?? '').replace(/^\/+|\/+$/g, '');
  let instanceId: string;
  try {
    const iam = (event.requestContext as { authorizer?: { iam?: IamCaller } } | undefined)?.authorizer?.iam;
    instanceId = instanceOfCaller(iam, deps.config.accountId);
  } catch (err) {
    if (err instanceof NotAnInstanceSession) {
      logger.warn('host API refused a caller', { reason: err.message, route });
      return refusal(403, err.name, err.message);
    }
    throw err;
  }
  if (method !== 'POST') return refusal(405, 'MethodNotAllowed', 'POST expected');
  const raw = event.body ?? '';
  const text = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  if (Buffer.byteLength(text) > maxBodyBytes) return refusal(413, 'TooLarge', 'request body too large');
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    return refusal(400, 'InvalidInput', 'request body is not JSON');
  }
  try {
    const answer = await runRoute(deps, instanceId, route, body);
    logger.info('host API', { route, instanceId });
    return reply(200, answer);
  } catch (err) {
    if (err instanceof HostApiError) {
      logger.info('host API refused', { route, instanceId, error: err.code });
      return refusal(err.status, err.code, err.message, err.details);
    }
    const name = err instanceof Error ? err.name : 'Error';
    if (name === 'ExecutionAlreadyExists') {
      return refusal(409, 'ExecutionAlreadyExists', 'this request id was already used for another request');
    }
    logger.error('host API failed', { route, instanceId, error: err as Error });
    return refusal(500, 'InternalError', 'the request failed; see the function log');
  }
}

/** Dependencies of the deployed function: configuration read once at cold start, shared clients. */
const defaultDeps = once((): HostApiDeps => {
  const config = hostApiConfigFromEnv();
  return {
    config,
    sfn,
    repo: new VolumeRepository(dynamoDoc, { tableName: config.tableName, now: () => new Date(nowMs()) }),
  };
});

/** Lambda entry point behind the function URL (AuthType AWS_IAM). */
export const handler = middy(
  async (event: LambdaFunctionURLEvent, _context: Context): Promise<LambdaFunctionURLResult> =>
    handleHostRequest(event, defaultDeps()),
).use(injectLambdaContext(logger));
