import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { dynamoDoc, ssm } from '../shared/clients.js';
import { once } from '../shared/config.js';
import { logger, metrics, tracer } from '../shared/logger.js';
import type { PushRecord } from '../shared/push-records.js';
import { PushRecords } from '../shared/push-records.js';
import { VolumeRepository } from '../shared/repository.js';
import { nowMs } from '../shared/time.js';
import { fanOutConfigFromEnv } from './config.js';
import { collectPushStatus, finalCommandStatuses, type StatusDeps, sweepPushes } from './status.js';

/** The push status function's configuration and clients. */
export interface StatusHandlerDeps extends StatusDeps {
  /** The deployed Volsd-Sync document name: status events of other documents are ignored. */
  syncDocument: string;
}

// EventBridge "EC2 Command Status-change Notification" (source aws.ssm), the fields read here.
const commandEventSchema = z.object({
  source: z.literal('aws.ssm'),
  'detail-type': z.literal('EC2 Command Status-change Notification'),
  detail: z.object({
    'command-id': z.string().min(1),
    'document-name': z.string(),
    status: z.string(),
    parameters: z.record(z.array(z.string())).optional(),
  }),
});
// EventBridge schedule: the sweep.
const scheduleSchema = z.object({
  source: z.literal('aws.events'),
  'detail-type': z.literal('Scheduled Event'),
});

/** What the status function did. */
export type StatusHandlerResult =
  | { action: 'collected'; push?: PushRecord }
  | { action: 'swept'; completed: number }
  | { action: 'ignored'; reason: string };

/**
 * Handles one EventBridge event: a final status of a Volsd-Sync command collects its push; a schedule
 * sweeps the pushes whose event was lost. Throws CommandPending when the command's invocations are not
 * all final yet (EventBridge's asynchronous invocation retries it).
 */
export async function handleStatusEvent(
  event: unknown,
  deps: StatusHandlerDeps,
): Promise<StatusHandlerResult> {
  const command = commandEventSchema.safeParse(event);
  if (command.success) {
    const d = command.data.detail;
    if (d['document-name'] !== deps.syncDocument) return { action: 'ignored', reason: 'another document' };
    if (!finalCommandStatuses.includes(d.status)) return { action: 'ignored', reason: `status ${d.status}` };
    const given = d.parameters?.Generation?.[0];
    const generation = given !== undefined && /^\d{1,15}$/.test(given) ? Number(given) : undefined;
    const push = await collectPushStatus(
      { commandId: d['command-id'], ...(generation !== undefined ? { generation } : {}) },
      deps,
    );
    return push ? { action: 'collected', push } : { action: 'ignored', reason: 'not a push command' };
  }
  if (scheduleSchema.safeParse(event).success) {
    const completed = await sweepPushes(deps);
    return { action: 'swept', completed: completed.length };
  }
  deps.log.warn('push status: unexpected event', { event: JSON.stringify(event).slice(0, 300) });
  return { action: 'ignored', reason: 'unexpected event' };
}

/** Builds the push status handler over `deps` (called once per invocation; memoise it). */
export function createStatusHandler(deps: () => StatusHandlerDeps) {
  return middy(async (event: unknown, _context: Context) => handleStatusEvent(event, deps()))
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .use(captureLambdaHandler(tracer, { captureResponse: false }));
}

/** Dependencies of the deployed function: configuration read once at cold start, shared clients. */
export const defaultStatusDeps = once((): StatusHandlerDeps => {
  const config = fanOutConfigFromEnv();
  const now = () => new Date(nowMs());
  // The dimension the alarms match (lib/monitoring.ts: Pool); default dimensions survive each flush.
  metrics.setDefaultDimensions({ Pool: config.pool });
  return {
    config,
    syncDocument: config.syncDocument,
    ssm,
    pushes: new PushRecords(dynamoDoc, { tableName: config.tableName, now }),
    volumes: new VolumeRepository(dynamoDoc, { tableName: config.tableName, now }),
    log: logger,
    count: (metric, n) => metrics.addMetric(metric, MetricUnit.Count, n),
  };
});

/**
 * Lambda entry point: EventBridge rules on Volsd-Sync command status changes (final statuses) and a
 * schedule (the sweep).
 */
export const statusHandler = createStatusHandler(defaultStatusDeps);

/** The same entry point under the name NodejsFunction uses by default. */
export const handler = statusHandler;
