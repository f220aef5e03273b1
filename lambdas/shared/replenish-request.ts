import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { logger } from './logger.js';
import { nowMs } from './time.js';

/** Why a replenish is asked for; shows in the execution name and the logs. */
export type ReplenishReason = 'acquired' | 'released' | 'no-idle' | 'schedule' | 'admin' | 'reconcile';

/**
 * The replenish interface: acquire, release and a claim that finds nothing ask for the pool's AZ to
 * be brought back to its target. The replenish workflow implements it; here a request is a
 * StartExecution whose name holds the pool, the AZ and a 10-second time bucket, so a burst of
 * requests starts one execution per bucket (the workflow itself refuses to run twice for one AZ).
 * Without a configured state machine the request is logged and dropped.
 */
export async function requestReplenish(
  sfn: SFNClient,
  stateMachineArn: string | undefined,
  request: { pool: string; az: string; reason: ReplenishReason },
): Promise<'started' | 'coalesced' | 'not-configured'> {
  if (!stateMachineArn) {
    logger.info('replenish requested but no replenish workflow is configured', request);
    return 'not-configured';
  }
  const bucket = Math.floor(nowMs() / 10_000);
  try {
    await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name: `replenish-${request.pool}-${request.az}-${bucket}`,
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
