import { LaunchHistory } from '../../lambdas/shared/adaptive-sizing.js';
import { type VolumeRecord, VolumeState } from '../../lambdas/shared/model.js';
import { type PushRecord, PushRecords } from '../../lambdas/shared/push-records.js';
import { awsCall } from '../aws.js';
import { type CommandContext, type CommandResult, openAdminSession, type PoolSession } from '../context.js';
import { ClientError } from '../errors.js';
import { formatAge, renderPairs, renderTable, secondsSince } from '../format.js';
import { requireArn } from '../pool-config.js';
import { boundedExecutionName, startExecution } from '../workflow.js';

/** How many pushes `pushes` shows (newest first). */
export const pushesShown = 20;

/** `volumes`: the pool's volumes (optionally of one AZ and/or state). */
export async function volumes(ctx: CommandContext): Promise<CommandResult> {
  const { config, repo } = await openAdminSession(ctx);
  const list = await awsCall('dynamodb:Query', () =>
    repo.listVolumes({
      pool: config.pool,
      ...(ctx.args.az ? { az: ctx.args.az } : {}),
      ...(ctx.args.state ? { state: ctx.args.state } : {}),
    }),
  );
  // Volumes tagged with the pool that reconcile could not prove Volsd created (its last report): shown,
  // never managed. Not in a state of Volsd's, so a --state filter leaves them out.
  const foreign = ctx.args.state
    ? []
    : (await awsCall('dynamodb:GetItem', () => repo.getForeignVolumes(config.pool))).volumes.filter(
        (f) => !ctx.args.az || f.az === ctx.args.az,
      );
  const now = ctx.now();
  const rows = list.map((v) => {
    const age = secondsSince(v.createdAt, now);
    return [
      v.volumeId,
      v.az,
      v.state,
      v.holder ?? '',
      String(v.generation),
      age === undefined ? '' : formatAge(age),
    ];
  });
  for (const f of foreign) rows.push([f.volumeId, f.az, 'FOREIGN', f.attachedTo ?? '', '', '']);
  const text =
    rows.length === 0
      ? `no volumes in pool '${config.pool}'${ctx.args.az ? ` in ${ctx.args.az}` : ''}${ctx.args.state ? ` in state ${ctx.args.state}` : ''}\n`
      : renderTable(['VOLUME', 'AZ', 'STATE', 'HOLDER', 'GENERATION', 'AGE'], rows) +
        (foreign.length
          ? `FOREIGN: tagged with the pool but not created by Volsd (reconcile leaves them alone): ${foreign.map((f) => `${f.volumeId} (${f.why})`).join('; ')}\n`
          : '');
  return {
    data: [...list, ...foreign.map((f) => ({ ...f, ec2State: f.state, state: 'FOREIGN', foreign: true }))],
    text,
  };
}

/** Per-AZ counts of the `pool` view. */
export interface AzSummary {
  az: string;
  target: number;
  idle: number;
  /** Being brought into the pool: CREATING or SYNCING. */
  syncing: number;
  inUse: number;
  /** Moving between owners (CLAIMED, DETACHING, ATTACHING, RELEASING) or on the way out (RETIRING). */
  moving: number;
  error: number;
  total: number;
  byState: Partial<Record<VolumeState, number>>;
}

const movingStates: readonly VolumeState[] = [
  VolumeState.Claimed,
  VolumeState.Detaching,
  VolumeState.Attaching,
  VolumeState.Releasing,
  VolumeState.Retiring,
];

function summarize(az: string, target: number, list: readonly VolumeRecord[]): AzSummary {
  const byState: Partial<Record<VolumeState, number>> = {};
  for (const v of list) byState[v.state] = (byState[v.state] ?? 0) + 1;
  const count = (...states: readonly VolumeState[]) => states.reduce((n, s) => n + (byState[s] ?? 0), 0);
  return {
    az,
    target,
    idle: count(VolumeState.Idle),
    syncing: count(VolumeState.Creating, VolumeState.Syncing),
    inUse: count(VolumeState.InUse),
    moving: count(...movingStates),
    error: count(VolumeState.Error),
    total: list.length,
    byState,
  };
}

