import { catchAll, type FatalLists, poll, stateMachine, taskBuilder } from './profiles.js';

/**
 * Fatal errors per step: the named errors the step can throw that no retry would cure.
 */
const fatal: FatalLists = {
  scan: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'UnknownPool',
    'VolumeNotFound',
    'AttachStuck',
  ],
  repair: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'UnknownPool',
    'VolumeNotFound',
    'AttachStuck',
  ],
  waitCommands: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'UnknownPool',
    'VolumeNotFound',
    'AttachStuck',
  ],
  detach: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'UnknownPool',
    'VolumeNotFound',
    'AttachStuck',
  ],
  waitDetached: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'UnknownPool',
    'VolumeNotFound',
    'AttachStuck',
  ],
  finish: [
    'InvalidInput',
    'InstanceGone',
    'IllegalTransition',
    'NoFreeDevice',
    'VolumeHeldElsewhere',
    'AssignmentConflict',
    'UnknownPool',
    'VolumeNotFound',
    'AttachStuck',
  ],
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
