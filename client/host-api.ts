import { setTimeout as sleep } from 'node:timers/promises';
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
 * How a host API call is retried: `maxAttempts` in all, full-jitter pauses up to `basePauseMs * 2^n`
 * and at most `maxPauseMs`. The SDK's standard mode in spirit (its 3 attempts, one more as a wait can
 * last half an hour).
 */
const retry = { maxAttempts: 4, basePauseMs: 250, maxPauseMs: 4000 } as const;

/**
 * The pool's host API (lambdas/hostapi/), reached through its function URL with requests signed by the
 * host's own credentials (SigV4, service `lambda`): the only way a host acquires, releases and reads its
 * state. The function acts for the instance the credentials prove; acquire and release also name the
 * instance this host is (`expectedInstanceId`), so credentials of another instance are refused before
 * anything starts.
 */
export class HostApiClient {
  constructor(
    private readonly url: string,
    private readonly region: string,
    private readonly credentials: () => Promise<SigningCredentials>,
  ) {}

  acquire(request: AcquireRequest): Promise<StartedResponse> {
    return this.start(HostRoute.Acquire, request);
  }

  release(request: ReleaseRequest): Promise<StartedResponse> {
    return this.start(HostRoute.Release, request);
  }

  /**
   * Starts a workflow. A host API deployed before `expectedInstanceId` existed refuses the key (its body
   * schema is strict): the request goes again without it, and the caller checks the answer's instance.
   */
  private async start(route: string, request: AcquireRequest | ReleaseRequest): Promise<StartedResponse> {
    try {
      return await this.call<StartedResponse>(route, request);
    } catch (err) {
      const olderApi =
        err instanceof ClientError && err.code === 'InvalidInput' && /expectedInstanceId/.test(err.message);
      if (!olderApi || request.expectedInstanceId === undefined) throw err;
      const { expectedInstanceId: _unknownThere, ...older } = request;
      return this.call<StartedResponse>(route, older);
    }
  }

  status(request: StatusRequest): Promise<StatusResponse> {
    return this.call(HostRoute.Status, request);
  }

  execution(request: ExecutionRequest): Promise<ExecutionResponse> {
    return this.call(HostRoute.Execution, request);
  }

  /**
   * One route, retried like the SDK retries an AWS call: throttling (429), a server-side failure (5xx)
   * and a request that got no answer are tried again, up to `maxAttempts` in all, after pauses with
   * full jitter. Every route may be repeated: acquire and release carry a request id the execution is
   * named after, so a repeat answers with the execution the first try started.
   */
  private async call<T>(route: string, request: object): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.callOnce<T>(route, request);
      } catch (err) {
        if (!(err instanceof RetryableFailure)) throw err;
        if (attempt >= retry.maxAttempts) throw err.error;
        const ceiling = Math.min(retry.maxPauseMs, retry.basePauseMs * 2 ** (attempt - 1));
        await sleep(Math.round(Math.random() * ceiling));
      }
    }
  }

  private async callOnce<T>(route: string, request: object): Promise<T> {
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
    let text: string;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: sendHeaders,
        body,
        signal: AbortSignal.timeout(callTimeoutMs),
      });
      text = await response.text();
    } catch (err) {
      throw new RetryableFailure(
        new ClientError(
          ExitCode.Unexpected,
          'EndpointUnreachable',
          `cannot reach the host API at ${url.origin} for ${route}`,
          { action },
          { cause: err },
        ),
      );
    }
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
    const failure = hostApiFailure(route, response.status, parsed);
    throw retryableStatus(response.status) ? new RetryableFailure(failure) : failure;
  }
}

/** Throttled (429) or failed on the server's side (5xx): worth another try. */
function retryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** A failure worth another try; `error` is what the caller sees when the tries run out. */
class RetryableFailure extends Error {
  constructor(readonly error: ClientError) {
    super(error.message);
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
    // Refused in front of the function: by IAM (body {"Message":"Forbidden"}), or a signature AWS did
    // not accept (expired credentials, a skewed clock), whose own words say which.
    const why = message === 'Forbidden' || message === `HTTP ${status}` ? '' : ` (${message})`;
    return new ClientError(
      ExitCode.PermissionDenied,
      'PermissionDenied',
      `permission denied${why}: this identity may not call lambda:InvokeFunctionUrl on the host API, or its credentials were refused`,
      { ...details, action: 'lambda:InvokeFunctionUrl' },
    );
  }
  if (status === 403) {
    return new ClientError(
      ExitCode.PermissionDenied,
      code === 'NotThisHost' ? code : 'PermissionDenied',
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
