/**
 * Per-launch timelines of the acquire bench (`npm run bench -- --json`, `slowest` and `phases` of each
 * path): when the instance ran and its OS was up, each state of its acquire, the volume's detach from
 * the worker and its attach to the instance, the boot unit's run and signals, the lifecycle action
 * completed. All in modelled seconds of the sandbox's clock. The attachments are sampled every 0.1
 * modelled seconds (ground truth of the simulator, not the workflow's bookkeeping), so their moments
 * are exact to 0.1 s.
 */

import type { Sandbox } from '../sandbox/runtime.js';
import { percentiles, round } from '../sandbox/scenarios/report.js';
import { type Counts, countKinds } from '../sandbox/sim/accounting.js';
import type { LocalExecution } from '../sandbox/stepfunctions.js';

/** Seconds between two samples of the attachments. */
const sampleSeconds = 0.1;

/** What a launch went through, in modelled seconds (absent: did not happen or not seen). */
export interface LaunchTimeline {
  instanceId: string;
  volumeId?: string;
  /** The acquire execution started (lifecycle event taken). */
  started: number;
  running?: number;
  osReady?: number;
  /** State entries of the acquire, in order (a state retried inside a Task is one entry). */
  states: { state: string; at: number }[];
  /** The volume left the worker: detaching seen, then no attachment. */
  detachingFromWorker?: number;
  detachedFromWorker?: number;
  /** The attach to the instance was requested (EC2's attachTime), and the attachment was `attached`. */
  attachRequested?: number;
  attached?: number;
  unitStarted?: number;
  unitEnded?: number;
  /** Signals the host function answered: arrival and answer. */
  signals: { at: number; answeredAt: number; answer: string }[];
  inService?: number;
  /** inService - osReady: what Volsd added to the instance's own boot. */
  addedAfterBoot?: number;
}

/** Collects the moments no execution records: instance events, attachments, lifecycle completions. */
export class TimelineRecorder {
  private readonly running = new Map<string, number>();
  private readonly osReady = new Map<string, number>();
  /** volumeId -> instanceId -> first moment seen in each attachment state, and when it was gone. */
  private readonly attachments = new Map<string, Map<string, Record<string, number>>>();
  /** The acquire's counts when the instance's OS was up, and when its lifecycle action completed. */
  private readonly countsAtOsReady = new Map<string, Counts>();
  private readonly countsAtInService = new Map<string, Counts>();
  private stopSampling: (() => void) | undefined;

  constructor(private readonly sandbox: Sandbox) {
    sandbox.cloud.ec2.onInstance((instanceId, event) => {
      const now = sandbox.cloud.clock.now();
      if (event === 'running') this.running.set(instanceId, now);
      if (event !== 'os-ready') return;
      this.osReady.set(instanceId, now);
      const operation = this.acquireOf(instanceId);
      if (!operation) return;
      this.countsAtOsReady.set(instanceId, sandbox.accounting.forOperation(operation));
      // Taken in the change that completes the action, before the step making the call goes on.
      const completed = () =>
        sandbox.cloud
          .lifecycleActions()
          .some((a) => a.instanceId === instanceId && a.completedAt !== undefined);
      void sandbox.cloud
        .waitFor(completed, 3600, 'lifecycle action completed')
        .then(() => this.countsAtInService.set(instanceId, sandbox.accounting.forOperation(operation)))
        .catch(() => undefined);
    });
    const sample = () => {
      const now = sandbox.cloud.clock.now();
      for (const v of sandbox.cloud.ec2.view().volumes) {
        if (v.root) continue;
        const byInstance = this.attachments.get(v.volumeId) ?? new Map<string, Record<string, number>>();
        this.attachments.set(v.volumeId, byInstance);
        for (const [instanceId, seen] of byInstance) {
          if (v.attachment?.instanceId !== instanceId && seen.gone === undefined) seen.gone = now;
        }
        const a = v.attachment;
        if (!a) continue;
        const seen = byInstance.get(a.instanceId) ?? {};
        byInstance.set(a.instanceId, seen);
        seen[a.state] ??= now;
        seen.requested ??= (new Date(a.attachTime).getTime() - sandbox.cloud.clock.date(0).getTime()) / 1000;
      }
      this.stopSampling = sandbox.cloud.clock.setTimer(sampleSeconds, sample);
    };
    sample();
  }

  /** The accounting operation of the acquire running for `instanceId`. */
  private acquireOf(instanceId: string): string | undefined {
    const arn = this.sandbox.wiring.stateMachines.acquire;
    for (const e of this.sandbox.sfn.executions.values()) {
      if (e.stateMachineArn === arn && e.status === 'RUNNING' && e.name.includes(instanceId))
        return `acquire:${e.name}`;
    }
    return undefined;
  }

