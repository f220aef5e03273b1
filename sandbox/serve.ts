/**
 * `npm run sandbox -- --serve`: the local cloud as a playground. It starts a sandbox with the push
 * pipeline, fills the pool, puts every API Volsd's users touch behind a local HTTP endpoint, and keeps
 * running until stopped:
 *
 *   S3                 s3rver (the push bucket; object events feed the push pipeline)
 *   Step Functions     the gateway (`gateway/gateway.ts`, JSON protocol)
 *   SSM, DynamoDB      the gateway (Parameter Store and Run Command of the simulator; dynalite)
 *   EC2, Auto Scaling  the query-protocol front of the simulator (`gateway/query.ts`)
 *
 * The schedules the CDK construct creates run on the modelled clock: replenish every 5 minutes per AZ,
 * reconcile every 15 minutes, snapshot every 6 hours (`PoolSchedules` defaults, lib/pool-settings.ts).
 */
import { wirePushPipeline } from './push-wiring.js';
import type { Sandbox, SandboxOptions } from './runtime.js';
import { localCredentials } from './servers.js';

/** Options of {@link startPlayground}. */
export interface PlaygroundOptions {
  /** @default 1 */
  azs?: number;
  /** @default 2 */
  idlePerAz?: number;
  /** Wall seconds per modelled second. @default 0.05 (20x faster than real time) */
  timeScale?: number;
  seed?: number;
  agent?: SandboxOptions['agent'];
  rules?: SandboxOptions['rules'];
  /** Progress lines. */
  log?: (line: string) => void;
}

/** A running playground. */
export interface Playground {
  readonly sandbox: Sandbox;
  /**
   * The environment that points the AWS CLI, the SDKs and volsd-client at the playground: endpoint
   * overrides per service, the fake credentials, the Region, the pool; plus `VOLSD_PUSH_BUCKET`,
   * `VOLSD_GROUP` (the served Auto Scaling group) and `VOLSD_SANDBOX_DIR` (the host trees and volume
   * data, for inspection).
   */
  readonly env: Readonly<Record<string, string>>;
  /** Stops every server and timer and removes every file the playground made. Idempotent. */
  stop(): Promise<void>;
}

/** Modelled seconds between runs of each schedule, as the CDK construct's defaults. */
const schedules = { replenish: 300, reconcile: 900, snapshot: 6 * 3600 } as const;

