/**
 * The query-protocol front of the simulator: EC2 (protocol `ec2`) and EC2 Auto Scaling (protocol
 * `query`) over HTTP, so the real AWS CLI, an SDK or any other client of those APIs reaches the
 * simulator as it reaches AWS (the sandbox's own handlers call it in-process, through SDK middleware).
 *
 * A request is a form-encoded POST (or a GET with the same query string) with `Action` and `Version`;
 * the parameters are read into the SDK's input shape with botocore's service model (`query-models.json`,
 * written by `generate-query-models.ts`): EC2 names lists `Filter.1.Value.1` from `queryName` or the
 * capitalised `locationName`, Auto Scaling `AutoScalingGroupNames.member.1`. The simulator's answer is
 * written as the XML each protocol returns, element names and list wrappers from the same model (EC2:
 * `<volumeSet><item>`, `<requestId>`; Auto Scaling: `<XResult>`, `<member>`, `<ResponseMetadata>`).
 *
 * Errors have each protocol's shape: EC2 `<Response><Errors><Error><Code>` with `<RequestID>`; Auto
 * Scaling `<ErrorResponse><Error><Type>Sender|Receiver</Type><Code>` with `<RequestId>`. An action the
 * simulator does not implement is `InvalidAction` (what both APIs answer for an unknown action), a
 * missing required parameter is EC2's `MissingParameter` / Auto Scaling's `ValidationError`, an
 * unknown EC2 parameter `UnknownParameter`, a malformed value `InvalidParameterValue` /
 * `ValidationError`. Requests without a SigV4 `Authorization` header (or `X-Amz-Credential` in the
 * query string) are refused with `MissingAuthenticationToken`, 403, as AWS does; signatures are not
 * checked (the sandbox has one set of fake credentials).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Cloud } from '../sim/cloud.js';
import { SimServiceError, UnsupportedCommandError } from '../sim/errors.js';
import { ProtocolError, readBody } from './protocol.js';

/** One member reference of a shape, as in botocore's model. */
interface MemberRef {
  shape: string;
  locationName?: string;
  queryName?: string;
  flattened?: boolean;
}

/** One shape of botocore's model (trimmed). */
interface Shape {
  type: string;
  required?: string[];
  flattened?: boolean;
  members?: Record<string, MemberRef>;
  member?: MemberRef;
  key?: MemberRef;
  value?: MemberRef;
}

/** A service's trimmed model. */
interface ServiceModel {
  protocol: 'ec2' | 'query';
  apiVersion: string;
  xmlNamespace: string;
  operations: Record<string, { input?: string; output?: string; resultWrapper?: string }>;
  shapes: Record<string, Shape>;
}

/** The services the front serves. */
export type QueryService = 'ec2' | 'autoscaling';

const models = JSON.parse(readFileSync(new URL('./query-models.json', import.meta.url), 'utf8')) as Record<
  QueryService,
  ServiceModel
>;

/** The operations the front answers for `service` (those of botocore's model the simulator implements). */
export function queryOperations(service: QueryService): string[] {
  return Object.keys(models[service].operations);
}

/** A running query-protocol front. */
export interface QueryFront {
  /** `http://127.0.0.1:<port>`: the EC2 endpoint (`AWS_ENDPOINT_URL_EC2`). */
  readonly ec2Url: string;
  /** `http://127.0.0.1:<port>`: the Auto Scaling endpoint (`AWS_ENDPOINT_URL_AUTOSCALING`). */
  readonly autoscalingUrl: string;
  /** Every action called so far, in order (`ec2:DescribeVolumes`, ...). */
  readonly calls: readonly string[];
  /** Stops both listeners. */
  stop(): Promise<void>;
}

/**
 * Starts the EC2 and the Auto Scaling endpoints on 127.0.0.1 (random ports), answering from `cloud`
 * (every call goes through `cloud.handle`: counted, with the modelled latency, throttling and faults,
 * as the handlers' own calls).
 */
