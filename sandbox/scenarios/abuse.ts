/**
 * The abuse scenario: hostile attempts through the paths an attacker really has, and the ground truth
 * after each. A victim host holds a pool volume (acquired through the host API with its own
 * credentials); an attacker host of the same pool has its own instance-profile credentials, the
 * sandbox gateway and the host API's function URL; anyone may write the push bucket, tag EC2 volumes or
 * drop a crafted event on the lifecycle intake.
 *
 * Kinds: `host-credentials` (another host's workflows, table items and parameters with the attacker's
 * own key), `identity-forgery` (another host's key id without its secret, unknown keys, the operator's
 * keys at the host API), `crafted-parameters` (bodies naming another instance, mount paths into system
 * trees, another pool, another host's execution), `push-bucket` (keys escaping the tree or writing
 * Volsd's markers), `tags` (a foreign volume tagged for the pool, with and without a forged creation
 * nonce), `crafted-events` (lifecycle events for the victim, from another account, of another group).
 *
 * `refused`: the attempt was answered with a refusal (an error, a 4xx, a refused key, an ignored event,
 * a failed execution). `harmed` counts from ground truth (EC2, the host trees, the volume data), never
 * from Volsd's own answers: the victim's volume detached or unmounted, its content altered, a good file
 * missing from it, a file written outside a mount root, the foreign volume deleted or taken into the
 * table.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { GetParameterCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { HostApiClient } from '../../client/host-api.js';
import { signRequest } from '../../client/sigv4.js';
import { keys } from '../../lambdas/shared/table-schema.js';
import { poolTag, Role, roleTag } from '../../lambdas/shared/tags.js';
import { executionName, WorkflowAction } from '../../lambdas/shared/workflow-input.js';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { publishConfig } from '../gateway/publish-config.js';
import { type PushPipeline, wirePushPipeline } from '../push-wiring.js';
import { Sandbox } from '../runtime.js';
import { localCredentials, localRegion } from '../servers.js';
import { readMounts } from '../sim/devices.js';

/** Options of {@link runAbuse}. */
export interface AbuseOptions {
  seed?: number;
  timeScale?: number;
  log?: (line: string) => void;
}

/** One attempt's kind. */
export type AbuseKind =
  | 'host-credentials'
  | 'identity-forgery'
  | 'crafted-parameters'
  | 'push-bucket'
  | 'tags'
  | 'crafted-events';

/** What `npm run sandbox -- --scenario abuse --json` prints. */
export interface AbuseResult {
  scenario: 'abuse';
  seed: number;
  attempts: number;
  refused: number;
  harmed: number;
  byKind: Record<AbuseKind, { attempts: number; refused: number }>;
  /** Every attempt, with whether it was refused and how. */
  log: { kind: AbuseKind; attempt: string; refused: boolean; how: string }[];
  /** What ground truth found harmed (empty when `harmed` is 0). */
  harms: string[];
}

const region = localRegion;
const goodFile = 'index.html';
const goodContent = '<h1>the real site</h1>';

