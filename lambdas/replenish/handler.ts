import { workflowHandler } from '../shared/workflow-handler.js';
import { type ReplenishCtx, replenishSteps } from './steps.js';

/** The replenish workflow's function: runs the step `event.step` of `statemachines/replenish.asl.json`. */
export const handler = workflowHandler<ReplenishCtx>(replenishSteps);
