import { catchAll, type FatalLists, poll, stateMachine, taskBuilder, whenTrue } from './profiles.js';

/**
 * Fatal per step: the named errors each snapshot step can throw (read from lambdas/snapshot/steps.ts and
 * the helpers it calls; method in profiles.ts) that no retry cures.
 */
const fatal: FatalLists = {
  // repo.getPool: UnknownPool; repo.transition: IllegalTransition, VolumeNotFound (InstanceGone caught)
  plan: ['InvalidInput', 'IllegalTransition', 'UnknownPool', 'VolumeNotFound'],
  // sendDocument: InstanceNotReady (polled), CommandFailed
  freeze: ['InvalidInput'],
  // commandOutcome: CommandPending, CommandFailed only
  waitFrozen: ['InvalidInput'],
  // VolumeNotReady (polled) only
  createSnapshot: ['InvalidInput'],
  thaw: ['InvalidInput'],
  waitThawed: ['InvalidInput'],
  // repo.transition: IllegalTransition, VolumeNotFound
  unreserve: ['InvalidInput', 'IllegalTransition', 'VolumeNotFound'],
  // VolumeNotReady (polled), SnapshotFailed (no named error: retried, then caught)
  waitCompleted: ['InvalidInput'],
  // repo.setLatestSnapshot: UnknownPool
  record: ['InvalidInput', 'UnknownPool'],
  // repo.getPool: UnknownPool
  prune: ['InvalidInput', 'UnknownPool'],
  // repo.releaseLease: no named error
  done: ['InvalidInput'],
  thawAfterFailure: ['InvalidInput'],
  failed: ['InvalidInput'],
};

const task = taskBuilder('SnapshotFunctionArn', fatal);

export const snapshot = stateMachine({
  Comment:
    "Volsd snapshot, one pool: freeze a current IDLE volume on its sync worker, CreateSnapshot (tagged with the pool and the generation), thaw at once, wait for completion, record it as the pool's latest, prune beyond the retention (never one in use). Always thaws on failure. One run per pool at a time (a lease in the table).",
  StartAt: 'Init',
  TimeoutSeconds: 21600,
  States: {
    Init: {
      Type: 'Pass',
      Comment: 'Keep the input whole (az, retention are optional) and the execution name as the run id.',
      Parameters: { 'input.$': '$', 'runId.$': '$$.Execution.Name' },
      Next: 'Plan',
    },
    Plan: task({
      comment:
        "Take the pool's snapshot lease; pick a current IDLE volume attached to its worker and hold it (CLAIMED by the worker) so no acquire unmounts it while frozen.",
      step: 'plan',
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'Picked?',
    }),
    'Picked?': {
      Type: 'Choice',
      Choices: [whenTrue('$.reserved', 'Freeze')],
      Default: 'Done',
    },
    Freeze: task({
      comment: 'Volsd-Freeze on the worker (its watchdog thaws after a bound if this workflow is lost).',
      step: 'freeze',
      poll: [
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 10,
        }),
      ],
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'WaitFrozen',
    }),
    WaitFrozen: task({
      step: 'waitFrozen',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'CreateSnapshot',
    }),
    CreateSnapshot: task({
      comment:
        "CreateSnapshot tagged with the pool, the generation and role snapshot; a retry finds the run's snapshot by its description. EBS takes the point in time during the call.",
      step: 'createSnapshot',
      poll: [
        poll('VolumeNotReady', { IntervalSeconds: 2, BackoffRate: 1.5, MaxDelaySeconds: 10, MaxAttempts: 6 }),
      ],
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'Thaw',
    }),
    Thaw: task({
      comment:
        'Thaw right after CreateSnapshot returned: the snapshot does not need the freeze while pending.',
      step: 'thaw',
      poll: [
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 10,
        }),
      ],
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'WaitThawed',
    }),
    WaitThawed: task({
      step: 'waitThawed',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'Unreserve',
    }),
    Unreserve: task({
      comment: 'The volume back to IDLE.',
      step: 'unreserve',
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'WaitCompleted',
    }),
    WaitCompleted: task({
      comment:
        'Poll until the snapshot is completed (EBS: minutes to hours; this waits up to about 4 hours).',
      step: 'waitCompleted',
      poll: [
        poll('VolumeNotReady', {
          IntervalSeconds: 5,
          BackoffRate: 1.5,
          MaxDelaySeconds: 60,
          MaxAttempts: 250,
        }),
      ],
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'Record',
    }),
    Record: task({
      comment: "The pool's latestSnapshot: replenish creates volumes from it.",
      step: 'record',
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'Prune',
    }),
    Prune: task({
      comment:
        'Keep the newest N; never the latest, one a CREATING/SYNCING volume uses, or one EC2 says is in use.',
      step: 'prune',
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'Done',
    }),
    Done: task({
      comment: 'Give the lease back.',
      step: 'done',
      catch: [catchAll('$.error', 'ThawAfterFailure')],
      next: 'Snapshotted',
    }),
    Snapshotted: { Type: 'Succeed' },
    ThawAfterFailure: task({
      comment: 'Always thaw on failure: a thaw of a thawed filesystem succeeds.',
      step: 'thawAfterFailure',
      catch: [catchAll('$.thawError', 'Failed')],
      next: 'Thawing?',
    }),
    'Thawing?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.command', IsPresent: true, Next: 'WaitThawAfterFailure' }],
      Default: 'Failed',
    },
    WaitThawAfterFailure: task({
      step: 'waitThawed',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.thawError', 'Failed')],
      next: 'Failed',
    }),
    Failed: task({
      comment: 'The volume back to IDLE, the lease given back.',
      step: 'failed',
      catch: [catchAll('$.failedError', 'SnapshotFailed')],
      next: 'SnapshotFailed',
    }),
    SnapshotFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
  },
});
