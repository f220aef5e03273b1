/**
 * A burst: `aws s3 sync` of 1,000 files is a handful of pushes, not 1,000. The queue's batching
 * window coalesces the object events; every file still reaches every volume.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PushPipeline, wirePushPipeline } from '../../sandbox/push-wiring.js';
import { Sandbox } from '../../sandbox/runtime.js';
import { awsCli, volumeTruth } from '../../sandbox/scenarios/push.js';

const timeScale = 0.1;
/**
 * The AWS CLI runs in wall time while the sandbox's clock runs 1 / timeScale times faster, so an
 * upload looks that much slower to the queue than it is. A window of 30 wall seconds (300 modelled,
 * AWS's maximum) is to this upload what a 30 s window is to the same upload against real S3.
 */
const batchingWindowSeconds = 30 / timeScale;
/** The bound this test asserts. */
const maxFanOuts = 3;

let sandbox: Sandbox;
let push: PushPipeline;
let scratch: string;

beforeAll(async () => {
  sandbox = await Sandbox.start({ azs: 1, idlePerAz: 1, timeScale, seed: 62 });
  push = await wirePushPipeline(sandbox, { batchingWindowSeconds });
  scratch = await mkdtemp(join(tmpdir(), 'volsd-push-burst-'));
  await sandbox.replenishAll();
  sandbox.scaleTo(1);
  await sandbox.settle();
}, 300_000);

afterAll(async () => {
  push?.close();
  await sandbox?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('push burst (sandbox)', { timeout: 600_000 }, () => {
  it(`aws s3 sync of 1,000 files makes at most ${maxFanOuts} fan-outs, and every file reaches every volume`, async () => {
    // Prepare
    const site = join(scratch, 'site');
    for (let d = 0; d < 10; d++) {
      await mkdir(join(site, `section-${d}`), { recursive: true });
      for (let f = 0; f < 100; f++)
        await writeFile(join(site, `section-${d}`, `page-${f}.html`), `${d}/${f}\n`);
    }

    // Act
    await awsCli(sandbox, [
      's3',
      'sync',
      site,
      `s3://${sandbox.wiring.bucket}/live/site/`,
      '--only-show-errors',
      '--no-progress',
    ]);
    await push.drained();

    // Assess
    const fanOuts = await push.fanOuts();
    const volumes = await volumeTruth(sandbox);
    expect({
      notifications: push.notifications,
      fewFanOuts: fanOuts >= 1 && fanOuts <= maxFanOuts,
      filesPerVolume: volumes.map((v) => v.files.size),
    }).toEqual({ notifications: 1000, fewFanOuts: true, filesPerVolume: [1000, 1000] });
  });
});
