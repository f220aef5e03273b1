import { catchAll, type FatalLists, poll, stateMachine, taskBuilder } from './profiles.js';

/**
 * Fatal per step: the named errors each reconcile step can throw (read from lambdas/reconcile/steps.ts
 * and the helpers it calls; method in profiles.ts) that no retry cures. Repair, detach and finish record
 * a repair's own error on the repair instead of throwing it.
 */
const fatal: FatalLists = {
  // gatherFacts (repo.getPool): UnknownPool
  scan: ['InvalidInput', 'UnknownPool'],
  repair: ['InvalidInput'],
  // commandOutcome: CommandPending (polled), CommandFailed recorded on the repair
  waitCommands: ['InvalidInput'],
  detach: ['InvalidInput'],
  // describeVolume; VolumeNotReady polled
  waitDetached: ['InvalidInput'],
  finish: ['InvalidInput'],
  failed: ['InvalidInput'],
};

const task = taskBuilder('ReconcileFunctionArn', fatal);

export const reconcile = stateMachine({
  Comment:
    'Volsd reconcile, one pool: EC2 is the truth. Repairs stale claims, volumes of terminated instances, pool volumes missing from the table, table entries whose volume is gone, volumes left by a replaced sync worker, ERROR volumes, and instances left in Pending:Wait; each repair logged and counted. Bounded per run; a second run right after finds nothing.',
  StartAt: 'Init',
  TimeoutSeconds: 1800,
  States: {
    Init: {
      Type: 'Pass',
      Comment: 'Keep the input whole (its bounds are optional) and the execution name as the run id.',
      Parameters: { 'input.$': '$', 'runId.$': '$$.Execution.Name' },
      Next: 'Scan',
    },
    Scan: task({
      comment:
        "Take the pool's reconcile lease; compare EC2 (pool volumes, attachments, instance states, groups' Pending:Wait instances, running acquires) with the table; plan at most maxRepairs repairs.",
      step: 'scan',
      catch: [catchAll('$.error', 'Failed')],
      next: 'HasRepairs?',
    }),
    'HasRepairs?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.repairs[0]', IsPresent: true, Next: 'Repair' }],
      Default: 'Finish',
    },
    Repair: task({
      comment:
        "Every repair's first part: table fixes, deletes, lifecycle completions, and the worker commands (remount, unmount) some repairs need.",
      step: 'repair',
      catch: [catchAll('$.error', 'Failed')],
      next: 'WaitCommands',
    }),
    WaitCommands: task({
      step: 'waitCommands',
      poll: [
        poll('CommandPending', {
          IntervalSeconds: 1,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 30,
        }),
      ],
      catch: [catchAll('$.waitError', 'Detach')],
      next: 'Detach',
    }),
    Detach: task({
      comment: 'Forced detaches from dead or wrong instances; normal ones after an unmount.',
      step: 'detach',
      catch: [catchAll('$.error', 'Failed')],
      next: 'WaitDetached',
    }),
    WaitDetached: task({
      step: 'waitDetached',
      poll: [
        poll('VolumeNotReady', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 10,
          MaxAttempts: 20,
        }),
      ],
      catch: [catchAll('$.waitError', 'Finish')],
      next: 'Finish',
    }),
    Finish: task({
      comment:
        'Complete the repairs that waited (IDLE after a remount, pool or delete after a detach), give the lease back, ask replenish for the AZs that got volumes back; counts per kind.',
      step: 'finish',
      catch: [catchAll('$.error', 'Failed')],
      next: 'Reconciled',
    }),
    Reconciled: { Type: 'Succeed' },
    Failed: task({
      comment: 'Give the lease back; the next run starts over from EC2.',
      step: 'failed',
      catch: [catchAll('$.failedError', 'ReconcileFailed')],
      next: 'ReconcileFailed',
    }),
    ReconcileFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
  },
});
