import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localCredentials } from '../servers.js';
import type { Accounting } from '../sim/accounting.js';
import type { Cloud } from '../sim/cloud.js';
import { SimServiceError, UnsupportedCommandError } from '../sim/errors.js';
import type { LocalStepFunctions } from '../stepfunctions.js';
import { ExecutionHistory } from './history.js';
import { type ImdsInstance, ImdsService } from './imds.js';
import { ProtocolError, parseJsonBody, readBody, sendError, sendJson } from './protocol.js';

/** What the gateway serves from: the parts of a `Sandbox` it uses (a `Sandbox` is one). */
export interface GatewayTarget {
  readonly sfn: Pick<LocalStepFunctions, 'handle' | 'executions'>;
  readonly cloud: Pick<Cloud, 'handle' | 'ec2' | 'region' | 'accountId'>;
  readonly dynamo: { readonly endpoint: string };
  readonly accounting?: Accounting;
}

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  /** Instance whose metadata the gateway's own `/latest/...` paths serve. @default none (404) */
  instanceId?: string;
  /** Whether the metadata services expose instance tags. @default true */
  imdsTags?: boolean;
  /**
   * Whether the metadata services hand out instance-profile credentials (the sandbox's local ones,
   * under the role `volsd-sandbox-host`). @default true
   */
  instanceProfile?: boolean;
}

/** A running gateway. */
export interface Gateway {
  /** `http://127.0.0.1:<port>`: the endpoint for Step Functions, SSM, DynamoDB and (default) IMDS. */
  readonly url: string;
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

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const sfnPrefix = 'AWSStepFunctions.';
const ssmPrefix = 'AmazonSSM.';
const dynamoPrefix = 'DynamoDB_20120810.';

/**
 * Starts the sandbox gateway on 127.0.0.1 at a random port: one HTTP endpoint that lets a separate
 * process (volsd-client, the AWS CLI) use the sandbox with plain SDK clients and endpoint overrides.
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
      : { instanceProfile: { roleName: 'volsd-sandbox-host', ...localCredentials } }),
  });
  const ownImds = new ImdsService(imdsSource(() => servedInstance));

  const isDenied = (action: string) =>
    denied.has(action) ||
    denied.has(`${action.split(':')[0]}:*`) ||
    denied.has('*') ||
    (allowList !== undefined && !allowList.has(action));
  const accessDenied = (action: string, resource: string) =>
    new ProtocolError(
      'AccessDeniedException',
      `User: arn:aws:sts::${target.cloud.accountId}:assumed-role/volsd-sandbox/client is not authorized to perform: ${action} on resource: ${resource} because no identity-based policy allows the ${action} action`,
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
      const name = String(input.Name ?? input.Path ?? (input.Names as string[] | undefined)?.[0] ?? '*');
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
      const input = parseJsonBody(body);
      calls.push(action);
      if (isDenied(action)) throw accessDenied(action, resourceOf(service, input));
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

  const close = (server: Server) =>
    new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    });

  return {
    url: main.url,
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
      await Promise.all([main.server, ...[...imdsServers.values()].map((s) => s.server)].map(close));
      imdsServers.clear();
    },
  };
}
