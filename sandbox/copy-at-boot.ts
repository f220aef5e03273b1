/**
 * Copy at boot: what a web tier without Volsd does, run in the sandbox as the baseline of the
 * time-to-ready chart (issue 17). Each instance of a group wired here runs, at the end of its boot
 * (`os-ready`, when cloud-init runs the user data):
 *   1. CreateVolume: a new, EMPTY gp3 volume (no snapshot, so nothing to initialize) sized for the
 *      content, polled with DescribeVolumes until `available` (eventual consistency included);
 *   2. AttachVolume at /dev/sdf, polled until `attached`, and ModifyInstanceAttribute
 *      DeleteOnTermination so the volume goes with the instance;
 *   3. mkfs.xfs and mount at /srv/www, then `aws s3 sync s3://<bucket>/live/ /srv/www` of the whole
 *      content (the in-process twins of the sandbox: `formatOp` and `syncOp`, which copy the
 *      sandbox's real, small files);
 *   4. waits the modelled time of copying the content's modelled size ({@link copySeconds}), sending
 *      RecordLifecycleActionHeartbeat every third of the hook's heartbeat timeout;
 *   5. CompleteLifecycleAction CONTINUE: the instance goes InService.
 * Every EC2 and Auto Scaling call goes through the simulator with its strict rules, throttling and
 * latencies. A launch template's block device mapping would give the volume at launch instead of
 * step 1-2 at the end of the boot: a few seconds sooner (create 2-6 s, attach 1-4 s, polls), which the
 * report states beside the figures.
 */
import { setMaxListeners } from 'node:events';
import {
  AutoScalingClient,
  CompleteLifecycleActionCommand,
  RecordLifecycleActionHeartbeatCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeVolumesCommand,
  EC2Client,
  ModifyInstanceAttributeCommand,
} from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { Host, Output, ScriptExit } from './agent/model/host.js';
import { formatOp } from './agent/model/ops.js';
import { syncOp } from './agent/model/sync.js';
import { localCredentials } from './servers.js';
import type { Cloud } from './sim/cloud.js';
import { attachSimulator, modelledRetryStrategy } from './sim/middleware.js';

/** One throughput limit of the copy: `burst` bytes/s for the first `burstSeconds`, then `baseline`. */
export interface CopyLimit {
  name: string;
  /** Bytes per second while the burst lasts (equal to `baseline` when there is no burst). */
  burst: number;
  burstSeconds: number;
  baseline: number;
  source: string;
}

/**
 * The limits of a copy from S3 to a new gp3 volume on an instance of `instanceType`, each with its
 * source. Only types whose bandwidths are in the simulator's data are accepted.
 */
export function copyLimits(instanceType: string, volumeThroughputMiBps = 125): CopyLimit[] {
  const t = instanceBandwidth[instanceType];
  if (!t) {
    throw new RangeError(
      `no EBS/network bandwidth data for ${instanceType} (known: ${Object.keys(instanceBandwidth).join(', ')})`,
    );
  }
  const MB = 1e6;
  const gp3 = volumeThroughputMiBps * 2 ** 20;
  return [
    {
      name: 'gp3 volume throughput',
      burst: gp3,
      burstSeconds: 0,
      baseline: gp3,
      source: `FACTS.md §2: gp3 baseline ${volumeThroughputMiBps} MiB/s (the volume's Throughput), every write of the copy lands there`,
    },
    {
      name: `${instanceType} EBS bandwidth`,
      burst: t.ebsMaximumMBps * MB,
      burstSeconds: ebsBurstSeconds,
      baseline: t.ebsBaselineMBps * MB,
      source: `DescribeInstanceTypes EbsOptimizedInfo (moto's dump of real data): baseline ${t.ebsBaselineMBps} MB/s, maximum ${t.ebsMaximumMBps} MB/s; the maximum for 30 minutes (AWS Compute Blog, EBS-optimized burst: "at least 30 minutes each day"; the documented minimum is taken)`,
    },
    {
      name: `${instanceType} network bandwidth`,
      burst: (t.networkPeakGbps * 1e9) / 8,
      burstSeconds: networkBurstSeconds,
      baseline: (t.networkBaselineGbps * 1e9) / 8,
      source: `DescribeInstanceTypes NetworkCards (moto's dump): baseline ${t.networkBaselineGbps} Gbit/s, peak ${t.networkPeakGbps} Gbit/s; the peak for 5 minutes (EC2 User Guide, instance network bandwidth: network I/O credits last "typically 5 to 60 minutes", n.c. in the stored sources; the short end taken)`,
    },
    {
      name: 'S3 downloads of aws s3 sync',
      burst: s3RequestMBps * awsCliConcurrentRequests * MB,
      burstSeconds: 0,
      baseline: s3RequestMBps * awsCliConcurrentRequests * MB,
      source: `AWS CLI S3 configuration: max_concurrent_requests ${awsCliConcurrentRequests} by default; ${s3RequestMBps} MB/s per request (S3 "Performance design patterns": 85-90 MB/s per connection, n.c. in the stored sources; the low end taken)`,
    },
  ];
}

