import { type EventLoopUtilization, performance } from 'node:perf_hooks';

/** Raised by pending `sleep()`s when the clock is closed, so nothing waits on a dead simulator. */
export class SimClockClosed extends Error {
  override name = 'SimClockClosed';
  constructor() {
    super('the simulator clock was closed');
  }
}

/** The longest delay Node's setTimeout takes (2^31 - 1 ms). */
const maxTimerMs = 2 ** 31 - 1;

interface PendingTimer {
  handle?: NodeJS.Timeout;
  reject?: (error: Error) => void;
}

/**
 * The simulator's modelled clock. Modelled time runs `1 / timeScale` times faster than wall time:
 * with `timeScale = 0.01`, one modelled second lasts 10 ms of wall time. Every timer the simulator
 * starts goes through here, so `close()` can cancel all of them and leave nothing alive.
 *
 * Lag compensation (on by default): the clock stands still while the process is too busy to run
 * timers on time. A saturated CPU (a burst of 200 acquires, several sandboxes on 2 cores) would
 * otherwise let modelled minutes pass while the work waits for the CPU, and AWS's timeouts (a
 * lifecycle hook's heartbeat timeout) would fire on time that no AWS service would have spent. A
 * 10 ms wall-time probe measures how late it runs; lateness beyond 5 ms is taken off the clock.
 * Lateness only shows a stall longer than the threshold; a process busy in many short callbacks (the
 * local DynamoDB and S3, the interpreter and the handlers of a loaded sandbox) runs its timers nearly on
 * time and would spend 100 modelled seconds per busy wall second at time scale 0.01: a Resolve that takes
 * a second on AWS took 760 modelled seconds in a chaos run. So the probe also takes off the time the
 * event loop was busy since the last probe (its utilization's active time), beyond a tolerance of 1 ms
 * per 10 ms (the timers' own work) and beyond the lateness already taken for the same stretch. The
 * modelled clock then runs while the process waits, as the services it models would.
 * Every read of the clock applies the same measure first (`catchUp`): after the process stood still
 * (descheduled, or one long callback), the first timer to run must not see that time as modelled
 * time before the probe's own turn comes, or a timer due later (SSM's delivery timeout) fires ahead
 * of one due earlier (the delivery) that Node happens to run after it.
 *
 * Timers are not unref'd on purpose: a script that awaits `sleep()` at top level must not exit
 * early. `close()` is what releases them.
 */
export class SimClock {
  /** Wall milliseconds per modelled second. */
  private readonly msPerSecond: number;
  private readonly startWall = performance.now();
  private readonly startEpochMs = Date.now();
  private readonly timers = new Set<PendingTimer>();
  private closed = false;
  /** Wall milliseconds taken off the clock because the process ran late (see the class comment). */
  private pausedMs = 0;
  private last = 0;
  private probe?: NodeJS.Timeout;
  /** Wall instant (performance.now) the probe is due next; undefined without lag compensation. */
  private expected?: number;
  private static readonly probePeriodMs = 10;
  private static readonly lateThresholdMs = 5;
  /**
   * Busy time per probe period left on the clock (the timers' own callbacks); the rest of the time the
   * event loop was busy since the last probe is taken off (see the class comment).
   */
  private static readonly busyToleranceMs = 1;
  /** Event loop utilization at the last probe, and the lateness taken off since it. */
  private eluMark?: EventLoopUtilization;
  private takenSinceProbe = 0;

  /**
   * @param timeScale wall seconds per modelled second, > 0 (1 = real time, 0.001 = 1000x faster).
   * @param options.compensateLag stop the clock while the process runs late. @default true
   */
  constructor(
    readonly timeScale: number,
    options: { compensateLag?: boolean } = {},
  ) {
    if (!(timeScale > 0) || !Number.isFinite(timeScale)) {
      throw new RangeError(`timeScale must be a positive number, got ${timeScale}`);
    }
    this.msPerSecond = 1000 * timeScale;
    if (options.compensateLag ?? true) {
      this.expected = performance.now() + SimClock.probePeriodMs;
      this.eluMark = performance.eventLoopUtilization();
      this.probe = setInterval(() => {
        const at = performance.now();
        this.catchUp(at);
        this.takeBusyTime();
        this.expected = at + SimClock.probePeriodMs;
      }, SimClock.probePeriodMs);
      this.probe.unref();
    }
  }

