import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import { z } from 'zod';
import { fanOutConfigFromEnv } from '../fanout/config.js';
import { dynamoDoc, ec2, ssm } from '../shared/clients.js';
import { loadConfig, once } from '../shared/config.js';
import { GrowthRecords } from '../shared/growth.js';
import { logger, metrics, tracer } from '../shared/logger.js';
import { PushRecords } from '../shared/push-records.js';
import { VolumeRepository } from '../shared/repository.js';
import { nowMs } from '../shared/time.js';
import { type GrowDeps, type GrowReport, growPool } from './grow.js';

/** Dependencies of the deployed function: the fan-out's configuration plus the configured volume size. */
export const defaultGrowDeps = once((): GrowDeps => {
  const fanOut = fanOutConfigFromEnv();
  const { VOLUME_SIZE_GIB } = loadConfig({ VOLUME_SIZE_GIB: z.coerce.number().int().min(1).max(65536) });
  const now = () => new Date(nowMs());
  metrics.setDefaultDimensions({ Pool: fanOut.pool });
  return {
    config: {
      pool: fanOut.pool,
      volumeSizeGiB: VOLUME_SIZE_GIB,
      bucket: fanOut.bucket,
      prefix: fanOut.prefix,
      syncDocument: fanOut.syncDocument,
      maxObjectBytes: fanOut.maxObjectBytes,
      maxConcurrency: fanOut.maxConcurrency,
      maxErrors: fanOut.maxErrors,
      deliveryTimeoutSeconds: fanOut.deliveryTimeoutSeconds,
    },
    ec2,
    ssm,
    growth: new GrowthRecords(dynamoDoc, fanOut.tableName, now),
    pools: new VolumeRepository(dynamoDoc, { tableName: fanOut.tableName, now }),
    pushes: new PushRecords(dynamoDoc, { tableName: fanOut.tableName, now }),
    log: logger,
    count: (metric, n) =>
      metrics.addMetric(
        metric,
        metric === 'PoolVolumeTargetGiB' ? MetricUnit.Gigabytes : MetricUnit.Count,
        n,
      ),
  };
});

/** Builds the scheduled handler over `deps` (memoised by the caller). */
export function createGrowHandler(deps: () => GrowDeps) {
  return middy(async (): Promise<GrowReport> => growPool(deps()))
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .use(captureLambdaHandler(tracer, { captureResponse: false }));
}

/**
 * Lambda entry point, on a schedule (EventBridge): one growth round of the pool (`grow.ts`). Its
 * input is ignored; every round reads EC2 and the table afresh, so a lost or repeated run is harmless.
 */
export const handler = createGrowHandler(defaultGrowDeps);