/**
 * `pool`: per AZ target, idle, syncing, in use; the current generation and the latest snapshot; when
 * adaptive sizing set the target, why (demand per past day, the bound that applied, at-rest cost).
 */
export async function pool(ctx: CommandContext): Promise<CommandResult> {
  const { config, repo, clients } = await openAdminSession(ctx);
  const record = await awsCall('dynamodb:GetItem', () => repo.getPool(config.pool));
  const recorded = await awsCall('dynamodb:GetItem', () =>
    new LaunchHistory(clients.doc, config.tableName).getDecision(config.pool),
  );
  // The last decision stays in the table after adaptive sizing is switched off or a deploy resets the
  // target: it explains the target only while the target is still the one it set.
  const decision = recorded?.target === record.targetIdlePerAz ? recorded : undefined;
  const list = await awsCall('dynamodb:Query', () => repo.listVolumes({ pool: config.pool }));
  const azs = [...new Set([...record.azs, ...list.map((v) => v.az)])].sort();
  const perAz = azs.map((az) =>
    summarize(
      az,
      record.azs.includes(az) ? record.targetIdlePerAz : 0,
      list.filter((v) => v.az === az),
    ),
  );
  const data = {
    pool: config.pool,
    region: config.region,
    generation: record.generation,
    targetIdlePerAz: record.targetIdlePerAz,
    targetDecision: decision ?? null,
    latestSnapshot: record.latestSnapshot ?? null,
    azs: perAz,
  };
  const snapshot = record.latestSnapshot
    ? `${record.latestSnapshot.snapshotId} (generation ${record.latestSnapshot.generation}, ${record.latestSnapshot.createdAt})`
    : 'none';
  const text =
    renderPairs([
      ['pool', config.pool],
      ['generation', record.generation],
      ['latest snapshot', snapshot],
      ...(decision
        ? ([
            [
              'target set by adaptive sizing',
              `${decision.target} per AZ at ${decision.decidedAt}: percentile of daily demand [${decision.demandPerDay.join(', ')}] = ${decision.demand}${decision.boundedBy ? `, bounded by ${decision.boundedBy}` : ''}; at rest $${decision.atRestDollarsPerMonth}/month of $${decision.budgetDollarsPerMonth}`,
            ],
          ] as [string, string][])
        : []),
    ]) +
    '\n' +
    renderTable(
      ['AZ', 'TARGET', 'IDLE', 'SYNCING', 'IN USE', 'MOVING', 'ERROR'],
      perAz.map((s) => [s.az, s.target, s.idle, s.syncing, s.inUse, s.moving, s.error].map(String)),
    );
  return { data, text };
}

/** The instances of a push that are not current, with why (the instance's error, else a volume's). */
function notCurrent(push: PushRecord): { instanceId: string; status: string; error: string }[] {
  return Object.entries(push.instances)
    .filter(([, outcome]) => outcome.status !== 'Success')
    .map(([instanceId, outcome]) => ({
      instanceId,
      status: outcome.status,
      error: outcome.error ?? outcome.volumes.find((v) => v.error)?.error ?? '',
    }))
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
}

