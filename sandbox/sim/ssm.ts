import { setMaxListeners } from 'node:events';
import type {
  Command,
  CommandInvocation,
  CommandInvocationStatus,
  CommandPluginStatus,
  CommandStatus,
  DeleteParameterRequest,
  DescribeInstanceInformationRequest,
  GetCommandInvocationRequest,
  GetCommandInvocationResult,
  GetParameterRequest,
  GetParametersByPathRequest,
  GetParametersRequest,
  InstanceInformation,
  ListCommandInvocationsRequest,
  ListCommandsRequest,
  Parameter,
  PutParameterRequest,
  SendCommandRequest,
} from '@aws-sdk/client-ssm';
import type { SimContext } from './context.js';
import type { DeviceView } from './devices.js';
import type { Ec2Sim, InstanceEvent } from './ec2.js';
import { fail } from './errors.js';
import type { Range } from './latency.js';
import type { Rng } from './rng.js';
import { paginate } from './util.js';

/** What a document runner gets: the instance, its file tree, the command's parameters and the devices. */
export interface RunnerContext {
  instanceId: string;
  /** `${rootDir}/hosts/<instanceId>`: the instance's own file tree. */
  hostRoot: string;
  /** The simulator's root directory. */
  rootDir: string;
  /** SendCommand Parameters as given. */
  parameters: Record<string, string[]>;
  /** Data volumes the instance sees now (materialised under hostRoot/dev before the run). */
  devices: DeviceView[];
  commandId: string;
  documentName: string;
  /** Aborted when the execution times out or the instance goes away: kill child processes then. */
  signal: AbortSignal;
}

/** What a run produced. `modelledSeconds`, when given, is the run's modelled duration (at least the real one). */
export interface RunnerResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  modelledSeconds?: number;
}

/** Executes one SSM document on one instance. */
export type DocumentRunner = (ctx: RunnerContext) => Promise<RunnerResult>;

/** Invocation StatusDetails values (API spelling). */
type InvocationDetails =
  | 'Pending'
  | 'InProgress'
  | 'Delayed'
  | 'Success'
  | 'Failed'
  | 'DeliveryTimedOut'
  | 'ExecutionTimedOut'
  | 'Undeliverable'
  | 'Terminated'
  | 'Cancelled';

const statusOfDetails: Record<InvocationDetails, CommandInvocationStatus> = {
  Pending: 'Pending',
  InProgress: 'InProgress',
  Delayed: 'Delayed',
  Success: 'Success',
  Failed: 'Failed',
  DeliveryTimedOut: 'TimedOut',
  ExecutionTimedOut: 'TimedOut',
  Undeliverable: 'Failed',
  Terminated: 'Cancelled',
  Cancelled: 'Cancelled',
};

const terminal = new Set<InvocationDetails>([
  'Success',
  'Failed',
  'DeliveryTimedOut',
  'ExecutionTimedOut',
  'Undeliverable',
  'Terminated',
  'Cancelled',
]);

interface Invocation {
  commandId: string;
  instanceId: string;
  details: InvocationDetails;
  dispatched: boolean;
  startedAt?: Date;
  startedAtModel?: number;
  endedAt?: Date;
  responseCode: number;
  stdout: string;
  stderr: string;
  abort?: AbortController;
  timers: (() => void)[];
  /** Cancels the pending re-delivery of a Delayed invocation (one at a time, not one per attempt). */
  redeliver?: () => void;
}

interface SimCommand {
  id: string;
  documentName: string;
  comment: string;
  parameters: Record<string, string[]>;
  instanceIds: string[];
  targets: { Key: string; Values: string[] }[];
  requestedAt: Date;
  /** Modelled second of the request. */
  requestedAtModel: number;
  /** Modelled second the invocations become visible. */
  visibleAt: number;
  maxConcurrencyText: string;
  maxErrorsText: string;
  maxConcurrency: number;
  maxErrors: number;
  timeoutSeconds: number;
  executionTimeout: number;
  invocations: Invocation[];
  status: CommandStatus;
  details: string;
  /** Command-level timers (the start of delivery, when targets are resolved then). */
  timers: (() => void)[];
}

interface StoredParameter {
  name: string;
  type: 'String' | 'StringList' | 'SecureString';
  value: string;
  version: number;
  lastModified: Date;
  description?: string;
}

/** A plain view of a command and its invocations. */
export interface CommandView {
  commandId: string;
  documentName: string;
  status: CommandStatus;
  statusDetails: string;
  /** Modelled second of the request. */
  requestedAt: number;
  /** Sent by tag target (a fleet-wide run, such as a push's fan-out) rather than to instance ids. */
  byTag: boolean;
  parameters: Record<string, string[]>;
  invocations: {
    instanceId: string;
    status: CommandInvocationStatus;
    statusDetails: string;
    responseCode: number;
    /** Modelled second the run started on the instance, when it did. */
    startedAt?: number;
  }[];
}

/**
 * `ssmDelivery`: delivery latency is lognormal around the middle of `latency.ssmDelivery` (1 s by
 * default) with sigma 0.7, so p90 is 2.5x the median and p99 5.1x; capped at 30x. AWS publishes no
 * figure: assumed, chosen with a tail heavier than the uniform range it replaces.
 */
