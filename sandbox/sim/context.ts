import type { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Accounting } from './accounting.js';
import type { SimClock } from './clock.js';
import type { Faults } from './faults.js';
import { draw, drawWithTail, type LatencyModel, type Range } from './latency.js';
import type { Rng } from './rng.js';
import type { StrictRules } from './rules.js';

/** What the EC2, Auto Scaling and SSM models share. Built by `Cloud`; internal to the simulator. */
export class SimContext {
  private readonly background = new Set<Promise<unknown>>();
  private readonly runners = new Set<Promise<unknown>>();
  private readonly changeListeners = new Set<() => void>();
  /**
   * Bytes in one GiB of volume size, as the hosts see it (`/sys/block/<dev>/size`, the file systems the
   * shims model). 2^30 unless a scenario scales volumes down to keep its content small (`CloudOptions.gibBytes`).
   */
  gibBytes = 2 ** 30;

  constructor(
    readonly clock: SimClock,
    readonly seed: number,
    /** Resource ids and tokens. */
    readonly ids: Rng,
    /** Latency jitter. */
    readonly jitter: Rng,
    readonly latency: LatencyModel,
    readonly faults: Faults,
    readonly events: EventEmitter,
    readonly accounting: Accounting | undefined,
    readonly rootDir: string,
    readonly region: string,
    readonly accountId: string,
    readonly azs: readonly string[],
    readonly attachmentLimit: number,
    /** The AWS-strict rules in force (`rules.ts`). */
    readonly rules: StrictRules,
  ) {}

  /** A modelled duration drawn from `range`. */
  delay(range: Range): number {
    return draw(this.jitter, range);
  }

  /**
   * An attach or detach duration drawn from `range`, with the long tail of rule `attachTail`: a few
   * in a hundred take several times as long.
   */
  attachDelay(range: Range): number {
    if (!this.rules.attachTail) return draw(this.jitter, range);
    return drawWithTail(this.jitter, range, this.latency.attachTail);
  }

  /**
   * Modelled time from which a resource created now is known to Describe* (rule
   * `eventualConsistency`); now when the rule is off.
   */
  visibleFrom(): number {
    const now = this.clock.now();
    return this.rules.eventualConsistency ? now + draw(this.jitter, this.latency.consistency) : now;
  }

  /** `${rootDir}/hosts/<instanceId>`. */
  hostRoot(instanceId: string): string {
    return join(this.rootDir, 'hosts', instanceId);
  }

  /** `${rootDir}/volumes/<volumeId>`. */
  volumeDataDir(volumeId: string): string {
    return join(this.rootDir, 'volumes', volumeId);
  }

  /** `${rootDir}/snapshots/<snapshotId>`. */
  snapshotDataDir(snapshotId: string): string {
    return join(this.rootDir, 'snapshots', snapshotId);
  }

  /** Keeps a background file operation (copy, deletion) so `settle()` can wait for it. */
  track<T>(promise: Promise<T>): Promise<T> {
    return this.keep(this.background, promise);
  }

  /** Keeps a running document so `settle()` can wait (a bounded time) for it to stop. */
  trackRunner<T>(promise: Promise<T>): Promise<T> {
    return this.keep(this.runners, promise);
  }

  private keep<T>(set: Set<Promise<unknown>>, promise: Promise<T>): Promise<T> {
    const kept = promise.catch(() => undefined).finally(() => set.delete(kept));
    set.add(kept);
    return promise;
  }

  /**
   * Resolves once every background file operation has settled and the aborted runners have
   * stopped, or after `runnerGraceMs` for runners that ignore their abort signal.
   */
  async settle(runnerGraceMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((done) => {
      timer = setTimeout(done, runnerGraceMs);
      timer.unref();
    });
    const runners = (async () => {
      while (this.runners.size > 0) await Promise.all([...this.runners]);
    })();
    await Promise.race([runners, grace]);
    clearTimeout(timer);
    while (this.background.size > 0) await Promise.all([...this.background]);
  }

  /** Tells waiters that some state changed. */
  notify(): void {
    for (const listener of [...this.changeListeners]) listener();
  }

  /** Calls `listener` after every state change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** An EventBridge envelope for `detail`, as AWS services send it. */
  envelope(source: string, detailType: string, resources: string[], detail: Record<string, unknown>) {
    return {
      version: '0',
      id: this.ids.uuid(),
      'detail-type': detailType,
      source,
      account: this.accountId,
      time: this.clock.date().toISOString(),
      region: this.region,
      resources,
      detail,
    };
  }

  /** Emits an EventBridge event on `events` ('event'). */
  emit(envelope: ReturnType<SimContext['envelope']>): void {
    this.events.emit('event', envelope);
  }
}
