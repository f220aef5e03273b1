import * as autoScalingModule from '@aws-sdk/client-auto-scaling';
import { AutoScalingServiceException } from '@aws-sdk/client-auto-scaling';
import { EC2ServiceException } from '@aws-sdk/client-ec2';
import * as ssmModule from '@aws-sdk/client-ssm';
import { SSMServiceException } from '@aws-sdk/client-ssm';

/** The simulated services. */
export type SimService = 'ec2' | 'autoscaling' | 'ssm';

/**
 * An AWS service error raised inside the simulator: the AWS error code, its message and the HTTP
 * status AWS answers with. The middleware turns it into the SDK's own exception class.
 */
export class SimServiceError extends Error {
  override name = 'SimServiceError';
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatusCode = 400,
  ) {
    super(message);
  }
}

/** The simulator was asked for a command it does not implement. Never retried by the SDK. */
export class UnsupportedCommandError extends Error {
  override name = 'UnsupportedCommandError';
}

/** Shorthand for a 400 service error. */
export function fail(code: string, message: string, httpStatusCode = 400): never {
  throw new SimServiceError(code, message, httpStatusCode);
}

type ExceptionCtor = new (options: {
  name?: string;
  $fault?: 'client' | 'server';
  $metadata: Record<string, unknown>;
  message?: string;
}) => Error;

function modelledException(
  module: Record<string, unknown>,
  base: unknown,
  code: string,
): ExceptionCtor | undefined {
  const candidate = module[code];
  if (typeof candidate !== 'function' || typeof base !== 'function') return undefined;
  return candidate.prototype instanceof base ? (candidate as ExceptionCtor) : undefined;
}

/**
 * Builds the exception the real SDK would throw for `error`, field for field as the SDK's protocol
 * deserializers do (checked against real error bodies fed through the SDK): EC2 and Auto Scaling
 * (query protocols) throw their ServiceException class with `Code` and `Error: {Type, Code, Message}`;
 * SSM (JSON protocol) throws the modelled class (`InvalidInstanceId`, `InvocationDoesNotExist`...)
 * when the SDK has one, else SSMServiceException.
 */
export function toSdkException(service: SimService, error: SimServiceError, requestId: string): Error {
  const $fault = error.httpStatusCode >= 500 ? 'server' : 'client';
  const $metadata = {
    httpStatusCode: error.httpStatusCode,
    requestId,
    extendedRequestId: undefined,
    cfId: undefined,
  };
  const base = { name: error.code, $fault, $metadata, message: error.message } as const;
  if (service === 'ssm') {
    const Modelled = modelledException(ssmModule, SSMServiceException, error.code);
    if (Modelled)
      return Object.assign(new Modelled({ $metadata, message: error.message }), { message: error.message });
    return new SSMServiceException(base);
  }
  if (service === 'autoscaling') {
    const Modelled = modelledException(autoScalingModule, AutoScalingServiceException, error.code);
    const Type = $fault === 'client' ? 'Sender' : 'Receiver';
    const exception = Modelled
      ? new Modelled({ $metadata, message: error.message })
      : new AutoScalingServiceException(base);
    return Object.assign(exception, {
      Type,
      Code: error.code,
      Error: { Type, Code: error.code, Message: error.message },
      message: error.message,
    });
  }
  return Object.assign(new EC2ServiceException(base), {
    Code: error.code,
    Error: { Type: undefined, Code: error.code, Message: error.message },
  });
}