/** Bandwidths from DescribeInstanceTypes (moto's `instance_types.json.gz`, real data). */
const instanceBandwidth: Record<
  string,
  { ebsBaselineMBps: number; ebsMaximumMBps: number; networkBaselineGbps: number; networkPeakGbps: number }
> = {
  'm7g.large': {
    ebsBaselineMBps: 78.75,
    ebsMaximumMBps: 1250,
    networkBaselineGbps: 0.937,
    networkPeakGbps: 12.5,
  },
};
const ebsBurstSeconds = 30 * 60;
const networkBurstSeconds = 5 * 60;
const awsCliConcurrentRequests = 10;
const s3RequestMBps = 85;

/** The copy's rate at `t` seconds after it started: the slowest limit then (bytes/s). */
export function copyRate(limits: readonly CopyLimit[], t: number): number {
  return Math.min(...limits.map((l) => (t < l.burstSeconds ? l.burst : l.baseline)));
}

/**
 * Modelled seconds to copy `bytes`: the rate is the slowest limit at each moment, piecewise constant
 * between the ends of the bursts. The per-object cost of `aws s3 sync` (a request per file) is left
 * out: that only makes copy at boot faster here than on AWS, never slower.
 */
export function copySeconds(bytes: number, limits: readonly CopyLimit[]): number {
  const edges = [...new Set(limits.map((l) => l.burstSeconds).filter((s) => s > 0))].sort((a, b) => a - b);
  let t = 0;
  let left = bytes;
  for (const edge of [...edges, Number.POSITIVE_INFINITY]) {
    const rate = copyRate(limits, t);
    if (left <= rate * (edge - t)) return t + left / rate;
    left -= rate * (edge - t);
    t = edge;
  }
  return t;
}

/** One instance's copy at boot, for the scenario's report. */
export interface CopyRun {
  instanceId: string;
  startedAt: number;
  volumeId?: string;
  /**
   * Modelled time the volume was attached, formatted, mounted and held the sandbox's real files (the
   * modelled copy starts then). Its distance from `startedAt` includes the wall time of that real work
   * divided by the time scale (docs/sandbox.md, "Time").
   */
  preparedAt?: number;
  /** Modelled seconds of the content copy alone ({@link copySeconds}). */
  copySeconds?: number;
  endedAt?: number;
  error?: string;
}

/** Options of {@link startCopyAtBoot}. */
export interface CopyAtBootOptions {
  cloud: Cloud;
  /** Groups whose instances run the copy at boot (their launch hook is completed by it). */
  groupName: string;
  hookName: string;
  heartbeatTimeout: number;
  bucket: string;
  s3Endpoint: string;
  region?: string;
  /** Modelled content size in GiB (what the copy moves). */
  contentGiB: number;
  /** The instances' type (for its bandwidths). @default 'm7g.large' */
  instanceType?: string;
}

