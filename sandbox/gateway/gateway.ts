import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { hostPolicyActions } from '../../lambdas/hostapi/contract.js';
import { configParameterPath } from '../../lambdas/shared/config-names.js';
import { localCredentials } from '../servers.js';
import type { Accounting } from '../sim/accounting.js';
import type { Cloud } from '../sim/cloud.js';
import { SimServiceError, UnsupportedCommandError } from '../sim/errors.js';
import type { LocalStepFunctions } from '../stepfunctions.js';
import { authenticate, type Caller, hostKey, hostRoleName, type KnownKey } from './auth.js';
import { ExecutionHistory } from './history.js';
import { type ImdsInstance, ImdsService } from './imds.js';
import { ProtocolError, parseJsonBody, readBody, sendError, sendJson } from './protocol.js';

/** What the gateway serves from: the parts of a `Sandbox` it uses (a `Sandbox` is one). */
export interface GatewayTarget {
  readonly sfn: Pick<LocalStepFunctions, 'handle' | 'executions'>;
  readonly cloud: Pick<Cloud, 'handle' | 'ec2' | 'region' | 'accountId'>;
  readonly dynamo: { readonly endpoint: string };
  readonly accounting?: Accounting;
  /** The pool: a host's credentials may read only its parameters (`/volsd/<pool>/...`). */
  readonly options?: { readonly pool: string };
}

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  /** Instance whose metadata the gateway's own `/latest/...` paths serve. @default none (404) */
  instanceId?: string;
  /** Whether the metadata services expose instance tags. @default true */
  imdsTags?: boolean;
  /**
   * Whether the metadata services hand out instance-profile credentials: each instance its own
   * temporary key for the role session `volsd-sandbox-host/<instance id>`, which the gateway knows and
   * holds to the host policy. @default true
   */
  instanceProfile?: boolean;
}

