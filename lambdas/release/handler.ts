import { workflowHandler } from '../shared/workflow-handler.js';
import { releaseSteps } from './steps.js';

/** The release workflow's function: runs the step `event.step` of `statemachines/release.asl.json`. */
export const handler = workflowHandler(releaseSteps);
