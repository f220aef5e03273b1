/**
 * Seconds every lifecycle event waits in the intake queue before the dispatcher sees it (the queue's
 * DelaySeconds). A launch is unknown to DescribeInstances for a few seconds (EC2 API reference,
 * "Eventual consistency"; the sandbox assumes 1-5 s): an acquire started at once spends its first Resolve
 * (an invocation, a transition, a DescribeInstances) on InstanceNotReady nearly every time. Three seconds
 * later most first looks find the instance, and the instance is still pending (20-40 s), so its time to
 * ready does not change unless the detach from the worker runs long. Terminations wait as long, harmlessly.
 */
export const intakeDeliveryDelaySeconds = 3;