const deliverySigma = 0.7;
const deliveryCapFactor = 30;
/** Modelled seconds between delivery attempts to an agent that does not answer (Delayed). Assumed. */
const redeliverySeconds = 2;

const maxStdout = 24000;
const maxStderr = 8000;
const maxPluginOutput = 2500;

function validation(message: string): never {
  return fail('ValidationException', message);
}

/** Parses a MaxConcurrency/MaxErrors value: "10" or "25%" against `targets`. */
function parseRate(
  text: string,
  targets: number,
  name: string,
  round: (n: number) => number,
  min: number,
): number {
  const m = /^(\d+)(%?)$/.exec(text);
  if (!m)
    validation(
      `1 validation error detected: Value '${text}' at '${name}' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$`,
    );
  const n = Number(m[1]);
  return m[2] ? Math.max(min, round((n / 100) * targets)) : n;
}

/**
 * A delivery latency with a tail (`ssmDelivery`): lognormal with its median at the middle of `range`
 * and sigma `deliverySigma`, capped at `deliveryCapFactor` x the median. Two draws of `rng` (Box-Muller),
 * so a seed replays the same latencies.
 */
export function tailedDelivery(rng: Rng, range: Range): number {
  const median = (range[0] + range[1]) / 2;
  const u = 1 - rng.next();
  const v = rng.next();
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.min(median * deliveryCapFactor, median * Math.exp(deliverySigma * z));
}

function iso(d: Date | undefined): string {
  return d ? d.toISOString() : '';
}

function elapsed(from: Date | undefined, to: Date | undefined): string {
  if (!from || !to) return '';
  return `PT${((to.getTime() - from.getTime()) / 1000).toFixed(3)}S`;
}

/**
 * The SSM model: Run Command (rate-controlled invocations executed by pluggable document runners on
 * per-instance directory trees, with AWS's statuses, output truncation and MaxErrors) and a Parameter
 * Store. An instance's agent answers only once the instance is running and registered.
 */
export class SsmSim {
  private readonly runners = new Map<string, DocumentRunner>();
  private readonly commandsById = new Map<string, SimCommand>();
  private readonly lastFleetSend = new Map<string, number>();
  /** Commands with an invocation on the instance (so an instance going away does not scan every command). */
  private readonly commandsByInstance = new Map<string, Set<SimCommand>>();
  private readonly parameters = new Map<string, StoredParameter>();
  /** Instances whose agent registered (managed nodes), until they terminate. */
  private readonly registered = new Set<string>();
  /** Registered instances whose agent lost its connection (`setAgentConnection`). */
  private readonly connectionLost = new Set<string>();

  constructor(
    private readonly ctx: SimContext,
    private readonly ec2: Ec2Sim,
  ) {
    ec2.onInstance((id, event) => this.onInstance(id, event));
  }

  /** The SSM commands the simulator answers, by operation name. */
  readonly commands: Record<string, (input: never) => object> = {
    SendCommand: (i: SendCommandRequest) => this.sendCommand(i),
    GetCommandInvocation: (i: GetCommandInvocationRequest) => this.getCommandInvocation(i),
    ListCommandInvocations: (i: ListCommandInvocationsRequest) => this.listCommandInvocations(i),
    ListCommands: (i: ListCommandsRequest) => this.listCommands(i),
    DescribeInstanceInformation: (i: DescribeInstanceInformationRequest) =>
      this.describeInstanceInformation(i),
    PutParameter: (i: PutParameterRequest) => this.putParameter(i),
    GetParameter: (i: GetParameterRequest) => this.getParameter(i),
    GetParameters: (i: GetParametersRequest) => this.getParameters(i),
    GetParametersByPath: (i: GetParametersByPathRequest) => this.getParametersByPath(i),
    DeleteParameter: (i: DeleteParameterRequest) => this.deleteParameter(i),
  };

  /**
   * Takes a registered instance's agent offline (`online: false`: PingStatus ConnectionLost, as when
   * the agent crashes or loses its network) or back online. A scenario helper, not an AWS API.
   */
  setAgentConnection(instanceId: string, online: boolean): void {
    if (!this.registered.has(instanceId))
      throw new Error(`${instanceId} has no registered SSM agent (not running yet, or terminated)`);
    if (online) this.connectionLost.delete(instanceId);
    else this.connectionLost.add(instanceId);
    this.ctx.notify();
  }

  /** True when the instance's agent answers now: registered, running, connected. */
  private reachable(instanceId: string): boolean {
    return this.ec2.agentOnline(instanceId) && !this.connectionLost.has(instanceId);
  }

  /**
   * Whether SendCommand may address the instance. Under `ssmDelivery` every registered (managed)
   * running instance is accepted, reachable or not: an agent that lost its connection gets Delayed
   * invocations that end DeliveryTimedOut. Without the rule, only a reachable agent is accepted.
   */
  private addressable(instanceId: string): boolean {
    if (!this.ctx.rules.ssmDelivery) return this.reachable(instanceId);
    return this.registered.has(instanceId) && this.ec2.instanceState(instanceId) === 'running';
  }

  /** Registers (or replaces) the runner that executes document `name`. */
  registerDocument(name: string, runner: DocumentRunner): void {
    this.runners.set(name, runner);
  }

