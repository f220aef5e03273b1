import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runMain } from './in-process.js';

/**
 * volsd-client against AWS that answers badly for a moment: a throttled or failing host API, a
 * throttled instance metadata service, credentials of another instance. One local server plays IMDS,
 * SSM (the pool's parameters) and the host API's function URL, each answer chosen by the test.
 */

const thisHost = 'i-0aaaaaaaaaaaaaaa1';
const otherHost = 'i-0bbbbbbbbbbbbbbb2';
const arnOf = (id: string) =>
  `arn:aws:states:us-east-1:123456789012:execution:volsd-web-acquire:manual-acquire-${id}-x`;

/** One host API call the server saw: its route and body. */
interface HostApiCall {
  route: string;
  body: Record<string, unknown>;
}
type Answer = { status: number; body: unknown };

let server: Server;
let base: string;
let hostApi: (call: HostApiCall, index: number) => Answer;
let calls: HostApiCall[];
/** IMDS answers for the identity document, in order; then 200. */
let imdsFailures: number[];
const savedEnv = { ...process.env };

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (chunk) => {
      text += chunk;
    });
    req.on('end', () => resolve(text));
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '';
  const text = await readBody(req);
  const send = (status: number, out: unknown, type = 'application/json') => {
    res.writeHead(status, { 'content-type': type });
    res.end(typeof out === 'string' ? out : JSON.stringify(out));
  };
  if (url === '/latest/api/token') return send(200, 'token', 'text/plain');
  if (url === '/latest/dynamic/instance-identity/document') {
    const failure = imdsFailures.shift();
    if (failure) return send(failure, '', 'text/plain');
    return send(200, { instanceId: thisHost, availabilityZone: 'us-east-1a', region: 'us-east-1' });
  }
  // Only the key as AWS's examples write it: a percent-encoded one is not documented to be decoded.
  if (url === '/latest/meta-data/tags/instance/volsd:pool') return send(200, 'web', 'text/plain');
  if (url.startsWith('/latest/meta-data/tags')) return send(404, 'not found', 'text/plain');
  if (url.startsWith('/hostapi/')) {
    const call = { route: url.slice('/hostapi/'.length), body: JSON.parse(text) as Record<string, unknown> };
    calls.push(call);
    const answer = hostApi(call, calls.length - 1);
    return send(answer.status, answer.body);
  }
  if (req.headers['x-amz-target'] === 'AmazonSSM.GetParametersByPath') {
    return send(
      200,
      {
        Parameters: [
          { Name: '/volsd/web/table-name', Value: 'volsd-web' },
          { Name: '/volsd/web/host-api-url', Value: `${base}/hostapi/` },
        ],
      },
      'application/x-amz-json-1.1',
    );
  }
  return send(500, { message: `unexpected request ${req.method} ${url}` });
}

beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // The SDK (the SSM client) reads its endpoint and keys from the process environment.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SSM: base,
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_REGION: 'us-east-1',
  });
});

afterAll(async () => {
  process.env = savedEnv;
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  calls = [];
  imdsFailures = [];
});

const run = (argv: string[]) => runMain(argv, { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: base });

const started = (instanceId: string): Answer => ({
  status: 200,
  body: { instanceId, executionArn: arnOf(instanceId), executionName: 'x' },
});
const running: Answer = { status: 200, body: { executionArn: arnOf(thisHost), status: 'RUNNING' } };
const succeeded: Answer = {
  status: 200,
  body: {
    executionArn: arnOf(thisHost),
    status: 'SUCCEEDED',
    output: JSON.stringify({ volumeId: 'vol-0123456789abcdef0', device: '/dev/xvdf' }),
  },
};

describe('a host API that throttles or fails for a moment', () => {
  it.for([
    [429, { Message: 'Rate Exceeded.' }],
    [502, { Message: 'Internal Server Error' }],
  ] as [number, unknown][])(
    'an execution poll answered %i is tried again and the acquire completes',
    async ([status, body]) => {
      hostApi = (call, index) => {
        if (call.route === 'acquire') return started(thisHost);
        if (index === 2) return { status, body };
        return index < 4 ? running : succeeded;
      };

      const result = await run(['acquire', '--pool', 'web', '--output', 'json']);

      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({
        status: 'ACQUIRED',
        volumeId: 'vol-0123456789abcdef0',
      });
      expect(calls.map((c) => c.route)).toEqual([
        'acquire',
        'execution',
        'execution',
        'execution',
        'execution',
      ]);
    },
  );

  it('a start answered 429 is tried again with the same request id: one request, one execution', async () => {
    hostApi = (call, index) => {
      if (call.route === 'acquire')
        return index === 0 ? { status: 429, body: { Message: 'Rate Exceeded.' } } : started(thisHost);
      return succeeded;
    };

    const result = await run(['acquire', '--pool', 'web', '--quiet']);

    expect(result.code).toBe(0);
    const starts = calls.filter((c) => c.route === 'acquire');
    expect(starts).toHaveLength(2);
    expect(starts[1]?.body.requestId).toBe(starts[0]?.body.requestId);
  });

  it('a host API that keeps failing ends the wait after a few tries, naming the execution that goes on', async () => {
    hostApi = (call) =>
      call.route === 'acquire'
        ? started(thisHost)
        : { status: 503, body: { Message: 'Service Unavailable' } };

    const result = await run(['acquire', '--pool', 'web', '--output', 'json']);

    expect(result.code).toBe(1);
    expect(calls.filter((c) => c.route === 'execution')).toHaveLength(4);
    const { error } = JSON.parse(result.stdout) as { error: Record<string, unknown> };
    expect(error.executionArn).toBe(arnOf(thisHost));
    expect(result.stderr).toContain(`the acquire goes on: ${arnOf(thisHost)}`);
  });

  it('a refusal (400) is not tried again', async () => {
    hostApi = () => ({ status: 400, body: { error: 'InvalidInput', message: 'invalid request: pool: bad' } });

    const result = await run(['release', '--pool', 'web', '--quiet']);

    expect(result.code).toBe(2);
    expect(calls).toHaveLength(1);
  });
});

