import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendText } from './protocol.js';

/** What the metadata service tells about the instance it serves. */
export interface ImdsInstance {
  instanceId: string;
  az: string;
  instanceType: string;
  state: string;
  tags: Record<string, string>;
  launchTime?: Date;
}

/** Where the metadata service learns about its instance, and of which account and Region. */
export interface ImdsSource {
  region: string;
  accountId: string;
  /** The instance, or undefined when it does not exist (any path then answers 404). */
  instance(): ImdsInstance | undefined;
  /** Whether instance tags are exposed (`InstanceMetadataTags: enabled`). @default true */
  tagsEnabled?: boolean;
  /**
   * The instance profile's role and the credentials it hands out to the instance (each instance its own
   * session, as EC2 does); absent: no instance profile.
   */
  instanceProfile?: {
    roleName: string;
    credentials(instanceId: string): { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  };
}

const tokenHeader = 'x-aws-ec2-metadata-token';
const ttlHeader = 'x-aws-ec2-metadata-token-ttl-seconds';
/** The longest token lifetime IMDSv2 grants (6 hours). */
const maxTtlSeconds = 21_600;

/**
 * An IMDSv2 endpoint for one instance, as an EC2 host sees 169.254.169.254 with `HttpTokens: required`:
 * `PUT /latest/api/token` with a TTL header returns a session token; every GET needs it (401
 * without). It answers the instance id, placement, type, tags, the identity document and the instance
 * profile's credentials (so the SDK's default credential chain works on a host with no keys). Tokens are
 * kept per service (per instance), expire after their TTL in wall time, and a PUT carrying
 * `X-Forwarded-For` is refused as AWS refuses it (a proxied request is not the host's own).
 */
export class ImdsService {
  private readonly tokens = new Map<string, number>();

  constructor(private readonly source: ImdsSource) {}

  /** True when the request is for the metadata service (`/latest/...`). */
  static owns(req: IncomingMessage): boolean {
    return (req.url ?? '').startsWith('/latest/');
  }

  /** Answers one metadata request. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://imds').pathname;
    if (path === '/latest/api/token') {
      this.issueToken(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method Not Allowed');
      return;
    }
    if (!this.validToken(req.headers[tokenHeader])) {
      sendText(res, 401, 'Unauthorized');
      return;
    }
    const instance = this.source.instance();
    const body = instance ? this.answer(path, instance) : undefined;
    if (body === undefined) {
      sendText(res, 404, 'Not Found');
      return;
    }
    sendText(res, 200, body);
  }

  private issueToken(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'PUT') {
      sendText(res, 405, 'Method Not Allowed');
      return;
    }
    if (req.headers['x-forwarded-for'] !== undefined) {
      sendText(res, 403, 'Forbidden');
      return;
    }
    const raw = req.headers[ttlHeader];
    const ttl = typeof raw === 'string' && /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > maxTtlSeconds) {
      sendText(res, 400, 'Bad Request');
      return;
    }
    const token = randomBytes(32).toString('base64url');
    this.tokens.set(token, Date.now() + ttl * 1000);
    res.setHeader(ttlHeader, String(ttl));
    sendText(res, 200, token);
  }

  private validToken(header: string | string[] | undefined): boolean {
    if (typeof header !== 'string') return false;
    const expires = this.tokens.get(header);
    if (expires === undefined) return false;
    if (expires < Date.now()) {
      this.tokens.delete(header);
      return false;
    }
    return true;
  }

  private answer(path: string, instance: ImdsInstance): string | undefined {
    const region = this.source.region;
    const meta = '/latest/meta-data/';
    switch (path) {
      case `${meta}instance-id`:
        return instance.instanceId;
      case `${meta}instance-type`:
        return instance.instanceType;
      case `${meta}placement/availability-zone`:
        return instance.az;
      case `${meta}placement/region`:
        return region;
      case '/latest/dynamic/instance-identity/document':
        return JSON.stringify(
          {
            accountId: this.source.accountId,
            architecture: /^[a-z]+\d+g/.test(instance.instanceType) ? 'arm64' : 'x86_64',
            availabilityZone: instance.az,
            imageId: 'ami-0123456789abcdef0',
            instanceId: instance.instanceId,
            instanceType: instance.instanceType,
            pendingTime: (instance.launchTime ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
            privateIp: '10.0.0.10',
            region,
            version: '2017-09-30',
          },
          null,
          2,
        );
      default:
        return this.credentials(path, instance.instanceId) ?? this.tag(path, instance);
    }
  }

  /** The instance profile's credentials, as the SDK's instance-metadata credential provider reads them. */
  private credentials(path: string, instanceId: string): string | undefined {
    const profile = this.source.instanceProfile;
    const prefix = '/latest/meta-data/iam/security-credentials';
    if (!profile || !path.startsWith(prefix)) return undefined;
    const rest = path.slice(prefix.length).replace(/^\//, '');
    if (rest === '') return profile.roleName;
    if (rest !== profile.roleName) return undefined;
    const now = Date.now();
    const credentials = profile.credentials(instanceId);
    return JSON.stringify({
      Code: 'Success',
      LastUpdated: new Date(now).toISOString(),
      Type: 'AWS-HMAC',
      AccessKeyId: credentials.accessKeyId,
      SecretAccessKey: credentials.secretAccessKey,
      Token: credentials.sessionToken ?? 'volsd-sandbox-session-token',
      Expiration: new Date(now + 6 * 3600 * 1000).toISOString(),
    });
  }

  private tag(path: string, instance: ImdsInstance): string | undefined {
    if (this.source.tagsEnabled === false) return undefined;
    const prefix = '/latest/meta-data/tags/instance';
    if (path === prefix || path === `${prefix}/`) return Object.keys(instance.tags).sort().join('\n');
    if (!path.startsWith(`${prefix}/`)) return undefined;
    const key = decodeURIComponent(path.slice(prefix.length + 1));
    return Object.hasOwn(instance.tags, key) ? instance.tags[key] : undefined;
  }
}
