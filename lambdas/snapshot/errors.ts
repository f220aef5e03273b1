import { VolsdError } from '../shared/errors.js';

/**
 * EC2 reports the snapshot `error` (or it vanished while pending). Not retried by name: the state
 * machine's catch-all retries then thaws and fails. Belongs in `lambdas/shared/errors.ts` `namedErrors`
 * once a state machine matches it by name.
 */
export class SnapshotFailed extends VolsdError {
  override name = 'SnapshotFailed' as const;
}
