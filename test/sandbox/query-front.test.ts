import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  SetDesiredCapacityCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DescribeVpcsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedOperations } from '../../sandbox/gateway/generate-query-models.js';
import { type QueryFront, queryOperations, startQueryFront } from '../../sandbox/gateway/query.js';
import {
  clientConfig,
  type Harness,
  harness,
  rejection,
  runningInstance,
  untilConsistent,
} from '../sim/harness.js';

let h: Harness;
let front: QueryFront;
/** SDK clients that reach the simulator over HTTP, through the front (the harness's are in-process). */
let ec2: EC2Client;
let asg: AutoScalingClient;
let instanceId: string;
let volumeId: string;

const poolFilter = [{ Name: 'tag:volsd:pool', Values: ['web'] }];
const strip = <T extends { $metadata?: unknown }>(output: T) => ({ ...output, $metadata: undefined });

beforeAll(async () => {
  h = await harness({ timeScale: 0.01 });
  front = await startQueryFront(h.cloud);
  ec2 = new EC2Client({ ...clientConfig, endpoint: front.ec2Url, maxAttempts: 1 });
  asg = new AutoScalingClient({ ...clientConfig, endpoint: front.autoscalingUrl, maxAttempts: 1 });
  h.cloud.createAutoScalingGroup({ name: 'web-web', azs: ['us-east-1a'], tags: { 'volsd:pool': 'web' } });
  instanceId = await runningInstance(h.cloud, 'us-east-1a', { 'volsd:pool': 'web' });
  const created = await h.ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: 'us-east-1a',
      Size: 4,
      VolumeType: 'gp3',
      TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'volsd:pool', Value: 'web' }] }],
    }),
  );
  volumeId = created.VolumeId ?? '';
  await h.cloud.waitFor(
    () => h.cloud.snapshotState().volumes.some((v) => v.volumeId === volumeId && v.state === 'available'),
    600,
    'volume available',
  );
  await h.ec2.send(
    new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/xvdf' }),
  );
  await h.cloud.waitFor(
    () => h.cloud.snapshotState().volumes.some((v) => v.volumeId === volumeId && v.state === 'in-use'),
    600,
    'volume attached',
  );
  await untilConsistent(h.cloud);
});

afterAll(async () => {
  ec2?.destroy();
  asg?.destroy();
  await front?.stop();
  await h?.dispose();
});

