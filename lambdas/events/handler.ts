import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { dynamoDoc, sfn } from '../shared/clients.js';
import { env, loadConfig, once } from '../shared/config.js';
import { logger } from '../shared/logger.js';
import { TaskWaits } from '../shared/task-waits.js';
import { nowMs } from '../shared/time.js';
import { type RelayDeps, relayEvent } from './relay.js';

/** The events function's dependencies: configuration read once at cold start, shared clients. */
export const relayDeps = once((): RelayDeps => {
  const config = loadConfig({
    TABLE_NAME: env.tableName,
    UNMOUNT_DOCUMENT: z.string().default('Volsd-Unmount'),
  });
  return {
    waits: new TaskWaits(dynamoDoc, config.TABLE_NAME, nowMs),
    sfn,
    unmountDocument: config.UNMOUNT_DOCUMENT,
  };
});

/**
 * Lambda entry point: EventBridge rules on Volsd-Unmount command final statuses and on instances
 * reaching `running` (lambdas/events/relay.ts).
 */
export const handler = middy(async (event: unknown, _context: Context) => relayEvent(event, relayDeps())).use(
  injectLambdaContext(logger),
);
