import { z } from 'zod';
import { env, loadConfig, once } from '../shared/config.js';

/**
 * Configuration only reconcile reads, beside the workflow configuration: what it needs to tell a lost
 * acquire from a running one and to find the launches of the served groups.
 */
export const reconcileConfigShape = {
  /** The acquire state machine: its RUNNING executions tell claims and launches still in hand. */
  ACQUIRE_STATE_MACHINE_ARN: env.optionalArn,
  /** Auto Scaling groups the pool serves (comma-separated): their Pending:Wait instances are checked. */
  SERVED_GROUPS: env.csv.pipe(z.array(z.string().min(1).max(255))),
  /** Volsd's launch hook name; unset: `volsd-<pool>-launch`, else the group's only `volsd*` launch hook. */
  LAUNCH_HOOK_NAME: z.string().min(1).max(255).optional(),
};

export type ReconcileConfig = z.infer<z.ZodObject<typeof reconcileConfigShape>>;

/** Reads reconcile's own configuration from the environment, once per container. */
export const loadReconcileConfig = once(() => loadConfig(reconcileConfigShape));
