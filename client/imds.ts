import { setTimeout as sleep } from 'node:timers/promises';
import { ClientError, ExitCode } from './errors.js';

/** What a host learns about itself from the instance metadata service. */
export interface HostIdentity {
  instanceId: string;
  az: string;
  region: string;
  accountId?: string;
  instanceType?: string;
}

const defaultEndpoints = { IPv4: 'http://169.254.169.254', IPv6: 'http://[fd00:ec2::254]' } as const;
/** Seconds a session token lives: the client runs for minutes at most. */
const tokenTtlSeconds = 300;
/** Per request: IMDS answers in milliseconds on EC2, and off EC2 the address is a black hole. */
const requestTimeoutMs = 1500;
/** Tries of a request IMDS throttles (429) or fails (5xx), and the first full-jitter pause between them. */
const maxAttempts = 3;
const retryPauseMs = 200;

/**
 * The metadata endpoint, as the SDK chooses it: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else by
 * `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` (IPv4 default, IPv6).
 */
export function metadataEndpoint(env: Record<string, string | undefined>): string {
  const explicit = env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  if (explicit) return explicit.replace(/\/+$/, '');
  return env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE === 'IPv6'
    ? defaultEndpoints.IPv6
    : defaultEndpoints.IPv4;
}

/**
 * A small IMDSv2 client: one session token (PUT /latest/api/token), then GETs with it. It honours
 * the SDK's variables (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, `..._ENDPOINT_MODE`,
 * `AWS_EC2_METADATA_DISABLED`). A service that does not answer means "not on EC2" (exit 3); one that
 * keeps answering 429 or 5xx is reported as unavailable (exit 1).
 */
export class InstanceMetadata {
  private token?: Promise<string>;
  readonly endpoint: string;
  private readonly disabled: boolean;

  constructor(env: Record<string, string | undefined>) {
    this.endpoint = metadataEndpoint(env);
    this.disabled = (env.AWS_EC2_METADATA_DISABLED ?? '').toLowerCase() === 'true';
  }

  /** The instance id, AZ and Region (from the instance identity document). */
  async identity(): Promise<HostIdentity> {
    const text = await this.get('/latest/dynamic/instance-identity/document');
    let document: Record<string, unknown>;
    try {
      document = JSON.parse(text ?? '') as Record<string, unknown>;
    } catch {
      throw this.notOnEc2(`the instance identity document from ${this.endpoint} is not JSON`);
    }
    const instanceId = typeof document.instanceId === 'string' ? document.instanceId : undefined;
    const az = typeof document.availabilityZone === 'string' ? document.availabilityZone : undefined;
    const region = typeof document.region === 'string' ? document.region : undefined;
    if (!instanceId || !az || !region)
      throw this.notOnEc2(`the instance identity document from ${this.endpoint} is incomplete`);
    return {
      instanceId,
      az,
      region,
      ...(typeof document.accountId === 'string' ? { accountId: document.accountId } : {}),
      ...(typeof document.instanceType === 'string' ? { instanceType: document.instanceType } : {}),
    };
  }

  /**
   * The value of one of the instance's tags (needs instance metadata tags enabled), or undefined. The
   * key goes into the path as it is, as AWS's examples show it (`tags/instance/aws:autoscaling:groupName`):
   * keys shown in metadata may hold only letters, digits and `+ - = . , _ : @` (EC2 User Guide, "View
   * tags for your EC2 instances using instance metadata"), all plain path characters, and whether the
   * service decodes a percent-encoded key is not documented.
   */
  async tag(key: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9+\-=.,_:@]+$/.test(key) || key === '.' || key === '..' || key === '_index') {
      throw new ClientError(
        ExitCode.Unexpected,
        'InvalidTagKey',
        `'${key}' cannot be read from instance metadata`,
      );
    }
    return this.get(`/latest/meta-data/tags/instance/${key}`);
  }

  /** GET `path` with the session token; undefined on 404. */
  private async get(path: string): Promise<string | undefined> {
    const token = await this.sessionToken();
    const response = await this.request(path, {
      method: 'GET',
      headers: { 'x-aws-ec2-metadata-token': token },
    });
    if (response.status === 404) return undefined;
    if (response.status !== 200)
      throw this.notOnEc2(`the instance metadata service answered HTTP ${response.status} to GET ${path}`);
    return response.text();
  }

  private sessionToken(): Promise<string> {
    this.token ??= (async () => {
      const response = await this.request('/latest/api/token', {
        method: 'PUT',
        headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(tokenTtlSeconds) },
      });
      if (response.status !== 200)
        throw this.notOnEc2(
          `the instance metadata service answered HTTP ${response.status} to the token request`,
        );
      return response.text();
    })();
    return this.token;
  }

  /**
   * One request; a throttled (429) or failed (5xx) answer is tried again (IMDS throttles per instance),
   * `maxAttempts` in all, and an answer still refused then is an error of its own (exit 1), not "not
   * on EC2": the service did answer.
   */
  private async request(path: string, init: RequestInit): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      const response = await this.requestOnce(path, init);
      if (response.status !== 429 && response.status < 500) return response;
      if (attempt >= maxAttempts) {
        throw new ClientError(
          ExitCode.Unexpected,
          'MetadataUnavailable',
          `the instance metadata service ${this.endpoint} answered HTTP ${response.status} to ${init.method} ${path} ${maxAttempts} times`,
          { endpoint: this.endpoint, status: response.status },
        );
      }
      await sleep(Math.round(Math.random() * retryPauseMs * 2 ** (attempt - 1)));
    }
  }

  private async requestOnce(path: string, init: RequestInit): Promise<Response> {
    if (this.disabled) throw this.notOnEc2('instance metadata is switched off (AWS_EC2_METADATA_DISABLED)');
    try {
      return await fetch(new URL(path, `${this.endpoint}/`), {
        ...init,
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
    } catch (err) {
      const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
      const why =
        e.name === 'TimeoutError'
          ? `no answer within ${requestTimeoutMs / 1000}s`
          : (e.cause?.code ?? e.cause?.message ?? e.message ?? String(err));
      throw this.notOnEc2(`the instance metadata service ${this.endpoint} did not answer (${why})`);
    }
  }

  private notOnEc2(why: string): ClientError {
    return new ClientError(
      ExitCode.NotOnEc2,
      'NotOnEc2',
      `not on EC2: ${why}; this command runs on the EC2 host that acquires the volume`,
      { endpoint: this.endpoint },
    );
  }
}
