/**
 * Named errors. The `name` of each class is what Step Functions matches in `Retry`/`Catch`
 * `ErrorEquals` (a Lambda error's `errorType` is the thrown error's `name`), so a class name is a
 * contract with the ASL files: `test/model.test.ts` checks that every name used in a state machine
 * exists here.
 */
export class VolsdError extends Error {
  override name = 'VolsdError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

function named<N extends string>(errorName: N) {
  return class extends VolsdError {
    override name: N = errorName;
  };
}

/** Input that fails validation at an edge (ids, AZ, pool name, event shape). Never retried. */
export class InvalidInput extends named('InvalidInput') {}
/** The pool has no record in the table. */
export class UnknownPool extends named('UnknownPool') {}
/** No IDLE volume could be claimed in the pool and AZ. Acquire waits for a replenish and retries. */
export class NoIdleVolume extends named('NoIdleVolume') {}
/**
 * Nothing idle, and the pool has no snapshot yet to create a volume from: it is still being built (its
 * first fill). Acquire waits for replenish longer than for NoIdleVolume, with lifecycle heartbeats.
 */
export class PoolNotReady extends named('PoolNotReady') {}
/** The instance is in an AZ the pool has no sync worker in: no retry helps, the pool's AZs must change. */
export class AzNotCovered extends named('AzNotCovered') {}
/** The volume has no record in the table. */
export class VolumeNotFound extends named('VolumeNotFound') {}
/** A transition that the state table does not allow. A programming or operator error: never retried. */
export class IllegalTransition extends named('IllegalTransition') {}
/** A conditional write lost against a concurrent writer (state or version moved on). Retry re-reads. */
export class ConcurrentModification extends named('ConcurrentModification') {}
/** The instance already holds a volume of another pool, or the assignment names another volume. */
export class AssignmentConflict extends named('AssignmentConflict') {}
/** The volume is held by someone else than the caller expected. */
export class VolumeHeldElsewhere extends named('VolumeHeldElsewhere') {}
/** An EC2 volume or attachment is still moving (attaching/detaching/creating): poll again. */
export class VolumeNotReady extends named('VolumeNotReady') {}
/** An attach has not completed within its bound: abort it (force detach) and try again. */
export class AttachStuck extends named('AttachStuck') {}
/** The instance is gone (terminated, shutting down, or not found). Nothing can be attached to it. */
export class InstanceGone extends named('InstanceGone') {}
/** An SSM command did not succeed on the instance. */
export class CommandFailed extends named('CommandFailed') {
  /**
   * The invocation's SSM status when the command ended without success (`Failed`, `TimedOut`,
   * `Cancelled`...); undefined when it failed before running (SendCommand returned no id).
   */
  status?: string;
  /** Its StatusDetails (`DeliveryTimedOut`, `ExecutionTimedOut`, `Failed`...). */
  statusDetails?: string;
}
/** An SSM command is still running: poll again. */
export class CommandPending extends named('CommandPending') {}
/** The instance is not reachable by SSM yet (still booting, agent not registered): try again. */
export class InstanceNotReady extends named('InstanceNotReady') {}
/** The instance has no free device name or attachment slot. */
export class NoFreeDevice extends named('NoFreeDevice') {}
/** A volume made from a snapshot is still loading its blocks (EBS volume initialization): poll again. */
export class VolumeInitializing extends named('VolumeInitializing') {}
/** The boot unit on the instance reported that it could not mount: the acquire goes on over SSM. */
export class BootUnitFailed extends named('BootUnitFailed') {}
/**
 * The mount command on the instance ended TimedOut (not delivered within its TimeoutSeconds, or killed
 * at its execution timeout) with attempts left: Volsd-Mount is idempotent, so it is sent again.
 */
export class MountTimedOut extends named('MountTimedOut') {}

/** Every named error class, by name: the set that ASL `ErrorEquals` may reference. */
export const namedErrors = {
  InvalidInput,
  UnknownPool,
  NoIdleVolume,
  PoolNotReady,
  AzNotCovered,
  VolumeNotFound,
  IllegalTransition,
  ConcurrentModification,
  AssignmentConflict,
  VolumeHeldElsewhere,
  VolumeNotReady,
  AttachStuck,
  InstanceGone,
  CommandFailed,
  CommandPending,
  InstanceNotReady,
  NoFreeDevice,
  VolumeInitializing,
  BootUnitFailed,
  MountTimedOut,
} as const;

export type VolsdErrorName = keyof typeof namedErrors;

/**
 * AWS error names (SDK exception `name`s) that the state machines match directly: throttling that
 * outlived the SDK's own retries, and EC2's "device name in use" on attach. Throttling is spelled per
 * protocol: EC2 `RequestLimitExceeded`, SSM (JSON) `ThrottlingException`, Auto Scaling (query)
 * `Throttling`, all "Rate exceeded" for the last two.
 */
export const awsErrorNames: readonly string[] = [
  'RequestLimitExceeded',
  'ThrottlingException',
  'Throttling',
  'TooManyUpdates',
  'ProvisionedThroughputExceededException',
  'InvalidParameterValue',
];
