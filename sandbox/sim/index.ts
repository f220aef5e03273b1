/**
 * The stateful EC2 / Auto Scaling / SSM simulator of the Volsd sandbox. See README.md in this folder.
 */
export {
  Accounting,
  type ClientWithStack,
  type CountKind,
  type Counts,
  countingMiddleware,
  countKinds,
} from './accounting.js';
export type {
  GroupOptions,
  GroupView,
  LifecycleActionRecord,
  LifecycleHookSpec,
  LifecycleResult,
} from './autoscaling.js';
export { SimClock, SimClockClosed } from './clock.js';
export { Cloud, type CloudOptions, type CloudState, WaitTimeout } from './cloud.js';
export { byIdName, type DeviceView, nvmeSerial, readMounts } from './devices.js';
export type {
  AttachmentState,
  InstanceEvent,
  InstanceStateName,
  InstanceView,
  LaunchOptions,
  SnapshotView,
  VolumeState,
  VolumeView,
} from './ec2.js';
export { type SimService, SimServiceError, UnsupportedCommandError } from './errors.js';
export { type FaultKind, type FaultMatch, type FaultRates, Faults, faultKinds } from './faults.js';
export { defaultLatency, type LatencyModel, type Range } from './latency.js';
export { attachSimulator, modelledRetryStrategy, serviceOf, simulatorMiddlewareName } from './middleware.js';
export { hash32, Rng, seededChance } from './rng.js';
export { resolveRules, rulesInForce, type StrictRule, type StrictRules, strictRuleNames } from './rules.js';
export type { CommandView, DocumentRunner, RunnerContext, RunnerResult } from './ssm.js';
export { ec2Categories } from './throttle.js';