/** Wires the copy at boot for one group; returns its runs and a way to wait for them. */
export function startCopyAtBoot(o: CopyAtBootOptions): {
  runs: Map<string, CopyRun>;
  idle(): Promise<void>;
  stop(): void;
} {
  const region = o.region ?? 'us-east-1';
  const ec2 = new EC2Client({ region, credentials: localCredentials });
  const autoScaling = new AutoScalingClient({ region, credentials: localCredentials });
  for (const client of [ec2, autoScaling]) {
    attachSimulator(client, o.cloud);
    (client.config as { retryStrategy: unknown }).retryStrategy = async () =>
      modelledRetryStrategy(o.cloud, 8);
  }
  const s3 = new S3Client({
    endpoint: o.s3Endpoint,
    region,
    forcePathStyle: true,
    credentials: localCredentials,
  });
  const limits = copyLimits(o.instanceType ?? 'm7g.large');
  const runs = new Map<string, CopyRun>();
  const running = new Set<Promise<void>>();
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  const sleep = (seconds: number) => o.cloud.clock.sleep(seconds);
  const instanceOf = (instanceId: string) =>
    o.cloud.snapshotState().instances.find((i) => i.instanceId === instanceId);

  /** Retries `fn` while it throws one of `codes` (eventual consistency), every second, at most `tries`. */
  async function retrying<T>(fn: () => Promise<T>, codes: string[], tries = 30): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (i >= tries || !codes.includes((err as Error).name)) throw err;
        await sleep(1);
      }
    }
  }

  async function userData(instanceId: string, run: CopyRun): Promise<void> {
    const az = instanceOf(instanceId)?.az;
    if (!az) throw new Error(`instance ${instanceId} not found`);
    // 1. An empty gp3 volume for the content, 25% headroom.
    const created = await ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: az,
        VolumeType: 'gp3',
        Size: Math.max(1, Math.ceil(o.contentGiB * 1.25)),
        ClientToken: `copy-at-boot-${instanceId}`,
        TagSpecifications: [
          { ResourceType: 'volume', Tags: [{ Key: 'Name', Value: `${instanceId}-content` }] },
        ],
      }),
    );
    const volumeId = created.VolumeId ?? '';
    run.volumeId = volumeId;
    const stateOf = async () =>
      (
        await retrying(
          () => ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] })),
          ['InvalidVolume.NotFound'],
        )
      ).Volumes?.[0];
    while ((await stateOf())?.State !== 'available') await sleep(1);
    // 2. Attach, wait, and let it go with the instance.
    await ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    while ((await stateOf())?.Attachments?.[0]?.State !== 'attached') await sleep(1);
    await retrying(
      () =>
        ec2.send(
          new ModifyInstanceAttributeCommand({
            InstanceId: instanceId,
            BlockDeviceMappings: [{ DeviceName: '/dev/sdf', Ebs: { DeleteOnTermination: true } }],
          }),
        ),
      ['InvalidInstanceAttributeValue'],
    );
    // 3. mkfs.xfs, mount, and the sync of the whole content (the sandbox's real files).
    const host = new Host(o.cloud.hostRoot(instanceId).replace(/\/+$/, ''));
    const env = {
      VOLSD_VOLUME_ID: volumeId,
      VOLSD_MOUNT_PATH: '/srv/www',
      VOLSD_BUCKET: o.bucket,
      VOLSD_PREFIX: 'live/',
      VOLSD_GENERATION: '0',
      VOLSD_S3_ENDPOINT: o.s3Endpoint,
      VOLSD_REGION: region,
    };
    try {
      await formatOp(host, env, new Output('format', sleep));
      const synced = await syncOp(host, env, new Output('sync', sleep), {
        s3: () => s3,
        withLock: (_v, fn) => fn(),
        signal: abort.signal,
      });
      if (synced.exitCode !== 0) throw new Error(`aws s3 sync exited ${synced.exitCode}`);
    } catch (err) {
      if (err instanceof ScriptExit) throw new Error(`user data failed: ${err.message}`);
      throw err;
    }
    // 4. The copy's modelled time (mkfs 2 s, mount 1 s, one AWS CLI start 0.6 s, then the bytes), with
    // heartbeats so a long copy keeps its launch.
    run.preparedAt = o.cloud.clock.now();
    const seconds = 2 + 1 + 0.6 + copySeconds(o.contentGiB * 2 ** 30, limits);
    run.copySeconds = seconds;
    const beat = o.heartbeatTimeout / 3;
    let left = seconds;
    while (left > 0) {
      const step = Math.min(beat, left);
      await sleep(step);
      left -= step;
      if (left > 0) {
        await autoScaling.send(
          new RecordLifecycleActionHeartbeatCommand({
            AutoScalingGroupName: o.groupName,
            LifecycleHookName: o.hookName,
            InstanceId: instanceId,
          }),
        );
      }
    }
    // 5. Into service.
    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: o.groupName,
        LifecycleHookName: o.hookName,
        InstanceId: instanceId,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
  }

  o.cloud.ec2.onInstance((instanceId, what) => {
    if (
      what !== 'os-ready' ||
      abort.signal.aborted ||
      instanceOf(instanceId)?.autoScaling?.groupName !== o.groupName
    )
      return;
    const run: CopyRun = { instanceId, startedAt: o.cloud.clock.now() };
    runs.set(instanceId, run);
    const done = userData(instanceId, run)
      .catch((err: unknown) => {
        // A failed user data leaves the launch to its hook's timeout (ABANDON), as on AWS.
        run.error = err instanceof Error ? err.message : String(err);
      })
      .finally(() => {
        run.endedAt = o.cloud.clock.now();
      });
    running.add(done);
    void done.finally(() => running.delete(done));
  });

  return {
    runs,
    async idle() {
      while (running.size > 0) await Promise.all([...running]);
    },
    stop() {
      abort.abort();
    },
  };
}
