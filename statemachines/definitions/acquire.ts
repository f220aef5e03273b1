import {
  type CallbackEndError,
  callbackTaskBuilder,
  catchAll,
  catchEnds,
  catchOn,
  type FatalLists,
  poll,
  stateMachine,
  taskBuilder,
  whenTrue,
} from './profiles.js';

/**
 * Fatal per step: the named errors each acquire step can throw (read from lambdas/acquire/steps.ts and the
 * helpers it calls; method in profiles.ts) that no retry cures. Compensate, compensateDone and abandon
 * had shorter lists already, kept as they were.
 */
const fatal: FatalLists = {
  // requireLiveInstance (justLaunched): InstanceGone; repo.getPool: UnknownPool; AzNotCovered outside the
  // pool; then the claim step inline (its list below; NoIdleVolume and PoolNotReady caught: the Claim state
  // polls them)
  resolve: [
    'InvalidInput',
    'InstanceGone',
    'UnknownPool',
    'AzNotCovered',
    'IllegalTransition',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'VolumeNotFound',
  ],
  // repo.claimVolume: IllegalTransition, AssignmentConflict, UnknownPool, VolumeNotFound; direct creation
  // (repo.getPool, repo.claimCreated): also VolumeHeldElsewhere
  claim: [
    'InvalidInput',
    'IllegalTransition',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'UnknownPool',
    'VolumeNotFound',
  ],
  // requireVolume: VolumeNotFound (sendDocument: InstanceNotReady, CommandFailed, not fatal)
  unmountOnWorker: ['InvalidInput', 'VolumeNotFound'],
  // commandOutcome: CommandPending, CommandFailed only
  waitCommand: ['InvalidInput'],
  // repo.getVolume, repo.transition, requireVolume; VolumeHeldElsewhere when another instance holds it
  detachFromWorker: ['InvalidInput', 'IllegalTransition', 'VolumeHeldElsewhere', 'VolumeNotFound'],
  // requireVolume: VolumeNotFound (VolumeNotReady polled)
  waitDetached: ['InvalidInput', 'VolumeNotFound'],
  // requireVolume, repo.getVolume, repo.transition, requireLiveInstance, attachAtFreeDevice; AttachStuck
  // after maxAttachAttempts
  attach: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeNotFound',
    'AttachStuck',
  ],
  // requireVolume: VolumeNotFound; requireLiveInstance: InstanceGone; AttachStuck past attachTimeoutMs
  waitAttached: ['InvalidInput', 'InstanceGone', 'VolumeNotFound', 'AttachStuck'],
  // requireVolume, repo.getVolume, repo.transition
  abortAttach: ['InvalidInput', 'IllegalTransition', 'VolumeNotFound'],
  // requireLiveInstance when SSM cannot reach the instance: InstanceGone
  mount: ['InvalidInput', 'InstanceGone'],
  // waitCommand's; MountTimedOut goes straight to the Catch that sends the mount again (a retry would
  // only read the same ended command)
  waitMount: ['InvalidInput', 'MountTimedOut'],
  // repo.getPool: UnknownPool
  bringCurrent: ['InvalidInput', 'UnknownPool'],
  // readInitialization, maybeHeartbeat: none of their own
  checkInitialized: ['InvalidInput'],
  // setDeleteOnTermination: InstanceGone; repo.getVolume, repo.transition
  finish: ['InvalidInput', 'InstanceGone', 'IllegalTransition', 'VolumeNotFound'],
  // The callback steps (lambdas/acquire/callbacks.ts) run their plain twin, then store the token.
  // CommandFailed: the events function fails the Task when Volsd-Unmount fails; compensated at once, as
  // the WaitUnmount poll's failure was (a retry would send the unmount again to a worker that refused it)
  // ... and the detach from the worker and, on the boot-unit path, the attach that follow in the same Task
  // (detachFromWorker's and attachForUnit's lists)
  unmountAndAwait: [
    'InvalidInput',
    'VolumeNotFound',
    'CommandFailed',
    'IllegalTransition',
    'VolumeHeldElsewhere',
    'InstanceGone',
    'NoFreeDevice',
    'AttachStuck',
  ],
  detachAndAwaitRunning: [
    'InvalidInput',
    'IllegalTransition',
    'VolumeHeldElsewhere',
    'VolumeNotFound',
    'InstanceGone',
  ],
  attachForUnit: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeNotFound',
    'AttachStuck',
  ],
  compensate: ['InvalidInput', 'IllegalTransition'],
  compensateDone: ['InvalidInput', 'IllegalTransition'],
  abandon: ['InvalidInput'],
};