/** A running gateway. */
export interface Gateway {
  /** `http://127.0.0.1:<port>`: the endpoint for Step Functions, SSM, DynamoDB and (default) IMDS. */
  readonly url: string;
  /**
   * `http://127.0.0.1:<port>/`: the host API's function URL (AuthType AWS_IAM): SigV4 requests of
   * service `lambda`, authenticated, held to the caller's policy, then answered by the real
   * `lambdas/hostapi` handler with the caller's identity in `requestContext.authorizer.iam`.
   */
  readonly hostApiUrl: string;
  /** The instance-profile credentials EC2 would hand `instanceId` (what its metadata service serves). */
  hostCredentials(instanceId: string): { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  /** Makes the gateway's own metadata paths serve another instance (undefined: 404). */
  serveInstance(instanceId: string | undefined): void;
  /**
   * The endpoint of a metadata service of its own for `instanceId` (started on first use), so several
   * hosts can run clients at once, each seeing itself.
   */
  imdsFor(instanceId: string): Promise<string>;
  /**
   * Denies IAM actions (`states:StartExecution`, `ssm:GetParametersByPath`, `dynamodb:GetItem`, or a
   * `service:*` wildcard): the call then fails with AccessDeniedException naming the action, as AWS does.
   */
  deny(...actions: string[]): void;
  /** Lifts denials made with `deny` (no argument: all of them, and any `allowOnly` list). */
  allow(...actions: string[]): void;
  /**
   * Denies every action but these (an IAM policy's allow list, e.g. the host policy's); undefined
   * lifts the restriction. Denials made with `deny` still apply.
   */
  allowOnly(actions: readonly string[] | undefined): void;
  /** Every action called through the gateway so far, in order (`states:StartExecution`, ...). */
  readonly calls: readonly string[];
  /**
   * The environment a separate client process needs to use this sandbox with ordinary SDK clients:
   * endpoint overrides (`AWS_ENDPOINT_URL_SFN`, `_SSM`, `_DYNAMODB`), the metadata endpoint
   * (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, the SDK's own variable), Region and the local credentials,
   * with the user's AWS config files masked so nothing real leaks in.
   */
  clientEnv(imdsEndpoint?: string): Record<string, string>;
  /** Stops the gateway and every metadata service it started. */
  stop(): Promise<void>;
}

/** The access key id of an `Authorization` header (already authenticated). */
function authenticatedKey(req: IncomingMessage): string {
  return /Credential=([A-Z0-9]+)\//.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
}

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const sfnPrefix = 'AWSStepFunctions.';
const ssmPrefix = 'AmazonSSM.';
const dynamoPrefix = 'DynamoDB_20120810.';

/**
 * Starts the sandbox gateway on 127.0.0.1 at a random port: one HTTP endpoint that lets a separate
 * process (volsd-client, the AWS CLI) use the sandbox with plain SDK clients and endpoint overrides.
 * Every call is authenticated as AWS does (SigV4, recomputed with the key's secret): the sandbox's own
 * keys are the operator's, with every right; a host's instance-profile key (served by its metadata
 * service) stands for its role session and is held to the host policy (`hostPolicyActions`, parameters
 * of the pool only), so a host cannot start a workflow or read the table; it acts through the host API.
 * - Step Functions (awsJson1_0, `X-Amz-Target: AWSStepFunctions.<Op>`) -> the local Step Functions
 *   (StartExecution, DescribeExecution, ListExecutions, StopExecution) plus GetExecutionHistory rebuilt
 *   from the states each execution entered;
 * - SSM (awsJson1_1, `X-Amz-Target: AmazonSSM.<Op>`) -> the simulator (Parameter Store, Run Command);
 * - DynamoDB (`DynamoDB_20120810.<Op>`) -> forwarded to the sandbox's dynalite, so denials apply to it too;
 * - IMDSv2 (`/latest/...`) for a chosen instance of the simulator.
 * Errors use the JSON protocol shape (`__type`, `message`), so the SDK raises the named exceptions.
 */
export async function startGateway(target: GatewayTarget, options: GatewayOptions = {}): Promise<Gateway> {
  const history = new ExecutionHistory(resolve(repoRoot, 'statemachines'));
  const denied = new Set<string>();
  let allowList: Set<string> | undefined;
  const calls: string[] = [];
  let servedInstance = options.instanceId;
  const imdsServers = new Map<string, { server: Server; url: string }>();
  const gatewaySecret = randomBytes(16).toString('hex');
  const accountId = target.cloud.accountId;
  const operatorKey: KnownKey = {
    ...localCredentials,
    caller: { kind: 'operator', arn: `arn:aws:iam::${accountId}:user/volsd-sandbox-operator` },
  };
  /** Host keys handed out so far, by access key id (a key never handed out cannot be used). */
  const hostKeys = new Map<string, KnownKey>();
  const hostCredentials = (instanceId: string) => {
    const key = hostKey(instanceId, gatewaySecret, accountId);
    hostKeys.set(key.accessKeyId, key);
    return {
      accessKeyId: key.accessKeyId,
      secretAccessKey: key.secretAccessKey,
      sessionToken: key.sessionToken ?? '',
    };
  };
  const keyOf = (accessKeyId: string) =>
    accessKeyId === operatorKey.accessKeyId ? operatorKey : hostKeys.get(accessKeyId);
  const poolParameters = target.options ? configParameterPath(target.options.pool) : undefined;

  const instance = (instanceId: string | undefined) => (): ImdsInstance | undefined => {
    if (!instanceId) return undefined;
    const found = target.cloud.ec2.view().instances.find((i) => i.instanceId === instanceId);
    if (!found || found.state === 'terminated') return undefined;
    return {
      instanceId: found.instanceId,
      az: found.az,
      instanceType: found.instanceType,
      state: found.state,
      tags: found.tags,
    };
  };
  const imdsSource = (instanceId: () => string | undefined) => ({
    region: target.cloud.region,
    accountId: target.cloud.accountId,
    instance: () => instance(instanceId())(),
    tagsEnabled: options.imdsTags ?? true,
    ...(options.instanceProfile === false
      ? {}
      : { instanceProfile: { roleName: hostRoleName, credentials: hostCredentials } }),
  });
  const ownImds = new ImdsService(imdsSource(() => servedInstance));

  const hostAllowed: ReadonlySet<string> = new Set(hostPolicyActions);
  /** Whether `caller`'s policy refuses `action` on `resource` (the host policy for a host). */
  const isDenied = (caller: Caller, action: string, resource: string) =>
    denied.has(action) ||
    denied.has(`${action.split(':')[0]}:*`) ||
    denied.has('*') ||
    (allowList !== undefined && !allowList.has(action)) ||
    (caller.kind === 'host' &&
      (!hostAllowed.has(action) || (action.startsWith('ssm:') && !withinPoolParameters(resource))));
  const withinPoolParameters = (resource: string) => {
    if (!poolParameters) return false;
    const name = resource.replace(/^arn:aws:ssm:[^:]*:\d{12}:parameter/, '');
    return name === poolParameters || name.startsWith(`${poolParameters}/`);
  };
  const accessDenied = (caller: Caller, action: string, resource: string) =>
    new ProtocolError(
      'AccessDeniedException',
      `User: ${caller.arn} is not authorized to perform: ${action} on resource: ${resource} because no identity-based policy allows the ${action} action`,
    );

  const sfnCall = (operation: string, input: Record<string, unknown>): unknown => {
    if (operation === 'GetExecutionHistory') {
      const execution = target.sfn.executions.get(String(input.executionArn));
      if (!execution) {
        throw new ProtocolError(
          'ExecutionDoesNotExist',
          `Execution Does Not Exist: '${String(input.executionArn)}'`,
        );
      }
      return history.page(execution, input);
    }
    try {
      return target.sfn.handle(operation, input);
    } catch (err) {
      const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name && e.$metadata)
        throw new ProtocolError(e.name, e.message ?? e.name, e.$metadata.httpStatusCode);
      throw err;
    }
  };

