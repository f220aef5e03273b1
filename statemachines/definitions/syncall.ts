import { catchAll, type FatalLists, poll, stateMachine, taskBuilder } from './profiles.js';

/**
 * Fatal per step: the named errors each sync-all step can throw (read from lambdas/syncall/steps.ts and
 * the helpers it calls; method in profiles.ts) that no retry cures.
 */
const fatal: FatalLists = {
  // repo.getPool: UnknownPool; the pool name and document parameters: InvalidInput
  send: ['InvalidInput', 'UnknownPool'],
  // CommandPending (polled); collectPushStatus records a volume's failure instead of throwing it
  wait: ['InvalidInput'],
};

const task = taskBuilder('SyncallFunctionArn', fatal);

export const syncAll = stateMachine({
  Comment:
    "Volsd sync-all (admin): Volsd-Sync by tag target on every instance of the pool (sync workers and clients) at the pool's CURRENT generation (no bump: a resync, not a push), with the fan-out's rate control; wait until the command is final, record the synced volumes' generations, output a summary {instances, succeeded, failed: [{instanceId, error}]}.",
  StartAt: 'Send',
  TimeoutSeconds: 7200,
  States: {
    Send: task({
      comment:
        "SendCommand Volsd-Sync to tag:volsd:pool = pool with Generation = the pool's current generation.",
      step: 'send',
      catch: [catchAll('$.error', 'SyncAllFailed')],
      next: 'Wait',
    }),
    Wait: task({
      comment:
        'Poll until the command is final (CommandPending while not; a sync of a large tree on many instances takes minutes), then collect every invocation, record volume generations, summarise.',
      step: 'wait',
      poll: [
        poll('CommandPending', {
          IntervalSeconds: 2,
          BackoffRate: 1.5,
          MaxDelaySeconds: 30,
          MaxAttempts: 250,
        }),
      ],
      catch: [catchAll('$.error', 'SyncAllFailed')],
      next: 'Done',
    }),
    Done: { Type: 'Pass', InputPath: '$.summary', End: true },
    SyncAllFailed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
  },
});
