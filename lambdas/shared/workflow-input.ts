import { createHash } from 'node:crypto';
import { z } from 'zod';
import { mountPathGrammar, systemTreeOf } from './mount-path.js';
import { instanceIdSchema, poolNameSchema } from './validate.js';

/** Why a workflow runs: an Auto Scaling lifecycle action, or a manual request (volsd-client). */
export const WorkflowAction = {
  Launch: 'launch',
  Terminate: 'terminate',
  ManualAcquire: 'manual-acquire',
  ManualRelease: 'manual-release',
} as const;
export type WorkflowAction = (typeof WorkflowAction)[keyof typeof WorkflowAction];

/** The lifecycle action to complete at the end of a workflow. */
export const lifecycleSchema = z.object({
  hookName: z.string().min(1).max(255),
  groupName: z.string().min(1).max(255),
  token: z.string().uuid(),
});
export type LifecycleRef = z.infer<typeof lifecycleSchema>;

/**
 * Input of the acquire and release state machines. The dispatcher builds it from a lifecycle event,
 * volsd-client from its command line. It holds nothing that changes between two deliveries of the same
 * event, so a duplicate StartExecution with the same name has identical input.
 */
export const workflowInputSchema = z.object({
  pool: poolNameSchema,
  instanceId: instanceIdSchema,
  action: z.enum([
    WorkflowAction.Launch,
    WorkflowAction.Terminate,
    WorkflowAction.ManualAcquire,
    WorkflowAction.ManualRelease,
  ]),
  lifecycle: lifecycleSchema.optional(),
  /**
   * Manual acquires may ask for another mount path than the pool's: absolute and normalized (the
   * MountPath grammar of Volsd-Mount), in no system tree. Whether it lies under the pool's mount roots
   * is checked by the acquire workflow, which knows them (lambdas/shared/mount-path.ts).
   */
  mountPath: z
    .string()
    .max(200)
    .regex(mountPathGrammar, 'an absolute, normalized path')
    .refine((p) => systemTreeOf(p) === undefined, 'not in a system tree')
    .optional(),
  /** Manual requests carry a request id so one host can acquire again after a release. */
  requestId: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,36}$/)
    .optional(),
});
export type WorkflowInput = z.infer<typeof workflowInputSchema>;

/**
 * The execution name of a workflow: derived from the instance, the action and the lifecycle token (or
 * the manual request id), so the same event always maps to the same name and a duplicate starts
 * nothing (Step Functions keeps names unique for 90 days). At most 80 characters of [A-Za-z0-9-].
 */
export function executionName(input: WorkflowInput): string {
  const discriminator = input.lifecycle?.token ?? input.requestId ?? 'once';
  const name = `${input.action}-${input.instanceId}-${discriminator}`;
  if (name.length <= 80) return name;
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${name.slice(0, 63)}-${digest}`;
}
