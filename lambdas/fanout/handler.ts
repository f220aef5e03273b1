import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { dynamoDoc, s3, ssm } from '../shared/clients.js';
import { once } from '../shared/config.js';
import { defaultGrowThresholdPercent, GrowthRecords } from '../shared/growth.js';
import { logger, metrics, tracer } from '../shared/logger.js';
import { PushRecords } from '../shared/push-records.js';
import { VolumeRepository } from '../shared/repository.js';
import { nowMs } from '../shared/time.js';
import { checkCapacity } from './capacity.js';
import { fanOutConfigFromEnv } from './config.js';
import { type FanOutDeps, fanOutBatch } from './fanout.js';

/**
 * Builds the push queue's SQS handler over `deps` (called once per invocation; memoise it). The whole
 * batch is one push; the messages that could not be processed are returned in `batchItemFailures`
 * (the event source mapping needs ReportBatchItemFailures), so they alone are retried.
 */
export function createHandler(deps: () => FanOutDeps) {
  return middy(async (event: SQSEvent, _context: Context): Promise<SQSBatchResponse> => {
    const result = await fanOutBatch(event.Records, deps());
    return { batchItemFailures: result.failedMessageIds.map((itemIdentifier) => ({ itemIdentifier })) };
  })
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .use(captureLambdaHandler(tracer, { captureResponse: false }));
}

/** Dependencies of the deployed function: configuration read once at cold start, shared clients. */
export const defaultFanOutDeps = once((): FanOutDeps => {
  const config = fanOutConfigFromEnv();
  const now = () => new Date(nowMs());
  // The dimension the alarms match (lib/monitoring.ts: Pool); default dimensions survive each flush.
  metrics.setDefaultDimensions({ Pool: config.pool });
  return {
    config,
    ssm,
    pools: new VolumeRepository(dynamoDoc, { tableName: config.tableName, now }),
    pushes: new PushRecords(dynamoDoc, { tableName: config.tableName, now }),
    ...(config.volumeSizeGiB !== undefined
      ? {
          capacity: {
            check: () =>
              checkCapacity(
                { s3, growth: new GrowthRecords(dynamoDoc, config.tableName, now) },
                {
                  ...config,
                  volumeSizeGiB: config.volumeSizeGiB ?? 1,
                  growThresholdPercent: config.growThresholdPercent ?? defaultGrowThresholdPercent,
                  gibBytes: config.gibBytes ?? 2 ** 30,
                },
              ),
          },
        }
      : {}),
    log: logger,
    count: (metric, n) => metrics.addMetric(metric, MetricUnit.Count, n),
  };
});

/** Lambda entry point: consumes the push queue (S3 event notifications of the push bucket). */
export const handler = createHandler(defaultFanOutDeps);
