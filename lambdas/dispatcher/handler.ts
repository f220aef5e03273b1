import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { autoScaling, sfn } from '../shared/clients.js';
import { env, loadConfig, once } from '../shared/config.js';
import { logger, metrics, tracer } from '../shared/logger.js';
import { type DispatchDeps, type DispatcherConfig, dispatchRecord } from './dispatch.js';

/** Environment variables of the dispatcher function. */
export const dispatcherEnv = {
  POOL_NAME: env.poolName,
  ACQUIRE_STATE_MACHINE_ARN: env.arn,
  RELEASE_STATE_MACHINE_ARN: env.arn,
  SERVED_GROUPS: env.csv.pipe(z.array(z.string().min(1).max(255)).min(1, 'at least one group')),
  EXPECTED_ACCOUNT_ID: z.string().regex(/^\d{12}$/, 'account id must be 12 digits'),
  AWS_REGION: z.string().min(1),
  /** `false` skips the DescribeAutoScalingInstances check (one call per message). */
  VERIFY_INSTANCES: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
};

/** Reads and validates the dispatcher's configuration from `source` (default `process.env`). */
export function configFromEnv(source: Record<string, string | undefined> = process.env): DispatcherConfig {
  const c = loadConfig(dispatcherEnv, source);
  return {
    pool: c.POOL_NAME,
    acquireStateMachineArn: c.ACQUIRE_STATE_MACHINE_ARN,
    releaseStateMachineArn: c.RELEASE_STATE_MACHINE_ARN,
    servedGroups: c.SERVED_GROUPS,
    expectedAccountId: c.EXPECTED_ACCOUNT_ID,
    region: c.AWS_REGION,
    verifyInstances: c.VERIFY_INSTANCES,
  };
}

/**
 * Builds the SQS handler over `deps` (called once per invocation; memoise it). Records are processed
 * in parallel and each failing one is reported in `batchItemFailures`, so one bad message never
 * re-drives the batch; a batch where every record fails is reported the same way rather than thrown.
 */
export function createHandler(deps: () => DispatchDeps) {
  return middy(async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    // A processor per invocation: it keeps per-batch state, and the sandbox may run several
    // invocations of this module at once, which Lambda itself never does.
    const processor = new BatchProcessor(EventType.SQS);
    const resolved = deps();
    return processPartialResponse(
      event,
      async (record: SQSRecord) => dispatchRecord(record, resolved),
      processor,
      { context, throwOnFullBatchFailure: false },
    );
  })
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .use(captureLambdaHandler(tracer, { captureResponse: false }));
}

/** Dependencies of the deployed function: configuration read once at cold start, shared clients. */
const defaultDeps = once(
  (): DispatchDeps => ({
    config: configFromEnv(),
    sfn,
    autoScaling,
    log: logger,
    count: (outcome) => metrics.addMetric(outcome, MetricUnit.Count, 1),
  }),
);

/** Lambda entry point: consumes the lifecycle intake queue (ReportBatchItemFailures). */
export const handler = createHandler(defaultDeps);
