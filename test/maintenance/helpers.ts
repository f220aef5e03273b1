import { expect } from 'vitest';
import type { ForeignVolumeFact, Repair, RepairKind } from '../../lambdas/reconcile/plan.js';
import { checkInvariants } from '../../sandbox/invariants.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { putContent } from '../helpers/sandbox.js';

/** The page every pool volume of these tests holds. */
export const content = '<h1>maintained</h1>';

/**
 * A sandbox with one AZ and a pool at its target, current at generation 1. Time runs 20x faster than
 * real time, not 100x: the document runners take wall time (the AWS CLI's start-up alone is about 0.6 s),
 * and on a loaded CI machine a sync must stay within the replenish's polling bound in modelled time.
 */
export async function startPool(seed: number, idlePerAz = 2): Promise<Sandbox> {
  const sandbox = await Sandbox.start({ azs: 1, idlePerAz, timeScale: 0.05, seed });
  await putContent(sandbox, 'live/index.html', content);
  await sandbox.repo.bumpGeneration(sandbox.options.pool);
  await sandbox.replenishAll();
  return sandbox;
}

/** What a reconcile execution returned. */
export interface ReconcileResult {
  status?: string;
  error?: string;
  output: {
    found?: number;
    repaired?: Record<RepairKind, number>;
    failedRepairs?: number;
    repairs?: Repair[];
    truncated?: boolean;
    unresolved?: string[];
    foreign?: ForeignVolumeFact[];
    foreignCount?: number;
    replenished?: string[];
    outcome?: string;
  };
}

let runs = 0;

/**
 * Runs the reconcile workflow once with no grace and no claim bound (the tests inject drift on a
 * settled pool, so nothing young is in flight) and waits for it, then for what it started (replenish).
 * It starts once the table's index shows the drift just injected (rule indexLag): a real run leaves
 * records younger than its grace (300 s) alone, and drift is never injected a second before it runs.
 */
export async function runReconcile(
  sandbox: Sandbox,
  input: Record<string, unknown> = {},
): Promise<ReconcileResult> {
  const arn = sandbox.wiring.stateMachines.reconcile;
  if (!arn) throw new Error('the sandbox runs no reconcile state machine');
  await sandbox.indexSettled();
  const { executionArn } = sandbox.sfn.start(
    arn,
    `reconcile-test-${++runs}`,
    JSON.stringify({
      pool: sandbox.options.pool,
      reason: 'test',
      graceSeconds: 0,
      claimMaxAgeSeconds: 0,
      ...input,
    }),
  );
  await sandbox.sfn.executions.get(executionArn)?.done;
  await sandbox.settle();
  const execution = sandbox.sfn.executions.get(executionArn);
  return {
    status: execution?.status,
    error: execution?.error,
    output: JSON.parse(execution?.output ?? '{}') as ReconcileResult['output'],
  };
}

/** Repairs done, by kind, leaving out the kinds with none. */
export function repairedKinds(result: ReconcileResult): Partial<Record<RepairKind, number>> {
  return Object.fromEntries(Object.entries(result.output.repaired ?? {}).filter(([, n]) => n > 0));
}

/** Asserts that a second run right after finds nothing left to repair. */
export async function expectNothingLeft(sandbox: Sandbox): Promise<void> {
  const again = await runReconcile(sandbox);
  expect(again.status).toBe('SUCCEEDED');
  expect(again.output.repairs).toEqual([]);
  expect(again.output.found).toBe(0);
}

/** Asserts every sandbox invariant against ground truth. */
export async function expectInvariants(sandbox: Sandbox): Promise<void> {
  expect((await checkInvariants(sandbox)).violations).toEqual([]);
}

/** The handlers' own SDK clients, answered by the sandbox's simulator (import after the sandbox started). */
export async function sandboxClients() {
  return import('../../lambdas/shared/clients.js');
}

/** Runs a Volsd document on an instance through SSM, as a workflow would, and waits for its end. */
export async function runDocument(
  sandbox: Sandbox,
  documentName: string,
  instanceId: string,
  parameters: Record<string, string>,
): Promise<void> {
  const { ssm } = await sandboxClients();
  const { commandOutcome, sendDocument } = await import('../../lambdas/shared/commands.js');
  const commandId = await sendDocument(ssm, { documentName, instanceId, parameters });
  for (let i = 0; i < 600; i++) {
    try {
      await commandOutcome(ssm, commandId, instanceId);
      return;
    } catch (err) {
      if (!(err instanceof Error) || err.name !== 'CommandPending') throw err;
      await sandbox.cloud.clock.sleep(1);
    }
  }
  throw new Error(`${documentName} on ${instanceId} did not end`);
}
