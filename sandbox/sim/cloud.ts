import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Accounting } from './accounting.js';
import {
  AutoScalingSim,
  type GroupOptions,
  type GroupView,
  type LifecycleActionRecord,
} from './autoscaling.js';
import { SimClock } from './clock.js';
import { SimContext } from './context.js';
import { Ec2Sim, type InstanceView, type LaunchOptions, type SnapshotView, type VolumeView } from './ec2.js';
import { fail, type SimService, UnsupportedCommandError } from './errors.js';
import { type FaultKind, Faults } from './faults.js';
import type { InitializationModel } from './initialization.js';
import { defaultLatency, type LatencyModel } from './latency.js';
import { Rng } from './rng.js';
import { resolveRules, rulesInForce, type StrictRule, type StrictRules } from './rules.js';
import { type CommandView, SsmSim } from './ssm.js';
import { autoScalingBucket, type BucketSpec, ec2Bucket, ssmBucket, TokenBuckets } from './throttle.js';

/** Options of `Cloud`. */
export interface CloudOptions {
  /** Where hosts, volume data and snapshot data live (`hosts/`, `volumes/`, `snapshots/`). */
  rootDir: string;
  /** Wall seconds per modelled second: 1 = real time, 0.01 = 100x faster. @default 1 */
  timeScale?: number;
  /** Seed of ids, jitter and faults. @default 1 */
  seed?: number;
  /** @default ['us-east-1a', 'us-east-1b', 'us-east-1c'] */
  azs?: string[];
  /** EBS attachments per instance, root volume included (Nitro with one network interface). @default 27 */
  attachmentLimit?: number;
  /** Overrides of the latency model (modelled seconds). */
  latency?: Partial<LatencyModel>;
  /** Where the simulator counts the calls it answers. */
  accounting?: Accounting;
  /**
   * Real token-bucket throttling: EC2 always, SSM and Auto Scaling under their rules
   * (`ssmThrottling`, `autoScalingThrottling`). `false` turns all of it off. @default true
   */
  throttling?: boolean;
  /**
   * A scenario option, not a rule (off by default): other tenants of the account calling the same
   * APIs, as requests per modelled second taken from EVERY throttled bucket of the service (each
   * action's), on top of the sandbox's own calls. A rate at or above a bucket's refill keeps it empty.
   */
  backgroundLoad?: BackgroundLoad;
  /** @default 'us-east-1' */
  region?: string;
  /** @default '123456789012' */
  accountId?: string;
  /**
   * AWS-strict rules to switch off (`{ attachRequiresRunning: false }`), for comparison only: every
   * rule of `rules.ts` is on unless named false here.
   */
  rules?: Partial<Record<StrictRule, boolean>>;
  /**
   * Modelled size of the pool's content in GiB: the data every snapshot of a data volume holds, which
   * a volume created from it must initialize (rule volumeInitialization). A scenario option. @default 1
   */
  contentGiB?: number;
  /** Overrides of the initialization model (`initialization.ts`). */
  initialization?: Partial<InitializationModel>;
  /**
   * Bytes per GiB of volume size as the hosts see it (block device sizes, file system capacity). A
   * scenario may scale volumes down (a "GiB" of 1 MiB) to fill them with little content. @default 2^30
   */
  gibBytes?: number;
}

/** Other tenants' request rates per service, per action bucket (requests per modelled second). */
export interface BackgroundLoad {
  ec2PerSecond?: number;
  ssmPerSecond?: number;
  autoScalingPerSecond?: number;
}

/** A plain JSON view of the whole simulated cloud, for invariant checks and reports. */
export interface CloudState {
  /** Modelled seconds since the cloud started. */
  time: number;
  volumes: VolumeView[];
  instances: (InstanceView & { autoScaling?: { groupName: string; lifecycleState: string } })[];
  snapshots: SnapshotView[];
  groups: GroupView[];
  lifecycleActions: LifecycleActionRecord[];
  commands: CommandView[];
  faults: Record<FaultKind, number>;
}

/** Raised by `Cloud.waitFor` when the condition is not met in time. */
export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

/**
 * The simulated EC2, Auto Scaling and SSM of one account and Region. Its API is answered through
 * `attachSimulator` on real SDK clients; the methods here are helpers for scenarios and tests.
 */
export class Cloud {
  readonly clock: SimClock;
  /** EventBridge events the services send (`'event'`, one envelope each). */
  readonly events = new EventEmitter();
  readonly faults: Faults;
  readonly ec2: Ec2Sim;
  readonly autoscaling: AutoScalingSim;
  readonly ssm: SsmSim;
  readonly accounting: Accounting | undefined;
  readonly rootDir: string;
  readonly region: string;
  readonly accountId: string;
  readonly azs: readonly string[];
  readonly latency: LatencyModel;
  /** The AWS-strict rules, each true when in force. */
  readonly rules: StrictRules;
  private readonly ctx: SimContext;
  private readonly buckets: TokenBuckets;
  private readonly throttling: boolean;
  private readonly background: Readonly<Record<SimService, number>>;
  private readonly requestIds: Rng;
  private closing?: Promise<void>;

