import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { poolTag } from '../../lambdas/shared/tags.js';
import { wirePushPipeline } from '../push-wiring.js';
import { Sandbox } from '../runtime.js';
import { localCredentials, localRegion } from '../servers.js';
import { round, ScenarioRecorder, type ScenarioResult } from './report.js';

export interface DemoOptions {
  seed: number;
  timeScale: number;
  log: (line: string) => void;
  json: boolean;
}

/**
 * The demo a person can follow: a pool in two AZs, content published, a group scaling out with every
 * instance getting a current volume, a scale-in giving volumes back, and the final table of volumes.
 */
export async function runDemo(o: DemoOptions): Promise<ScenarioResult> {
  const say = o.json ? () => undefined : o.log;
  const sandbox = await Sandbox.start({ azs: 2, idlePerAz: 2, seed: o.seed, timeScale: o.timeScale });
  const t = () => `[t=${round(sandbox.cloud.clock.now(), 0).toString().padStart(4)}s]`;
  try {
    const recorder = new ScenarioRecorder(sandbox);
    say(
      `${t()} local cloud up: DynamoDB (dynalite) ${sandbox.dynamo.endpoint}, S3 (s3rver) ${sandbox.s3.endpoint}`,
    );
    say(
      `${t()} sync workers: ${Object.entries(sandbox.workers)
        .map(([az, id]) => `${az} ${id}`)
        .join(', ')}`,
    );

    const push = await wirePushPipeline(sandbox, { batchingWindowSeconds: 5 });
    const s3 = new S3Client({
      endpoint: sandbox.s3.endpoint,
      region: localRegion,
      credentials: localCredentials,
      forcePathStyle: true,
    });
    const publish = async (body: string) => {
      await s3.send(
        new PutObjectCommand({ Bucket: sandbox.wiring.bucket, Key: 'live/index.html', Body: body }),
      );
      await sandbox.cloud.clock.sleep(2); // the object event reaches the push queue
      await push.drained(3600);
    };
    await publish('<h1>Volsd demo, first version</h1>');
    say(
      `${t()} pushed live/index.html to s3://${sandbox.wiring.bucket}: content generation ${(await sandbox.repo.getPool('web')).generation}`,
    );

    await sandbox.replenishAll();
    say(
      `${t()} pool filled: ${(await sandbox.repo.listVolumes({ pool: 'web', state: 'IDLE' })).length} idle volumes, synced on the workers`,
    );

    say(`${t()} scaling ${sandbox.wiring.groupName} out to 3 instances`);
    sandbox.scaleTo(3);
    await sandbox.settle();
    const state = sandbox.cloud.snapshotState();
    for (const a of state.lifecycleActions.filter(
      (x) => x.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING',
    )) {
      const volume = state.volumes.find((v) => v.tags[poolTag] && v.attachment?.instanceId === a.instanceId);
      let served = '-';
      try {
        served = readFileSync(join(sandbox.cloud.hostRoot(a.instanceId), 'srv/www/index.html'), 'utf8');
      } catch {
        served = '(nothing mounted)';
      }
      say(
        `${t()}   ${a.instanceId} ${a.result === 'CONTINUE' ? 'InService' : a.result} after ${round((a.completedAt ?? 0) - a.startedAt, 1)} s: ${volume?.volumeId ?? 'no volume'} at /srv/www serves ${served}`,
      );
    }
    await sandbox.replenishAll();
    say(`${t()} pool replenished after the scale-out`);

    await publish('<h1>Volsd demo, second version</h1>');
    const last = (await push.pushes()).at(-1);
    say(
      `${t()} pushed an update: generation ${last?.generation}, ${last?.status}, ${Object.keys(last?.instances ?? {}).length} hosts synced (workers and web instances)`,
    );
    for (const a of sandbox.cloud
      .lifecycleActions()
      .filter((x) => x.result === 'CONTINUE' && x.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING')) {
      let served = '(nothing mounted)';
      try {
        served = readFileSync(join(sandbox.cloud.hostRoot(a.instanceId), 'srv/www/index.html'), 'utf8');
      } catch {
        // left as "nothing mounted"
      }
      say(`${t()}   ${a.instanceId} now serves ${served}`);
    }
    s3.destroy();
    push.close();

    say(`${t()} scaling in to 1 instance: released volumes are deleted (release policy "delete")`);
    sandbox.scaleTo(1);
    await sandbox.settle();
    await sandbox.replenishAll();

    const volumes = await sandbox.repo.listVolumes({ pool: 'web' });
    say(`${t()} volumes now:`);
    say('  VOLUME                 AZ          STATE     HOLDER               GEN');
    for (const v of volumes.sort((a, b) => a.az.localeCompare(b.az) || a.state.localeCompare(b.state))) {
      say(
        `  ${v.volumeId.padEnd(22)} ${v.az.padEnd(11)} ${v.state.padEnd(9)} ${(v.holder ?? '-').padEnd(20)} ${v.generation}`,
      );
    }
    const result = await recorder.result('demo');
    say(
      `${t()} done: ${result.instancesReady}/${result.instancesLaunched} ready, time to ready p50 ${result.timeToReadySeconds.p50} s (modelled), ` +
        `invariants: ${result.invariants.violations.length === 0 ? 'all hold' : `${result.invariants.violations.length} violated`}; ` +
        `${result.wallSeconds} s of wall time`,
    );
    return result;
  } finally {
    await sandbox.stop();
  }
}
