import { checkInvariants, type InvariantReport } from '../invariants.js';
import type { Sandbox } from '../runtime.js';
import { type Counts, countKinds } from '../sim/accounting.js';
import type { LocalExecution } from '../stepfunctions.js';

/** Percentiles of a list of numbers (nearest rank); null for an empty list. */
export function percentiles(values: number[]) {
  if (values.length === 0) return { p50: null, p95: null, p99: null, max: null };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) =>
    round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0);
  return { p50: at(50), p95: at(95), p99: at(99), max: round(sorted[sorted.length - 1] ?? 0) };
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The `push` block of the scenario JSON; every field null until a scenario measures it. */
export interface PushFigures {
  pushes: number | null;
  fanOuts: number | null;
  volumesCurrent: number | null;
  volumesTotal: number | null;
  rejectedKeys: number | null;
  writesOutsideRoot: number | null;
}

/** The push block of a scenario that pushed through the pipeline but did not count volumes itself. */
export async function pipelineFigures(push: {
  pushes(): Promise<unknown[]>;
  fanOuts(): Promise<number>;
}): Promise<PushFigures> {
  return {
    ...noPushFigures,
    pushes: (await push.pushes()).length,
    fanOuts: await push.fanOuts(),
    rejectedKeys: 0,
  };
}

export const noPushFigures: PushFigures = {
  pushes: null,
  fanOuts: null,
  volumesCurrent: null,
  volumesTotal: null,
  rejectedKeys: null,
  writesOutsideRoot: null,
};

/** The JSON a scenario prints as its last line (`--json`). Times are modelled AWS seconds. */
export interface ScenarioResult {
  scenario: string;
  seed: number;
  /** The AWS-strict rules of the simulator in force for this run (`sandbox/sim/rules.ts`). */
  strictRules: string[];
  /** Messages the lifecycle intake queue moved to its dead-letter queue (0: every event was acted on). */
  intakeDeadLetters: number;
  instancesLaunched: number;
  instancesReady: number;
  instancesFailed: number;
  /** Launches that went InService on a volume claimed from the idle pool. */
  servedFromPool: number;
  /** Launches whose acquire created a volume for them from the latest snapshot (no idle volume in the AZ). */
  directCreates: number;
  /**
   * Instances that went InService on a volume below 100% initialized, judged by the simulator's ground
   * truth at the moment of InService (rule volumeInitialization).
   */
  coldAtReady: number;
  /** Those of `coldAtReady` whose volume came from the idle pool (it was on another instance before): must be 0. */
  coldFromPool: number;
  /**
   * Modelled seconds from available to fully initialized of the snapshot-born volumes that completed
   * (simulator ground truth, deleted volumes included). `p99` only from 100 samples on; below that the
   * largest (`max`) is given instead, as a p99 of fewer samples would just be the max.
   */
  initializationSeconds: { samples: number; p50: number | null; p99?: number | null; max?: number | null };
  /**
   * Time to ready split by where the volume came from (ground truth at InService): from the idle pool,
   * or created for the instance (direct creation).
   */
  timeToReadyByPath: { fromPool: ReturnType<typeof percentiles>; direct: ReturnType<typeof percentiles> };
  doubleAssignments: number;
  leakedVolumes: number;
  staleAtReady: number | null;
  poolAtTargetAfter: boolean;
  timeToReadySeconds: ReturnType<typeof percentiles>;
  /** Time from the instance's SSM agent answering (its own boot done) to InService: what Volsd adds. */
  addedBeyondBootSeconds: ReturnType<typeof percentiles>;
  perAcquire: Record<'awsCalls' | 'stateTransitions' | 'lambdaInvocations' | 'tableWrites', number | null>;
  perRelease: Record<'awsCalls' | 'stateTransitions' | 'lambdaInvocations' | 'tableWrites', number | null>;
  push: PushFigures;
  faultsInjected: Record<string, number>;
  invariants: InvariantReport;
  modelledSeconds: number;
  wallSeconds: number;
}

/**
 * Watches a sandbox while a scenario runs: when each instance's agent came online, so the time Volsd
 * adds beyond the instance's own boot can be told apart from the boot.
 */
export class ScenarioRecorder {
  readonly agentOnlineAt = new Map<string, number>();
  /** Per instance of the served group that went InService: its data volumes as they stood then. */
  readonly atInService = new Map<string, { volumeId: string; progress: number; fromPool: boolean }[]>();
  readonly startedWall = Date.now();
  constructor(private readonly sandbox: Sandbox) {
    sandbox.cloud.ec2.onInstance((instanceId, event) => {
      if (event === 'agent-online') this.agentOnlineAt.set(instanceId, sandbox.cloud.clock.now());
    });
    const { cloud } = sandbox;
    cloud.autoscaling.onInService((instanceId, groupName) => {
      if (groupName !== sandbox.wiring.groupName) return;
      const volumes = cloud.ec2.devicesOf(instanceId).map((d) => {
        const history = cloud.ec2.attachmentHistory(d.volumeId);
        return {
          volumeId: d.volumeId,
          progress: cloud.ec2.initializationProgress(d.volumeId) ?? 100,
          // Ground truth: a pool volume was on another instance (a sync worker) before this one.
          fromPool: history.some((id) => id !== instanceId),
        };
      });
      this.atInService.set(instanceId, volumes);
    });
  }