  constructor(o: CloudOptions) {
    const seed = o.seed ?? 1;
    const rng = new Rng(seed);
    this.clock = new SimClock(o.timeScale ?? 1);
    this.faults = new Faults(seed);
    this.accounting = o.accounting;
    this.rootDir = resolve(o.rootDir);
    this.region = o.region ?? 'us-east-1';
    this.accountId = o.accountId ?? '123456789012';
    this.azs = o.azs ?? [`${this.region}a`, `${this.region}b`, `${this.region}c`];
    this.latency = { ...defaultLatency, ...o.latency };
    this.throttling = o.throttling ?? true;
    this.rules = resolveRules(o.rules);
    this.background = {
      ec2: backgroundRate(o.backgroundLoad?.ec2PerSecond, 'ec2PerSecond'),
      ssm: backgroundRate(o.backgroundLoad?.ssmPerSecond, 'ssmPerSecond'),
      autoscaling: backgroundRate(o.backgroundLoad?.autoScalingPerSecond, 'autoScalingPerSecond'),
    };
    this.requestIds = rng.fork('requests');
    // Nobody may be listening; an 'error' event must never be what crashes the sandbox.
    this.events.setMaxListeners(100);
    for (const dir of ['hosts', 'volumes', 'snapshots'])
      mkdirSync(join(this.rootDir, dir), { recursive: true });
    this.ctx = new SimContext(
      this.clock,
      seed,
      rng.fork('ids'),
      rng.fork('jitter'),
      this.latency,
      this.faults,
      this.events,
      this.accounting,
      this.rootDir,
      this.region,
      this.accountId,
      this.azs,
      o.attachmentLimit ?? 27,
      this.rules,
    );
    if (o.gibBytes !== undefined) {
      if (!(Number.isInteger(o.gibBytes) && o.gibBytes >= 4096))
        throw new RangeError('gibBytes must be an integer >= 4096');
      this.ctx.gibBytes = o.gibBytes;
    }
    this.buckets = new TokenBuckets(this.clock);
    this.ec2 = new Ec2Sim(this.ctx, { contentGiB: o.contentGiB, initialization: o.initialization });
    this.autoscaling = new AutoScalingSim(this.ctx, this.ec2);
    this.ssm = new SsmSim(this.ctx, this.ec2);
  }

  // ---------------------------------------------------------------- helpers (not AWS APIs)

  /** The names of the AWS-strict rules in force (the scenarios' `strictRules`). */
  strictRules(): StrictRule[] {
    return rulesInForce(this.rules);
  }

  /** Launches a stand-alone instance; returns its id. */
  launchInstance(o: LaunchOptions): string {
    return this.ec2.launchInstance(o);
  }

  /** Terminates an instance as TerminateInstances would. */
  terminateInstance(instanceId: string): void {
    this.ec2.terminateInstance(instanceId);
  }

  /** `${rootDir}/hosts/<instanceId>`: the instance's file tree. */
  hostRoot(instanceId: string): string {
    return this.ctx.hostRoot(instanceId);
  }

  /** `${rootDir}/volumes/<volumeId>`: the volume's data. */
  volumeDataDir(volumeId: string): string {
    return this.ctx.volumeDataDir(volumeId);
  }

  /** `${rootDir}/snapshots/<snapshotId>`: the snapshot's data. */
  snapshotDataDir(snapshotId: string): string {
    return this.ctx.snapshotDataDir(snapshotId);
  }

  /** Creates an Auto Scaling group (and launches its desired capacity). */
  createAutoScalingGroup(o: GroupOptions): void {
    this.autoscaling.createGroup(o);
  }

  /** Sets a group's desired capacity; scales out or in. */
  setDesiredCapacity(groupName: string, desired: number): void {
    this.autoscaling.setDesiredCapacity(groupName, desired);
  }

  /** Every lifecycle action so far, with start, heartbeats, completion and whether it timed out. */
  lifecycleActions(): LifecycleActionRecord[] {
    return this.autoscaling.lifecycleActions();
  }

  /** A plain JSON view of volumes, instances, snapshots, groups, lifecycle actions and commands. */
  snapshotState(): CloudState {
    const ec2 = this.ec2.view();
    return {
      time: this.clock.now(),
      volumes: ec2.volumes,
      instances: ec2.instances.map((i) => {
        const membership = this.autoscaling.membership(i.instanceId);
        return membership ? { ...i, autoScaling: membership } : i;
      }),
      snapshots: ec2.snapshots,
      groups: this.autoscaling.view(),
      lifecycleActions: this.autoscaling.lifecycleActions(),
      commands: this.ssm.view(),
      faults: this.faults.counts(),
    };
  }

