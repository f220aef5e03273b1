import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { NodeSha256, parseAuthorization, type SigningCredentials } from '../../client/sigv4.js';
import { ProtocolError } from './protocol.js';

/** Who signed a request: the operator (the sandbox's own keys) or a host (its instance profile's). */
export type Caller =
  | { kind: 'operator'; arn: string }
  | { kind: 'host'; instanceId: string; roleName: string; roleId: string; arn: string; userId: string };

/** A key the gateway knows, with the caller it stands for. */
export interface KnownKey extends SigningCredentials {
  caller: Caller;
}

/** The role every sandbox host's instance profile carries, and its unique id (`AROA` + 17). */
export const hostRoleName = 'volsd-sandbox-host';
export const hostRoleId = 'AROASANDBOXHOSTROLE01';

/**
 * Instance-profile credentials of one host, as EC2 hands them to the instance through its metadata
 * service: a temporary key (`ASIA...`) that names the role session `<role>/<instance id>`. Derived from
 * the instance id and a per-gateway secret, so no host can compute another's secret or token.
 */
export function hostKey(instanceId: string, gatewaySecret: string, accountId: string): KnownKey {
  const digest = (label: string) =>
    createHash('sha256').update(`${gatewaySecret}:${label}:${instanceId}`).digest('hex');
  return {
    accessKeyId: `ASIA${digest('key').slice(0, 16).toUpperCase()}`,
    secretAccessKey: digest('secret'),
    sessionToken: `volsd-sandbox-session-${digest('token').slice(0, 48)}`,
    caller: {
      kind: 'host',
      instanceId,
      roleName: hostRoleName,
      roleId: hostRoleId,
      arn: `arn:aws:sts::${accountId}:assumed-role/${hostRoleName}/${instanceId}`,
      userId: `${hostRoleId}:${instanceId}`,
    },
  };
}

/** A header's value as one string (node joins repeated headers with ", "). */
function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** `20261203T104100Z` -> Date. */
function amzDate(text: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text ?? '');
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se] = m.map(Number) as number[];
  return new Date(Date.UTC(y ?? 0, (mo ?? 1) - 1, d ?? 0, h ?? 0, mi ?? 0, se ?? 0));
}

/** How far a request's signing time may be from the gateway's clock (AWS allows 5 minutes). */
const maxSkewMs = 5 * 60 * 1000;

/**
 * Authenticates a request as AWS does before any policy is looked at: a SigV4 `Authorization` header
 * whose key the gateway knows, signed for `service` in `region` within 5 minutes of now, and whose
 * signature is what the key's secret (and, for temporary credentials, its session token) gives for
 * exactly the signed headers, path, query and body. The signature is recomputed with the AWS SDK's
 * own signer. Failures are the errors AWS's JSON APIs answer.
 */
export async function authenticate(
  req: IncomingMessage,
  body: Buffer,
  keyOf: (accessKeyId: string) => KnownKey | undefined,
  expected: { region: string; services: readonly string[] },
): Promise<Caller> {
  const given = header(req, 'authorization');
  if (!given)
    throw new ProtocolError('MissingAuthenticationTokenException', 'Missing Authentication Token', 403);
  const auth = parseAuthorization(given);
  if (!auth) throw new ProtocolError('IncompleteSignatureException', 'malformed Authorization header', 400);
  const key = keyOf(auth.accessKeyId);
  if (!key) {
    throw new ProtocolError(
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
      400,
    );
  }
  const date = amzDate(header(req, 'x-amz-date'));
  if (!date || Math.abs(date.getTime() - Date.now()) > maxSkewMs) {
    throw new ProtocolError('InvalidSignatureException', 'Signature expired or X-Amz-Date missing', 403);
  }
  if (auth.region !== expected.region || !expected.services.includes(auth.service)) {
    throw new ProtocolError(
      'InvalidSignatureException',
      `Credential should be scoped to a valid region and service ('${auth.region}', '${auth.service}')`,
      403,
    );
  }
  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = header(req, name);
    if (value !== undefined) headers[name] = value;
  }
  const url = new URL(req.url ?? '/', 'http://gateway');
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const signer = new SignatureV4({
    credentials: key,
    region: auth.region,
    service: auth.service,
    sha256: NodeSha256,
    uriEscapePath: true,
    applyChecksum: false,
  });
  const signed = await signer.sign(
    {
      method: req.method ?? 'GET',
      protocol: 'http:',
      hostname: url.hostname,
      path: url.pathname,
      query,
      headers,
      body: new Uint8Array(body),
    },
    { signingDate: date, signableHeaders: new Set(auth.signedHeaders) },
  );
  if ((signed.headers as Record<string, string>).authorization !== given) {
    throw new ProtocolError(
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided.',
      403,
    );
  }
  return key.caller;
}
