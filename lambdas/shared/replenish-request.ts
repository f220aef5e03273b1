import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { logger } from './logger.js';
import type { VolumeRepository } from './repository.js';
import { nowMs } from './time.js';

/** Why a replenish is asked for; shows in the execution name and the logs. */
export type ReplenishReason =
  | 'acquired'
  | 'released'
  | 'no-idle'
  | 'schedule'
  | 'admin'
  | 'reconcile'
  | 'wanted';

/** The lease one replenish run holds on its pool and AZ (lambdas/replenish). */
export function replenishLeaseName(pool: string, az: string): string {
  return `replenish#${pool}#${az}`;
}

/** What a request needs: Step Functions, and the table for the AZ's lease. */
export interface ReplenishRequester {
  sfn: SFNClient;
  repo: Pick<VolumeRepository, 'markLeaseWanted'>;
}

/**
 * The replenish interface: acquire, release and a claim that finds nothing ask for the pool's AZ to
 * be brought back to its target.
 * - A replenish runs for the AZ already (it holds the AZ's lease): the request marks the lease `wanted`
 *   (one conditional table write) and the run starts a follow-up when it gives the lease back, unless its
 *   own next plan covered it. No execution is started: a run started now would only find the lease taken
 *   and end, and in a burst of launches this is one write per launch instead of one StartExecution.
 * - Otherwise a StartExecution whose name holds the pool, the AZ and a 10-second time bucket, so a burst
 *   of requests starts one execution per bucket (the workflow itself refuses to run twice for one AZ);
 *   `name` overrides it (a follow-up run, named after the run it follows).
 * Without a configured state machine the request is logged and dropped.
 */
export async function requestReplenish(
  deps: ReplenishRequester,
  stateMachineArn: string | undefined,
  request: { pool: string; az: string; reason: ReplenishReason },
  options: { name?: string } = {},
): Promise<'started' | 'coalesced' | 'noted' | 'not-configured'> {
  if (!stateMachineArn) {
    logger.info('replenish requested but no replenish workflow is configured', request);
    return 'not-configured';
  }
  if (await deps.repo.markLeaseWanted(replenishLeaseName(request.pool, request.az))) return 'noted';
  const bucket = Math.floor(nowMs() / 10_000);
  try {
    await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name: options.name ?? `replenish-${request.pool}-${request.az}-${bucket}`,
        input: JSON.stringify({ pool: request.pool, az: request.az, reason: request.reason }),
      }),
    );
    return 'started';
  } catch (err) {
    if (
      err instanceof ExecutionAlreadyExists ||
      (err instanceof Error && err.name === 'ExecutionAlreadyExists')
    ) {
      return 'coalesced';
    }
    throw err;
  }
}