  /**
   * Resolves once `predicate()` holds, re-checking after every state change; rejects with
   * WaitTimeout after `timeoutSeconds` of modelled time.
   */
  waitFor(predicate: () => boolean, timeoutSeconds: number, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise<void>((done, failed) => {
      const stop = () => {
        unsubscribe();
        cancel();
      };
      const unsubscribe = this.ctx.onChange(() => {
        if (!predicate()) return;
        stop();
        done();
      });
      const cancel = this.clock.setTimer(timeoutSeconds, () => {
        stop();
        failed(new WaitTimeout(`${what} not reached within ${timeoutSeconds} modelled seconds`));
      });
    });
  }

  // ---------------------------------------------------------------- API

  /** True when the simulator answers `operation` of `service`. */
  supports(service: SimService, operation: string): boolean {
    return Object.hasOwn(this.commandTable(service), operation);
  }

  /** EC2 calls refused by the token buckets (real request-rate throttling, not injected faults). */
  rateLimited = 0;
  /** SSM and Auto Scaling calls refused by their token buckets (`ssmThrottling`, `autoScalingThrottling`). */
  readonly controlPlaneRateLimited: Record<'ssm' | 'autoscaling', number> = { ssm: 0, autoscaling: 0 };

  /**
   * Answers one API call: counts it, waits the modelled API latency, applies throttling and faults,
   * then runs the command against the model. Throws SimServiceError for AWS errors. The result is
   * a deep copy, so callers can never alter the model's state through it.
   */
  async handle(service: SimService, operation: string, input: object): Promise<object> {
    const table = this.commandTable(service);
    const command = Object.hasOwn(table, operation) ? table[operation] : undefined;
    if (!command) {
      throw new UnsupportedCommandError(
        `the Volsd simulator does not implement ${service}:${operation} (supported: ${Object.keys(table).join(', ')})`,
      );
    }
    this.accounting?.count('awsCall', `${service}:${operation}`);
    await this.clock.sleep(this.ctx.delay(this.latency.api));
    const request = structuredClone(input) as Record<string, unknown>;
    if (service === 'ec2') {
      if (request.DryRun === true)
        fail('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
      const bucket = ec2Bucket(operation, request);
      const limited = this.throttling && !this.buckets.take(bucket.key, bucket.spec, this.background.ec2);
      const throttled = limited || this.faults.strike('throttle', { action: operation });
      if (throttled) {
        if (limited) this.rateLimited++;
        fail('RequestLimitExceeded', 'Request limit exceeded.', 503);
      }
    } else if (this.throttling) {
      // SSM (JSON protocol) answers ThrottlingException, Auto Scaling (query protocol) Throttling, both
      // "Rate exceeded", 400 (botocore/boto3 and aws-sdk-go reports, FACTS §8; docs/sandbox.md).
      const bucket = this.controlPlaneBucket(service, operation);
      if (bucket && !this.buckets.take(bucket.key, bucket.spec, this.background[service])) {
        this.controlPlaneRateLimited[service]++;
        fail(service === 'ssm' ? 'ThrottlingException' : 'Throttling', 'Rate exceeded', 400);
      }
    }
    if (this.faults.strike('internalError', { action: operation })) {
      fail(
        service === 'ssm' ? 'InternalServerError' : 'InternalError',
        'An internal error has occurred',
        500,
      );
    }
    return structuredClone(command(request as never));
  }

  /** A request id for a response (a separate stream: the number of calls never shifts resource ids). */
  nextRequestId(): string {
    return this.requestIds.uuid();
  }

  /**
   * Stops the simulator: cancels every timer, aborts running documents, rejects pending sleeps.
   * The returned promise settles when background file work (copies, deletions) is done.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.ec2.close();
      this.autoscaling.close();
      this.ssm.close();
      this.clock.close();
      this.events.removeAllListeners();
      this.closing = this.ctx.settle();
    }
    return this.closing;
  }

  /** The bucket of an SSM or Auto Scaling call when its throttling rule is in force. */
  private controlPlaneBucket(
    service: 'ssm' | 'autoscaling',
    operation: string,
  ): { key: string; spec: BucketSpec } | undefined {
    if (service === 'ssm') return this.rules.ssmThrottling ? ssmBucket(operation) : undefined;
    return this.rules.autoScalingThrottling ? autoScalingBucket(operation) : undefined;
  }

  private commandTable(service: SimService): Record<string, (input: never) => object> {
    if (service === 'ec2') return this.ec2.commands;
    if (service === 'autoscaling') return this.autoscaling.commands;
    return this.ssm.commands;
  }
}

function backgroundRate(value: number | undefined, name: string): number {
  if (value === undefined) return 0;
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(`backgroundLoad.${name} must be a finite number >= 0, got ${value}`);
  return value;
}
