/**
 * The volume model: the states a pool volume goes through and the only transitions allowed between
 * them. `transitions` is the single place where transitions are written down; the repository refuses
 * any other, and the tests read the same table.
 *
 * Life of a volume:
 *   CREATING  -> SYNCING   created (from a snapshot or empty), attached to the AZ's sync worker
 *   SYNCING   -> IDLE      mounted on the worker and synced to the pool's current generation
 *   IDLE      -> CLAIMED   an instance claimed it (conditional write on state = IDLE)
 *   CLAIMED   -> DETACHING unmounted on the worker, detach requested
 *   DETACHING -> ATTACHING available again, attach to the instance requested
 *   ATTACHING -> IN_USE    attached, mounted and current on the instance
 *   IN_USE    -> RELEASING the instance terminates or releases it
 *   RELEASING -> RETIRING  release policy `delete`            (RETIRING -> removed from the table)
 *   RELEASING -> SYNCING   release policy `recycle`: back to the worker for a full resync
 * Direct creation (no idle volume in the AZ, the pool has a snapshot): a volume created from the
 * snapshot for an instance is born CLAIMED by it (no CREATING/SYNCING/IDLE: it never reaches the
 * worker) and walks CLAIMED -> DETACHING -> ATTACHING -> IN_USE like any claimed volume.
 * Compensation (acquire failed) walks CLAIMED/DETACHING/ATTACHING back to IDLE or SYNCING, and any
 * state may fall into ERROR when the real state is unknown; reconcile resolves ERROR volumes.
 */
export const VolumeState = {
  Creating: 'CREATING',
  Syncing: 'SYNCING',
  Idle: 'IDLE',
  Claimed: 'CLAIMED',
  Detaching: 'DETACHING',
  Attaching: 'ATTACHING',
  InUse: 'IN_USE',
  Releasing: 'RELEASING',
  Retiring: 'RETIRING',
  Error: 'ERROR',
} as const;

export type VolumeState = (typeof VolumeState)[keyof typeof VolumeState];

export const allVolumeStates: readonly VolumeState[] = Object.values(VolumeState);

const S = VolumeState;

/** The allowed transitions: `transitions[from]` lists every state `from` may move to. */
export const transitions: Readonly<Record<VolumeState, readonly VolumeState[]>> = {
  [S.Creating]: [S.Syncing, S.Retiring, S.Error],
  [S.Syncing]: [S.Idle, S.Retiring, S.Error],
  // IDLE -> SYNCING: a resync (push failed on the worker, full resync ordered by an admin).
  [S.Idle]: [S.Claimed, S.Syncing, S.Retiring, S.Error],
  // CLAIMED -> IDLE: compensation before anything moved on the worker.
  [S.Claimed]: [S.Detaching, S.Idle, S.Error],
  // DETACHING -> SYNCING: compensation, the volume goes back to the worker and is resynced.
  [S.Detaching]: [S.Attaching, S.Syncing, S.Error],
  // ATTACHING -> DETACHING: a stuck attach is aborted and the volume detached again before a retry.
  [S.Attaching]: [S.InUse, S.Detaching, S.Syncing, S.Error],
  [S.InUse]: [S.Releasing, S.Error],
  [S.Releasing]: [S.Retiring, S.Syncing, S.Error],
  [S.Retiring]: [S.Error],
  [S.Error]: [S.Syncing, S.Retiring, S.Releasing],
};

/** True when the model allows `from -> to`. */
export function canTransition(from: VolumeState, to: VolumeState): boolean {
  return transitions[from].includes(to);
}

/** States in which a volume is held by an instance (its `holder` is the instance id). */
export const heldStates: readonly VolumeState[] = [S.Claimed, S.Detaching, S.Attaching, S.InUse, S.Releasing];

/** States in which a volume is in the worker's care (attached to it or on its way). */
export const poolStates: readonly VolumeState[] = [S.Creating, S.Syncing, S.Idle];

/** A volume as the table records it. */
export interface VolumeRecord {
  volumeId: string;
  pool: string;
  az: string;
  state: VolumeState;
  /** Optimistic-lock counter, +1 on every write. */
  version: number;
  /** Instance the volume is held by (an instance or the AZ's sync worker). */
  holder?: string;
  /** Device name used for the current attachment, e.g. /dev/sdf. */
  device?: string;
  /** Content generation the volume was last synced to. */
  generation: number;
  /** Snapshot the volume was created from, if any. */
  snapshotId?: string;
  /** Why the volume went to ERROR, or the last compensation. */
  reason?: string;
  createdAt: string;
  updatedAt: string;
  /** When the current holder claimed it (ISO); reconcile ages claims with it. */
  claimedAt?: string;
  /**
   * The content is not trusted (the volume was out of Volsd's hands: recycled from an instance): the next
   * sync rebuilds it from the bucket (Volsd-Sync `Untrusted`) before it may be IDLE again.
   */
  untrusted?: boolean;
}

/** Which volume an instance holds (one per instance). */
export interface AssignmentRecord {
  instanceId: string;
  pool: string;
  az: string;
  /** Absent between the two steps of a claim. */
  volumeId?: string;
  createdAt: string;
}

/** The pool's own record. */
export interface PoolRecord {
  pool: string;
  /** AZs the pool serves. */
  azs: string[];
  /** Idle volumes to keep in each AZ. */
  targetIdlePerAz: number;
  /** Current content generation: +1 per push batch. */
  generation: number;
  latestSnapshot?: { snapshotId: string; generation: number; createdAt: string };
  updatedAt: string;
}