/** `pushes`: the most recent pushes (and refused batches), newest first, with each instance's outcome. */
export async function pushes(ctx: CommandContext): Promise<CommandResult> {
  const { config, clients } = await openAdminSession(ctx);
  const records = new PushRecords(clients.doc, { tableName: config.tableName });
  const list = await awsCall('dynamodb:Query', () => records.listPushes(config.pool, pushesShown));
  if (list.length === 0) return { data: list, text: `no pushes recorded in pool '${config.pool}'\n` };
  const rows = list.map((p) => {
    const instances = Object.values(p.instances);
    const current = p.summary?.succeeded ?? instances.filter((o) => o.status === 'Success').length;
    const reached = p.summary?.targets ?? instances.length;
    const collected = p.completedAt !== undefined || instances.length > 0;
    return [
      String(p.generation),
      p.requestedAt,
      p.status,
      String(p.keyCount),
      collected ? `${current}/${reached}` : '',
      String(p.rejectedCount),
      p.commandId ?? '',
    ];
  });
  let out = renderTable(['GENERATION', 'REQUESTED', 'STATUS', 'KEYS', 'CURRENT', 'REFUSED', 'COMMAND'], rows);
  const failures = list.flatMap((p) => [
    ...(p.error ? [[String(p.generation), '(all)', p.status, p.error]] : []),
    ...notCurrent(p).map((f) => [String(p.generation), f.instanceId, f.status, f.error]),
  ]);
  if (failures.length > 0) {
    out += `\nnot current:\n${renderTable(['GENERATION', 'INSTANCE', 'STATUS', 'ERROR'], failures)}`;
  }
  return { data: list, text: out };
}

async function startPerAz(ctx: CommandContext, session: PoolSession) {
  const { config, repo, clients } = session;
  const arn = requireArn(config, 'replenishStateMachineArn', 'the replenish workflow');
  const record = await awsCall('dynamodb:GetItem', () => repo.getPool(config.pool));
  const stamp = ctx.now();
  const started: { az: string; executionArn: string }[] = [];
  for (const az of record.azs) {
    try {
      const execution = await startExecution(
        clients.sfn,
        arn,
        // A 32-character pool in a Local Zone would pass Step Functions' 80 characters.
        boundedExecutionName(`replenish-${config.pool}-${az}-admin-${stamp}`),
        {
          pool: config.pool,
          az,
          reason: 'admin',
        },
      );
      started.push({ az, executionArn: execution.executionArn });
    } catch (err) {
      // What did start still runs: say so, with the AZ that failed.
      const error = err as ClientError;
      if (started.length === 0) throw err;
      throw new ClientError(
        error.exitCode,
        error.code,
        `${error.message} (in ${az}; started before it: ${started.map((s) => `${s.az} ${s.executionArn}`).join(', ')})`,
        { ...error.details, az, started },
        { cause: err },
      );
    }
  }
  return started;
}

/** `replenish`: starts the replenish workflow in every AZ of the pool now. */
export async function replenish(ctx: CommandContext): Promise<CommandResult> {
  const session = await openAdminSession(ctx);
  const started = await startPerAz(ctx, session);
  return {
    data: { pool: session.config.pool, started },
    text: renderTable(
      ['AZ', 'EXECUTION'],
      started.map((s) => [s.az, s.executionArn]),
    ),
  };
}

async function startPoolWorkflow(
  ctx: CommandContext,
  key: 'snapshotStateMachineArn' | 'syncAllStateMachineArn',
  what: string,
  prefix: string,
): Promise<CommandResult> {
  const { config, clients } = await openAdminSession(ctx);
  const arn = requireArn(config, key, what);
  const execution = await startExecution(clients.sfn, arn, `${prefix}-${config.pool}-admin-${ctx.now()}`, {
    pool: config.pool,
    reason: 'admin',
  });
  return {
    data: { pool: config.pool, executionArn: execution.executionArn },
    text: `${what} started: ${execution.executionArn}\n`,
  };
}

/** `snapshot`: starts the pool's snapshot workflow (NotDeployed when the pool has none). */
export function snapshot(ctx: CommandContext): Promise<CommandResult> {
  return startPoolWorkflow(ctx, 'snapshotStateMachineArn', 'the snapshot workflow', 'snapshot');
}

/** `sync`: starts the pool's sync-all workflow (NotDeployed when the pool has none). */
export function sync(ctx: CommandContext): Promise<CommandResult> {
  return startPoolWorkflow(ctx, 'syncAllStateMachineArn', 'the sync-all workflow', 'sync');
}