describe('the query-protocol front', () => {
  it('serves every command of the simulator, and nothing else', () => {
    expect(queryOperations('ec2').sort()).toEqual(Object.keys(h.cloud.ec2.commands).sort());
    expect(queryOperations('autoscaling').sort()).toEqual(Object.keys(h.cloud.autoscaling.commands).sort());
    expect([...servedOperations.ec2].sort()).toEqual(queryOperations('ec2').sort());
    expect([...servedOperations.autoscaling].sort()).toEqual(queryOperations('autoscaling').sort());
  });

  it('answers DescribeVolumes with filters as the simulator does, read back by the SDK from the XML', async () => {
    const input = { Filters: [...poolFilter, { Name: 'attachment.status', Values: ['attached'] }] };
    const [overHttp, inProcess] = [
      await ec2.send(new DescribeVolumesCommand(input)),
      await h.ec2.send(new DescribeVolumesCommand(input)),
    ];
    expect(overHttp.Volumes?.map((v) => v.VolumeId)).toEqual([volumeId]);
    expect(overHttp.Volumes?.[0]?.Attachments?.[0]).toMatchObject({
      InstanceId: instanceId,
      State: 'attached',
    });
    expect(overHttp.Volumes?.[0]?.CreateTime).toBeInstanceOf(Date);
    expect(strip(overHttp)).toEqual(strip(inProcess));
  });

  it('answers DescribeInstances (nested lists and structures) as the simulator does', async () => {
    const input = { InstanceIds: [instanceId] };
    const overHttp = await ec2.send(new DescribeInstancesCommand(input));
    const inProcess = await h.ec2.send(new DescribeInstancesCommand(input));
    expect(overHttp.Reservations?.[0]?.Instances?.[0]?.BlockDeviceMappings?.length).toBe(2);
    expect(strip(overHttp)).toEqual(strip(inProcess));
  });

  it('sets a group desired capacity through Auto Scaling (the simulator group changes)', async () => {
    await asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web-web', DesiredCapacity: 1 }));
    expect(h.cloud.snapshotState().groups.find((g) => g.name === 'web-web')?.desiredCapacity).toBe(1);
    const input = { AutoScalingGroupNames: ['web-web'] };
    const overHttp = await asg.send(new DescribeAutoScalingGroupsCommand(input));
    expect(overHttp.AutoScalingGroups?.[0]?.DesiredCapacity).toBe(1);
    expect(strip(overHttp)).toEqual(strip(await h.asg.send(new DescribeAutoScalingGroupsCommand(input))));
  });

  it("returns the simulator's EC2 errors in EC2's XML shape (the SDK raises the named error)", async () => {
    const error = await rejection(
      ec2.send(new DescribeVolumesCommand({ VolumeIds: ['vol-0123456789abcdef0'] })),
    );
    expect(error.name).toBe('InvalidVolume.NotFound');
    expect((error.$metadata as { httpStatusCode: number }).httpStatusCode).toBe(400);
  });

  it("returns the simulator's Auto Scaling errors in the query protocol's shape, with Type Sender", async () => {
    const error = await rejection(
      asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: 'nope', DesiredCapacity: 1 })),
    );
    expect(error.name).toBe('ValidationError');
    expect(error.Error).toMatchObject({ Type: 'Sender', Code: 'ValidationError' });
  });

  it('answers InvalidAction for an operation the simulator does not implement', async () => {
    const error = await rejection(ec2.send(new DescribeVpcsCommand({})));
    expect(error.name).toBe('InvalidAction');
    expect(error.message).toContain('DescribeVolumes');
  });

  it('refuses a request without a required parameter, as each API does', async () => {
    const ec2Error = await rejection(
      ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId } as never)),
    );
    expect(ec2Error.name).toBe('MissingParameter');
    expect(ec2Error.message).toContain('Device');
    const asgError = await rejection(
      asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web-web' } as never)),
    );
    expect(asgError.name).toBe('ValidationError');
    expect(asgError.message).toContain('desiredCapacity');
  });

  it('refuses an unknown EC2 parameter and a malformed value', async () => {
    const post = (body: string) =>
      fetch(front.ec2Url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ec2/aws4_request',
        },
        body,
      }).then(async (r) => ({ status: r.status, text: await r.text() }));
    const unknown = await post('Action=DescribeVolumes&Version=2016-11-15&Colour=blue');
    expect(unknown.status).toBe(400);
    expect(unknown.text).toContain('<Code>UnknownParameter</Code>');
    const malformed = await post('Action=DescribeVolumes&Version=2016-11-15&MaxResults=many');
    expect(malformed.text).toContain('<Code>InvalidParameterValue</Code>');
  });

  it('answers a presigned GET (SigV4 in the query string) without taking X-Amz-* for parameters', async () => {
    const query = new URLSearchParams({
      Action: 'DescribeVolumes',
      Version: '2016-11-15',
      'Filter.1.Name': 'tag:volsd:pool',
      'Filter.1.Value.1': 'web',
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Credential': 'AKID/20260101/us-east-1/ec2/aws4_request',
      'X-Amz-Signature': '0'.repeat(64),
    });
    const response = await fetch(`${front.ec2Url}/?${query}`);
    const text = await response.text();
    expect(response.status, text).toBe(200);
    expect(text).toContain(`<volumeId>${volumeId}</volumeId>`);
  });

  it('refuses an unsigned request with MissingAuthenticationToken, 403', async () => {
    const response = await fetch(front.autoscalingUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeAutoScalingGroups&Version=2011-01-01',
    });
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('<Code>MissingAuthenticationToken</Code>');
  });
});

const cliMissing = !existsSync('/usr/bin/aws');
if (cliMissing)
  console.warn('query-front.test.ts: /usr/bin/aws (the AWS CLI v2) is absent: apt-get install awscli');

describe.skipIf(cliMissing)('the query-protocol front and the real AWS CLI (botocore)', () => {
  const aws = (url: string, args: string[]) =>
    promisify(execFile)('/usr/bin/aws', ['--endpoint-url', url, '--output', 'json', ...args], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        AWS_ACCESS_KEY_ID: 'AKIDSIMULATOR',
        AWS_SECRET_ACCESS_KEY: 'simulator',
        AWS_REGION: 'us-east-1',
        AWS_CONFIG_FILE: '/nonexistent/config',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_PAGER: '',
      },
    });

  it('lists the pool volumes with aws ec2 describe-volumes and its filters', async () => {
    const { stdout } = await aws(front.ec2Url, [
      'ec2',
      'describe-volumes',
      '--filters',
      'Name=tag:volsd:pool,Values=web',
    ]);
    const volumes = (JSON.parse(stdout) as { Volumes: { VolumeId: string; Tags: unknown[] }[] }).Volumes;
    expect(volumes.map((v) => v.VolumeId)).toEqual([volumeId]);
    expect(volumes[0]?.Tags).toEqual([{ Key: 'volsd:pool', Value: 'web' }]);
  });

  it('reports an Auto Scaling error by its code', async () => {
    const error = (await rejection(
      aws(front.autoscalingUrl, [
        'autoscaling',
        'set-desired-capacity',
        '--auto-scaling-group-name',
        'nope',
        '--desired-capacity',
        '1',
      ]),
    )) as Error & { stderr?: string };
    expect(error.stderr).toContain('(ValidationError) when calling the SetDesiredCapacity operation');
  });
});