  /**
   * Modelled second of the last command of `documentName` sent to instances by tag (a fleet-wide run,
   * such as a push's fan-out), undefined when none was.
   */
  lastSentByTag(documentName: string): number | undefined {
    return this.lastFleetSend.get(documentName);
  }

  /** Plain views of every command. */
  view(): CommandView[] {
    return [...this.commandsById.values()].map((c) => ({
      commandId: c.id,
      documentName: c.documentName,
      status: c.status,
      statusDetails: c.details,
      requestedAt: c.requestedAtModel,
      byTag: c.targets.some((t) => t.Key.startsWith('tag:')),
      parameters: c.parameters,
      invocations: c.invocations.map((i) => ({
        instanceId: i.instanceId,
        status: statusOfDetails[i.details],
        statusDetails: i.details,
        responseCode: i.responseCode,
        ...(i.startedAtModel !== undefined ? { startedAt: i.startedAtModel } : {}),
      })),
    }));
  }

  /** What each invocation of a command wrote to standard error so far (a failing run's diagnostics). */
  stderrOf(commandId: string): { instanceId: string; stderr: string }[] {
    return (this.commandsById.get(commandId)?.invocations ?? []).map((i) => ({
      instanceId: i.instanceId,
      stderr: i.stderr,
    }));
  }

  /** Aborts running documents and cancels timers. */
  close(): void {
    for (const c of this.commandsById.values()) {
      for (const cancel of c.timers.splice(0)) cancel();
      for (const inv of c.invocations) {
        for (const cancel of inv.timers.splice(0)) cancel();
        inv.redeliver?.();
        inv.abort?.abort();
      }
    }
  }

  // ---------------------------------------------------------------- Run Command

  private sendCommand(input: SendCommandRequest): { Command: Command } {
    const documentName = input.DocumentName;
    if (!documentName)
      validation(
        "1 validation error detected: Value null at 'documentName' failed to satisfy constraint: Member must not be null",
      );
    if (!this.runners.has(documentName))
      fail('InvalidDocument', `Document with name ${documentName} does not exist.`);
    const ids = input.InstanceIds ?? [];
    const targets = input.Targets ?? [];
    if (ids.length > 50) {
      validation(
        `1 validation error detected: Value '[${ids.join(', ')}]' at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50`,
      );
    }
    if (targets.length > 5) {
      validation(
        "1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length less than or equal to 5",
      );
    }
    if (ids.length > 0 && targets.length > 0)
      fail('InvalidParameters', 'Specify either InstanceIds or Targets, not both.');
    if (ids.length === 0 && targets.length === 0)
      fail('InvalidParameters', 'Specify InstanceIds or Targets.');
    if (new Set(ids).size !== ids.length) fail('DuplicateInstanceId', 'Instance IDs must be unique.');
    const timeoutSeconds = input.TimeoutSeconds ?? 3600;
    if (timeoutSeconds < 30 || timeoutSeconds > 2592000) {
      validation(
        `1 validation error detected: Value '${timeoutSeconds}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000`,
      );
    }

    const targetList = targets.map((t) => ({ Key: t.Key ?? '', Values: [...(t.Values ?? [])] }));
    let instanceIds: string[] | undefined;
    if (ids.length > 0) {
      const invalid = ids.filter((id) => !this.addressable(id));
      if (invalid.length) {
        fail(
          'InvalidInstanceId',
          `Instances [[${invalid.join(', ')}]] not in a valid state for account ${this.ctx.accountId}`,
        );
      }
      instanceIds = [...ids];
    } else {
      this.checkTargets(targetList);
      // Under `ssmDelivery` tag targets are resolved when the command is delivered, not now: an
      // instance tagged (or registered) in between is reached, one gone in between is not.
      if (!this.ctx.rules.ssmDelivery) instanceIds = this.resolveTargets(targetList);
    }

    const parameters = input.Parameters ?? {};
    const executionTimeout = Number(parameters.executionTimeout?.[0] ?? 3600);
    const now = this.ctx.clock.now();
    const maxConcurrencyText = input.MaxConcurrency ?? '50';
    const maxErrorsText = input.MaxErrors ?? '0';
    if (targetList.some((t) => t.Key.startsWith('tag:'))) this.lastFleetSend.set(documentName, now);
    const command: SimCommand = {
      id: this.ctx.ids.uuid(),
      documentName,
      comment: input.Comment ?? '',
      parameters,
      instanceIds: [...ids],
      targets: targetList,
      requestedAt: this.ctx.clock.date(now),
      requestedAtModel: now,
      visibleAt: now + this.ctx.delay(this.ctx.latency.ssmInvocationVisible),
      maxConcurrencyText,
      maxErrorsText,
      // Validated now (ValidationException at the call); recomputed against the resolved targets.
      maxConcurrency: parseRate(maxConcurrencyText, instanceIds?.length ?? 0, 'maxConcurrency', Math.ceil, 1),
      maxErrors: parseRate(maxErrorsText, instanceIds?.length ?? 0, 'maxErrors', Math.floor, 0),
      timeoutSeconds,
      executionTimeout: Number.isFinite(executionTimeout) && executionTimeout > 0 ? executionTimeout : 3600,
      invocations: [],
      status: 'Pending',
      details: 'Pending',
      timers: [],
    };
    if (command.maxConcurrency < 1) validation('MaxConcurrency must be at least 1');
    this.commandsById.set(command.id, command);
    if (instanceIds) this.addInvocations(command, instanceIds);
    if (!instanceIds || command.invocations.length > 0) {
      command.timers.push(
        this.ctx.clock.setTimer(command.visibleAt - now, () => {
          if (!instanceIds) {
            this.addInvocations(command, this.resolveTargets(command.targets));
            if (command.invocations.length === 0) {
              this.emitCommand(command);
              this.ctx.notify();
              return;
            }
          }
          this.pump(command);
        }),
      );
    }
    this.emitCommand(command);
    this.ctx.notify();
    return { Command: this.commandOutput(command) };
  }