  /**
   * What the acquire of `instanceId` counted between its OS being up and its lifecycle action
   * completed (undefined when either moment was not seen).
   */
  afterBootCounts(instanceId: string): Counts | undefined {
    const from = this.countsAtOsReady.get(instanceId);
    const to = this.countsAtInService.get(instanceId);
    if (!from || !to) return undefined;
    const out = structuredClone(to);
    for (const k of countKinds) {
      out[k] -= from[k];
      for (const [detail, n] of Object.entries(from.byDetail[k])) {
        out.byDetail[k][detail] = (out.byDetail[k][detail] ?? 0) - n;
      }
    }
    return out;
  }

  /** The moment `instanceId`'s OS was up (its web server could start). */
  osReadyAt(instanceId: string): number | undefined {
    return this.osReady.get(instanceId);
  }

  stop(): void {
    this.stopSampling?.();
  }

  /** The timeline of one acquire execution. */
  timeline(e: LocalExecution): LaunchTimeline {
    const sb = this.sandbox;
    const epoch = sb.cloud.clock.date(0).getTime();
    const at = (ms: number) => round((ms - epoch) / 1000, 2);
    const instanceId = (JSON.parse(e.input) as { instanceId?: string }).instanceId ?? '';
    const output = JSON.parse(e.output ?? '{}') as { volumeId?: string };
    const volumeId = output.volumeId;
    const onVolume = volumeId ? this.attachments.get(volumeId) : undefined;
    const mine = onVolume?.get(instanceId);
    const worker = onVolume
      ? [...onVolume.entries()].find(([id, seen]) => id !== instanceId && seen.gone !== undefined)?.[1]
      : undefined;
    const unit = sb.boot?.runs.get(instanceId);
    const action = sb.cloud
      .lifecycleActions()
      .find((a) => a.instanceId === instanceId && a.completedAt !== undefined && a.result === 'CONTINUE');
    const osReady = this.osReady.get(instanceId);
    const r = (n: number | undefined) => (n === undefined ? undefined : round(n, 2));
    return {
      instanceId,
      ...(volumeId ? { volumeId } : {}),
      started: at(e.startDate.getTime()),
      running: r(this.running.get(instanceId)),
      osReady: r(osReady),
      states: e.path.map((p) => ({ state: p.state, at: at(p.at) })),
      detachingFromWorker: r(worker?.detaching ?? worker?.busy),
      detachedFromWorker: r(worker?.gone),
      attachRequested: r(mine?.requested),
      attached: r(mine?.attached),
      unitStarted: r(unit?.startedAt),
      unitEnded: r(unit?.endedAt),
      signals: (sb.boot?.signals ?? [])
        .filter((s) => s.instanceId === instanceId)
        .map((s) => ({ at: round(s.at, 2), answeredAt: round(s.answeredAt, 2), answer: s.answer })),
      inService: r(action?.completedAt),
      addedAfterBoot:
        action?.completedAt !== undefined && osReady !== undefined
          ? round(action.completedAt - osReady, 2)
          : undefined,
    };
  }
}

/**
 * The phases of a boot-unit launch after its OS is up, percentiles over the launches: what waits on
 * what. `attachAfterOsReady` > 0 means the attach was not done when the OS was (the unit waited for
 * the device); `unitToSignal` is the unit's own work (bash, credentials, mount: wall speed);
 * `signalToInService` the host function, the rest of the workflow and CompleteLifecycleAction.
 */
export function phases(timelines: readonly LaunchTimeline[]) {
  const of = (f: (t: LaunchTimeline) => number | undefined) =>
    percentiles(timelines.flatMap((t) => (f(t) === undefined ? [] : [f(t) as number])));
  const firstSignal = (t: LaunchTimeline) => t.signals[0]?.at;
  const lastSignal = (t: LaunchTimeline) => t.signals.at(-1)?.answeredAt;
  const diff = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : round(a - b, 2);
  return {
    runningToAttachRequested: of((t) => diff(t.attachRequested, t.running)),
    attachRequestedToAttached: of((t) => diff(t.attached, t.attachRequested)),
    attachedAfterOsReady: of((t) => diff(t.attached, t.osReady)),
    osReadyToUnitStart: of((t) => diff(t.unitStarted, t.osReady)),
    unitStartToSignal: of((t) => diff(firstSignal(t), t.unitStarted)),
    signalToAnswer: of((t) => diff(lastSignal(t), firstSignal(t))),
    answerToInService: of((t) => diff(t.inService, lastSignal(t))),
    addedAfterBoot: of((t) => t.addedAfterBoot),
  };
}
