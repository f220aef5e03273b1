import { workflowHandler } from '../shared/workflow-handler.js';
import { type SnapshotCtx, snapshotSteps } from './steps.js';

/** The snapshot workflow's function: runs the step `event.step` of `statemachines/snapshot.asl.json`. */
export const handler = workflowHandler<SnapshotCtx>(snapshotSteps);
