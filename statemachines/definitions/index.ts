import { acquire } from './acquire.js';
import type { StateMachineDefinition } from './profiles.js';
import { reconcile } from './reconcile.js';
import { release } from './release.js';
import { replenish } from './replenish.js';
import { snapshot } from './snapshot.js';
import { syncAll } from './syncall.js';

/** Every state machine, by the name of its file `statemachines/<name>.asl.json`. */
export const definitions: Readonly<Record<string, StateMachineDefinition>> = {
  acquire,
  release,
  replenish,
  snapshot,
  reconcile,
  syncall: syncAll,
};
