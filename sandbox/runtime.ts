import './polyfills.js';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { intakeDeliveryDelaySeconds } from '../lambdas/shared/intake.js';
import type { VolumeRepository } from '../lambdas/shared/repository.js';
import { bootUnitTag, poolTag, Role, roleTag } from '../lambdas/shared/tags.js';
import { registerVolsdDocuments } from './agent/runner.js';
import { type BootWiring, startBootWiring } from './boot-wiring.js';
import { LocalQueue } from './queue.js';
import { ReadinessWatch } from './readiness.js';
import { type LocalDynamo, type LocalS3, localCredentials, startDynamo, startS3 } from './servers.js';
import { Accounting, countingMiddleware } from './sim/accounting.js';
import { Cloud, type CloudOptions } from './sim/cloud.js';
import { attachSimulator, modelledRetryStrategy } from './sim/middleware.js';
import { Rng } from './sim/rng.js';
import type { StrictRule } from './sim/rules.js';
import { type LocalLambda, LocalStepFunctions } from './stepfunctions.js';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** Options of a sandbox: one pool, its AZs, one Auto Scaling group served by it. */
export interface SandboxOptions {
  pool?: string;
  /** AZ count (us-east-1a, -b, ...) or names. @default 1 */
  azs?: number | string[];
  idlePerAz?: number;
  /** Wall seconds per modelled second. @default 0.02 (50x faster than real time) */
  timeScale?: number;
  seed?: number;
  releasePolicy?: 'delete' | 'recycle';
  heartbeatTimeout?: number;
  /**
   * Seconds the web instances stay `pending`. @default drawn per instance from the simulator's
   * `instanceBoot` range (seeded)
   */
  bootSeconds?: number;
  /** Chance that a Lambda invocation's result is lost after it ran (the runtime dying). */
  lambdaCrashRate?: number;
  /** Real EC2 token-bucket throttling in the simulator. @default true */
  throttling?: boolean;
  /**
   * AWS-strict rules of the simulator to switch off, for comparison only (`sandbox/sim/rules.ts`).
   * @default every rule on
   */
  rules?: Partial<Record<StrictRule, boolean>>;
  /** Other tenants' load on the throttled APIs (`CloudOptions.backgroundLoad`). @default none */
  backgroundLoad?: CloudOptions['backgroundLoad'];
  /** Largest size of the served group. @default 100 */
  maxGroupSize?: number;
  /**
   * AZs of the served group, when they differ from the pool's (an AZ outside the pool is one the pool
   * does not cover). @default the pool's AZs
   */
  groupAzs?: string[];
  /**
   * Auto Scaling replaces an abandoned launch, as on AWS. @default false: the group's capacity drops
   * instead, so a test counts its launches without replacements
   */
  replaceAbandoned?: boolean;
  /**
   * Wait for every sync worker to be online before returning from `start` (a deployed pool). False: the
   * workers still boot when `start` returns, as at a first deploy. @default true
   */
  waitForWorkers?: boolean;
  /**
   * Largest size of each AZ's sync worker group (replenish starts workers up to it as the target
   * needs). @default as many m7g.large workers (26 volumes each) as `idlePerAz` needs
   */
  maxWorkersPerAz?: number;
  /** Keep the sandbox directory after stop (for inspection). */
  keepFiles?: boolean;
  /**
   * How the SSM agent runs Volsd's documents: `scripts` runs the real scripts under bash with the
   * shims and the real AWS CLI (faithful, ~0.1-1 s of wall time each); `model` runs their in-process
   * TypeScript twins (`sandbox/agent/model-runner.ts`, held to the scripts by a conformance test), with
   * modelled durations: for the chaos and scale scenarios. @default 'scripts'
   */
  agent?: 'scripts' | 'model';
  /**
   * Modelled durations of the `model` agent's document runs (`sandbox/agent/model-runner.ts`), e.g. a
   * slower sync throughput standing for a larger tree. @default its `defaultModelCosts`
   */
  modelCosts?: Partial<import('./agent/model-runner.js').ModelCosts>;
  /**
   * Modelled size of the pool's content in GiB: what a volume made from a snapshot must initialize
   * (`CloudOptions.contentGiB`, rule volumeInitialization). @default 1
   */
  contentGiB?: number;
  /** The pool's initialization method (`INITIALIZATION`). @default the workflows' default, provisioned-rate */
  initialization?: 'provisioned-rate' | 'default-rate';
  /** VolumeInitializationRate in MiB/s (`INITIALIZATION_RATE`, 100-300). @default 300 */
  initializationRate?: number;
  /** A direct creation still initializing: hold the launch or go InService (`COLD_DIRECT_VOLUME`). @default 'hold' */
  coldDirectVolume?: 'hold' | 'continue';
  /**
   * Bytes per GiB of volume size on the hosts (`CloudOptions.gibBytes`): the growth scenario scales
   * volumes down to fill them with kilobytes. @default 2^30
   */
  gibBytes?: number;
  /**
   * The served group's instances run Volsd's boot unit (tag volsd:boot-unit=1; the real
   * scripts/volsd-boot.sh at the end of each boot, sandbox/boot-wiring.ts). @default false: SSM path
   */
  bootUnit?: boolean;
}

