/**
 * The time source of the workflow steps. Real Lambdas use the wall clock; the sandbox, which runs time
 * compressed, installs its modelled clock so that bounds such as "heartbeat after half the timeout"
 * hold in modelled seconds. Nothing else may change it.
 */
let source: () => number = () => Date.now();

/** Milliseconds since the epoch, from the current time source. */
export function nowMs(): number {
  return source();
}

/** ISO timestamp from the current time source. */
export function nowIso(): string {
  return new Date(source()).toISOString();
}

/** Installs another time source (the sandbox's modelled clock). */
export function setTimeSource(fn: () => number): void {
  source = fn;
}
