/**
 * Push bench: modelled time for a one-file change (`aws s3 cp`, the real AWS CLI) to reach N web
 * instances and every idle volume, bytes moved per volume against the change size (Volsd-Sync's own
 * `bytesChanged`), and the SSM commands and Lambda invocations one push costs. Runs the sandbox with
 * the push pipeline wired as in AWS. Prints a report; `--json` prints one JSON object instead.
 * Options: --instances 10[,100,...] (default 10), --idle-per-az M (2), --azs K (2), --time-scale X (0.25),
 * --sizes bytes of each one-file change (1024,65536,1048576).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { GetCommandInvocationRequest, GetCommandInvocationResult } from '@aws-sdk/client-ssm';
import { parseResults } from '../lambdas/shared/documents.js';
import { wirePushPipeline } from '../sandbox/push-wiring.js';
import { Sandbox } from '../sandbox/runtime.js';
import { awsCli, bucketTree, holdsTree, volumeTruth } from '../sandbox/scenarios/push.js';
import { round } from '../sandbox/scenarios/report.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** Change sizes pushed as one file each, in bytes. */
const defaultChangeSizes = [1024, 64 * 1024, 1024 * 1024];

/** One push of one file of `changeBytes`, measured. */
export interface PushMeasure {
  changeBytes: number;
  /** Modelled seconds from the start of `aws s3 cp` to the push's outcome collected. */
  seconds: number;
  /** Of which: to the fan-out sending the command (notification delay + batching window). */
  toFanOutSeconds: number;
  status: string;
  instancesTargeted: number;
  /** IDLE and IN_USE volumes holding the bucket's tree at the pool's generation afterwards. */
  volumesCurrent: number;
  volumesTotal: number;
  /** `bytesChanged` per synced volume (Volsd-Sync's VOLSD_RESULT lines): min and max. */
  bytesPerVolume: { min: number; max: number; volumes: number };
  ssmCommands: number;
  lambdaInvocations: { fanOut: number; status: number };
}

/** The bench's result for one fleet size. */
export interface PushBenchRun {
  instances: number;
  idlePerAz: number;
  azs: number;
  timeScale: number;
  wallSeconds: number;
  pushes: PushMeasure[];
}

