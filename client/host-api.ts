import type {
  AcquireRequest,
  ExecutionRequest,
  ExecutionResponse,
  HostApiErrorBody,
  ReleaseRequest,
  StartedResponse,
  StatusRequest,
  StatusResponse,
} from '../lambdas/hostapi/contract.js';
import { HostRoute } from '../lambdas/hostapi/contract.js';
import { ClientError, ExitCode } from './errors.js';
import { type SigningCredentials, signRequest } from './sigv4.js';

/** Host API errors reported as a conflict (exit 7). */
const conflictCodes = new Set(['VolumeAlreadyHeld', 'AcquireInProgress', 'ExecutionAlreadyExists']);

/** How long one call may take before it is given up (the function answers in well under a second). */
const callTimeoutMs = 30_000;

/**
 * The pool's host API (lambdas/hostapi/), reached through its function URL with requests signed by the
 * host's own credentials (SigV4, service `lambda`): the only way a host acquires, releases and reads its
 * state. The function acts for the instance the credentials prove, so this client sends no instance id.
 */
export class HostApiClient {
  constructor(
    private readonly url: string,
    private readonly region: string,
    private readonly credentials: () => Promise<SigningCredentials>,
  ) {}

  acquire(request: AcquireRequest): Promise<StartedResponse> {
    return this.call(HostRoute.Acquire, request);
  }

  release(request: ReleaseRequest): Promise<StartedResponse> {
    return this.call(HostRoute.Release, request);
  }

  status(request: StatusRequest): Promise<StatusResponse> {
    return this.call(HostRoute.Status, request);
  }

  execution(request: ExecutionRequest): Promise<ExecutionResponse> {
    return this.call(HostRoute.Execution, request);
  }

  private async call<T>(route: string, request: object): Promise<T> {
    const action = `host API ${route}`;
    const url = new URL(route, this.url.endsWith('/') ? this.url : `${this.url}/`);
    const body = JSON.stringify(request);
    let credentials: SigningCredentials;
    try {
      credentials = await this.credentials();
    } catch (err) {
      throw new ClientError(
        ExitCode.PermissionDenied,
        'NoCredentials',
        `no usable AWS credentials for the ${action} (use --profile, the environment or an instance profile)`,
        { action },
        { cause: err },
      );
    }
    const headers = await signRequest(
      { method: 'POST', url, headers: { 'content-type': 'application/json' }, body },
      credentials,
      this.region,
      'lambda',
    );
    // fetch sets Host itself (the same url.host that was signed).
    const { host: _host, ...sendHeaders } = headers;
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: sendHeaders,
        body,
        signal: AbortSignal.timeout(callTimeoutMs),
      });
    } catch (err) {
      throw new ClientError(
        ExitCode.Unexpected,
        'EndpointUnreachable',
        `cannot reach the host API at ${url.origin} for ${route}`,
        { action },
        { cause: err },
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = undefined;
    }
    if (response.ok) {
      if (!parsed || typeof parsed !== 'object') {
        throw new ClientError(ExitCode.Unexpected, 'AwsError', `the ${action} answered no JSON`, { action });
      }
      return parsed as T;
    }
    throw hostApiFailure(route, response.status, parsed);
  }
}

/** The client error for a refused host API call. */
function hostApiFailure(route: string, status: number, body: unknown): ClientError {
  const refusal = body as Partial<HostApiErrorBody> & { Message?: string; message?: string };
  const code = typeof refusal?.error === 'string' ? refusal.error : undefined;
  const message = refusal?.message ?? refusal?.Message ?? `HTTP ${status}`;
  const details = { route, status, ...(code ? { error: code } : {}), ...(refusal?.details ?? {}) };
  if (code && conflictCodes.has(code)) return new ClientError(ExitCode.Conflict, code, message, details);
  if (status === 403 && !code) {
    // Refused by IAM in front of the function (the function URL's own 403, body {"Message":"Forbidden"}).
    return new ClientError(
      ExitCode.PermissionDenied,
      'PermissionDenied',
      'permission denied: this identity may not call lambda:InvokeFunctionUrl on the host API',
      { ...details, action: 'lambda:InvokeFunctionUrl' },
    );
  }
  if (status === 403) {
    return new ClientError(
      ExitCode.PermissionDenied,
      'PermissionDenied',
      `host API ${route} refused: ${message}`,
      {
        ...details,
        action: 'lambda:InvokeFunctionUrl',
      },
    );
  }
  if (status === 400 && code === 'WrongPool')
    return new ClientError(ExitCode.UnknownPool, code, message, details);
  if (status === 400 && code) return new ClientError(ExitCode.Usage, code, message, details);
  return new ClientError(
    ExitCode.Unexpected,
    code ?? 'AwsError',
    `host API ${route} failed: ${message}`,
    details,
  );
}