  /** coldAtReady, coldFromPool and initializationSeconds from what was recorded and the simulator. */
  initializationFigures(): Pick<ScenarioResult, 'coldAtReady' | 'coldFromPool' | 'initializationSeconds'> {
    const cold = [...this.atInService.values()].filter((vs) => vs.some((v) => v.progress < 100));
    const durations = this.sandbox.cloud.ec2.initializationDurations();
    const p = percentiles(durations);
    return {
      coldAtReady: cold.length,
      coldFromPool: cold.filter((vs) => vs.some((v) => v.progress < 100 && v.fromPool)).length,
      initializationSeconds:
        durations.length >= 100
          ? { samples: durations.length, p50: p.p50, p99: p.p99 }
          : { samples: durations.length, p50: p.p50, max: p.max },
    };
  }

  /** Average counts per execution of `machine` that succeeded, from the sandbox's accounting. */
  perExecution(machine: string, executions: LocalExecution[]) {
    const done = executions.filter((e) => e.status === 'SUCCEEDED');
    if (done.length === 0)
      return { awsCalls: null, stateTransitions: null, lambdaInvocations: null, tableWrites: null };
    const sum: Record<string, number> = Object.fromEntries(countKinds.map((k) => [k, 0]));
    for (const e of done) {
      const counts: Counts = this.sandbox.accounting.forOperation(`${machine}:${e.name}`);
      for (const k of countKinds) sum[k] = (sum[k] ?? 0) + counts[k];
    }
    const avg = (k: string) => round((sum[k] ?? 0) / done.length, 1);
    return {
      awsCalls: avg('awsCall'),
      stateTransitions: avg('stateTransition'),
      lambdaInvocations: avg('lambdaInvocation'),
      tableWrites: avg('tableWrite'),
    };
  }

  /** Builds the scenario's result from ground truth once the sandbox has settled. */
  async result(scenario: string, push: PushFigures = noPushFigures): Promise<ScenarioResult> {
    const { sandbox } = this;
    const state = sandbox.cloud.snapshotState();
    const launches = state.lifecycleActions.filter(
      (a) =>
        a.groupName === sandbox.wiring.groupName && a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING',
    );
    const ready = launches.filter((a) => a.result === 'CONTINUE' && a.completedAt !== undefined);
    const timeToReady = ready.map((a) => (a.completedAt ?? 0) - a.startedAt);
    const added = ready.flatMap((a) => {
      const online = this.agentOnlineAt.get(a.instanceId);
      return online === undefined ? [] : [Math.max(0, (a.completedAt ?? 0) - online)];
    });
    const invariants = await checkInvariants(sandbox);
    const count = (...names: string[]) =>
      invariants.violations.filter((v) => names.includes(v.invariant)).length;
    const pool = await sandbox.repo.getPool(sandbox.options.pool);
    let atTarget = true;
    for (const az of sandbox.options.azs) {
      const idle = await sandbox.repo.listVolumes({ pool: pool.pool, az, state: 'IDLE' });
      if (idle.length !== pool.targetIdlePerAz) atTarget = false;
    }
    const executions = [...sandbox.sfn.executions.values()];
    const acquires = executions.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.acquire);
    const releases = executions.filter((e) => e.stateMachineArn === sandbox.wiring.stateMachines.release);
    // From each launch acquire's own output: `direct` is set by the claim step when it created the volume.
    const launched = acquires
      .filter((e) => e.name.startsWith('launch-') && e.status === 'SUCCEEDED')
      .map((e) => JSON.parse(e.output ?? '{}') as { outcome?: string; direct?: boolean })
      .filter((o) => o.outcome === 'acquired');
    const directCreates = launched.filter((o) => o.direct === true).length;
    return {
      scenario,
      seed: sandbox.options.seed,
      strictRules: sandbox.cloud.strictRules(),
      intakeDeadLetters: sandbox.intakeDeadLetters(),
      instancesLaunched: launches.length,
      instancesReady: ready.length,
      instancesFailed: launches.filter((a) => a.result !== 'CONTINUE').length,
      servedFromPool: launched.length - directCreates,
      directCreates,
      ...this.initializationFigures(),
      timeToReadyByPath: {
        fromPool: percentiles(
          ready
            .filter((a) => this.atInService.get(a.instanceId)?.some((v) => v.fromPool))
            .map((a) => (a.completedAt ?? 0) - a.startedAt),
        ),
        direct: percentiles(
          ready
            .filter((a) => {
              const vs = this.atInService.get(a.instanceId);
              return vs !== undefined && vs.length > 0 && !vs.some((v) => v.fromPool);
            })
            .map((a) => (a.completedAt ?? 0) - a.startedAt),
        ),
      },
      doubleAssignments: count('noSharedVolume', 'oneVolumePerInstance'),
      leakedVolumes: count('noLeakedVolume', 'noOrphanClaim'),
      // Judged at the moment each instance went InService (sandbox/readiness.ts), not at the end.
      staleAtReady: count('currentAtReady'),
      poolAtTargetAfter: atTarget,
      timeToReadySeconds: percentiles(timeToReady),
      addedBeyondBootSeconds: percentiles(added),
      perAcquire: this.perExecution('acquire', acquires),
      perRelease: this.perExecution('release', releases),
      push,
      faultsInjected: {
        ...state.faults,
        lambdaCrash: [...sandbox.sfn.crashCounts.values()].reduce((a, b) => a + b, 0),
      },
      invariants,
      modelledSeconds: round(sandbox.cloud.clock.now(), 1),
      wallSeconds: round((Date.now() - this.startedWall) / 1000, 1),
    };
  }
}
