import { catchAll, catchOn, type FatalLists, poll, stateMachine, taskBuilder, whenTrue } from './profiles.js';

/**
 * Fatal per step: the named errors each release step can throw (read from lambdas/release/steps.ts and
 * the helpers it calls; method in profiles.ts) that no retry cures.
 */
const fatal: FatalLists = {
  // repo.transition: IllegalTransition, VolumeNotFound (VolumeNotReady polled)
  find: ['InvalidInput', 'IllegalTransition', 'VolumeNotFound'],
  // describeVolume, sendDocument (InstanceNotReady handled, CommandFailed not fatal)
  unmount: ['InvalidInput'],
  // commandOutcome: CommandPending, CommandFailed only
  waitCommand: ['InvalidInput'],
  // describeVolume, detachVolume: no named error
  detach: ['InvalidInput'],
  // describeVolume; VolumeNotReady polled
  waitDetached: ['InvalidInput'],
  forceDetach: ['InvalidInput'],
  // repo.transition, repo.forgetVolume: IllegalTransition, VolumeNotFound
  dispose: ['InvalidInput', 'IllegalTransition', 'VolumeNotFound'],
  // repo.dropAssignment's VolumeHeldElsewhere is caught
  finish: ['InvalidInput'],
  giveUp: ['InvalidInput'],
};

const task = taskBuilder('ReleaseFunctionArn', fatal);

export const release = stateMachine({
  Comment:
    "Volsd release: unmount the instance's volume, detach it, delete or recycle it, drop the assignment and complete the lifecycle action. An instance holding nothing completes at once.",
  StartAt: 'Find',
  TimeoutSeconds: 1800,
  States: {
    Find: task({
      comment:
        "The instance's volume, marked RELEASING; while an acquire for it is still running (up to about 10 minutes) it waits, with lifecycle heartbeats.",
      step: 'find',
      poll: [
        poll('VolumeNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 15,
          MaxAttempts: 45,
        }),
      ],
      catch: [catchAll('$.error', 'GiveUp')],
      next: 'Found?',
    }),
    'Found?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.found', BooleanEquals: true, Next: 'Unmount' }],
      Default: 'Finish',
    },
    Unmount: task({
      comment: 'Volsd-Unmount on the instance; an instance that no longer answers is not waited for.',
      step: 'unmount',
      catch: [catchAll('$.error', 'ForceDetach')],
      next: 'WaitUnmount',
    }),
    WaitUnmount: task({
      step: 'waitCommand',
      poll: [
        poll('CommandPending', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 12 }),
      ],
      catch: [catchAll('$.error', 'ForceDetach')],
      next: 'Detach',
    }),
    Detach: task({
      step: 'detach',
      catch: [catchAll('$.error', 'GiveUp')],
      next: 'WaitDetached',
    }),
    WaitDetached: task({
      step: 'waitDetached',
      poll: [
        poll('VolumeNotReady', { IntervalSeconds: 1, BackoffRate: 1.5, MaxDelaySeconds: 5, MaxAttempts: 12 }),
      ],
      catch: [catchOn(['VolumeNotReady'], '$.error', 'AlreadyForced?'), catchAll('$.error', 'GiveUp')],
      next: 'Dispose',
    }),
    'AlreadyForced?': {
      Type: 'Choice',
      // `force` is set only by ForceDetach: a missing path in a Choice rule is States.Runtime on AWS (the
      // first stuck detach failed the release and left its terminate hook to time out).
      Choices: [whenTrue('$.force', 'GiveUp')],
      Default: 'ForceDetach',
    },
    ForceDetach: task({
      comment: 'A busy or unanswered unmount: detach with Force.',
      step: 'forceDetach',
      catch: [catchAll('$.error', 'GiveUp')],
      next: 'Detach',
    }),
    Dispose: task({
      comment: 'Release policy: delete the volume (default) or recycle it into the pool for a full resync.',
      step: 'dispose',
      catch: [catchAll('$.error', 'GiveUp')],
      next: 'Finish',
    }),
    Finish: task({
      comment: 'Drop the assignment, CompleteLifecycleAction CONTINUE, ask for a replenish.',
      step: 'finish',
      catch: [catchAll('$.error', 'GiveUp')],
      next: 'Released',
    }),
    Released: { Type: 'Succeed' },
    GiveUp: task({
      comment: 'Complete the lifecycle action anyway; reconcile finishes what is left.',
      step: 'giveUp',
      catch: [catchAll('$.giveUpError', 'ReleaseFailed')],
      next: 'ReleaseFailed',
    }),
    ReleaseFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
  },
});
