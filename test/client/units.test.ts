import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  SFNClient,
  SFNServiceException,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createClients, deniedAction, destroyClients, toClientError } from '../../client/aws.js';
import { parseCommandLine } from '../../client/cli.js';
import { ClientError, ExitCode } from '../../client/errors.js';
import { formatAge, renderTable } from '../../client/format.js';
import { metadataEndpoint } from '../../client/imds.js';
import { configParameterNames, configParameterPath } from '../../client/pool-config.js';
import { createProgress } from '../../client/progress.js';
import { boundedExecutionName, waitForExecution } from '../../client/workflow.js';
import * as lib from '../../lib/config-parameters.js';

const sfnMock = mockClient(SFNClient);

afterEach(() => {
  sfnMock.reset();
});

describe('configuration names', () => {
  it('are the ones the CDK construct publishes (lib/config-parameters.ts)', () => {
    expect(configParameterNames).toEqual(lib.configParameterNames);
    expect(configParameterPath('web')).toBe(lib.configParameterPath('web'));
  });
});

describe('command line', () => {
  it('takes global options before and after the command', () => {
    const parsed = parseCommandLine(['--pool', 'web', 'volumes', '--output', 'json', '--state', 'in-use']);

    expect(parsed).toEqual({
      kind: 'run',
      command: 'volumes',
      globals: {
        pool: 'web',
        output: 'json',
        quiet: false,
        readTimeoutSeconds: 60,
        connectTimeoutSeconds: 60,
      },
      args: { noWait: false, timeoutSeconds: 1800, state: 'IN_USE' },
    });
  });

  it('reads the per-try AWS timeouts', () => {
    const parsed = parseCommandLine(['pool', '--cli-read-timeout', '5', '--cli-connect-timeout=2.5']);

    expect(parsed).toMatchObject({ globals: { readTimeoutSeconds: 5, connectTimeoutSeconds: 2.5 } });
  });

  it('reads --no-wait, --timeout and --mount of acquire', () => {
    const parsed = parseCommandLine(['acquire', '--no-wait', '--timeout', '90.5', '--mount', '/data/www']);

    expect(parsed).toMatchObject({ args: { noWait: true, timeoutSeconds: 90.5, mount: '/data/www' } });
  });
});

describe('AWS errors', () => {
  it('names the action an AccessDenied message names', () => {
    const message =
      'User: arn:aws:sts::123456789012:assumed-role/web/i-0abc is not authorized to perform: dynamodb:Query on resource: arn:aws:dynamodb:us-east-1:123456789012:table/volsd-web/index/byPool because no identity-based policy allows the dynamodb:Query action';

    expect(deniedAction(message)).toBe('dynamodb:Query');
  });

  it('maps AccessDenied without an action in the message to the action that was called', () => {
    const err = Object.assign(new Error('Access Denied'), { name: 'AccessDeniedException' });

    const mapped = toClientError(err, 'states:StartExecution');

    expect(mapped.exitCode).toBe(ExitCode.PermissionDenied);
    expect(mapped.message).toBe('permission denied: this identity may not call states:StartExecution');
  });

  it('maps a refused connection to an unexpected error naming the action', () => {
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });

    const mapped = toClientError(err, 'ssm:GetParametersByPath');

    expect(mapped).toMatchObject({ exitCode: ExitCode.Unexpected, code: 'EndpointUnreachable' });
  });
});