export async function startQueryFront(cloud: Pick<Cloud, 'handle'>): Promise<QueryFront> {
  const calls: string[] = [];
  const servers: Server[] = [];
  const listen = async (service: QueryService) => {
    const server = createServer((req, res) => void serve(service, req, res));
    await new Promise<void>((done, failed) => {
      server.once('error', failed);
      server.listen(0, '127.0.0.1', () => done());
    });
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  const serve = async (service: QueryService, req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    try {
      const params = await readParams(req);
      if (!authenticated(req, params)) {
        throw new ProtocolError('MissingAuthenticationToken', 'Request is missing Authentication Token', 403);
      }
      const action = params.get('Action');
      if (!action) throw new ProtocolError('MissingAction', 'The request must contain the parameter Action');
      const model = models[service];
      const operation = Object.hasOwn(model.operations, action) ? model.operations[action] : undefined;
      calls.push(`${service}:${action}`);
      if (!operation) {
        throw new ProtocolError(
          'InvalidAction',
          `The action ${action} is not valid for this web service (the Volsd sandbox answers ${queryOperations(service).join(', ')}).`,
        );
      }
      const input = operation.input ? readInput(model, operation.input, params) : {};
      let output: Record<string, unknown>;
      try {
        output = (await cloud.handle(service, action, input)) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof SimServiceError)
          throw new ProtocolError(err.code, err.message, err.httpStatusCode);
        if (err instanceof UnsupportedCommandError) throw new ProtocolError('InvalidAction', err.message);
        if (err instanceof Error && err.name === 'SimClockClosed')
          throw new ProtocolError('ServiceUnavailable', 'The sandbox is stopping', 503);
        throw err;
      }
      send(res, 200, successXml(model, action, output, requestId), requestId);
    } catch (err) {
      const error =
        err instanceof ProtocolError
          ? err
          : new ProtocolError(
              service === 'ec2' ? 'InternalError' : 'InternalFailure',
              err instanceof Error ? err.message : String(err),
              500,
            );
      if (res.headersSent) res.destroy();
      else send(res, error.status, errorXml(service, error, requestId), requestId);
    }
  };

  const ec2Url = await listen('ec2');
  const autoscalingUrl = await listen('autoscaling');
  return {
    ec2Url,
    autoscalingUrl,
    calls,
    async stop() {
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((done) => {
              server.closeAllConnections();
              server.close(() => done());
            }),
        ),
      );
    },
  };
}

/** The request's parameters: the query string, then a form-encoded body. */
async function readParams(req: IncomingMessage): Promise<URLSearchParams> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const params = new URLSearchParams(url.search);
  if (req.method === 'POST') {
    const body = (await readBody(req)).toString('utf8');
    for (const [key, value] of new URLSearchParams(body)) params.append(key, value);
  } else if (req.method !== 'GET') {
    throw new ProtocolError('InvalidHttpRequest', `${req.method} is not supported: use POST or GET`, 405);
  }
  return params;
}

function authenticated(req: IncomingMessage, params: URLSearchParams): boolean {
  return /^AWS4-HMAC-SHA256 /.test(String(req.headers.authorization ?? '')) || params.has('X-Amz-Credential');
}

// ---------------------------------------------------------------- request -> SDK input

