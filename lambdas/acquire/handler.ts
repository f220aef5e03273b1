import { workflowHandler } from '../shared/workflow-handler.js';
import { acquireSteps } from './steps.js';

/** The acquire workflow's function: runs the step `event.step` of `statemachines/acquire.asl.json`. */
export const handler = workflowHandler(acquireSteps);