describe("another instance's credentials", () => {
  it('acquire and release name this host, so the host API can refuse before anything starts', async () => {
    // The host API's answer to credentials that prove another instance than the one named.
    hostApi = (call) =>
      call.body.expectedInstanceId === otherHost
        ? started(otherHost)
        : {
            status: 403,
            body: {
              error: 'NotThisHost',
              message: `the credentials in use belong to ${otherHost}, not to ${String(call.body.expectedInstanceId)}; nothing was started`,
            },
          };

    for (const command of ['acquire', 'release']) {
      calls = [];
      const result = await run([command, '--pool', 'web', '--output', 'json']);

      expect(result.code).toBe(4);
      expect(calls).toEqual([
        { route: command, body: expect.objectContaining({ expectedInstanceId: thisHost }) },
      ]);
      expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'NotThisHost', exitCode: 4 } });
    }
  });
});

describe('a throttled instance metadata service', () => {
  it('one 429 is tried again: the host finds itself', async () => {
    imdsFailures = [429];
    hostApi = () => ({ status: 200, body: { instanceId: thisHost } });

    const result = await run(['status', '--pool', 'web', '--output', 'json']);

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ instanceId: thisHost });
  });

  it('a service that keeps answering 500 is an error of its own (exit 1), not "not on EC2"', async () => {
    imdsFailures = [500, 500, 500];
    hostApi = () => ({ status: 200, body: { instanceId: thisHost } });

    const result = await run(['status', '--pool', 'web', '--output', 'json']);

    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'MetadataUnavailable', status: 500 } });
    expect(calls).toHaveLength(0);
  });
});

describe('the pool from the instance tag', () => {
  it('reads tags/instance/volsd:pool with the key as it is', async () => {
    hostApi = (call) => ({ status: 200, body: { instanceId: thisHost, pool: call.body.pool } });

    const result = await run(['status', '--output', 'json']);

    expect(result.code).toBe(0);
    expect(calls).toEqual([{ route: 'status', body: { pool: 'web' } }]);
  });
});

describe('a refusal in front of the host API', () => {
  it.for([
    ['Forbidden', 'permission denied: '],
    [
      'Signature expired: 20261204T030000Z is now earlier than 20261204T031000Z',
      'permission denied (Signature expired: 20261204T030000Z',
    ],
  ])('403 %j: exit 4, saying what AWS said', async ([message, expected]) => {
    hostApi = () => ({ status: 403, body: { Message: message } });

    const result = await run(['status', '--pool', 'web']);

    expect(result.code).toBe(4);
    expect(result.stderr).toContain(`volsd-client: ${expected}`);
    expect(calls).toHaveLength(1);
  });
});

describe('a host API deployed before expectedInstanceId', () => {
  it('refuses the key; the client asks again without it and still checks the answer', async () => {
    let credentialsOf = thisHost;
    hostApi = (call) => {
      if (call.route === 'acquire' && 'expectedInstanceId' in call.body) {
        return {
          status: 400,
          body: {
            error: 'InvalidInput',
            message: "invalid request: body: Unrecognized key(s) in object: 'expectedInstanceId'",
          },
        };
      }
      if (call.route === 'acquire') return started(credentialsOf);
      return succeeded;
    };

    const first = await run(['acquire', '--pool', 'web', '--quiet']);
    expect(first.code).toBe(0);
    expect(calls.filter((c) => c.route === 'acquire').map((c) => 'expectedInstanceId' in c.body)).toEqual([
      true,
      false,
    ]);

    // The same older API answering for another instance's credentials: refused after the fact.
    calls = [];
    credentialsOf = otherHost;
    const second = await run(['acquire', '--pool', 'web', '--quiet']);
    expect(second.code).toBe(4);
    expect(second.stderr).toContain(`belong to ${otherHost}`);
  });
});