/** Runs every attempt against a fresh sandbox and reports. */
export async function runAbuse(options: AbuseOptions = {}): Promise<AbuseResult> {
  const seed = options.seed ?? 1;
  const log = options.log ?? (() => undefined);
  const sandbox = await Sandbox.start({
    azs: 1,
    idlePerAz: 2,
    timeScale: options.timeScale ?? 0.05,
    seed,
    agent: 'model',
  });
  let gateway: Gateway | undefined;
  let push: PushPipeline | undefined;
  try {
    push = await wirePushPipeline(sandbox);
    gateway = await startGateway(sandbox);
    await publishConfig(sandbox, { values: { hostApiUrl: gateway.hostApiUrl } });
    const s3 = new S3Client({
      endpoint: sandbox.s3.endpoint,
      region,
      forcePathStyle: true,
      credentials: localCredentials,
    });
    await s3.send(
      new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: `live/${goodFile}`, Body: goodContent }),
    );
    await sandbox.repo.bumpGeneration(sandbox.options.pool);
    await sandbox.replenishAll();
    const launch = async () => {
      const id = sandbox.cloud.launchInstance({
        az: sandbox.options.azs[0] ?? 'us-east-1a',
        tags: { [poolTag]: sandbox.options.pool, [roleTag]: Role.Client },
      });
      await sandbox.cloud.waitFor(
        () => sandbox.cloud.ec2.view().instances.some((i) => i.instanceId === id && i.agentOnline),
        600,
        `host ${id} online`,
      );
      return id;
    };
    const [victim, attacker] = await Promise.all([launch(), launch()]);
    const gw = gateway;
    const api = (instanceId: string) =>
      new HostApiClient(gw.hostApiUrl, region, async () => gw.hostCredentials(instanceId));
    const victimAcquire = await api(victim).acquire({ pool: 'web', requestId: 'victim' });
    await sandbox.settle();
    const victimVolume = sandbox.cloud.ec2
      .view()
      .volumes.find((v) => !v.root && v.attachment?.instanceId === victim)?.volumeId;
    if (!victimVolume) throw new Error('the victim holds no volume: nothing to attack');
    log(`victim ${victim} holds ${victimVolume}; attacker ${attacker}`);

    const attackerCreds = gw.hostCredentials(attacker);
    const common = { endpoint: gw.url, region, credentials: attackerCreds, maxAttempts: 1 };
    const sfn = new SFNClient(common);
    const ssm = new SSMClient(common);
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient(common));
    const entries: AbuseResult['log'] = [];
    const attempt = async (kind: AbuseKind, what: string, act: () => Promise<string | undefined>) => {
      let how: string;
      let refused: boolean;
      try {
        const refusal = await act();
        refused = refusal !== undefined;
        how = refusal ?? 'accepted';
      } catch (err) {
        refused = true;
        const e = err as { name?: string; code?: string; message?: string };
        how = `${e.code ?? e.name ?? 'Error'}: ${(e.message ?? '').split('\n')[0]?.slice(0, 120)}`;
      }
      entries.push({ kind, attempt: what, refused, how });
      log(`${refused ? 'refused' : 'ACCEPTED'} ${kind}: ${what} (${how})`);
    };
    const releaseInput = (instanceId: string, requestId: string) => ({
      pool: 'web',
      instanceId,
      action: WorkflowAction.ManualRelease,
      requestId,
    });
    const start = (arn: string, input: Record<string, unknown>, name: string) =>
      sfn.send(new StartExecutionCommand({ stateMachineArn: arn, name, input: JSON.stringify(input) }));
    const { stateMachines } = sandbox.wiring;

    // --- A host's own credentials against another host's workflows, items and parameters.
    await attempt('host-credentials', "StartExecution release of the victim's volume", async () => {
      const input = releaseInput(victim, 'a1');
      await start(stateMachines.release, input, executionName(input));
      return undefined;
    });
    await attempt('host-credentials', 'StartExecution acquire naming the victim', async () => {
      const input = {
        pool: 'web',
        instanceId: victim,
        action: WorkflowAction.ManualAcquire,
        requestId: 'a2',
      };
      await start(stateMachines.acquire, input, executionName(input));
      return undefined;
    });
    await attempt('host-credentials', 'StartExecution replenish', async () => {
      await start(
        stateMachines.replenish,
        { pool: 'web', az: 'us-east-1a', reason: 'admin' },
        'abuse-replenish',
      );
      return undefined;
    });
    await attempt('host-credentials', "GetItem of the victim's assignment", async () => {
      await doc.send(new GetCommand({ TableName: sandbox.wiring.tableName, Key: keys.assignment(victim) }));
      return undefined;
    });
    await attempt('host-credentials', 'PutItem of an assignment for the attacker', async () => {
      await doc.send(
        new PutCommand({
          TableName: sandbox.wiring.tableName,
          Item: { ...keys.assignment(attacker), pool: 'web', volumeId: victimVolume },
        }),
      );
      return undefined;
    });
    await attempt('host-credentials', 'GetParameter outside the pool', async () => {
      await ssm.send(new GetParameterCommand({ Name: '/other/database-password' }));
      return undefined;
    });
    await attempt('host-credentials', 'SendCommand Volsd-Unmount to the victim', async () => {
      await ssm.send(
        new SendCommandCommand({
          DocumentName: 'Volsd-Unmount',
          InstanceIds: [victim],
          Parameters: { VolumeId: [victimVolume] },
        }),
      );
      return undefined;
    });

    // --- Identities that are not the caller's.
    const forgedSigned = async (credentials: {
      accessKeyId: string;
      secretAccessKey: string;
      sessionToken?: string;
    }) => {
      const url = new URL('release', gw.hostApiUrl);
      const body = JSON.stringify({ pool: 'web', requestId: 'forged' });
      const { host: _host, ...headers } = await signRequest(
        { method: 'POST', url, headers: { 'content-type': 'application/json' }, body },
        credentials,
        region,
        'lambda',
      );
      const response = await fetch(url, { method: 'POST', headers, body });
      return response.status >= 400 ? `HTTP ${response.status}` : undefined;
    };
    const victimKey = gw.hostCredentials(victim);
    await attempt(
      'identity-forgery',
      "host API release signed under the victim's key id without its secret",
      () => forgedSigned({ ...victimKey, secretAccessKey: attackerCreds.secretAccessKey }),
    );
    await attempt(
      'identity-forgery',
      "host API release with the victim's key id and secret but the attacker's token",
      () => forgedSigned({ ...victimKey, sessionToken: attackerCreds.sessionToken }),
    );
    await attempt('identity-forgery', 'host API release with an unknown key', () =>
      forgedSigned({ accessKeyId: 'ASIAUNKNOWNKEY000000', secretAccessKey: 'x', sessionToken: 'y' }),
    );
    await attempt('identity-forgery', "host API release with the operator's keys", async () => {
      await new HostApiClient(gw.hostApiUrl, region, async () => localCredentials).release({
        pool: 'web',
        requestId: 'operator',
      });
      return undefined;
    });
    await attempt('identity-forgery', 'StartExecution with a key never handed out', async () => {
      const stranger = new SFNClient({
        ...common,
        credentials: { accessKeyId: 'ASIASTRANGER00000000', secretAccessKey: 'x' },
      });
      try {
        const input = releaseInput(victim, 'a3');
        await stranger.send(
          new StartExecutionCommand({
            stateMachineArn: stateMachines.release,
            name: executionName(input),
            input: JSON.stringify(input),
          }),
        );
      } finally {
        stranger.destroy();
      }
      return undefined;
    });

    // --- Crafted parameters through the host API.
    const attackerApi = api(attacker);
    await attempt('crafted-parameters', 'release whose body names the victim', async () => {
      await attackerApi.release({ pool: 'web', requestId: 'p1', instanceId: victim } as never);
      return undefined;
    });
    await attempt('crafted-parameters', 'acquire whose body names the victim', async () => {
      await attackerApi.acquire({ pool: 'web', requestId: 'p2', instanceId: victim } as never);
      return undefined;
    });
    await attempt('crafted-parameters', 'acquire mounting pool content over /etc/cron.d', async () => {
      await attackerApi.acquire({ pool: 'web', requestId: 'p3', mountPath: '/etc/cron.d' });
      return undefined;
    });
    await attempt(
      'crafted-parameters',
      'acquire with a mount path climbing out (/srv/www/../../root)',
      async () => {
        await attackerApi.acquire({ pool: 'web', requestId: 'p4', mountPath: '/srv/www/../../root' });
        return undefined;
      },
    );
    await attempt(
      'crafted-parameters',
      'acquire with a mount path outside the roots (/opt/evil)',
      async () => {
        const started = await attackerApi.acquire({ pool: 'web', requestId: 'p5', mountPath: '/opt/evil' });
        await sandbox.settle();
        const status = sandbox.sfn.executions.get(started.executionArn)?.status;
        return status === 'SUCCEEDED' ? undefined : `execution ${status}`;
      },
    );
    await attempt('crafted-parameters', 'acquire for another pool', async () => {
      await attackerApi.acquire({ pool: 'other', requestId: 'p6' });
      return undefined;
    });
    await attempt('crafted-parameters', "describe the victim's execution", async () => {
      await attackerApi.execution({ executionArn: victimAcquire.executionArn });
      return undefined;
    });

    // --- The push bucket: keys that try to leave the tree or write Volsd's own markers.
    const hostileKeys = [
      'live/../escape-abuse.txt',
      'live/.volsd/generation',
      'live/a/../../../escape-deep.txt',
    ];
    for (const key of hostileKeys) {
      await attempt('push-bucket', `push ${JSON.stringify(key)}`, async () => {
        await s3.send(new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: key, Body: 'pwned' }));
        await push?.drained();
        const records = await push?.pushes();
        const rejected = records?.some((r) => r.rejected.some((k) => k.key === key));
        return rejected ? 'key refused' : undefined;
      });
    }

    // --- Tags: a volume of someone else's, tagged for the pool, offered to reconcile.
    const foreign: string[] = [];
    for (const [what, extra] of [
      ['a foreign volume tagged volsd:pool and volsd:role=volume', {}],
      [
        'a foreign volume with a forged volsd:creation nonce',
        { 'volsd:creation': '0123456789abcdef0123456789abcdef' },
      ],
    ] as const) {
      await attempt('tags', what, async () => {
        const created = (await sandbox.cloud.handle('ec2', 'CreateVolume', {
          AvailabilityZone: sandbox.options.azs[0],
          Size: 8,
          TagSpecifications: [
            {
              ResourceType: 'volume',
              Tags: Object.entries({ [poolTag]: 'web', [roleTag]: Role.Volume, ...extra }).map(
                ([Key, Value]) => ({
                  Key,
                  Value,
                }),
              ),
            },
          ],
        })) as { VolumeId?: string };
        const id = created.VolumeId ?? '';
        foreign.push(id);
        sandbox.sfn.start(
          stateMachines.reconcile ?? '',
          `abuse-reconcile-${foreign.length}`,
          JSON.stringify({ pool: 'web', reason: 'schedule' }),
        );
        await sandbox.settle();
        const exists = sandbox.cloud.ec2.view().volumes.some((v) => v.volumeId === id);
        const adopted = (await sandbox.repo.findVolume(id)) !== undefined;
        return exists && !adopted ? 'reported as foreign, left alone' : undefined;
      });
    }

    // --- Crafted lifecycle events on the intake.
    const lifecycleEvent = (detail: Record<string, string>, account = sandbox.cloud.accountId) => ({
      version: '0',
      id: `abuse-${detail.EC2InstanceId}-${detail.LifecycleActionToken}`,
      'detail-type': 'EC2 Instance-terminate Lifecycle Action',
      source: 'aws.autoscaling',
      account,
      time: sandbox.cloud.clock.date().toISOString(),
      region: sandbox.cloud.region,
      resources: [],
      detail: {
        LifecycleActionToken: '87654321-4321-4321-4321-210987654321',
        AutoScalingGroupName: sandbox.wiring.groupName,
        LifecycleHookName: sandbox.wiring.terminateHookName,
        EC2InstanceId: victim,
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
        ...detail,
      },
    });
    const crafted: [string, Record<string, unknown>][] = [
      ['a terminate event for the victim (not in the group)', lifecycleEvent({})],
      ['a terminate event for the victim from another account', lifecycleEvent({}, '210987654321')],
      [
        'a terminate event for the victim naming another group',
        lifecycleEvent({ AutoScalingGroupName: 'other-group' }),
      ],
    ];
    for (const [what, event] of crafted) {
      await attempt('crafted-events', what, async () => {
        const before = sandbox.sfn.executions.size;
        sandbox.intake.send(JSON.stringify(event));
        await sandbox.settle();
        const started = [...sandbox.sfn.executions.values()]
          .slice(before)
          .filter(
            (e) => e.name.includes(victim) && e.status === 'SUCCEEDED' && /release|terminate/.test(e.name),
          );
        return started.length === 0 ? 'ignored or rejected by the dispatcher' : undefined;
      });
    }
    await sandbox.settle();

    // --- Ground truth.
    const harms: string[] = [];
    const attached = sandbox.cloud.ec2.view().volumes.find((v) => v.volumeId === victimVolume)?.attachment;
    if (attached?.instanceId !== victim || attached.state !== 'attached')
      harms.push(`${victimVolume} is no longer attached to ${victim}`);
    if (!readMounts(sandbox.cloud.hostRoot(victim)).some((m) => m.mountPoint === '/srv/www'))
      harms.push(`${victimVolume} is no longer mounted on ${victim}`);
    const served = join(sandbox.cloud.volumeDataDir(victimVolume), goodFile);
    if (!existsSync(served) || readFileSync(served, 'utf8') !== goodContent)
      harms.push(`${goodFile} is missing or altered on ${victimVolume}`);
    for (const id of foreign) {
      if (!sandbox.cloud.ec2.view().volumes.some((v) => v.volumeId === id))
        harms.push(`foreign ${id} was deleted`);
      if (await sandbox.repo.findVolume(id)) harms.push(`foreign ${id} was taken into the table`);
    }
    for (const instance of sandbox.cloud.ec2.view().instances) {
      const root = sandbox.cloud.hostRoot(instance.instanceId);
      for (const name of [
        'escape-abuse.txt',
        'escape-deep.txt',
        'srv/escape-abuse.txt',
        'var/lib/volsd/escape-abuse.txt',
      ]) {
        if (existsSync(join(root, name)))
          harms.push(`${name} written outside a mount root on ${instance.instanceId}`);
      }
    }
    for (const client of [sfn, ssm, doc]) client.destroy();
    s3.destroy();

    const kinds: AbuseKind[] = [
      'host-credentials',
      'identity-forgery',
      'crafted-parameters',
      'push-bucket',
      'tags',
      'crafted-events',
    ];
    const byKind = Object.fromEntries(
      kinds.map((k) => {
        const of = entries.filter((e) => e.kind === k);
        return [k, { attempts: of.length, refused: of.filter((e) => e.refused).length }];
      }),
    ) as AbuseResult['byKind'];
    return {
      scenario: 'abuse',
      seed,
      attempts: entries.length,
      refused: entries.filter((e) => e.refused).length,
      harmed: harms.length,
      byKind,
      log: entries,
      harms,
    };
  } finally {
    push?.close();
    await gateway?.stop();
    await sandbox.settle().catch(() => undefined);
    await sandbox.stop();
  }
}