  /**
   * Gives the command its invocations on `instanceIds` (at the call, or at delivery for tag targets
   * under `ssmDelivery`): rate controls against their number, delivery timeouts counted from the
   * request. No instance: the command ends Success / NoInstancesInTag.
   */
  private addInvocations(command: SimCommand, instanceIds: string[]): void {
    const targets = instanceIds.length;
    command.maxConcurrency = parseRate(command.maxConcurrencyText, targets, 'maxConcurrency', Math.ceil, 1);
    command.maxErrors = parseRate(command.maxErrorsText, targets, 'maxErrors', Math.floor, 0);
    command.invocations = instanceIds.map((instanceId) => ({
      commandId: command.id,
      instanceId,
      details: 'Pending',
      dispatched: false,
      responseCode: -1,
      stdout: '',
      stderr: '',
      timers: [],
    }));
    if (targets === 0) {
      command.status = 'Success';
      command.details = 'NoInstancesInTag';
      return;
    }
    const timeoutIn = command.requestedAtModel + command.timeoutSeconds - this.ctx.clock.now();
    for (const inv of command.invocations) {
      const set = this.commandsByInstance.get(inv.instanceId) ?? new Set<SimCommand>();
      set.add(command);
      this.commandsByInstance.set(inv.instanceId, set);
      // Not delivered within TimeoutSeconds of the request: DeliveryTimedOut (SendCommand TimeoutSeconds:
      // "If this time is reached and the command hasn't already started running, it won't run").
      inv.timers.push(
        this.ctx.clock.setTimer(Math.max(0, timeoutIn), () => {
          if (inv.details === 'Pending' || inv.details === 'Delayed')
            this.finish(command, inv, 'DeliveryTimedOut', -1);
        }),
      );
    }
  }

  /** Refuses target keys the simulator does not model (InvalidTarget). */
  private checkTargets(targets: { Key: string; Values: string[] }[]): void {
    for (const t of targets) {
      if (!t.Key.startsWith('tag:') && t.Key !== 'tag-key' && t.Key !== 'InstanceIds') {
        fail(
          'InvalidTarget',
          `Target key ${t.Key} is not supported by the simulator (tag:<key>, tag-key, InstanceIds).`,
        );
      }
    }
  }

  /**
   * Tag targets (ANDed across entries, values ORed) reach the running instances that match and that
   * SendCommand may address (`addressable`: under `ssmDelivery` also those whose agent is offline).
   */
  private resolveTargets(targets: { Key: string; Values: string[] }[]): string[] {
    return this.ec2
      .instanceIds((tags, state) => {
        if (state !== 'running') return false;
        return targets.every((t) => {
          if (t.Key === 'tag-key') return t.Values.some((v) => tags.has(v));
          if (t.Key === 'InstanceIds') return false;
          const value = tags.get(t.Key.slice(4));
          return value !== undefined && t.Values.includes(value);
        });
      })
      .concat(
        targets.some((t) => t.Key === 'InstanceIds')
          ? (targets.find((t) => t.Key === 'InstanceIds')?.Values ?? [])
          : [],
      )
      .filter((id) => this.addressable(id));
  }

  private errorCount(command: SimCommand): number {
    return command.invocations.filter((i) => i.details === 'Failed' || i.details === 'ExecutionTimedOut')
      .length;
  }

  /** Starts invocations up to MaxConcurrency, stops the rest once MaxErrors is exceeded, updates the command. */
  private pump(command: SimCommand): void {
    if (this.errorCount(command) > command.maxErrors) {
      for (const inv of command.invocations) {
        if (!inv.dispatched && !terminal.has(inv.details)) this.finish(command, inv, 'Terminated', -1, false);
      }
    } else {
      let running = command.invocations.filter((i) => i.dispatched && !terminal.has(i.details)).length;
      for (const inv of command.invocations) {
        if (running >= command.maxConcurrency) break;
        if (inv.dispatched || terminal.has(inv.details)) continue;
        inv.dispatched = true;
        running++;
        this.deliver(command, inv);
      }
    }
    this.aggregate(command);
  }