/** Starts the playground; resolves once the pool is filled and every endpoint answers. */
export async function startPlayground(o: PlaygroundOptions = {}): Promise<Playground> {
  const log = o.log ?? (() => undefined);
  // Imported here: the runtime sets the handlers' environment before their modules load.
  const { Sandbox } = await import('./runtime.js');
  const { startGateway } = await import('./gateway/gateway.js');
  const { publishConfig } = await import('./gateway/publish-config.js');
  const { startQueryFront } = await import('./gateway/query.js');
  const { VolumeState } = await import('../lambdas/shared/model.js');

  const sandbox = await Sandbox.start({
    azs: o.azs ?? 1,
    idlePerAz: o.idlePerAz ?? 2,
    timeScale: o.timeScale ?? 0.05,
    seed: o.seed ?? 1,
    ...(o.agent ? { agent: o.agent } : {}),
    ...(o.rules ? { rules: o.rules } : {}),
  });
  const stoppers: (() => Promise<void> | void)[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      for (const step of stoppers.reverse()) await Promise.resolve(step()).catch(() => undefined);
      await sandbox.stop();
    })();
    return stopping;
  };
  try {
    const push = await wirePushPipeline(sandbox);
    stoppers.push(() => push.close());
    const gateway = await startGateway(sandbox);
    stoppers.push(() => gateway.stop());
    const query = await startQueryFront(sandbox.cloud);
    stoppers.push(() => query.stop());
    await publishConfig(sandbox, { values: { hostApiUrl: gateway.hostApiUrl } });

    const { options, repo, cloud, sfn, wiring } = sandbox;
    log(`pool ${options.pool}: filling ${options.idlePerAz} idle volume(s) in ${options.azs.join(', ')}`);
    // A round that fails leaves SYNCING volumes that the next round adopts (a sync can outlast the
    // replenish workflow's wait on a loaded machine): three rounds, as the client tests' harness.
    for (let round = 1; ; round++) {
      await sandbox.replenishAll();
      const idle = await repo.listVolumes({ pool: options.pool, state: VolumeState.Idle });
      const short = options.azs.filter((az) => idle.filter((v) => v.az === az).length < options.idlePerAz);
      if (short.length === 0) break;
      if (round === 3) throw new Error(`the pool did not fill in ${short.join(', ')} after ${round} rounds`);
    }

    const tick = (name: keyof typeof schedules, inputs: Record<string, unknown>[]) => {
      const arn = wiring.stateMachines[name];
      if (!arn) return;
      const run = () => {
        for (const [i, input] of inputs.entries()) {
          try {
            sfn.start(arn, `schedule-${i}-${Math.round(cloud.clock.now() * 1000)}`, JSON.stringify(input));
          } catch {
            // EventBridge retries a failed start, then drops it; the next tick starts a fresh one.
          }
        }
        cancel = cloud.clock.setTimer(schedules[name], run);
      };
      let cancel = cloud.clock.setTimer(schedules[name], run);
      stoppers.push(() => cancel());
    };
    tick(
      'replenish',
      options.azs.map((az) => ({ pool: options.pool, az, reason: 'schedule' })),
    );
    tick('reconcile', [{ pool: options.pool, reason: 'schedule' }]);
    tick('snapshot', [{ pool: options.pool, reason: 'schedule' }]);

    const env: Record<string, string> = {
      AWS_ENDPOINT_URL_S3: sandbox.s3.endpoint,
      AWS_ENDPOINT_URL_SFN: gateway.url,
      AWS_ENDPOINT_URL_SSM: gateway.url,
      AWS_ENDPOINT_URL_DYNAMODB: gateway.url,
      // The SDKs and the AWS CLI name the variable after the service id, "Auto Scaling": AUTO_SCALING
      // (@smithy/core getEndpointUrlConfig; botocore likewise). AUTOSCALING is the endpoint prefix,
      // printed too since it is the name people try first.
      AWS_ENDPOINT_URL_AUTO_SCALING: query.autoscalingUrl,
      AWS_ENDPOINT_URL_AUTOSCALING: query.autoscalingUrl,
      AWS_ENDPOINT_URL_EC2: query.ec2Url,
      AWS_ACCESS_KEY_ID: localCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: localCredentials.secretAccessKey,
      AWS_REGION: cloud.region,
      AWS_DEFAULT_REGION: cloud.region,
      VOLSD_POOL: options.pool,
      VOLSD_PUSH_BUCKET: wiring.bucket,
      VOLSD_GROUP: wiring.groupName,
      VOLSD_SANDBOX_DIR: sandbox.rootDir,
    };
    return { sandbox, env, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The environment as shell `export` lines (values single-quoted). */
export function exportLines(env: Readonly<Record<string, string>>): string[] {
  return Object.entries(env).map(([key, value]) => `export ${key}='${value.replace(/'/g, `'\\''`)}'`);
}

/**
 * Runs the playground until SIGINT, SIGTERM or SIGHUP (the terminal closed): prints
 * `VOLSD_SANDBOX_ENV {json}` and the `export` lines on stdout once ready (progress goes to stderr), then
 * stops everything and resolves. An uncaught error while serving stops it the same way (then rejects
 * with that error), so a crash leaves no server or file behind either; one while stopping (a Lambda step
 * in flight meeting a closed server) is logged and the clean-up goes on.
 */
export async function servePlayground(o: PlaygroundOptions = {}): Promise<void> {
  const log = o.log ?? ((line: string) => console.error(line));
  let reason: string | undefined;
  let fatal: unknown;
  let stopping = false;
  let wake = () => {};
  const onSignal = (signal: NodeJS.Signals) => {
    reason ??= signal;
    wake();
  };
  const onFatal = (err: unknown) => {
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    if (stopping) {
      log(`volsd sandbox: while stopping: ${message}`);
      return;
    }
    fatal ??= err;
    reason ??= 'an uncaught error';
    log(`volsd sandbox: ${message}`);
    wake();
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, onSignal);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  try {
    const playground = await startPlayground({ ...o, log });
    try {
      if (!reason) {
        console.log(`VOLSD_SANDBOX_ENV ${JSON.stringify(playground.env)}`);
        for (const line of exportLines(playground.env)) console.log(line);
        log(
          `volsd sandbox: serving pool ${playground.env.VOLSD_POOL} (group ${playground.env.VOLSD_GROUP}, bucket ${playground.env.VOLSD_PUSH_BUCKET}); Ctrl-C stops it`,
        );
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (reason) resolve();
        });
      }
      log(`volsd sandbox: ${reason}, stopping`);
    } finally {
      stopping = true;
      await playground.stop();
    }
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
    process.off('uncaughtException', onFatal);
    process.off('unhandledRejection', onFatal);
  }
  if (fatal !== undefined) throw fatal;
}