/** Names and ARNs the sandbox wires, as the CDK construct would. */
export interface SandboxWiring {
  tableName: string;
  bucket: string;
  groupName: string;
  hookName: string;
  terminateHookName: string;
  /** State machine ARNs by name (every `statemachines/<name>.asl.json`). */
  stateMachines: Record<string, string> & Record<'acquire' | 'release' | 'replenish', string>;
}

let active = false;

/**
 * The local cloud, wired as the CDK construct wires the real one: dynalite and s3rver on 127.0.0.1,
 * the EC2/Auto Scaling/SSM simulator behind the handlers' own SDK clients, the real state machines in
 * aws-local-stepfunctions with the real Lambda handlers, EventBridge lifecycle events into a local
 * intake queue consumed by the real dispatcher. One per process: the handlers' clients are module
 * singletons, as in a Lambda container.
 */
export class Sandbox {
  readonly accounting = new Accounting();
  private stopped = false;
  /** The boot-unit wiring (sandbox/boot-wiring.ts): events function, host function, units. */
  boot!: BootWiring;
  /** The lagging index model (rule indexLag), if in force. */
  private indexLag: import('./index-lag.js').IndexLag | undefined;
  private constructor(
    readonly options: Required<
      Omit<
        SandboxOptions,
        | 'azs'
        | 'bootSeconds'
        | 'groupAzs'
        | 'contentGiB'
        | 'initialization'
        | 'initializationRate'
        | 'coldDirectVolume'
        | 'gibBytes'
      >
    > & {
      azs: string[];
      bootSeconds: number | undefined;
      groupAzs: string[];
    },
    readonly rootDir: string,
    readonly cloud: Cloud,
    readonly dynamo: LocalDynamo,
    readonly s3: LocalS3,
    readonly sfn: LocalStepFunctions,
    readonly repo: VolumeRepository,
    readonly intake: LocalQueue,
    readonly wiring: SandboxWiring,
    readonly workers: Record<string, string>,
  ) {
    this.readiness = new ReadinessWatch(cloud, s3, wiring.bucket);
  }

  /** What each instance served the moment it went InService, against the bucket then (ground truth). */
  readonly readiness: ReadinessWatch;

  /** Starts every server and the simulator, creates the pool, its workers and the group (empty). */
  static async start(o: SandboxOptions = {}): Promise<Sandbox> {
    if (active) throw new Error('one sandbox per process: stop the running one first');
    active = true;
    try {
      return await Sandbox.create(o);
    } catch (err) {
      active = false;
      throw err;
    }
  }