  private deliver(command: SimCommand, inv: Invocation): void {
    const state = this.ec2.instanceState(inv.instanceId);
    const site = { action: 'SendCommand', instanceId: inv.instanceId, documentName: command.documentName };
    if (
      state === undefined ||
      state === 'shutting-down' ||
      state === 'terminated' ||
      this.ctx.faults.strike('ssmUndeliverable', site)
    ) {
      this.finish(command, inv, 'Undeliverable', -1);
      return;
    }
    if (!this.reachable(inv.instanceId)) {
      // The agent does not answer (connection lost, rebooting): AWS marks the invocation Delayed and
      // retries delivery until the delivery timeout (TimeoutSeconds), then DeliveryTimedOut.
      if (inv.details !== 'Delayed') this.setDetails(command, inv, 'Delayed');
      inv.redeliver?.();
      inv.redeliver = this.ctx.clock.setTimer(redeliverySeconds, () => {
        inv.redeliver = undefined;
        if (inv.details === 'Delayed') this.deliver(command, inv);
      });
      return;
    }
    inv.timers.push(
      this.ctx.clock.setTimer(this.deliveryDelay(), () => {
        if (terminal.has(inv.details)) return;
        if (!this.reachable(inv.instanceId)) {
          this.deliver(command, inv);
          return;
        }
        this.execute(command, inv, site);
      }),
    );
  }

  /** Modelled seconds from dispatch to the agent starting the document. */
  private deliveryDelay(): number {
    const range = this.ctx.latency.ssmDelivery;
    return this.ctx.rules.ssmDelivery ? tailedDelivery(this.ctx.jitter, range) : this.ctx.delay(range);
  }

  private execute(
    command: SimCommand,
    inv: Invocation,
    site: { action: string; instanceId: string; documentName: string },
  ): void {
    inv.startedAtModel = this.ctx.clock.now();
    inv.startedAt = this.ctx.clock.date(inv.startedAtModel);
    this.setDetails(command, inv, 'InProgress');
    inv.timers.push(
      this.ctx.clock.setTimer(command.executionTimeout, () => {
        if (inv.details !== 'InProgress') return;
        inv.abort?.abort();
        this.finish(command, inv, 'ExecutionTimedOut', -1);
      }),
    );
    if (this.ctx.faults.strike('ssmFailure', site)) {
      const at = this.ctx.delay(this.ctx.latency.ssmExecution);
      inv.timers.push(
        this.ctx.clock.setTimer(at, () => {
          inv.stderr = 'injected fault: the command failed on the instance';
          this.finish(command, inv, 'Failed', 1);
        }),
      );
      return;
    }
    // ssmTimeout: the document hangs; the execution-timeout timer above ends it.
    if (this.ctx.faults.strike('ssmTimeout', site)) return;
    const runner = this.runners.get(command.documentName);
    if (!runner) {
      inv.stderr = `no runner registered for ${command.documentName}`;
      this.finish(command, inv, 'Failed', 1);
      return;
    }
    this.ec2.materialize(inv.instanceId);
    const abort = new AbortController();
    // A runner may hand the signal to many requests at once (a sync downloads in parallel).
    setMaxListeners(1000, abort.signal);
    inv.abort = abort;
    const minimum = this.ctx.delay(this.ctx.latency.ssmExecution);
    const started = inv.startedAtModel;
    const done = (result: RunnerResult) => {
      if (inv.details !== 'InProgress') return;
      const modelled = Math.max(minimum, result.modelledSeconds ?? 0);
      const remaining = started + modelled - this.ctx.clock.now();
      const complete = () => {
        if (inv.details !== 'InProgress') return;
        inv.stdout = result.stdout;
        inv.stderr = result.stderr;
        this.finish(command, inv, result.exitCode === 0 ? 'Success' : 'Failed', result.exitCode);
      };
      if (remaining > 0) inv.timers.push(this.ctx.clock.setTimer(remaining, complete));
      else complete();
    };
    const aborted: RunnerResult = { exitCode: 143, stdout: '', stderr: 'aborted before it started' };
    this.ctx.trackRunner(
      Promise.resolve()
        .then(() =>
          // The invocation may have ended (instance gone, timeout) before this microtask ran.
          abort.signal.aborted
            ? aborted
            : runner({
                instanceId: inv.instanceId,
                hostRoot: this.ctx.hostRoot(inv.instanceId),
                rootDir: this.ctx.rootDir,
                parameters: command.parameters,
                devices: this.ec2.devicesOf(inv.instanceId).map(({ dataDir: _dataDir, ...view }) => view),
                commandId: command.id,
                documentName: command.documentName,
                signal: abort.signal,
              }),
        )
        .then(done, (error: unknown) =>
          done({
            exitCode: 1,
            stdout: '',
            stderr: `runner failed: ${error instanceof Error ? error.message : String(error)}`,
          }),
        ),
    );
  }

  private setDetails(command: SimCommand, inv: Invocation, details: InvocationDetails): void {
    inv.details = details;
    this.emitInvocation(command, inv);
    this.aggregate(command);
  }

  private finish(
    command: SimCommand,
    inv: Invocation,
    details: InvocationDetails,
    code: number,
    pump = true,
  ): void {
    if (terminal.has(inv.details)) return;
    for (const cancel of inv.timers.splice(0)) cancel();
    inv.redeliver?.();
    inv.redeliver = undefined;
    // The run is over (it ended, or was aborted before this): its signal and every listener a runner
    // hung on it (one per S3 request of a sync) need not live as long as the command's history.
    inv.abort = undefined;
    inv.details = details;
    inv.responseCode = code;
    if (inv.startedAt) inv.endedAt = this.ctx.clock.date();
    this.emitInvocation(command, inv);
    if (pump) this.pump(command);
    else this.aggregate(command);
  }