async function benchFleet(
  instances: number,
  idlePerAz: number,
  azs: number,
  timeScale: number,
  changeSizes: number[],
) {
  const wallStart = Date.now();
  const sandbox = await Sandbox.start({ azs, idlePerAz, timeScale, seed: 7 });
  const scratch = await mkdtemp(join(tmpdir(), 'volsd-push-bench-'));
  const push = await wirePushPipeline(sandbox);
  try {
    await sandbox.replenishAll();
    sandbox.scaleTo(instances);
    await sandbox.settle();
    const { clock } = sandbox.cloud;
    const bucket = sandbox.wiring.bucket;
    // A base tree first, so each measured change is one file among others, as in production.
    for (let i = 0; i < 20; i++) {
      await writeFile(join(scratch, `page-${i}.html`), `<p>page ${i}</p>\n`.repeat(50));
    }
    await awsCli(sandbox, ['s3', 'cp', scratch, `s3://${bucket}/live/`, '--recursive', '--only-show-errors']);
    await push.drained();

    const getInvocation = sandbox.cloud.ssm.commands.GetCommandInvocation as unknown as (
      i: GetCommandInvocationRequest,
    ) => GetCommandInvocationResult;
    const pushes: PushMeasure[] = [];
    for (const [n, size] of changeSizes.entries()) {
      const file = join(scratch, `change-${n}.bin`);
      await writeFile(file, Buffer.alloc(size, 97 + n));
      const before = { ...push.invocations };
      const recordsBefore = (await push.pushes()).length;
      const t0 = clock.now();
      await awsCli(sandbox, ['s3', 'cp', file, `s3://${bucket}/live/change-${n}.bin`, '--only-show-errors']);
      await push.drained();
      const records = (await push.pushes()).slice(recordsBefore);
      const record = records.find((p) => p.keys.includes(`live/change-${n}.bin`));
      const seconds = record?.completedAt
        ? (Date.parse(record.completedAt) - clock.date(t0).getTime()) / 1000
        : Number.NaN;
      const toFanOut = record
        ? (Date.parse(record.requestedAt) - clock.date(t0).getTime()) / 1000
        : Number.NaN;
      const command = sandbox.cloud.ssm.view().find((c) => c.commandId === record?.commandId);
      const bytes: number[] = [];
      for (const inv of command?.invocations ?? []) {
        const out = getInvocation({ CommandId: command?.commandId, InstanceId: inv.instanceId });
        for (const r of parseResults(out.StandardOutputContent ?? '')) {
          if (r.op === 'sync' && r.status === 'ok') bytes.push(r.bytesChanged);
        }
      }
      const tree = await bucketTree(sandbox);
      const pool = await sandbox.repo.getPool(sandbox.options.pool);
      const volumes = await volumeTruth(sandbox);
      pushes.push({
        changeBytes: size,
        seconds: round(seconds, 1),
        toFanOutSeconds: round(toFanOut, 1),
        status: record?.status ?? 'missing',
        instancesTargeted: command?.invocations.length ?? 0,
        volumesCurrent: volumes.filter((v) => v.marker === pool.generation && holdsTree(v, tree)).length,
        volumesTotal: volumes.length,
        bytesPerVolume: {
          min: bytes.length ? Math.min(...bytes) : 0,
          max: bytes.length ? Math.max(...bytes) : 0,
          volumes: bytes.length,
        },
        ssmCommands: records.filter((p) => p.commandId !== undefined).length,
        lambdaInvocations: {
          fanOut: push.invocations.fanOut - before.fanOut,
          status: push.invocations.status - before.status,
        },
      });
    }
    return { instances, idlePerAz, azs, timeScale, wallSeconds: 0, pushes, wallStart };
  } finally {
    push.close();
    await sandbox.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Runs the push bench for each fleet size, one sandbox after the other (one sandbox per process). */
export async function runPushBench(o: {
  instances: number[];
  idlePerAz: number;
  azs: number;
  timeScale: number;
  /** Bytes of each one-file change. @default 1 KiB, 64 KiB, 1 MiB */
  changeSizes?: number[];
}): Promise<PushBenchRun[]> {
  const runs: PushBenchRun[] = [];
  for (const n of o.instances) {
    const { wallStart, ...r } = await benchFleet(
      n,
      o.idlePerAz,
      o.azs,
      o.timeScale,
      o.changeSizes ?? defaultChangeSizes,
    );
    runs.push({ ...r, wallSeconds: round((Date.now() - wallStart) / 1000, 0) });
  }
  return runs;
}

const isMain = process.argv[1]?.endsWith('bench/push.ts') ?? false;
if (isMain) {
  const { values } = parseArgs({
    options: {
      instances: { type: 'string', default: '10' },
      'idle-per-az': { type: 'string', default: '2' },
      azs: { type: 'string', default: '2' },
      'time-scale': { type: 'string', default: '0.25' },
      sizes: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const changeSizes = values.sizes ? values.sizes.split(',').map(Number) : defaultChangeSizes;
  const instances = (values.instances ?? '10').split(',').map(Number);
  const idlePerAz = Number(values['idle-per-az']);
  const azs = Number(values.azs);
  const timeScale = Number(values['time-scale']);
  if (
    !instances.every((n) => Number.isInteger(n) && n >= 1) ||
    !Number.isInteger(idlePerAz) ||
    !Number.isInteger(azs) ||
    !(timeScale > 0 && timeScale <= 1) ||
    !changeSizes.every((n) => Number.isInteger(n) && n >= 1)
  ) {
    console.error(
      'usage: npx tsx bench/push.ts [--instances 10,100] [--idle-per-az M] [--azs K] [--time-scale X] [--sizes B,B] [--json]',
    );
    process.exit(2);
  }
  const runs = await runPushBench({ instances, idlePerAz, azs, timeScale, changeSizes });
  if (values.json) console.log(JSON.stringify({ bench: 'push', runs }));
  else {
    for (const r of runs) {
      console.log(
        `\npush bench: ${r.instances} instances, ${r.azs} AZ(s) x ${r.idlePerAz} idle, time scale ${r.timeScale}, ${r.wallSeconds} s wall`,
      );
      for (const p of r.pushes) {
        console.log(
          `  ${p.changeBytes} B: ${p.seconds} s modelled (${p.toFanOutSeconds} s to the fan-out, ${p.status}), ${p.volumesCurrent}/${p.volumesTotal} volumes current, ` +
            `bytes per volume ${p.bytesPerVolume.min}-${p.bytesPerVolume.max} over ${p.bytesPerVolume.volumes}, ` +
            `${p.ssmCommands} SSM command(s), Lambda ${p.lambdaInvocations.fanOut} fan-out + ${p.lambdaInvocations.status} status`,
        );
      }
    }
  }
}
