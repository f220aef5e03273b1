import { workflowHandler } from '../shared/workflow-handler.js';
import { type ReconcileCtx, reconcileSteps } from './steps.js';

/** The reconcile workflow's function: runs the step `event.step` of `statemachines/reconcile.asl.json`. */
export const handler = workflowHandler<ReconcileCtx>(reconcileSteps());
