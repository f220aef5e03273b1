import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { type ClientWithStack, operationName } from './accounting.js';
import type { Cloud } from './cloud.js';
import { type SimService, SimServiceError, toSdkException } from './errors.js';

/** Name the simulator middleware registers under (attaching twice replaces it). */
export const simulatorMiddlewareName = 'volsdSimulator';

/** Which simulated service a client talks to; undefined for other clients. */
export function serviceOf(client: unknown): SimService | undefined {
  if (client instanceof EC2Client) return 'ec2';
  if (client instanceof AutoScalingClient) return 'autoscaling';
  if (client instanceof SSMClient) return 'ssm';
  return undefined;
}

/**
 * Makes an SDK v3 `EC2Client`, `AutoScalingClient` or `SSMClient` answer every command from `cloud`,
 * in process, with no HTTP. The middleware sits in the `deserialize` step at high priority: inside
 * the SDK's retry middleware (finalizeRequest step) and outside the deserializer, which it
 * short-circuits by returning `{ output, response }` without calling `next`. So the SDK's own retry
 * strategy sees and retries `RequestLimitExceeded` and 5xx errors, and `$metadata.attempts` counts
 * real attempts. Errors are the SDK's exception classes (see `toSdkException`). Every attempt is
 * counted as an `awsCall` in `cloud.accounting` (attributed to the current operation).
 */
export function attachSimulator(client: ClientWithStack, cloud: Cloud): void {
  const service = serviceOf(client);
  if (!service) {
    throw new TypeError('attachSimulator: only EC2Client, AutoScalingClient and SSMClient are simulated');
  }
  client.middlewareStack.add(
    (_next: unknown, context: { commandName?: string }) => async (args: { input: object }) => {
      const operation = operationName(context.commandName);
      const requestId = cloud.nextRequestId();
      try {
        const result = await cloud.handle(service, operation, args.input ?? {});
        return {
          output: {
            ...result,
            $metadata: { httpStatusCode: 200, requestId, extendedRequestId: undefined, cfId: undefined },
          },
          response: { statusCode: 200, headers: { 'x-amzn-requestid': requestId }, body: undefined },
        };
      } catch (error) {
        if (error instanceof SimServiceError) throw toSdkException(service, error, requestId);
        throw error;
      }
    },
    { step: 'deserialize', priority: 'high', name: simulatorMiddlewareName, override: true },
  );
}

/**
 * A retry strategy for clients in the sandbox: the SDK's standard strategy (same retryable errors,
 * same retry quota) whose backoff is exponential with full jitter like the SDK's (base 0.5 s for
 * throttling, cap 20 s) but measured in MODELLED seconds, so retries cost modelled time in
 * proportion to everything else. Pass as `retryStrategy` in the client config.
 */
export function modelledRetryStrategy(cloud: Cloud, maxAttempts = 3): ConfiguredRetryStrategy {
  // Jitter from Math.random like the SDK's: retries must not shift the seeded streams.
  return new ConfiguredRetryStrategy(maxAttempts, (attempt: number) =>
    cloud.clock.toWallMs(Math.random() * Math.min(20, 0.5 * 2 ** attempt)),
  );
}
