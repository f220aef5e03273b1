import {
  AutoScalingClient,
  AutoScalingServiceException,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingInstancesCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  ExecutionAlreadyExists,
  SFNClient,
  SFNServiceException,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { vi } from 'vitest';
import type { DispatchDeps, DispatchLog, DispatchOutcome } from '../../lambdas/dispatcher/dispatch.js';
import { testConfig } from './events.js';

/** Class-level mocks: every SFN / Auto Scaling client built in a test file answers from them. */
export const sfnMock = mockClient(SFNClient);
export const asgMock = mockClient(AutoScalingClient);

/**
 * Step Functions' StartExecution name rules, in memory: a new name starts an execution; the same name
 * with identical input while it is open returns the same execution (idempotent); otherwise
 * ExecutionAlreadyExists. A yield before answering lets concurrent callers interleave.
 */
export class FakeStepFunctions {
  readonly executions = new Map<string, { stateMachineArn: string; input: string; open: boolean }>();

  install(): void {
    sfnMock.on(StartExecutionCommand).callsFake(async (req) => {
      await new Promise((resolve) => setImmediate(resolve));
      const name = String(req.name);
      const key = `${req.stateMachineArn}:${name}`;
      const existing = this.executions.get(key);
      const executionArn = `${String(req.stateMachineArn).replace(':stateMachine:', ':execution:')}:${name}`;
      if (existing) {
        if (existing.open && existing.input === req.input) return { executionArn, startDate: new Date() };
        throw new ExecutionAlreadyExists({
          message: `Execution Already Exists: '${executionArn}'`,
          $metadata: {},
        });
      }
      this.executions.set(key, {
        stateMachineArn: String(req.stateMachineArn),
        input: String(req.input),
        open: true,
      });
      return { executionArn, startDate: new Date() };
    });
  }

  /** Closes every execution, as if the workflows had finished. */
  closeAll(): void {
    for (const execution of this.executions.values()) execution.open = false;
  }
}

/**
 * Auto Scaling that knows `instances` (instance id -> group) and holds open lifecycle actions; each
 * instance is `Pending:Wait` unless `lifecycleStates` names another state.
 */
export function installAutoScaling(
  instances: Record<string, string>,
  lifecycleStates: Record<string, string> = {},
): void {
  asgMock.on(DescribeAutoScalingInstancesCommand).callsFake(async (req) => ({
    AutoScalingInstances: (req.InstanceIds ?? []).flatMap((id: string) => {
      const group = instances[id];
      return group
        ? [
            {
              InstanceId: id,
              AutoScalingGroupName: group,
              AvailabilityZone: 'us-west-2a',
              LifecycleState: lifecycleStates[id] ?? 'Pending:Wait',
              HealthStatus: 'HEALTHY',
              ProtectedFromScaleIn: false,
            },
          ]
        : [];
    }),
  }));
  asgMock.on(CompleteLifecycleActionCommand).resolves({});
}

/** An SDK error as the service sends it. */
export function sfnThrottling(): SFNServiceException {
  return new SFNServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: 'Rate exceeded',
  });
}

/** Auto Scaling's answer to completing an action that is no longer open. */
export function noActiveLifecycleAction(instanceId: string): AutoScalingServiceException {
  return new AutoScalingServiceException({
    name: 'ValidationError',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: `No active Lifecycle Action found with instance ID ${instanceId}`,
  });
}

/** A logger that records its lines. */
export function recordingLog() {
  const lines: { level: 'info' | 'warn' | 'error'; message: string; attributes: Record<string, unknown> }[] =
    [];
  const log: DispatchLog = {
    info: (message, attributes) => lines.push({ level: 'info', message, attributes }),
    warn: (message, attributes) => lines.push({ level: 'warn', message, attributes }),
    error: (message, attributes) => lines.push({ level: 'error', message, attributes }),
  };
  return { log, lines };
}

/** Dispatcher dependencies over the mocked clients, a recording log and a counting spy. */
export function testDeps(overrides: Partial<DispatchDeps> = {}) {
  const { log, lines } = recordingLog();
  const count = vi.fn<(outcome: DispatchOutcome) => void>();
  const deps: DispatchDeps = {
    config: testConfig,
    sfn: new SFNClient({ region: 'us-west-2' }),
    autoScaling: new AutoScalingClient({ region: 'us-west-2' }),
    log,
    count,
    ...overrides,
  };
  return { deps, lines, count };
}

/** A Lambda context for calling the handler in-process. */
export const lambdaContext: Context = {
  callbackWaitsForEmptyEventLoop: false,
  functionName: 'volsd-web-dispatcher',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-west-2:123456789012:function:volsd-web-dispatcher',
  memoryLimitInMB: '256',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  logGroupName: '/aws/lambda/volsd-web-dispatcher',
  logStreamName: '2026/01/01/[$LATEST]abcdef',
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
};
