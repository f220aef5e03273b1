import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { afterRunning, chainDeps, detachThenAwaitRunning, unitChain } from '../acquire/callbacks.js';
import { chainSteps } from '../acquire/steps.js';
import { dynamoDoc, ec2, sfn } from '../shared/clients.js';
import { env, loadConfig, once } from '../shared/config.js';
import { logger } from '../shared/logger.js';
import { VolumeRepository } from '../shared/repository.js';
import type { WorkflowCtx } from '../shared/steps.js';
import { TaskWaits } from '../shared/task-waits.js';
import { nowMs } from '../shared/time.js';
import { type RelayDeps, relayEvent } from './relay.js';

/** The events function's dependencies: configuration read once at cold start, shared clients. */
export const relayDeps = once((): RelayDeps => {
  const config = loadConfig({
    TABLE_NAME: env.tableName,
    UNMOUNT_DOCUMENT: z.string().default('Volsd-Unmount'),
  });
  const waits = new TaskWaits(dynamoDoc, config.TABLE_NAME, nowMs);
  const repo = new VolumeRepository(dynamoDoc, {
    tableName: config.TABLE_NAME,
    now: () => new Date(nowMs()),
  });
  // The acquire's detach and attach, over EC2 and the table (the instance runs by then: no lifecycle
  // heartbeat is due).
  const chain = chainDeps(chainSteps, { ec2, repo, sfn }, waits);
  return {
    waits,
    sfn,
    unmountDocument: config.UNMOUNT_DOCUMENT,
    afterUnmount: (stored, token) => {
      const ctx = stored as unknown as WorkflowCtx;
      return detachThenAwaitRunning(ctx, token, chain, { toUnit: unitChain(ctx) });
    },
    afterRunning: (stored, token) => afterRunning(stored as unknown as WorkflowCtx, token, chain),
  };
});

/**
 * Lambda entry point: EventBridge rules on Volsd-Unmount command final statuses and on instances
 * reaching `running` (lambdas/events/relay.ts).
 */
export const handler = middy(async (event: unknown, _context: Context) => relayEvent(event, relayDeps())).use(
  injectLambdaContext(logger),
);