  /**
   * Takes off the clock how late the probe is at wall instant `at` (beyond the threshold): the time the
   * process could not run its timers. Called by the probe and by every read of the clock, so whichever
   * comes first after a stall accounts for it, once.
   */
  private catchUp(at: number): void {
    if (this.expected === undefined) return;
    const late = at - this.expected;
    if (late > SimClock.lateThresholdMs) {
      this.pausedMs += late;
      this.takenSinceProbe += late;
      this.expected = at + SimClock.probePeriodMs;
    }
  }

  /**
   * Takes off the clock the time the event loop was busy since the last probe (its utilization's active
   * time), beyond a small tolerance and beyond the lateness already taken for the same stretch.
   */
  private takeBusyTime(): void {
    if (!this.eluMark) return;
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.eluMark).active;
    this.eluMark = now;
    const extra = busy - SimClock.busyToleranceMs - this.takenSinceProbe;
    this.takenSinceProbe = 0;
    if (extra > 0) this.pausedMs += extra;
  }

  /** Wall seconds the clock stood still because the process ran late. */
  get lagSeconds(): number {
    return this.pausedMs / 1000;
  }

  /** Modelled seconds since the clock started (never decreasing: a pause found late holds the clock). */
  now(): number {
    const at = performance.now();
    this.catchUp(at);
    const t = (at - this.startWall - this.pausedMs) / this.msPerSecond;
    if (t > this.last) this.last = t;
    return this.last;
  }

  /** The modelled instant as a Date (the clock starts at the wall time of its creation). */
  date(atSeconds: number = this.now()): Date {
    return new Date(this.startEpochMs + atSeconds * 1000);
  }

  /** Wall milliseconds that `modelSeconds` of modelled time last. */
  toWallMs(modelSeconds: number): number {
    return Math.max(0, modelSeconds) * this.msPerSecond;
  }

  /** True once `close()` ran. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves after `modelSeconds` of modelled time; rejects with SimClockClosed if the clock closes first. */
  sleep(modelSeconds: number): Promise<void> {
    if (this.closed) return Promise.reject(new SimClockClosed());
    return new Promise<void>((resolve, reject) => {
      this.schedule(modelSeconds, resolve, reject);
    });
  }

  /**
   * Runs `fn` after `modelSeconds` of modelled time. Returns a function that cancels it (harmless
   * after it ran). After `close()` nothing is scheduled.
   */
  setTimer(modelSeconds: number, fn: () => void): () => void {
    if (this.closed) return () => {};
    const timer = this.schedule(modelSeconds, fn);
    return () => {
      clearTimeout(timer.handle);
      this.timers.delete(timer);
    };
  }

  /**
   * Node may fire a timer a little early against performance.now() (the event loop's cached time
   * lags), which at high compression is whole modelled seconds. A timer that fires early re-arms
   * for the rest, so nothing ever happens before its modelled time.
   */
  private schedule(modelSeconds: number, fn: () => void, reject?: (error: Error) => void): PendingTimer {
    // Node caps a timer at 2^31 - 1 ms and fires a longer one after 1 ms (TimeoutOverflowWarning): a far
    // timer (a year-long watch) then re-armed itself every millisecond until its time. Arm at most the
    // cap; `fire` re-arms for the rest.
    const due = this.now() + Math.max(0, modelSeconds);
    const timer: PendingTimer = reject ? { reject } : {};
    const fire = () => {
      const remaining = due - this.now();
      if (remaining > 0) {
        timer.handle = setTimeout(fire, Math.min(maxTimerMs, Math.max(1, this.toWallMs(remaining))));
        return;
      }
      this.timers.delete(timer);
      fn();
    };
    timer.handle = setTimeout(fire, Math.min(maxTimerMs, this.toWallMs(modelSeconds)));
    this.timers.add(timer);
    return timer;
  }

  /** Number of timers and sleeps still pending (0 after `close()`). */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Cancels every timer and rejects every pending sleep. Idempotent. */
  close(): void {
    this.closed = true;
    clearInterval(this.probe);
    this.expected = undefined;
    for (const timer of this.timers) {
      clearTimeout(timer.handle);
      timer.reject?.(new SimClockClosed());
    }
    this.timers.clear();
  }
}