/** How a member is named on the wire in requests (botocore's serializers). */
function requestName(model: ServiceModel, ref: MemberRef, fallback: string): string {
  if (model.protocol === 'ec2') {
    if (ref.queryName) return ref.queryName;
    if (ref.locationName) return ref.locationName[0]?.toUpperCase() + ref.locationName.slice(1);
    return fallback;
  }
  return ref.locationName ?? fallback;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Reads the operation's input shape out of the flat parameters (`Filter.1.Name`, `X.member.1`). */
function readInput(model: ServiceModel, shapeName: string, params: URLSearchParams): Record<string, unknown> {
  const flat = new Map<string, string>();
  // Action and Version name the call; X-Amz-* carry a presigned request's signature (SigV4 query auth).
  for (const [key, value] of params)
    if (key !== 'Action' && key !== 'Version' && !key.startsWith('X-Amz-')) flat.set(key, value);
  const used = new Set<string>();
  const invalid = (name: string, value: string, why: string) =>
    model.protocol === 'ec2'
      ? new ProtocolError(
          'InvalidParameterValue',
          `Value (${value}) for parameter ${name} is invalid. ${why}`,
        )
      : new ProtocolError(
          'ValidationError',
          `Value '${value}' at '${name}' failed to satisfy constraint: ${why}`,
        );

  const hasUnder = (prefix: string) => {
    for (const key of flat.keys()) if (key === prefix || key.startsWith(`${prefix}.`)) return true;
    return false;
  };
  const indexes = (prefix: string) => {
    const pattern = new RegExp(`^${escapeRegExp(prefix)}\\.(\\d+)(?:\\.|$)`);
    const found = new Set<number>();
    for (const key of flat.keys()) {
      const n = pattern.exec(key)?.[1];
      if (n !== undefined) found.add(Number(n));
    }
    return [...found].sort((a, b) => a - b);
  };

  const read = (name: string, prefix: string, path: string): unknown => {
    const shape = model.shapes[name];
    if (!shape) throw new Error(`shape ${name} is not in the model`);
    switch (shape.type) {
      case 'structure': {
        if (prefix && !hasUnder(prefix)) return undefined;
        const out: Record<string, unknown> = {};
        for (const [key, ref] of Object.entries(shape.members ?? {})) {
          const wire = requestName(model, ref, key);
          const value = read(
            ref.shape,
            prefix ? `${prefix}.${wire}` : wire,
            prefix ? `${path}.${wire}` : wire,
          );
          if (value !== undefined) out[key] = value;
        }
        for (const key of shape.required ?? []) {
          if (out[key] !== undefined) continue;
          const ref = shape.members?.[key];
          const wire = ref ? requestName(model, ref, key) : key;
          const full = prefix ? `${prefix}.${wire}` : wire;
          throw model.protocol === 'ec2'
            ? new ProtocolError('MissingParameter', `The request must contain the parameter ${full}`)
            : new ProtocolError(
                'ValidationError',
                `1 validation error detected: Value null at '${full[0]?.toLowerCase()}${full.slice(1)}' failed to satisfy constraint: Member must not be null`,
              );
        }
        return out;
      }
      case 'list': {
        const member = shape.member as MemberRef;
        if (flat.get(prefix) === '') {
          used.add(prefix);
          return [];
        }
        const itemPrefix =
          model.protocol === 'ec2' || shape.flattened
            ? prefix
            : `${prefix}.${member.locationName ?? 'member'}`;
        const items = indexes(itemPrefix).map((i) =>
          read(member.shape, `${itemPrefix}.${i}`, `${path}.${i}`),
        );
        return items.length ? items : undefined;
      }
      case 'map': {
        const entryPrefix = shape.flattened ? prefix : `${prefix}.entry`;
        const key = shape.key as MemberRef;
        const value = shape.value as MemberRef;
        const out: Record<string, unknown> = {};
        for (const i of indexes(entryPrefix)) {
          const k = read(key.shape, `${entryPrefix}.${i}.${key.locationName ?? 'key'}`, path);
          const v = read(value.shape, `${entryPrefix}.${i}.${value.locationName ?? 'value'}`, path);
          if (k !== undefined) out[String(k)] = v;
        }
        return Object.keys(out).length ? out : undefined;
      }
      default: {
        const raw = flat.get(prefix);
        if (raw === undefined) {
          if (hasUnder(prefix)) throw invalid(path, '', `${name} is a scalar`);
          return undefined;
        }
        used.add(prefix);
        switch (shape.type) {
          case 'integer':
          case 'long': {
            const n = Number(raw);
            if (raw.trim() === '' || !Number.isInteger(n)) throw invalid(path, raw, 'it must be an integer');
            return n;
          }
          case 'float':
          case 'double': {
            const n = Number(raw);
            if (raw.trim() === '' || !Number.isFinite(n)) throw invalid(path, raw, 'it must be a number');
            return n;
          }
          case 'boolean':
            if (raw !== 'true' && raw !== 'false') throw invalid(path, raw, 'it must be true or false');
            return raw === 'true';
          case 'timestamp': {
            const date = new Date(/^\d+(\.\d+)?$/.test(raw) ? Number(raw) * 1000 : raw);
            if (Number.isNaN(date.getTime())) throw invalid(path, raw, 'it must be a timestamp');
            return date;
          }
          case 'blob':
            return Buffer.from(raw, 'base64');
          default:
            return raw;
        }
      }
    }
  };
  const input = read(shapeName, '', '') as Record<string, unknown>;
  if (model.protocol === 'ec2') {
    // Keys that no member took (list indexes and structure members are consumed by their leaves).
    const unknown = [...flat.keys()].filter((key) => !used.has(key));
    if (unknown[0] !== undefined) {
      throw new ProtocolError('UnknownParameter', `The parameter ${unknown[0]} is not recognized`);
    }
  }
  return input;
}

// ---------------------------------------------------------------- SDK output -> XML

const escapeXml = (text: string) =>
  text.replace(/[<>&"']/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`);

function namespace(model: ServiceModel): string {
  return model.xmlNamespace.endsWith('/') ? model.xmlNamespace : `${model.xmlNamespace}/`;
}

/** Writes `value` of shape `name` as the element `<tag>` (botocore's XML parsers read it back). */
function toXml(model: ServiceModel, name: string, tag: string, value: unknown): string {
  if (value === undefined || value === null) return '';
  const shape = model.shapes[name];
  if (!shape) throw new Error(`shape ${name} is not in the model`);
  switch (shape.type) {
    case 'structure':
      return `<${tag}>${structureBody(model, shape, value as Record<string, unknown>)}</${tag}>`;
    case 'list': {
      const member = shape.member as MemberRef;
      const items = value as unknown[];
      if (shape.flattened) return items.map((item) => toXml(model, member.shape, tag, item)).join('');
      const itemTag = member.locationName ?? 'member';
      return `<${tag}>${items.map((item) => toXml(model, member.shape, itemTag, item)).join('')}</${tag}>`;
    }
    case 'map': {
      const key = shape.key as MemberRef;
      const val = shape.value as MemberRef;
      const entries = Object.entries(value as Record<string, unknown>).map(
        ([k, v]) =>
          `<entry>${toXml(model, key.shape, key.locationName ?? 'key', k)}${toXml(model, val.shape, val.locationName ?? 'value', v)}</entry>`,
      );
      return `<${tag}>${entries.join('')}</${tag}>`;
    }
    case 'timestamp': {
      const date = value instanceof Date ? value : new Date(value as string | number);
      return `<${tag}>${date.toISOString()}</${tag}>`;
    }
    case 'blob':
      return `<${tag}>${Buffer.from(value as Uint8Array).toString('base64')}</${tag}>`;
    default:
      return `<${tag}>${escapeXml(String(value))}</${tag}>`;
  }
}

function structureBody(model: ServiceModel, shape: Shape, value: Record<string, unknown>): string {
  let body = '';
  for (const [key, ref] of Object.entries(shape.members ?? {})) {
    body += toXml(model, ref.shape, ref.locationName ?? key, value[key]);
  }
  return body;
}

function successXml(
  model: ServiceModel,
  action: string,
  output: Record<string, unknown>,
  requestId: string,
): string {
  const operation = model.operations[action] ?? {};
  const outputShape = operation.output ? model.shapes[operation.output] : undefined;
  const body = outputShape ? structureBody(model, outputShape, output) : '';
  const open = `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${namespace(model)}">`;
  if (model.protocol === 'ec2')
    return `${open}<requestId>${requestId}</requestId>${body}</${action}Response>`;
  const result = operation.resultWrapper
    ? `<${operation.resultWrapper}>${body}</${operation.resultWrapper}>`
    : '';
  return `${open}${result}<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
}

function errorXml(service: QueryService, error: ProtocolError, requestId: string): string {
  const code = escapeXml(error.code);
  const message = escapeXml(error.message);
  if (service === 'ec2') {
    return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
  }
  const type = error.status >= 500 ? 'Receiver' : 'Sender';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="${namespace(models.autoscaling)}"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
}

function send(res: ServerResponse, status: number, xml: string, requestId: string): void {
  res.writeHead(status, {
    'content-type': 'text/xml;charset=UTF-8',
    'content-length': Buffer.byteLength(xml),
    'x-amzn-requestid': requestId,
  });
  res.end(xml);
}
