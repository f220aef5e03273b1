import { workflowHandler } from '../shared/workflow-handler.js';
import { type SyncAllCtx, syncAllSteps } from './steps.js';

/** The sync-all workflow's function: runs the step `event.step` of `statemachines/syncall.asl.json`. */
export const handler = workflowHandler<SyncAllCtx>(syncAllSteps);
