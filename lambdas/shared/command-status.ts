/**
 * The final statuses of a Run Command command (ListCommands / the EventBridge "EC2 Command
 * Status-change Notification"): once there, it changes no more. Shared by the push status function,
 * sync-all and the CDK rule that routes those events (lib/push-fanout.ts).
 */
export const finalCommandStatuses: readonly string[] = ['Success', 'Failed', 'TimedOut', 'Cancelled'];