describe('instance metadata endpoint', () => {
  it("follows the SDK's variables: explicit endpoint, else IPv6 mode, else the IPv4 address", () => {
    expect(metadataEndpoint({ AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:8080/' })).toBe(
      'http://127.0.0.1:8080',
    );
    expect(metadataEndpoint({ AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE: 'IPv6' })).toBe(
      'http://[fd00:ec2::254]',
    );
    expect(metadataEndpoint({})).toBe('http://169.254.169.254');
  });
});

describe('formatting', () => {
  it('pads columns to the widest cell and shows empty cells as -', () => {
    expect(
      renderTable(
        ['VOLUME', 'HOLDER'],
        [
          ['vol-1', ''],
          ['vol-22222', 'i-1'],
        ],
      ),
    ).toBe('VOLUME     HOLDER\nvol-1      -\nvol-22222  i-1\n');
  });

  it('keeps each row on one line: a line break inside a cell (an error message) becomes a space', () => {
    expect(renderTable(['INSTANCE', 'ERROR'], [['i-1', 'sync failed:\r\n  disk full\n']])).toBe(
      'INSTANCE  ERROR\ni-1       sync failed: disk full\n',
    );
  });

  it('prints ages in the largest two units and clamps clock skew to 0s', () => {
    expect([
      formatAge(-5),
      formatAge(59),
      formatAge(61),
      formatAge(3 * 3600 + 120),
      formatAge(86400 * 2 + 3600),
    ]).toEqual(['0s', '59s', '1m', '3h2m', '2d1h']);
  });
});

describe('progress', () => {
  it('prints a plain line per change of status or step, never a carriage return', () => {
    let out = '';
    let t = 0;
    const progress = createProgress('plain', 'acquire', { write: (s: string) => (out += s) }, () => t);

    progress.update('RUNNING', 'Claim');
    t = 1500;
    progress.update('RUNNING', 'Claim');
    progress.update('RUNNING', 'Attach');
    progress.update('SUCCEEDED');
    progress.stop();

    expect(out).toBe(
      'acquire: RUNNING Claim (0.0s)\nacquire: RUNNING Attach (1.5s)\nacquire: SUCCEEDED (1.5s)\n',
    );
  });
});

describe('progress in a terminal', () => {
  it('redraws one line with a spinner, the step and the elapsed time, and erases it when stopped', () => {
    let out = '';
    const progress = createProgress('tty', 'release', { write: (s: string) => (out += s) }, () => 2500);

    progress.update('RUNNING', 'Detach');
    progress.stop();

    const erase = '\r\u001b[2K';
    expect(out.startsWith(erase)).toBe(true);
    expect(out).toContain(`${erase}⠙ release: Detach  0.0s`);
    expect(out.endsWith(erase)).toBe(true);
    expect(out).not.toContain('\n');
  });
});

describe('waiting for an execution', () => {
  const executionArn = 'arn:aws:states:us-east-1:123456789012:execution:acquire:x';
  const silent = createProgress('silent', 'acquire', { write: () => undefined });

  it('gives up after the timeout with a Timeout error naming the execution', async () => {
    sfnMock.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' });
    let t = 0;

    const wait = waitForExecution(new SFNClient({ region: 'us-east-1' }), executionArn, {
      timeoutMs: 300,
      progress: silent,
      label: 'acquire',
      steps: false,
      now: () => (t += 200),
    });

    await expect(wait).rejects.toMatchObject({ exitCode: ExitCode.Timeout, details: { executionArn } });
    await expect(wait).rejects.toBeInstanceOf(ClientError);
  });

  it('keeps waiting without step names when the history may not be read', async () => {
    sfnMock
      .on(DescribeExecutionCommand)
      .resolvesOnce({ status: 'RUNNING' })
      .resolves({ status: 'SUCCEEDED', output: '{"volumeId":"vol-1"}' });
    sfnMock.on(GetExecutionHistoryCommand).rejects(
      new SFNServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: {},
        message: 'not authorized to perform: states:GetExecutionHistory',
      }),
    );

    const outcome = await waitForExecution(new SFNClient({ region: 'us-east-1' }), executionArn, {
      timeoutMs: 60_000,
      progress: silent,
      label: 'acquire',
      steps: true,
    });

    expect(outcome).toEqual({ executionArn, status: 'SUCCEEDED', output: { volumeId: 'vol-1' } });
    expect(sfnMock.commandCalls(GetExecutionHistoryCommand)).toHaveLength(1);
  });
});

describe('boundedExecutionName', () => {
  it('keeps a name of 80 characters and shortens a longer one to 80, unique per name', () => {
    const fits = 'a'.repeat(80);
    expect(boundedExecutionName(fits)).toBe(fits);

    // replenish-<32-character pool>-<Local Zone>-admin-<ms>: 84 characters.
    const pool = 'p'.repeat(32);
    const names = ['ap-northeast-1-tpe-1a', 'ap-northeast-1-tpe-1b'].map((az) =>
      boundedExecutionName(`replenish-${pool}-${az}-admin-1764820800000`),
    );
    for (const name of names) {
      expect(name).toHaveLength(80);
      expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(name.startsWith(`replenish-${pool}-`)).toBe(true);
    }
    expect(names[0]).not.toBe(names[1]);
  });
});

describe('createClients and destroyClients', () => {
  it('close every client, the DynamoDB client under the document client too', () => {
    const clients = createClients('us-east-1', {});
    const closed = [clients.sfn, clients.ssm, clients.doc, clients.dynamo].map((c) => vi.spyOn(c, 'destroy'));

    destroyClients(clients);

    for (const spy of closed) expect(spy).toHaveBeenCalledOnce();
  });
});
