import { catchAll, type FatalLists, poll, stateMachine, taskBuilder } from './profiles.js';

/**
 * Fatal per step: the named errors each replenish step can throw (read from lambdas/replenish/steps.ts
 * and the helpers it calls; method in profiles.ts) that no retry cures.
 */
const fatal: FatalLists = {
  // repo.getPool: UnknownPool; describeFleet: InstanceGone; repo.registerVolume: UnknownPool, VolumeNotFound
  plan: ['InvalidInput', 'InstanceGone', 'UnknownPool', 'VolumeNotFound'],
  // describeVolume; VolumeNotReady polled
  waitAvailable: ['InvalidInput'],
  // repo.getVolume, repo.transition, requireLiveInstance, attachAtFreeDevice
  attachToWorker: ['InvalidInput', 'InstanceGone', 'IllegalTransition', 'NoFreeDevice', 'VolumeNotFound'],
  // describeVolume, detachVolume; VolumeNotReady polled
  waitAttached: ['InvalidInput'],
  // sendDocument: InstanceNotReady (polled), CommandFailed
  prepare: ['InvalidInput'],
  // commandOutcome: CommandPending, CommandFailed only
  waitCommands: ['InvalidInput'],
  // repo.getPool: UnknownPool
  sync: ['InvalidInput', 'UnknownPool'],
  // describeVolumeStatus, describeVolume, repo.acquireLease; VolumeInitializing polled
  waitInitialized: ['InvalidInput'],
  // repo.getVolume, repo.transition
  markIdle: ['InvalidInput', 'IllegalTransition', 'VolumeNotFound'],
  // repo.transition errors are caught; sendDocument: InstanceNotReady, CommandFailed
  retireUnmount: ['InvalidInput'],
  // describeVolume, detachVolume: no named error
  retireDetach: ['InvalidInput'],
  // repo.forgetVolume: IllegalTransition, VolumeNotFound (VolumeNotReady polled)
  retireDelete: ['InvalidInput', 'IllegalTransition', 'VolumeNotFound'],
  // repo.releaseLease, repo.listVolumes: no named error
  done: ['InvalidInput'],
  failed: ['InvalidInput'],
};

const task = taskBuilder('ReplenishFunctionArn', fatal);