  /** Command status from its invocations (FACTS §5, SDK docs); see README for the n.c. parts. */
  private aggregate(command: SimCommand): void {
    const before = `${command.status}/${command.details}`;
    const invs = command.invocations;
    const done = invs.filter((i) => terminal.has(i.details));
    if (done.length < invs.length) {
      const started = invs.some((i) => i.details !== 'Pending');
      command.status = started ? 'InProgress' : 'Pending';
      command.details = started ? 'InProgress' : 'Pending';
    } else {
      const count = (d: InvocationDetails) => invs.filter((i) => i.details === d).length;
      const failed = count('Failed');
      const execTimedOut = count('ExecutionTimedOut');
      const deliveryTimedOut = count('DeliveryTimedOut');
      const undeliverable = count('Undeliverable');
      const delivered = invs.length - undeliverable;
      if (delivered === 0) [command.status, command.details] = ['Failed', 'Undeliverable'];
      else if (failed + execTimedOut > command.maxErrors) {
        [command.status, command.details] =
          execTimedOut > failed ? ['TimedOut', 'ExecutionTimedOut'] : ['Failed', 'Failed'];
      } else if (deliveryTimedOut > command.maxErrors)
        [command.status, command.details] = ['TimedOut', 'DeliveryTimedOut'];
      else if (count('Success') === delivered) [command.status, command.details] = ['Success', 'Success'];
      else [command.status, command.details] = ['Failed', 'Incomplete'];
    }
    if (before !== `${command.status}/${command.details}`) this.emitCommand(command);
    this.ctx.notify();
  }

  private onInstance(instanceId: string, event: InstanceEvent): void {
    if (event === 'agent-online') this.registered.add(instanceId);
    if (event === 'terminated') {
      // A terminated instance is no managed node any more: SendCommand answers InvalidInstanceId.
      this.registered.delete(instanceId);
      this.connectionLost.delete(instanceId);
    }
    if (event !== 'shutting-down' && event !== 'terminated') return;
    const commands = this.commandsByInstance.get(instanceId) ?? new Set<SimCommand>();
    if (event === 'terminated') this.commandsByInstance.delete(instanceId);
    for (const command of commands) {
      for (const inv of command.invocations) {
        if (inv.instanceId !== instanceId || terminal.has(inv.details)) continue;
        if (inv.details === 'InProgress') {
          inv.abort?.abort();
          inv.stderr = 'the instance went away during the execution';
          this.finish(command, inv, 'Failed', -1);
        } else if (inv.dispatched) {
          this.finish(command, inv, 'Undeliverable', -1);
        }
      }
    }
  }