  private static async create(o: SandboxOptions): Promise<Sandbox> {
    const region = 'us-east-1';
    const accountId = '123456789012';
    const azs = Array.isArray(o.azs)
      ? o.azs
      : Array.from({ length: o.azs ?? 1 }, (_, i) => `${region}${'abcdef'[i] ?? 'a'}`);
    const options = {
      pool: o.pool ?? 'web',
      azs,
      idlePerAz: o.idlePerAz ?? 2,
      timeScale: o.timeScale ?? 0.02,
      seed: o.seed ?? 1,
      releasePolicy: o.releasePolicy ?? 'delete',
      heartbeatTimeout: o.heartbeatTimeout ?? 600,
      bootSeconds: o.bootSeconds,
      lambdaCrashRate: o.lambdaCrashRate ?? 0,
      throttling: o.throttling ?? true,
      keepFiles: o.keepFiles ?? false,
      agent: o.agent ?? 'scripts',
      maxGroupSize: o.maxGroupSize ?? 100,
      maxWorkersPerAz: o.maxWorkersPerAz ?? Math.max(1, Math.ceil((o.idlePerAz ?? 2) / 26)),
      rules: o.rules ?? {},
      backgroundLoad: o.backgroundLoad ?? {},
      modelCosts: o.modelCosts ?? {},
      groupAzs: o.groupAzs ?? azs,
      replaceAbandoned: o.replaceAbandoned ?? false,
      waitForWorkers: o.waitForWorkers ?? true,
      bootUnit: o.bootUnit ?? false,
    };
    const rootDir = await mkdtemp(join(tmpdir(), 'volsd-sandbox-'));
    const wiring: SandboxWiring = {
      tableName: `volsd-${options.pool}`,
      bucket: `volsd-${options.pool}-push`,
      groupName: `${options.pool}-web`,
      hookName: 'volsd-launch',
      terminateHookName: 'volsd-terminate',
      stateMachines: {
        acquire: `arn:aws:states:${region}:${accountId}:stateMachine:acquire`,
        release: `arn:aws:states:${region}:${accountId}:stateMachine:release`,
        replenish: `arn:aws:states:${region}:${accountId}:stateMachine:replenish`,
      },
    };
    const dynamo = await startDynamo();
    const s3 = await startS3([wiring.bucket]);
    await dynamo.createVolumeTable(wiring.tableName);

    const accounting = new Accounting();
    const cloud = new Cloud({
      rootDir,
      timeScale: options.timeScale,
      seed: options.seed,
      azs: [...new Set([...azs, ...options.groupAzs])],
      accounting,
      region,
      accountId,
      throttling: options.throttling,
      rules: options.rules,
      backgroundLoad: options.backgroundLoad,
      contentGiB: o.contentGiB,
      ...(o.gibBytes !== undefined ? { gibBytes: o.gibBytes } : {}),
    });
    if (options.agent === 'model') {
      const { registerModelledDocuments } = await import('./agent/model-runner.js');
      registerModelledDocuments(cloud.ssm, {
        s3Endpoint: s3.endpoint,
        costs: options.modelCosts,
        // The scripts' sleeps and the freeze watchdog on the modelled clock, like everything else.
        sleep: (seconds) => cloud.clock.sleep(seconds),
        setTimer: (seconds, fire) => cloud.clock.setTimer(seconds, fire),
      });
    } else {
      registerVolsdDocuments(cloud.ssm, { s3Endpoint: s3.endpoint });
    }

    // The environment the CDK construct gives the functions; the SDK reads AWS_ENDPOINT_URL_DYNAMODB.
    Object.assign(process.env, {
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: localCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: localCredentials.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      POWERTOOLS_LOG_LEVEL: process.env.VOLSD_SANDBOX_LOG_LEVEL ?? 'SILENT',
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_TRACE_ENABLED: 'false',
      TABLE_NAME: wiring.tableName,
      POOL_NAME: options.pool,
      PUSH_BUCKET: wiring.bucket,
      RELEASE_POLICY: options.releasePolicy,
      REPLENISH_STATE_MACHINE_ARN: wiring.stateMachines.replenish,
      ACQUIRE_STATE_MACHINE_ARN: wiring.stateMachines.acquire,
      RELEASE_STATE_MACHINE_ARN: wiring.stateMachines.release,
      SERVED_GROUPS: wiring.groupName,
      EXPECTED_ACCOUNT_ID: accountId,
      HEARTBEAT_TIMEOUT: String(options.heartbeatTimeout),
      // Unset: the workflows' own defaults (lambdas/shared/workflow-config.ts).
      ...(o.initialization ? { INITIALIZATION: o.initialization } : {}),
      ...(o.initializationRate !== undefined ? { INITIALIZATION_RATE: String(o.initializationRate) } : {}),
      ...(o.coldDirectVolume ? { COLD_DIRECT_VOLUME: o.coldDirectVolume } : {}),
    });

    // Imported only now: the handlers' modules read their environment when first loaded.
    const clients = await import('../lambdas/shared/clients.js');
    const { setTimeSource } = await import('../lambdas/shared/time.js');
    setTimeSource(() => cloud.clock.date().getTime());
    for (const client of [clients.ec2, clients.autoScaling, clients.ssm]) {
      attachSimulator(client, cloud);
      // SDK retry backoff in modelled time, like every other wait in the sandbox.
      (client.config as { retryStrategy: unknown }).retryStrategy = async () =>
        modelledRetryStrategy(cloud, 8);
    }
    countingMiddleware(clients.dynamo, accounting, 'dynamodb');
    // The client (a module singleton, like in a Lambda container) read AWS_ENDPOINT_URL_DYNAMODB when the
    // first sandbox of this process started: point every request at this sandbox's server.
    const { port } = new URL(dynamo.endpoint);
    clients.dynamo.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { hostname?: string; port?: number };
        request.hostname = '127.0.0.1';
        request.port = Number(port);
        return next(args);
      },
      { step: 'build', priority: 'high', name: 'volsdSandboxDynamoEndpoint', override: true },
    );
    // Here one client serves every concurrent "Lambda invocation"; on AWS each concurrent invocation
    // has its own container and sockets. The SDK's 50 sockets would queue a burst's table calls.
    (clients.dynamo.config as { requestHandler: unknown }).requestHandler = new NodeHttpHandler({
      httpAgent: new Agent({ keepAlive: true, maxSockets: 1024 }),
    });

    // Rule indexLag (sandbox/index-lag.ts): the handlers' index Queries answer as the index stood up to
    // a modelled second ago; writes through the sandbox's own client (sandbox.repo) are recorded too, and
    // its reads (invariants, scenarios) stay current. The handlers' client outlives a sandbox: a sandbox
    // without the rule takes the previous one's model off it.
    let indexLag: import('./index-lag.js').IndexLag | undefined;
    if (cloud.rules.indexLag) {
      const { IndexLag } = await import('./index-lag.js');
      const { tableSchema } = await import('../lambdas/shared/table-schema.js');
      const lagRng = new Rng(options.seed ^ 0x1dea);
      indexLag = new IndexLag({
        reader: dynamo.client,
        tables: {
          [wiring.tableName]: {
            partitionKey: tableSchema.partitionKey,
            sortKey: tableSchema.sortKey,
            indexes: { [tableSchema.byPoolIndex.name]: tableSchema.byPoolIndex },
          },
        },
        now: () => cloud.clock.now(),
        random: () => lagRng.next(),
      });
      indexLag.attach(clients.dynamo, { lagQueries: true });
      indexLag.attach(dynamo.client, { lagQueries: false });
    } else {
      clients.dynamo.middlewareStack.remove((await import('./index-lag.js')).indexLagMiddlewareName);
    }

    // Every statemachines/<name>.asl.json runs with lambdas/<name>/handler.ts behind `${<Name>FunctionArn}`,
    // the substitution the CDK construct passes.
    const fn = (name: string) =>
      `arn:aws:lambda:${region}:${accountId}:function:volsd-${options.pool}-${name}`;
    const machineNames = readdirSync(join(repoRoot, 'statemachines'))
      .filter((f) => f.endsWith('.asl.json'))
      .map((f) => f.replace(/\.asl\.json$/, ''));
    const substitutions: Record<string, string> = {};
    const lambdas: Record<string, LocalLambda> = {};
    for (const name of machineNames) {
      const entry = join(repoRoot, 'lambdas', name, 'handler.ts');
      const module = (await import(/* @vite-ignore */ entry)) as { handler: LocalLambda };
      substitutions[`${name[0]?.toUpperCase()}${name.slice(1)}FunctionArn`] = fn(name);
      lambdas[fn(name)] = module.handler;
    }
    const { handler: dispatcher } = await import('../lambdas/dispatcher/handler.js');
    const crashRng = new Rng(options.seed ^ 0x5eed);
    const sfn = new LocalStepFunctions({
      region,
      accountId,
      timeScale: options.timeScale,
      accounting,
      now: () => cloud.clock.date().getTime(),
      invokeDelay: () => cloud.clock.sleep(0.03).catch(() => undefined),
      setTimer: (seconds, fire) => cloud.clock.setTimer(seconds, fire),
      substitutions,
      lambdas,
      faults: {
        crashAfterRate: options.lambdaCrashRate,
        random: () => crashRng.next(),
        onCrash: () => accounting.count('awsCall', 'fault:lambdaCrash'),
      },
    });
    for (const name of machineNames) {
      wiring.stateMachines[name] = sfn.register(join(repoRoot, 'statemachines', `${name}.asl.json`), name);
    }
    sfn.attach(clients.sfn);

    const { VolumeRepository } = await import('../lambdas/shared/repository.js');
    const repo = new VolumeRepository(dynamo.doc, {
      tableName: wiring.tableName,
      now: () => cloud.clock.date(),
    });
    await repo.putPool({ pool: options.pool, azs, targetIdlePerAz: options.idlePerAz });

    // EventBridge rule -> intake queue (with its DLQ) -> dispatcher, as lib/lifecycle-intake.ts wires it.
    const intake = new LocalQueue({
      name: `volsd-${options.pool}-intake`,
      clock: cloud.clock,
      consumer: (event: SQSEvent) =>
        (dispatcher as unknown as (e: SQSEvent, c: unknown) => Promise<SQSBatchResponse>)(event, {
          functionName: fn('dispatcher'),
          awsRequestId: 'local',
          getRemainingTimeInMillis: () => 30_000,
        }),
      batchSize: 10,
      maxReceiveCount: 5,
      // The intake queue's DelaySeconds, as the construct sets it.
      deliveryDelaySeconds: intakeDeliveryDelaySeconds,
      accounting,
      region,
      accountId,
    });
    cloud.events.on(
      'event',
      (event: { source?: string; 'detail-type'?: string; detail?: { AutoScalingGroupName?: string } }) => {
        if (event.source !== 'aws.autoscaling' || !/Lifecycle Action$/.test(event['detail-type'] ?? ''))
          return;
        if (event.detail?.AutoScalingGroupName !== wiring.groupName) return;
        intake.send(JSON.stringify(event));
      },
    );

    // Per AZ a group of sync workers, one at first: replenish starts more as the target needs (up to
    // the group's maximum) and retires drained ones; a lost worker is replaced.
    for (const az of azs) {
      cloud.createAutoScalingGroup({
        name: `${options.pool}-worker-${az}`,
        azs: [az],
        tags: { [poolTag]: options.pool, [roleTag]: Role.Worker },
        desiredCapacity: 1,
        minSize: 1,
        maxSize: options.maxWorkersPerAz,
        instanceType: 'm7g.large',
        bootSeconds: 20,
      });
    }
    cloud.createAutoScalingGroup({
      name: wiring.groupName,
      azs: options.groupAzs,
      tags: {
        [poolTag]: options.pool,
        [roleTag]: Role.Client,
        ...(options.bootUnit ? { [bootUnitTag]: '1' } : {}),
      },
      launchHook: {
        name: wiring.hookName,
        heartbeatTimeout: options.heartbeatTimeout,
        defaultResult: 'ABANDON',
      },
      // Both hooks share the handlers' HEARTBEAT_TIMEOUT, as the CDK construct wires them: the handlers
      // pace their heartbeats to it, so a shorter terminate hook would time out under a long release.
      terminateHook: {
        name: wiring.terminateHookName,
        heartbeatTimeout: options.heartbeatTimeout,
        defaultResult: 'CONTINUE',
      },
      desiredCapacity: 0,
      maxSize: options.maxGroupSize,
      bootSeconds: options.bootSeconds,
      replaceAbandoned: options.replaceAbandoned,
    });
    const workers: Record<string, string> = {};
    const sandbox = new Sandbox(options, rootDir, cloud, dynamo, s3, sfn, repo, intake, wiring, workers);
    sandbox.indexLag = indexLag;
    // EventBridge rules -> events function, the host function and the boot unit (always wired, as the
    // construct deploys them; only tagged instances run the unit).
    sandbox.boot = await startBootWiring({
      cloud,
      accounting,
      sfn,
      pool: options.pool,
      bucket: wiring.bucket,
      s3Endpoint: s3.endpoint,
      seed: options.seed,
      timeScale: options.timeScale,
      holderOf: async (volumeId) => (await repo.findVolume(volumeId))?.holder ?? undefined,
    });
    Object.defineProperty(sandbox, 'accounting', { value: accounting });
    if (options.waitForWorkers) await sandbox.waitForWorkers();
    return sandbox;
  }

  /** Waits until every AZ's sync worker runs with its SSM agent online; records their ids. */
  async waitForWorkers(timeoutSeconds = 600): Promise<Record<string, string>> {
    await this.cloud.waitFor(
      () => {
        const state = this.cloud.snapshotState();
        for (const az of this.options.azs) {
          const worker = state.instances.find(
            (i) => i.az === az && i.state === 'running' && i.agentOnline && i.tags[roleTag] === Role.Worker,
          );
          if (!worker) return false;
          this.workers[az] = worker.instanceId;
        }
        return true;
      },
      timeoutSeconds,
      'sync workers online',
    );
    return this.workers;
  }

  /**
   * Starts the replenish workflow for every AZ and waits for them (the schedule's tick). Returns the
   * executions' ARNs, in the order of the AZs.
   */
  async replenishAll(reason = 'schedule'): Promise<string[]> {
    const arns = this.options.azs.map(
      (az) =>
        this.sfn.start(
          this.wiring.stateMachines.replenish,
          `tick-${az}-${Math.round(this.cloud.clock.now() * 1000)}`,
          JSON.stringify({ pool: this.options.pool, az, reason }),
        ).executionArn,
    );
    await this.settle();
    return arns;
  }

  /** Sets the group's desired capacity (scale out or in). */
  scaleTo(desired: number): void {
    this.cloud.setDesiredCapacity(this.wiring.groupName, desired);
  }

  /** Waits until nothing moves: queues drained, no execution running, no lifecycle action pending. */
  async settle(timeoutSeconds = 3600): Promise<void> {
    const deadline = this.cloud.clock.now() + timeoutSeconds;
    for (;;) {
      await this.intake.drained();
      await this.sfn.idle();
      const state = this.cloud.snapshotState();
      const pending =
        state.lifecycleActions.some((a) => a.completedAt === undefined) ||
        state.groups.some((g) => g.instances.some((i) => /^(Pending|Terminating)/.test(i.lifecycleState)));
      if (!pending && this.intake.depth === 0 && !this.sfnRunning()) return;
      if (this.cloud.clock.now() > deadline) throw new Error('sandbox did not settle in time');
      await this.cloud.clock.sleep(1);
    }
  }

  /**
   * Waits (modelled time) until the table's index shows every write made so far (rule indexLag; at once
   * without it). For tests that arrange table state and act on it at once: an operator's table state is
   * never sub-second old when a workflow runs. Workflows never wait for it.
   */
  async indexSettled(): Promise<void> {
    await this.indexLag?.settled((seconds) => this.cloud.clock.sleep(seconds));
  }

  /** Messages the intake queue moved to its dead-letter queue (each one its DLQ alarm would report). */
  intakeDeadLetters(): number {
    return this.intake.dlq.length;
  }

  private sfnRunning(): boolean {
    return [...this.sfn.executions.values()].some((e) => e.status === 'RUNNING');
  }

  /** Stops every server and timer and removes the sandbox directory. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.intake.close();
    this.sfn.abortAll();
    await this.boot?.stop();
    // A Lambda step in flight must not write to a server that is already gone: give them a moment.
    await Promise.race([this.sfn.idle(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    await this.cloud.close();
    await Promise.allSettled([this.dynamo.stop(), this.s3.stop()]);
    if (!this.options.keepFiles) await rm(this.rootDir, { recursive: true, force: true });
    active = false;
  }
}