  const ssmCall = async (operation: string, input: Record<string, unknown>): Promise<unknown> => {
    try {
      return await target.cloud.handle('ssm', operation, input);
    } catch (err) {
      if (err instanceof SimServiceError) throw new ProtocolError(err.code, err.message, err.httpStatusCode);
      if (err instanceof UnsupportedCommandError)
        throw new ProtocolError('UnknownOperationException', err.message);
      throw err;
    }
  };

  const resourceOf = (service: string, input: Record<string, unknown>): string => {
    const arn = (kind: string, name: string) =>
      `arn:aws:${kind}:${target.cloud.region}:${target.cloud.accountId}:${name}`;
    if (service === 'states') return String(input.executionArn ?? input.stateMachineArn ?? '*');
    if (service === 'ssm') {
      const names = [input.Name, input.Path, ...((input.Names as unknown[] | undefined) ?? [])];
      // GetParameters names several: the first outside the pool's tree decides (IAM checks each).
      const name = String(
        names.find((n) => typeof n === 'string' && !withinPoolParameters(`/${n.replace(/^\//, '')}`)) ??
          names.find((n) => typeof n === 'string') ??
          '*',
      );
      return arn('ssm', `parameter/${name.replace(/^\//, '')}`);
    }
    return arn('dynamodb', `table/${String(input.TableName ?? '*')}`);
  };