const task = taskBuilder('AcquireFunctionArn', fatal);
const callback = callbackTaskBuilder('AcquireFunctionArn', fatal);
/** A wait that timed out goes on to the poll behind it. */
const timedOut: CallbackEndError[] = ['States.Timeout'];
/** The boot unit did not answer in time, or said it cannot mount: the SSM path. */
const unitSilent: CallbackEndError[] = ['States.Timeout', 'States.HeartbeatTimeout', 'BootUnitFailed'];

export const acquire = stateMachine({
  Comment:
    "Volsd acquire: claim an idle volume in the instance's AZ, move it from the sync worker to the instance, mount it, bring it current, then let the instance go InService. Any failure compensates and completes the lifecycle action with the configured result.",
  StartAt: 'Resolve',
  // The longest waits in a row (a first fill, attach, mount, five sync rounds: 5400 s) fit, plus the longest
  // initialization hold of a direct creation (INITIALIZATION_HOLD_SECONDS, at most 7200 s); a timeout would
  // leave the lifecycle action to its own timeout instead of Abandon.
  TimeoutSeconds: 12600,
  States: {
    Resolve: task({
      comment:
        "Find the instance's AZ (a gone instance ends the acquire) and claim an idle volume there; nothing idle: Claim.",
      step: 'resolve',
      poll: [
        // A launch is unknown to DescribeInstances for a few seconds (eventual consistency): first look
        // again after 2 s, not 1, so most acquires need one retry at most.
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 5,
          MaxAttempts: 12,
        }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'Claimed?',
    }),
    'Claimed?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.volumeId', IsPresent: true, Next: 'UnmountOnWorker' }],
      Default: 'Claim',
    },
    Claim: task({
      comment:
        'Claim an idle volume (idempotent per instance). Nothing idle: a replenish is requested and the claim retried with backoff (2 s growing to 30 s) for about 10 minutes, with lifecycle heartbeats; about 45 minutes while the pool has no snapshot yet (PoolNotReady: being built, e.g. at the first deploy).',
      step: 'claim',
      poll: [
        poll('NoIdleVolume', { IntervalSeconds: 2, BackoffRate: 1.6, MaxDelaySeconds: 30, MaxAttempts: 24 }),
        // 5, 7.5, 11, 17, 25, then 30 s (claimPollMaxSeconds in lambdas/acquire/first-deploy.ts): 44 min.
        poll('PoolNotReady', { IntervalSeconds: 5, BackoffRate: 1.5, MaxDelaySeconds: 30, MaxAttempts: 90 }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'UnmountOnWorker',
    }),
    UnmountOnWorker: callback({
      comment:
        "One Task from the unmount to the instance's own mount: Volsd-Unmount on the sync worker; on the command's Success event the events function detaches the volume from the worker and the Task waits on for the instance's `running` event, the moment AWS accepts an attach; an instance without the boot unit resumes there. With the unit, the events function attaches on `running` and the Task waits on for the unit's signal (mounted and current). No resume, invocation or transition between these waits. Nothing for 150 s (unmount, the instance's 20-40 s pending, its boot, the unit), or the unit failed: the poll path, mounting over SSM. The volume still leaving the worker when the instance runs: AttachForUnit polls it. Any other failure that is not fatal (throttling past the SDK's retries, in a stage or in the unmount itself): the poll path, where each step retries its one call.",
      step: 'unmountAndAwait',
      timeoutSeconds: 900,
      heartbeatSeconds: 150,
      ends: unitSilent,
      // A retry would re-run the unmount, its event and the detach for the one call that failed (under an
      // EC2 throttling burst, six times over): the Catch sends each error where one call is retried.
      stages: true,
      catch: [
        catchEnds(unitSilent, '$.bootUnitError', 'UnmountAgain'),
        catchOn(['VolumeNotReady'], '$.attachError', 'AttachForUnit'),
        catchOn(fatal.unmountAndAwait ?? [], '$.error', 'Compensate'),
        catchAll('$.stageError', 'UnmountAgain'),
      ],
      next: 'BootUnit?',
    }),
    UnmountAgain: task({
      comment:
        'Safety net: the status event did not come, or a stage of UnmountOnWorker failed. Volsd-Unmount again (idempotent; nothing to do once the volume left the worker) and poll it.',
      step: 'unmountOnWorker',
      poll: [
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 10,
        }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'WaitUnmount',
    }),
    WaitUnmount: task({
      step: 'waitCommand',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'DetachFromWorker',
    }),
    DetachFromWorker: callback({
      comment:
        'Safety net: detach from the worker (if UnmountOnWorker did not), then wait for the instance state event `running` (read once too: the event may be what was lost); no event in 120 s: poll.',
      step: 'detachAndAwaitRunning',
      timeoutSeconds: 120,
      ends: timedOut,
      catch: [catchEnds(timedOut, '$.waitError', 'WaitDetached'), catchAll('$.error', 'Compensate')],
      next: 'BootUnit?',
    }),
    'BootUnit?': {
      Type: 'Choice',
      Comment:
        'The boot unit mounted and signalled within UnmountOnWorker: Direct?. An instance with the boot unit that has not failed or been silent mounts by itself (AttachForUnit); the others over SSM.',
      Choices: [
        whenTrue('$.attachedForUnit', 'Direct?'),
        { Variable: '$.bootUnitError', IsPresent: true, Next: 'WaitDetached' },
        whenTrue('$.bootUnit', 'AttachForUnit'),
      ],
      Default: 'WaitDetached',
    },
    AttachForUnit: callback({
      comment:
        "Attach while the OS boots, then wait for the boot unit's signal (mounted and current). No signal within 90 s, or the unit failed: the SSM path from Attach.",
      step: 'attachForUnit',
      timeoutSeconds: 900,
      heartbeatSeconds: 90,
      ends: unitSilent,
      poll: [
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 5,
          MaxAttempts: 30,
        }),
        poll('VolumeNotReady', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
        poll('InvalidParameterValue', {
          IntervalSeconds: 1,
          BackoffRate: 1,
          MaxDelaySeconds: 1,
          MaxAttempts: 3,
        }),
      ],
      catch: [catchEnds(unitSilent, '$.bootUnitError', 'Attach'), catchAll('$.error', 'Compensate')],
      next: 'Direct?',
    }),
    'Direct?': {
      Type: 'Choice',
      Comment:
        'A pool volume is warm: Finish. One created for this instance may still load its blocks: CheckInitialized, as on the SSM path.',
      // A missing path in a Choice rule is States.Runtime on AWS: test presence first.
      Choices: [whenTrue('$.direct', 'CheckInitialized')],
      Default: 'Finish',
    },
    WaitDetached: task({
      comment: 'Poll until the volume is available (detach takes 1-4 s).',
      step: 'waitDetached',
      poll: [
        poll('VolumeNotReady', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'Attach',
    }),
    Attach: task({
      comment: 'Choose a free device on the instance and attach; runs while the instance boots.',
      step: 'attach',
      poll: [
        poll('VolumeNotReady', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 5,
          MaxAttempts: 30,
        }),
        poll('InvalidParameterValue', {
          IntervalSeconds: 1,
          BackoffRate: 1,
          MaxDelaySeconds: 1,
          MaxAttempts: 3,
        }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'WaitAttached',
    }),
    WaitAttached: task({
      comment:
        'Poll until attached; an attach stuck past 90 s is aborted and retried, as the EBS CSI driver does.',
      step: 'waitAttached',
      poll: [
        poll('VolumeNotReady', {
          IntervalSeconds: 1,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 14,
        }),
      ],
      catch: [
        catchOn(['AttachStuck', 'VolumeNotReady'], '$.error', 'AbortAttach'),
        catchAll('$.error', 'Compensate'),
      ],
      next: 'Mount',
    }),
    AbortAttach: task({
      comment: 'Force-detach the stuck attachment; the next Attach starts clean (at most 3 attaches).',
      step: 'abortAttach',
      catch: [catchAll('$.error', 'Compensate')],
      next: 'WaitDetached',
    }),
    Mount: task({
      comment: 'Volsd-Mount on the instance, as soon as its SSM agent answers.',
      step: 'mount',
      poll: [
        poll('InstanceNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 24,
        }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'WaitMount',
    }),
    WaitMount: task({
      comment:
        'Poll Volsd-Mount. A mount that ended TimedOut is sent again (it is idempotent), a bounded number of times (maxMountAttempts).',
      step: 'waitMount',
      poll: [
        // About 190 s: past the mount's delivery timeout (SendCommand TimeoutSeconds 60) with room for its
        // run, so the poll sees the command end (and a timed-out one sent again) rather than giving up first.
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 40 }),
      ],
      catch: [catchOn(['MountTimedOut'], '$.mountError', 'Mount'), catchAll('$.error', 'Compensate')],
      next: 'BringCurrent',
    }),
    BringCurrent: task({
      comment: "Compare the volume's generation with the pool's; start Volsd-Sync when behind.",
      step: 'bringCurrent',
      catch: [catchAll('$.error', 'Compensate')],
      next: 'IsCurrent',
    }),
    IsCurrent: {
      Type: 'Choice',
      Choices: [{ Variable: '$.current', BooleanEquals: true, Next: 'CheckInitialized' }],
      Default: 'WaitSync',
    },
    CheckInitialized: task({
      comment:
        'A pool volume is warm. A direct creation still loading its blocks: go on (COLD_DIRECT_VOLUME=continue, counted as a cold handoff) or hold the launch, with heartbeats, until DescribeVolumeStatus reports it initialized.',
      step: 'checkInitialized',
      catch: [catchAll('$.error', 'Compensate')],
      next: 'Initialized?',
    }),
    'Initialized?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.initialization', IsPresent: true, Next: 'Finish' }],
      Default: 'WaitInitialized',
    },
    WaitInitialized: {
      Type: 'Wait',
      Comment: 'Until the next look at the initialization (10-120 s, from the provisioned rate estimate).',
      SecondsPath: '$.initializationWaitSeconds',
      Next: 'CheckInitialized',
    },
    WaitSync: task({
      step: 'waitCommand',
      poll: [
        poll('CommandPending', {
          IntervalSeconds: 1,
          BackoffRate: 1.5,
          MaxDelaySeconds: 15,
          MaxAttempts: 60,
        }),
      ],
      catch: [catchAll('$.error', 'Compensate')],
      next: 'BringCurrent',
    }),
    Finish: task({
      comment: 'DeleteOnTermination, IN_USE, CompleteLifecycleAction CONTINUE, ask for a replenish.',
      step: 'finish',
      catch: [catchAll('$.error', 'Compensate')],
      next: 'Acquired',
    }),
    Acquired: { Type: 'Succeed' },
    Compensate: task({
      comment:
        'Give the volume back where it really is (EC2 is the truth): remount on the worker, hand to the pool, or ERROR.',
      step: 'compensate',
      catch: [catchAll('$.compensationError', 'Abandon')],
      next: 'CompensationCommand?',
    }),
    'CompensationCommand?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.command', IsPresent: true, Next: 'WaitCompensation' }],
      Default: 'CompensateDone',
    },
    WaitCompensation: task({
      step: 'waitCommand',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 20 }),
      ],
      catch: [catchAll('$.compensationError', 'CompensateDone')],
      next: 'CompensateDone',
    }),
    CompensateDone: task({
      step: 'compensateDone',
      catch: [catchAll('$.compensationError', 'Abandon')],
      next: 'Abandon',
    }),
    Abandon: task({
      comment: 'CompleteLifecycleAction with the configured failure result (ABANDON by default).',
      step: 'abandon',
      catch: [catchAll('$.abandonError', 'AcquireFailed')],
      next: 'AcquireFailed',
    }),
    AcquireFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
  },
});