export const replenish = stateMachine({
  Comment:
    "Volsd replenish, one pool and AZ: keep idle + in-flight volumes at the target. Size the AZ's sync workers for the target (start through the group; drain and retire the surplus). Create from the latest snapshot (or empty, then format), attach to a sync worker with room, mount, sync to the current generation, wait until fully initialized, mark IDLE; retire idle extras. One run per pool and AZ at a time (a lease in the table).",
  StartAt: 'Init',
  // A first fill's sync alone may take the Volsd-Sync document's hour; then a 1 TiB volume initializing at
  // 100 MiB/s takes about 3 h more (WaitInitialized).
  TimeoutSeconds: 25200,
  States: {
    Init: {
      Type: 'Pass',
      Parameters: {
        'pool.$': '$.pool',
        'az.$': '$.az',
        'reason.$': '$.reason',
        'runId.$': '$$.Execution.Name',
      },
      Next: 'Plan',
    },
    Plan: task({
      comment:
        "Take the AZ's lease; count idle + in-flight against the target; create the missing volumes (client tokens make a retry create nothing twice); pick extras to retire.",
      step: 'plan',
      catch: [catchAll('$.error', 'Failed')],
      next: 'Leased?',
    }),
    'Leased?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.leased', BooleanEquals: true, Next: 'HasVolumes?' }],
      Default: 'AnotherRunHoldsTheAz',
    },
    AnotherRunHoldsTheAz: { Type: 'Succeed' },
    'HasVolumes?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.volumes[0]', IsPresent: true, Next: 'WaitAvailable' }],
      Default: 'HasRetire?',
    },
    WaitAvailable: task({
      step: 'waitAvailable',
      poll: [
        poll('VolumeNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 20,
        }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'AttachToWorker',
    }),
    AttachToWorker: task({
      step: 'attachToWorker',
      poll: [
        poll('InvalidParameterValue', {
          IntervalSeconds: 1,
          BackoffRate: 1,
          MaxDelaySeconds: 1,
          MaxAttempts: 3,
        }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'WaitAttached',
    }),
    WaitAttached: task({
      step: 'waitAttached',
      poll: [
        poll('VolumeNotReady', {
          IntervalSeconds: 1,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 20,
        }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'AnyAttached?',
    }),
    'AnyAttached?': {
      Type: 'Choice',
      Comment: 'WaitAttached may set every volume aside (stuck attaches): then only the retires are left.',
      Choices: [{ Variable: '$.volumes[0]', IsPresent: true, Next: 'Prepare' }],
      Default: 'HasRetire?',
    },
    Prepare: task({
      comment:
        'Volsd-Format (empty volume) or Volsd-Mount (from a snapshot) on the worker, under its pool root.',
      step: 'prepare',
      poll: [
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 20,
        }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'WaitPrepared',
    }),
    WaitPrepared: task({
      comment:
        'Up to 20 volumes per round, each its own Volsd-Format, spread over the workers: bounded at about 7 minutes (90 polls, at most 5 s apart).',
      step: 'waitCommands',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 90 }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'Sync',
    }),
    Sync: task({
      comment:
        "Volsd-Sync each new volume to the pool's current generation (a snapshot-born volume moves only the delta).",
      step: 'sync',
      catch: [catchAll('$.error', 'Failed')],
      next: 'WaitSynced',
    }),
    WaitSynced: task({
      comment:
        'Poll the sync for as long as the Volsd-Sync document may run (3600 s): a first fill copies the whole tree.',
      step: 'waitCommands',
      poll: [
        // 1 s growing to 30 s (75 s for the first 9 polls), then every 30 s: 3,675 s in all.
        poll('CommandPending', {
          IntervalSeconds: 1,
          BackoffRate: 1.5,
          MaxDelaySeconds: 30,
          MaxAttempts: 129,
        }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'WaitInitialized',
    }),
    WaitInitialized: task({
      comment:
        'Poll DescribeVolumeStatus until every new volume is fully initialized (blocks of a snapshot-born volume load lazily): only warm volumes become IDLE. Keeps the AZ lease meanwhile.',
      step: 'waitInitialized',
      poll: [
        poll('VolumeInitializing', {
          IntervalSeconds: 15,
          BackoffRate: 1.5,
          MaxDelaySeconds: 120,
          MaxAttempts: 150,
        }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'MarkIdle',
    }),
    MarkIdle: task({
      step: 'markIdle',
      catch: [catchAll('$.error', 'Failed')],
      next: 'HasRetire?',
    }),
    'HasRetire?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.retire[0]', IsPresent: true, Next: 'RetireUnmount' }],
      Default: 'Done',
    },
    RetireUnmount: task({
      comment: 'IDLE -> RETIRING (skipped if claimed meanwhile), unmount on the worker.',
      step: 'retireUnmount',
      catch: [catchAll('$.error', 'Failed')],
      next: 'WaitRetireUnmount',
    }),
    WaitRetireUnmount: task({
      step: 'waitCommands',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'RetireDetach',
    }),
    RetireDetach: task({
      step: 'retireDetach',
      catch: [catchAll('$.error', 'Failed')],
      next: 'RetireDelete',
    }),
    RetireDelete: task({
      step: 'retireDelete',
      poll: [
        poll('VolumeNotReady', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.error', 'Failed')],
      next: 'Done',
    }),
    Done: task({
      step: 'done',
      catch: [catchAll('$.error', 'Failed')],
      next: 'Again?',
    }),
    'Again?': {
      Type: 'Choice',
      Comment:
        'Another round while the target is short and progress is possible (bounded: 12 rounds of up to 20 volumes); first a wait when the short fall waits for sync workers the group is starting.',
      Choices: [
        {
          And: [
            { Variable: '$.again', BooleanEquals: true },
            { Variable: '$.round', NumericLessThan: 12 },
            { Variable: '$.waitWorkers', IsPresent: true },
            { Variable: '$.waitWorkers', BooleanEquals: true },
          ],
          Next: 'WaitForWorkers',
        },
        {
          And: [
            { Variable: '$.again', BooleanEquals: true },
            { Variable: '$.round', NumericLessThan: 12 },
          ],
          Next: 'Plan',
        },
      ],
      Default: 'Replenished',
    },
    WaitForWorkers: {
      Type: 'Wait',
      Comment: 'A new sync worker boots, then its SSM agent registers: tens of seconds.',
      Seconds: 20,
      Next: 'Plan',
    },
    Replenished: { Type: 'Succeed' },
    Failed: task({
      step: 'failed',
      catch: [catchAll('$.failedError', 'ReplenishFailed')],
      next: 'ReplenishFailed',
    }),
    ReplenishFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
  },
});