  const proxyToDynamo = (req: IncomingMessage, res: ServerResponse, body: Buffer) =>
    new Promise<void>((done, failed) => {
      const upstream = new URL(target.dynamo.endpoint);
      const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
      const forward = request(
        { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 500, answer.headers);
          answer.pipe(res);
          answer.on('end', () => done());
          answer.on('error', failed);
        },
      );
      forward.on('error', failed);
      forward.end(body);
    });

  const handleApi = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const amzTarget = String(req.headers['x-amz-target'] ?? '');
    const contentType = amzTarget.startsWith(ssmPrefix)
      ? 'application/x-amz-json-1.1'
      : 'application/x-amz-json-1.0';
    try {
      if (req.method !== 'POST') throw new ProtocolError('UnknownOperationException', 'POST expected', 404);
      const body = await readBody(req);
      const [service, prefix] = amzTarget.startsWith(sfnPrefix)
        ? ['states', sfnPrefix]
        : amzTarget.startsWith(ssmPrefix)
          ? ['ssm', ssmPrefix]
          : amzTarget.startsWith(dynamoPrefix)
            ? ['dynamodb', dynamoPrefix]
            : ['', ''];
      if (!service) throw new ProtocolError('UnknownOperationException', `unknown target '${amzTarget}'`);
      const operation = amzTarget.slice(prefix.length);
      const action = `${service}:${operation}`;
      const caller = await authenticate(req, body, keyOf, {
        region: target.cloud.region,
        services: [service],
      });
      const input = parseJsonBody(body);
      calls.push(action);
      const resource = resourceOf(service, input);
      if (isDenied(caller, action, resource)) throw accessDenied(caller, action, resource);
      if (service === 'dynamodb') {
        target.accounting?.count('awsCall', action);
        await proxyToDynamo(req, res, body);
        return;
      }
      if (service === 'states') target.accounting?.count('awsCall', action);
      const output = service === 'states' ? sfnCall(operation, input) : await ssmCall(operation, input);
      sendJson(res, 200, contentType, output, requestId);
    } catch (err) {
      const error =
        err instanceof ProtocolError
          ? err
          : new ProtocolError('InternalFailure', err instanceof Error ? err.message : String(err), 500);
      if (!res.headersSent) sendError(res, error, contentType, requestId);
      else res.destroy();
    }
  };

  const listen = async (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
    const server = createServer(handler);
    await new Promise<void>((done, failed) => {
      server.once('error', failed);
      server.listen(0, '127.0.0.1', () => done());
    });
    const { port } = server.address() as AddressInfo;
    return { server, url: `http://127.0.0.1:${port}` };
  };

  const main = await listen((req, res) => {
    if (ImdsService.owns(req)) ownImds.handle(req, res);
    else void handleApi(req, res);
  });

  // The host API's function URL. Its handler is imported on first use: the sandbox sets the functions'
  // environment before, as Lambda does.
  let hostApiHandler:
    | ((event: LambdaFunctionURLEvent, context: unknown) => Promise<LambdaFunctionURLResult>)
    | undefined;
  const forbidden = (res: ServerResponse) => {
    // What a function URL answers when IAM refuses the caller, whatever the reason.
    const text = JSON.stringify({ Message: 'Forbidden' });
    res.writeHead(403, { 'content-type': 'application/json', 'x-amzn-errortype': 'AccessDeniedException' });
    res.end(text);
  };
  const handleHostApi = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    try {
      const body = await readBody(req);
      let caller: Caller;
      try {
        caller = await authenticate(req, body, keyOf, { region: target.cloud.region, services: ['lambda'] });
      } catch {
        forbidden(res);
        return;
      }
      const functionArn = `arn:aws:lambda:${target.cloud.region}:${accountId}:function:volsd-hostapi`;
      calls.push('lambda:InvokeFunctionUrl');
      target.accounting?.count('awsCall', 'lambda:InvokeFunctionUrl');
      if (isDenied(caller, 'lambda:InvokeFunctionUrl', functionArn)) {
        forbidden(res);
        return;
      }
      const url = new URL(req.url ?? '/', 'http://host-api');
      const iam =
        caller.kind === 'host'
          ? { userId: caller.userId, userArn: caller.arn, callerId: caller.userId }
          : { userId: 'AIDASANDBOXOPERATOR01', userArn: caller.arn, callerId: 'AIDASANDBOXOPERATOR01' };
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === 'string') headers[name] = value;
      }
      const event = {
        version: '2.0',
        routeKey: '$default',
        rawPath: url.pathname,
        rawQueryString: url.search.replace(/^\?/, ''),
        headers,
        requestContext: {
          accountId: 'anonymous',
          apiId: 'sandboxhostapi',
          authorizer: {
            iam: {
              accessKey: authenticatedKey(req),
              accountId,
              ...iam,
              cognitoIdentity: null,
              principalOrgId: null,
            },
          },
          domainName: url.host,
          domainPrefix: 'sandboxhostapi',
          http: {
            method: req.method ?? 'GET',
            path: url.pathname,
            protocol: 'HTTP/1.1',
            sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
            userAgent: headers['user-agent'] ?? '',
          },
          requestId,
          routeKey: '$default',
          stage: '$default',
          time: new Date().toUTCString(),
          timeEpoch: Date.now(),
        },
        body: body.toString('utf8'),
        isBase64Encoded: false,
      } as unknown as LambdaFunctionURLEvent;
      hostApiHandler ??= (await import('../../lambdas/hostapi/handler.js'))
        .handler as unknown as typeof hostApiHandler;
      const answered = await hostApiHandler?.(event, {
        functionName: 'volsd-hostapi',
        awsRequestId: requestId,
        getRemainingTimeInMillis: () => 30_000,
      });
      const result = typeof answered === 'object' ? answered : undefined;
      const text = typeof result?.body === 'string' ? result.body : '';
      res.writeHead(result?.statusCode ?? 200, {
        'content-type': 'application/json',
        ...(result?.headers as Record<string, string> | undefined),
        'content-length': Buffer.byteLength(text),
        'x-amzn-requestid': requestId,
      });
      res.end(text);
    } catch (err) {
      if (!res.headersSent) {
        const text = JSON.stringify({
          Message: err instanceof ProtocolError ? err.message : 'Internal Server Error',
        });
        res.writeHead(err instanceof ProtocolError ? err.status : 502, {
          'content-type': 'application/json',
        });
        res.end(text);
      } else res.destroy();
    }
  };
  const hostApi = await listen((req, res) => void handleHostApi(req, res));

  const close = (server: Server) =>
    new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    });

  return {
    url: main.url,
    hostApiUrl: `${hostApi.url}/`,
    hostCredentials,
    calls,
    serveInstance(instanceId) {
      servedInstance = instanceId;
    },
    async imdsFor(instanceId) {
      const existing = imdsServers.get(instanceId);
      if (existing) return existing.url;
      const service = new ImdsService(imdsSource(() => instanceId));
      const started = await listen((req, res) => service.handle(req, res));
      imdsServers.set(instanceId, started);
      return started.url;
    },
    deny(...actions) {
      for (const action of actions) denied.add(action);
    },
    allow(...actions) {
      if (actions.length === 0) {
        denied.clear();
        allowList = undefined;
      }
      for (const action of actions) denied.delete(action);
    },
    allowOnly(actions) {
      allowList = actions ? new Set(actions) : undefined;
    },
    clientEnv(imdsEndpoint) {
      return {
        AWS_REGION: target.cloud.region,
        AWS_ACCESS_KEY_ID: localCredentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: localCredentials.secretAccessKey,
        AWS_ENDPOINT_URL_SFN: main.url,
        AWS_ENDPOINT_URL_SSM: main.url,
        AWS_ENDPOINT_URL_DYNAMODB: main.url,
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imdsEndpoint ?? main.url,
        AWS_CONFIG_FILE: '/nonexistent/volsd-sandbox/config',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/volsd-sandbox/credentials',
      };
    },
    async stop() {
      await Promise.all(
        [main.server, hostApi.server, ...[...imdsServers.values()].map((s) => s.server)].map(close),
      );
      imdsServers.clear();
    },
  };
}
