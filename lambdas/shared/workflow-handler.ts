import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import { autoScaling, dynamoDoc, ec2, sfn, ssm } from './clients.js';
import { once } from './config.js';
import { logger, metrics, tracer } from './logger.js';
import { VolumeRepository } from './repository.js';
import { runStep, type Step, type StepDeps, type WorkflowCtx } from './steps.js';
import { nowMs } from './time.js';
import { loadWorkflowConfig } from './workflow-config.js';

/** Dependencies of the workflow functions, built once per container from the environment. */
export const workflowDeps = once((): StepDeps => {
  const config = loadWorkflowConfig();
  return {
    config,
    // Record timestamps from the same time source as the steps' own bounds.
    repo: new VolumeRepository(dynamoDoc, { tableName: config.TABLE_NAME, now: () => new Date(nowMs()) }),
    ec2,
    ssm,
    autoScaling,
    sfn,
  };
});

/** The event a workflow Task sends: which step to run and the execution's data. */
export interface StepEvent<C = WorkflowCtx> {
  step: string;
  ctx: C;
  /** Set by a `.waitForTaskToken` Task: the token its step stores for whoever answers. */
  taskToken?: string;
}

/**
 * A workflow Lambda handler over a step table: the state machine names the step, the handler runs it
 * with the container's dependencies. Logs carry the instance and volume of the execution.
 */
export function workflowHandler<C extends object = WorkflowCtx>(steps: Record<string, Step<C>>) {
  const run = async (event: StepEvent<C>): Promise<C> => {
    const ctx = (event.ctx ?? {}) as Record<string, unknown>;
    logger.appendKeys({ step: event.step, instanceId: ctx.instanceId, volumeId: ctx.volumeId, az: ctx.az });
    const withToken =
      typeof event.taskToken === 'string' ? { ...event, ctx: { ...ctx, taskToken: event.taskToken } } : event;
    return runStep(steps, withToken, workflowDeps());
  };
  return (
    middy(run)
      .use(injectLambdaContext(logger, { resetKeys: true }))
      .use(logMetrics(metrics))
      // The execution's data is in Step Functions' history already: the trace keeps only timings and errors.
      .use(captureLambdaHandler(tracer, { captureResponse: false }))
  );
}
