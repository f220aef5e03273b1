import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';

/**
 * Powertools logger, metrics and tracer shared by every handler. Structured JSON logs; the handlers
 * append `instanceId`, `volumeId` and the execution name as persistent keys so one acquire can be
 * followed across its steps. `POWERTOOLS_SERVICE_NAME` and `POWERTOOLS_METRICS_NAMESPACE` come from the
 * function's environment (set by the CDK construct).
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'volsd' });
// Metrics' own warnings (e.g. an invocation that recorded no metric) go through the structured logger.
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'Volsd',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'volsd',
  logger,
});
// The alarms (lib/monitoring.ts) match exactly the dimension sets {Pool} and {Pool, Az}: no `service`.
metrics.clearDefaultDimensions();
if (process.env.POOL_NAME) metrics.setDefaultDimensions({ Pool: process.env.POOL_NAME });

/** Emits one metric with the dimensions {Pool, Az} only (per-AZ alarms such as IdleVolumes). */
export function azMetric(pool: string, az: string, name: string, value: number): void {
  const single = metrics.singleMetric();
  single.clearDefaultDimensions();
  single.addDimensions({ Pool: pool, Az: az });
  single.addMetric(name, 'Count', value);
}
export const tracer = new Tracer({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'volsd' });