  private commandOutput(c: SimCommand): Command {
    const done = c.invocations.filter((i) => terminal.has(i.details));
    return {
      CommandId: c.id,
      DocumentName: c.documentName,
      DocumentVersion: '$DEFAULT',
      Comment: c.comment,
      ExpiresAfter: new Date(c.requestedAt.getTime() + c.timeoutSeconds * 1000),
      Parameters: c.parameters,
      InstanceIds: c.instanceIds,
      Targets: c.targets,
      RequestedDateTime: c.requestedAt,
      Status: c.status,
      StatusDetails: c.details,
      OutputS3Region: this.ctx.region,
      OutputS3BucketName: '',
      OutputS3KeyPrefix: '',
      MaxConcurrency: c.maxConcurrencyText,
      MaxErrors: c.maxErrorsText,
      TargetCount: c.invocations.length,
      CompletedCount: done.length,
      ErrorCount: this.errorCount(c),
      DeliveryTimedOutCount: c.invocations.filter((i) => i.details === 'DeliveryTimedOut').length,
      ServiceRole: '',
      NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: 'Command' },
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
      TimeoutSeconds: c.timeoutSeconds,
    };
  }

  private visibleInvocation(
    commandId: string,
    instanceId: string,
  ): { command: SimCommand; inv: Invocation } | undefined {
    const command = this.commandsById.get(commandId);
    if (!command || this.ctx.clock.now() < command.visibleAt) return undefined;
    const inv = command.invocations.find((i) => i.instanceId === instanceId);
    return inv ? { command, inv } : undefined;
  }

  private getCommandInvocation(input: GetCommandInvocationRequest): GetCommandInvocationResult {
    const found = this.visibleInvocation(input.CommandId ?? '', input.InstanceId ?? '');
    if (!found) fail('InvocationDoesNotExist', '');
    const { command, inv } = found;
    const finished = terminal.has(inv.details);
    return {
      CommandId: command.id,
      InstanceId: inv.instanceId,
      Comment: command.comment,
      DocumentName: command.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: input.PluginName ?? 'aws:runShellScript',
      ResponseCode: inv.responseCode,
      ExecutionStartDateTime: iso(inv.startedAt),
      ExecutionElapsedTime: elapsed(inv.startedAt, inv.endedAt),
      ExecutionEndDateTime: iso(inv.endedAt),
      Status: statusOfDetails[inv.details],
      StatusDetails: inv.details,
      // Output shows once the invocation finished, truncated as the API truncates it (FACTS §5).
      StandardOutputContent: finished ? inv.stdout.slice(0, maxStdout) : '',
      StandardOutputUrl: '',
      StandardErrorContent: finished ? inv.stderr.slice(0, maxStderr) : '',
      StandardErrorUrl: '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    };
  }

  private listCommandInvocations(input: ListCommandInvocationsRequest): {
    CommandInvocations: CommandInvocation[];
    NextToken?: string;
  } {
    const now = this.ctx.clock.now();
    const rows: { command: SimCommand; inv: Invocation }[] = [];
    const byId = input.CommandId ? this.commandsById.get(input.CommandId) : undefined;
    const candidates = input.CommandId ? (byId ? [byId] : []) : this.commandsById.values();
    for (const command of candidates) {
      if (now < command.visibleAt) continue;
      for (const inv of command.invocations) {
        if (input.InstanceId && inv.instanceId !== input.InstanceId) continue;
        rows.push({ command, inv });
      }
    }
    const filtered = rows.filter(({ command, inv }) =>
      (input.Filters ?? []).every((f) => {
        if (f.key === 'Status') return statusOfDetails[inv.details] === f.value;
        if (f.key === 'DocumentName') return command.documentName === f.value;
        if (f.key === 'InvokedAfter') return command.requestedAt >= new Date(f.value ?? '');
        if (f.key === 'InvokedBefore') return command.requestedAt <= new Date(f.value ?? '');
        return fail('InvalidFilterKey', `The filter key ${f.key} is not supported by the simulator.`);
      }),
    );
    const { page, nextToken } = paginate(filtered, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: 50,
      min: 1,
      max: 50,
      badTokenCode: 'InvalidNextToken',
      badSizeCode: 'ValidationException',
    });
    return {
      CommandInvocations: page.map(({ command, inv }) => {
        const finished = terminal.has(inv.details);
        return {
          CommandId: command.id,
          InstanceId: inv.instanceId,
          InstanceName: '',
          Comment: command.comment,
          DocumentName: command.documentName,
          DocumentVersion: '$DEFAULT',
          RequestedDateTime: command.requestedAt,
          Status: statusOfDetails[inv.details],
          StatusDetails: inv.details,
          TraceOutput: '',
          StandardOutputUrl: '',
          StandardErrorUrl: '',
          ...(input.Details
            ? {
                CommandPlugins: [
                  {
                    Name: 'aws:runShellScript',
                    // Plugins have no Delayed status: a delayed invocation's plugin is still pending.
                    Status:
                      inv.details === 'Delayed'
                        ? 'Pending'
                        : (statusOfDetails[inv.details] as CommandPluginStatus),
                    StatusDetails: inv.details,
                    ResponseCode: inv.responseCode,
                    ...(inv.startedAt ? { ResponseStartDateTime: inv.startedAt } : {}),
                    ...(inv.endedAt ? { ResponseFinishDateTime: inv.endedAt } : {}),
                    Output: finished
                      ? `${inv.stdout}${inv.stderr ? `\n----------ERROR-------\n${inv.stderr}` : ''}`.slice(
                          0,
                          maxPluginOutput,
                        )
                      : '',
                    StandardOutputUrl: '',
                    StandardErrorUrl: '',
                  },
                ],
              }
            : {}),
          ServiceRole: '',
          NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: 'Command' },
          CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
        } satisfies CommandInvocation;
      }),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private listCommands(input: ListCommandsRequest): { Commands: Command[]; NextToken?: string } {
    let commands: SimCommand[];
    if (input.CommandId) {
      const one = this.commandsById.get(input.CommandId);
      if (!one) fail('InvalidCommandId', '');
      commands = [one];
    } else commands = [...this.commandsById.values()].reverse();
    if (input.InstanceId)
      commands = commands.filter((c) => c.invocations.some((i) => i.instanceId === input.InstanceId));
    commands = commands.filter((c) =>
      (input.Filters ?? []).every((f) => {
        if (f.key === 'Status') return c.status === f.value;
        if (f.key === 'DocumentName') return c.documentName === f.value;
        if (f.key === 'InvokedAfter') return c.requestedAt >= new Date(f.value ?? '');
        if (f.key === 'InvokedBefore') return c.requestedAt <= new Date(f.value ?? '');
        return fail('InvalidFilterKey', `The filter key ${f.key} is not supported by the simulator.`);
      }),
    );
    const { page, nextToken } = paginate(commands, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: 50,
      min: 1,
      max: 50,
      badTokenCode: 'InvalidNextToken',
      badSizeCode: 'ValidationException',
    });
    return {
      Commands: page.map((c) => this.commandOutput(c)),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private describeInstanceInformation(input: DescribeInstanceInformationRequest): {
    InstanceInformationList: InstanceInformation[];
    NextToken?: string;
  } {
    // Registered agents: online ones, and those whose connection is lost (PingStatus ConnectionLost).
    let ids = this.ec2
      .instanceIds(() => true)
      .filter((id) => this.reachable(id) || (this.connectionLost.has(id) && this.registered.has(id)));
    const wanted = [
      ...(input.InstanceInformationFilterList ?? [])
        .filter((f) => f.key === 'InstanceIds')
        .flatMap((f) => f.valueSet ?? []),
      ...(input.Filters ?? []).filter((f) => f.Key === 'InstanceIds').flatMap((f) => f.Values ?? []),
    ];
    if (wanted.length) ids = ids.filter((id) => wanted.includes(id));
    for (const f of input.Filters ?? []) {
      if (f.Key?.startsWith('tag:')) {
        const key = f.Key.slice(4);
        ids = ids.filter((id) => (f.Values ?? []).includes(this.ec2.instanceTags(id).get(key) ?? '\u0000'));
      }
    }
    const { page, nextToken } = paginate(ids, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: 50,
      min: 5,
      max: 50,
      badTokenCode: 'InvalidNextToken',
      badSizeCode: 'ValidationException',
    });
    return {
      InstanceInformationList: page.map((id) => ({
        InstanceId: id,
        PingStatus: this.connectionLost.has(id) ? 'ConnectionLost' : 'Online',
        LastPingDateTime: this.ctx.clock.date(),
        AgentVersion: '3.3.0.0',
        IsLatestVersion: true,
        PlatformType: 'Linux',
        PlatformName: 'Amazon Linux',
        PlatformVersion: '2023',
        ResourceType: 'EC2Instance',
        ComputerName: `ip-${id}.ec2.internal`,
      })),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private emitInvocation(command: SimCommand, inv: Invocation): void {
    this.ctx.emit(
      this.ctx.envelope(
        'aws.ssm',
        'EC2 Command Invocation Status-change Notification',
        [`arn:aws:ec2:${this.ctx.region}:${this.ctx.accountId}:instance/${inv.instanceId}`],
        {
          'command-id': command.id,
          'document-name': command.documentName,
          'instance-id': inv.instanceId,
          'requested-date-time': command.requestedAt.toISOString(),
          status: statusOfDetails[inv.details],
        },
      ),
    );
  }

  private emitCommand(command: SimCommand): void {
    this.ctx.emit(
      this.ctx.envelope(
        'aws.ssm',
        'EC2 Command Status-change Notification',
        command.invocations.map(
          (i) => `arn:aws:ec2:${this.ctx.region}:${this.ctx.accountId}:instance/${i.instanceId}`,
        ),
        {
          'command-id': command.id,
          'document-name': command.documentName,
          'expire-after': new Date(
            command.requestedAt.getTime() + command.timeoutSeconds * 1000,
          ).toISOString(),
          parameters: command.parameters,
          'requested-date-time': command.requestedAt.toISOString(),
          status: command.status,
        },
      ),
    );
  }

  // ---------------------------------------------------------------- Parameter Store

  private parameterOutput(p: StoredParameter): Parameter {
    return {
      Name: p.name,
      Type: p.type,
      Value: p.value,
      Version: p.version,
      LastModifiedDate: p.lastModified,
      ARN: `arn:aws:ssm:${this.ctx.region}:${this.ctx.accountId}:parameter/${p.name.replace(/^\//, '')}`,
      DataType: 'text',
    };
  }

  private putParameter(input: PutParameterRequest): { Version: number; Tier: 'Standard' } {
    const name = input.Name;
    if (!name)
      validation(
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null",
      );
    if (input.Value === undefined)
      validation(
        "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null",
      );
    const existing = this.parameters.get(name);
    if (existing && !input.Overwrite) {
      fail(
        'ParameterAlreadyExists',
        'The parameter already exists. To overwrite this value, set the overwrite option in the request to true.',
      );
    }
    const type = input.Type ?? existing?.type ?? 'String';
    const stored: StoredParameter = {
      name,
      type,
      value: input.Value,
      version: (existing?.version ?? 0) + 1,
      lastModified: this.ctx.clock.date(),
      ...(input.Description !== undefined ? { description: input.Description } : {}),
    };
    this.parameters.set(name, stored);
    return { Version: stored.version, Tier: 'Standard' };
  }

  private getParameter(input: GetParameterRequest): { Parameter: Parameter } {
    const p = this.parameters.get(input.Name ?? '');
    if (!p) fail('ParameterNotFound', `Parameter ${input.Name} not found.`);
    return { Parameter: this.parameterOutput(p) };
  }

  private getParameters(input: GetParametersRequest): {
    Parameters: Parameter[];
    InvalidParameters: string[];
  } {
    const names = input.Names ?? [];
    return {
      Parameters: names.flatMap((n) => {
        const p = this.parameters.get(n);
        return p ? [this.parameterOutput(p)] : [];
      }),
      InvalidParameters: names.filter((n) => !this.parameters.has(n)),
    };
  }

  private getParametersByPath(input: GetParametersByPathRequest): {
    Parameters: Parameter[];
    NextToken?: string;
  } {
    const path = input.Path ?? '';
    if (!path.startsWith('/')) validation(`The parameter path ${path} must begin with a forward slash (/)`);
    const prefix = path.endsWith('/') ? path : `${path}/`;
    const matching = [...this.parameters.values()]
      .filter(
        (p) => p.name.startsWith(prefix) && (input.Recursive || !p.name.slice(prefix.length).includes('/')),
      )
      .sort((a, b) => a.name.localeCompare(b.name));
    const { page, nextToken } = paginate(matching, {
      maxResults: input.MaxResults,
      nextToken: input.NextToken,
      defaultSize: 10,
      min: 1,
      max: 10,
      badTokenCode: 'InvalidNextToken',
      badSizeCode: 'ValidationException',
    });
    return {
      Parameters: page.map((p) => this.parameterOutput(p)),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  }

  private deleteParameter(input: DeleteParameterRequest): object {
    if (!this.parameters.delete(input.Name ?? ''))
      fail('ParameterNotFound', `Parameter ${input.Name} not found.`);
    return {};
  }
}
