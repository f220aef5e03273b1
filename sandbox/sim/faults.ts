import { seededChance } from './rng.js';

/**
 * Injectable faults.
 * - `throttle`: an EC2 call fails with RequestLimitExceeded (on top of the real token buckets).
 * - `internalError`: a call (any service) fails with a 500 InternalError, which the SDK retries.
 * - `incorrectState`: an AttachVolume/DetachVolume fails with IncorrectState (a race with another actor).
 * - `stuckAttach`: an AttachVolume stays `attaching` until the volume is force-detached.
 * - `stuckDetach`: a non-forced DetachVolume stays `detaching` until it is forced.
 * - `terminateOnAttach`: the instance starts terminating right after it accepts an AttachVolume.
 * - `ssmFailure`: an invocation fails (exit code 1) without running its document.
 * - `ssmTimeout`: an invocation hangs until its execution timeout.
 * - `ssmUndeliverable`: an invocation cannot be delivered (Undeliverable).
 */
export type FaultKind =
  | 'throttle'
  | 'internalError'
  | 'incorrectState'
  | 'stuckAttach'
  | 'stuckDetach'
  | 'terminateOnAttach'
  | 'ssmFailure'
  | 'ssmTimeout'
  | 'ssmUndeliverable';

/** Every fault kind. */
export const faultKinds: readonly FaultKind[] = [
  'throttle',
  'internalError',
  'incorrectState',
  'stuckAttach',
  'stuckDetach',
  'terminateOnAttach',
  'ssmFailure',
  'ssmTimeout',
  'ssmUndeliverable',
];

/** Probabilities (0..1) per eligible call or invocation. */
export interface FaultRates {
  /** Per EC2 call. */
  throttleRate?: number;
  /** Per call, any service. */
  internalErrorRate?: number;
  /** Per AttachVolume and DetachVolume. */
  incorrectStateRate?: number;
  /** Per AttachVolume. */
  stuckAttachRate?: number;
  /** Per non-forced DetachVolume. */
  stuckDetachRate?: number;
  /** Per AttachVolume. */
  terminateOnAttachRate?: number;
  /** Per SSM invocation. */
  ssmFailureRate?: number;
  /** Per SSM invocation. */
  ssmTimeoutRate?: number;
  /** Per SSM invocation. */
  ssmUndeliverableRate?: number;
}

const rateOf: Record<FaultKind, keyof FaultRates> = {
  throttle: 'throttleRate',
  internalError: 'internalErrorRate',
  incorrectState: 'incorrectStateRate',
  stuckAttach: 'stuckAttachRate',
  stuckDetach: 'stuckDetachRate',
  terminateOnAttach: 'terminateOnAttachRate',
  ssmFailure: 'ssmFailureRate',
  ssmTimeout: 'ssmTimeoutRate',
  ssmUndeliverable: 'ssmUndeliverableRate',
};

/** What a one-shot fault waits for; every field given must match. */
export interface FaultMatch {
  /** API action, e.g. `AttachVolume`, `DetachVolume`, `DescribeVolumes`, or `SendCommand` for SSM faults. */
  action?: string;
  volumeId?: string;
  instanceId?: string;
  documentName?: string;
}

/** The call or invocation a fault is considered for. */
export interface FaultSite {
  action: string;
  volumeId?: string;
  instanceId?: string;
  documentName?: string;
}

interface OneShot {
  kind: FaultKind;
  match: FaultMatch;
}

function matches(match: FaultMatch, site: FaultSite): boolean {
  return (
    (match.action === undefined || match.action === site.action) &&
    (match.volumeId === undefined || match.volumeId === site.volumeId) &&
    (match.instanceId === undefined || match.instanceId === site.instanceId) &&
    (match.documentName === undefined || match.documentName === site.documentName)
  );
}

/**
 * The fault injector. Rate-based choices are seeded per site (kind, action, resource, n-th time), not
 * drawn from a shared stream, so the same seed injects the same faults into the same calls even when
 * concurrent operations interleave differently.
 */
export class Faults {
  private current: FaultRates = {};
  private readonly oneShots: OneShot[] = [];
  private readonly injected = new Map<FaultKind, number>();
  private readonly seen = new Map<string, number>();

  constructor(private readonly seed: number) {}

  /** Merges `rates` into the current rates (set a rate to 0 to turn it off). */
  set(rates: FaultRates): void {
    this.current = { ...this.current, ...rates };
  }

  /** The current rates. */
  rates(): Readonly<FaultRates> {
    return { ...this.current };
  }

  /** Arms a one-shot fault: the next call matching `match` gets it, then it is gone. */
  once(kind: FaultKind, match: FaultMatch = {}): void {
    this.oneShots.push({ kind, match });
  }

  /** One-shot faults armed and not yet fired. */
  armed(): readonly { kind: FaultKind; match: FaultMatch }[] {
    return this.oneShots.map((o) => ({ kind: o.kind, match: { ...o.match } }));
  }

  /** Number of faults injected so far, per kind. */
  counts(): Record<FaultKind, number> {
    return Object.fromEntries(faultKinds.map((k) => [k, this.injected.get(k) ?? 0])) as Record<
      FaultKind,
      number
    >;
  }

  /** Turns every rate off and disarms every one-shot (counts stay). */
  clear(): void {
    this.current = {};
    this.oneShots.length = 0;
  }

  /**
   * Decides whether `kind` strikes at `site`: an armed one-shot that matches fires first (and is
   * consumed), else the kind's rate is rolled. Counts what it injects. For the simulator's use.
   */
  strike(kind: FaultKind, site: FaultSite): boolean {
    const index = this.oneShots.findIndex((o) => o.kind === kind && matches(o.match, site));
    if (index >= 0) {
      this.oneShots.splice(index, 1);
      return this.record(kind);
    }
    const rate = this.current[rateOf[kind]] ?? 0;
    if (rate <= 0) return false;
    const resource = site.volumeId ?? site.instanceId ?? '';
    const key = `${kind}:${site.action}:${resource}`;
    const n = (this.seen.get(key) ?? 0) + 1;
    this.seen.set(key, n);
    return seededChance(this.seed, rate, key, n) ? this.record(kind) : false;
  }

  private record(kind: FaultKind): true {
    this.injected.set(kind, (this.injected.get(kind) ?? 0) + 1);
    return true;
  }
}
