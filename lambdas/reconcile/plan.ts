import { heldStates, type VolumeRecord, VolumeState } from '../shared/model.js';
import type { PendingCommand } from '../shared/steps.js';

/**
 * The kinds of drift reconcile repairs, each counted as a metric (`Reconcile<Kind>`):
 * - `staleClaim`: CLAIMED/DETACHING/ATTACHING older than the acquire bound with no running acquire;
 * - `terminatedHolder`: IN_USE/RELEASING whose instance is terminated (or unknown to EC2);
 * - `untracked`: an EC2 volume tagged with the pool that the table does not know, and that Volsd provably
 *   created (its creation record names it, or names its creation tag: see {@link provenanceOf}); one
 *   it cannot prove is foreign: reported ({@link RepairPlan.foreign}), never touched;
 * - `missing`: a table entry whose volume EC2 no longer has;
 * - `strandedPoolVolume`: IDLE/SYNCING/CREATING off a live worker (its worker was replaced), or IDLE on a
 *   worker that is not its recorded holder;
 * - `pendingLaunch`: an instance of a served group in Pending:Wait with no running acquire;
 * - `errorVolume`: an ERROR volume, resolved by what EC2 shows;
 * - `unfinishedRetire`: a RETIRING volume whose delete never happened.
 */
export const repairKinds = [
  'pendingLaunch',
  'staleClaim',
  'terminatedHolder',
  'missing',
  'errorVolume',
  'strandedPoolVolume',
  'untracked',
  'unfinishedRetire',
] as const;
export type RepairKind = (typeof repairKinds)[number];

/**
 * What a repair does:
 * - `remount`: the volume is still on a live worker: Volsd-Mount there, then IDLE held by that worker;
 * - `toPool`: SYNCING without holder (or held by the worker it is attached to), for replenish to adopt;
 * - `dispose`: as release would: delete (policy `delete`) or back to the pool for a full resync (`recycle`);
 * - `forget`: the volume is gone: ERROR if need be, then out of the table;
 * - `adopt`: register an untracked volume as SYNCING (held by the worker it is on, if any);
 * - `adoptInUse`: register an untracked volume as IN_USE by the live instance it is attached to;
 * - `delete`: an untracked volume that cannot serve (EC2 state `error`, or outside the pool's AZs);
 * - `setHolder`: an IDLE volume on a live worker that is not its recorded holder;
 * - `replenish`: a SYNCING/CREATING volume waiting for adoption: ask for a replenish;
 * - `retire`: delete and forget (after an unmount on the worker, or a forced detach);
 * - `complete`: CompleteLifecycleAction of a Pending:Wait instance (by instance id).
 */
export type RepairAction =
  | 'remount'
  | 'toPool'
  | 'dispose'
  | 'forget'
  | 'adopt'
  | 'adoptInUse'
  | 'delete'
  | 'setHolder'
  | 'replenish'
  | 'retire'
  | 'complete';

/** One planned repair and, once run, how it went. */
export interface Repair {
  kind: RepairKind;
  action: RepairAction;
  why: string;
  volumeId?: string;
  /** The volume's holder (an instance) or the Pending:Wait instance. */
  instanceId?: string;
  az?: string;
  /** Table state when planned: a repair whose volume moved on meanwhile is skipped. */
  from?: VolumeState;
  /**
   * The item's version when planned (read from the item, not the index): the repair acts on the item
   * only at this version, so nothing it decided on can have changed underneath.
   */
  version?: number;
  /** The worker that keeps or gets the volume (remount, adopt, setHolder, toPool) or unmounts it (retire). */
  workerId?: string;
  /** Detach before finishing: forced (from a dead or wrong instance) or after the worker unmounted it. */
  detach?: 'force' | 'afterUnmount';
  /** `adopt`/`adoptInUse` proven by a creation tag: the record to bind the volume id to. */
  creationKey?: string;
  /** `complete`: the result, the group and the hook. */
  result?: 'CONTINUE' | 'ABANDON';
  groupName?: string;
  hookName?: string;
  command?: PendingCommand;
  commandOk?: boolean;
  status?: 'waiting' | 'done' | 'failed' | 'skipped';
  note?: string;
}

/** An instance as EC2 describes it; absent from {@link Facts.instances} means EC2 does not know it. */
export interface InstanceFact {
  instanceId: string;
  state: string;
  /** Tagged `volsd:role=worker` with the pool. */
  worker: boolean;
  az?: string;
  /** Epoch milliseconds. */
  launchedAt?: number;
}

/** A pool volume as EC2 describes it (`deleting` and `deleted` ones are left out: they are gone). */
export interface Ec2VolumeFact {
  volumeId: string;
  az: string;
  state: string;
  /** Epoch milliseconds. */
  createdAt: number;
  /** Its `volsd:role` tag, if any. */
  role?: string;
  /** Its `volsd:creation` tag (the nonce of the creation record Volsd wrote before creating it), if any. */
  creation?: string;
  /** Its attachment unless detached. */
  attachment?: { instanceId: string; state: string };
}

/** An instance of a served group waiting in Pending:Wait. */
export interface PendingLaunchFact {
  instanceId: string;
  groupName: string;
  az?: string;
  /** Volsd's launch hook of the group, when it can be told. */
  hookName?: string;
}

/** A creation Volsd recorded in the table before CreateVolume (`VolumeRepository.openCreation`). */
export interface CreationFact {
  key: string;
  az: string;
  nonce: string;
  /** Epoch milliseconds. */
  createdAt: number;
  /** The volume CreateVolume returned, once the creator recorded it. */
  volumeId?: string;
}

/** Everything reconcile compares, gathered by the `scan` step. */
export interface Facts {
  /** Epoch milliseconds. */
  now: number;
  pool: { name: string; azs: string[] };
  records: VolumeRecord[];
  volumes: Map<string, Ec2VolumeFact>;
  instances: Map<string, InstanceFact>;
  /** Names of the running acquire executions; undefined when the acquire state machine is not known. */
  runningAcquires?: string[];
  pendingLaunches: PendingLaunchFact[];
  /** The pool's creation records: what proves a volume is Volsd's. */
  creations: CreationFact[];
}

/** How cautious a run is. */
export interface ReconcileBounds {
  /** A claim older than this with no running acquire is stale (the acquire state machine's timeout). */
  claimMaxAgeSeconds: number;
  /** Records, volumes and launches younger than this are left alone: a workflow may be on them. */
  graceSeconds: number;
  /** At most this many repairs per run; the rest wait for the next. */
  maxRepairs: number;
}

/** Defaults of {@link ReconcileBounds}. */
export const defaultBounds: ReconcileBounds = { claimMaxAgeSeconds: 1800, graceSeconds: 300, maxRepairs: 25 };

/** What the plan found. */
export interface RepairPlan {
  repairs: Repair[];
  /** Repairs found (before the per-run bound). */
  found: number;
  /** Drift seen that no repair resolves safely (logged for an operator). */
  unresolved: string[];
  /** Volumes tagged with the pool that Volsd cannot prove it created: reported, left alone. */
  foreign: ForeignVolumeFact[];
  /** Keys of creation records that prove nothing any more (their volume is gone, or never came). */
  staleCreations: string[];
}

/** A volume tagged with the pool that is not provably Volsd's. */
export interface ForeignVolumeFact {
  volumeId: string;
  az: string;
  state: string;
  attachedTo?: string;
  why: string;
}

/**
 * A creation tag is taken only for a volume created at most this long before its record (the clocks of
 * Lambda and EC2 differ by far less)...
 */
export const creationSkewMs = 5 * 60_000;
/** ...and at most this long after it (a creating step's retries end well within it). */
export const creationWindowMs = 60 * 60_000;

/** Whether Volsd provably created the volume, and by which record. */
export type Provenance =
  | { proven: true; creationKey: string; bind: boolean }
  | { proven: false; why: string };

/**
 * Provenance of a volume the table does not know. Proven when a creation record names its id (written by
 * the creator right after CreateVolume, or by an earlier adoption: an id cannot be forged). Otherwise,
 * when the creator crashed between CreateVolume and recording the id, by its `volsd:creation` tag: the
 * tag must name a record of its AZ that names no volume yet, the volume must have been created within
 * that record's window (an existing volume someone tags now was created before the record), and it must
 * be the only volume carrying that tag (a copy of the tag of Volsd's own volume makes two: neither is
 * taken). Anything else is foreign. Tagging rights alone can forge none of these: the nonce is random,
 * written only by Volsd's roles, and proves at most one volume, for a bounded time.
 */
export function provenanceOf(v: Ec2VolumeFact, facts: Facts): Provenance {
  const byId = facts.creations.find((c) => c.volumeId === v.volumeId);
  if (byId) return { proven: true, creationKey: byId.key, bind: false };
  if (!v.creation) return { proven: false, why: 'not created by Volsd: no creation record names it' };
  const record = facts.creations.find((c) => c.nonce === v.creation);
  if (!record) return { proven: false, why: 'its creation tag names no creation record' };
  if (record.volumeId)
    return { proven: false, why: `its creation tag names the record of ${record.volumeId}` };
  if (record.az !== v.az) return { proven: false, why: `its creation record is for ${record.az}` };
  if (v.createdAt < record.createdAt - creationSkewMs || v.createdAt > record.createdAt + creationWindowMs)
    return { proven: false, why: 'created outside the window of its creation record' };
  let carriers = 0;
  for (const other of facts.volumes.values()) if (other.creation === v.creation) carriers++;
  if (carriers !== 1) return { proven: false, why: `${carriers} volumes carry its creation tag` };
  return { proven: true, creationKey: record.key, bind: true };
}

const liveStates = new Set(['pending', 'running']);

/**
 * Compares the table with EC2 and plans the repairs, most urgent kinds first (instances waiting, then
 * claims, then money leaking), at most `bounds.maxRepairs`. Pure: the same facts give the same plan.
 */
export function planRepairs(
  facts: Facts,
  bounds: ReconcileBounds,
  failureResult: 'CONTINUE' | 'ABANDON',
): RepairPlan {
  const out: Repair[] = [];
  const unresolved: string[] = [];
  const foreign: ForeignVolumeFact[] = [];
  const instance = (id: string | undefined) => (id ? facts.instances.get(id) : undefined);
  const gone = (id: string) => {
    const i = facts.instances.get(id);
    return !i || i.state === 'terminated';
  };
  const live = (id: string) => liveStates.has(facts.instances.get(id)?.state ?? '');
  const liveWorker = (id: string) => {
    const i = facts.instances.get(id);
    return i?.worker === true && i.state === 'running';
  };
  const acquireRunning = (id: string | undefined) =>
    id !== undefined && (facts.runningAcquires ?? []).some((name) => name.includes(id));
  const ageSeconds = (iso: string | undefined) => {
    const t = iso ? Date.parse(iso) : Number.NaN;
    return Number.isNaN(t) ? Number.POSITIVE_INFINITY : (facts.now - t) / 1000;
  };
  const known = new Set(facts.records.map((r) => r.volumeId));

  for (const r of facts.records) {
    const v = facts.volumes.get(r.volumeId);
    const settled = ageSeconds(r.updatedAt) >= bounds.graceSeconds;
    const base = {
      volumeId: r.volumeId,
      az: r.az,
      from: r.state,
      version: r.version,
      ...(r.holder ? { instanceId: r.holder } : {}),
    };
    if (!v) {
      if (settled && !(heldStates.includes(r.state) && acquireRunning(r.holder))) {
        out.push({ ...base, kind: 'missing', action: 'forget', why: `EC2 has no volume ${r.volumeId}` });
      }
      continue;
    }
    if (v.state === 'creating') continue;
    const at = v.attachment;
    const onLiveWorker = at?.state === 'attached' && liveWorker(at.instanceId);
    switch (r.state) {
      case VolumeState.Claimed:
      case VolumeState.Detaching:
      case VolumeState.Attaching: {
        const claimAge = ageSeconds(r.claimedAt ?? r.updatedAt);
        if (claimAge < bounds.claimMaxAgeSeconds || acquireRunning(r.holder)) break;
        const why = `${r.state} for ${r.holder ?? '-'} since ${Math.round(claimAge)} s, no acquire running`;
        if (onLiveWorker && at)
          out.push({ ...base, kind: 'staleClaim', action: 'remount', workerId: at.instanceId, why });
        else
          out.push({
            ...base,
            kind: 'staleClaim',
            action: 'toPool',
            ...(at ? { detach: 'force' as const } : {}),
            why,
          });
        break;
      }
      case VolumeState.InUse:
      case VolumeState.Releasing: {
        if (!r.holder || !gone(r.holder) || !settled) break;
        if (onLiveWorker) {
          unresolved.push(`${r.volumeId} is ${r.state} for gone ${r.holder} but on worker ${at?.instanceId}`);
          break;
        }
        out.push({
          ...base,
          kind: 'terminatedHolder',
          action: 'dispose',
          ...(at ? { detach: 'force' as const } : {}),
          why: `${r.state} for ${r.holder}, which is ${instance(r.holder)?.state ?? 'unknown to EC2'}`,
        });
        break;
      }
      case VolumeState.Idle: {
        if (onLiveWorker && at) {
          if (r.holder !== at.instanceId && settled) {
            out.push({
              ...base,
              kind: 'strandedPoolVolume',
              action: 'setHolder',
              workerId: at.instanceId,
              why: `IDLE on worker ${at.instanceId} but recorded for ${r.holder ?? 'no one'}`,
            });
          }
          break;
        }
        if (!settled) break;
        if (!at || !live(at.instanceId)) {
          out.push({
            ...base,
            kind: 'strandedPoolVolume',
            action: 'toPool',
            ...(at ? { detach: 'force' as const } : {}),
            why: `IDLE but ${at ? `on ${at.instanceId} (${instance(at.instanceId)?.state ?? 'gone'})` : 'detached'}; worker ${r.holder ?? '-'} is ${instance(r.holder)?.state ?? 'gone'}`,
          });
        } else if (!instance(at.instanceId)?.worker) {
          unresolved.push(`${r.volumeId} is IDLE but attached to live non-worker ${at.instanceId}`);
        }
        break;
      }
      case VolumeState.Syncing:
      case VolumeState.Creating: {
        if (!settled || (at && live(at.instanceId))) {
          if (at && live(at.instanceId) && !instance(at.instanceId)?.worker && settled)
            unresolved.push(`${r.volumeId} is ${r.state} but attached to live non-worker ${at.instanceId}`);
          break;
        }
        out.push({
          ...base,
          kind: 'strandedPoolVolume',
          action: 'replenish',
          ...(at ? { detach: 'force' as const } : {}),
          why: `${r.state} and ${at ? `on ${at.instanceId}, which is ${instance(at.instanceId)?.state ?? 'gone'}` : 'detached'}: waiting for a replenish`,
        });
        break;
      }
      case VolumeState.Retiring: {
        if (!settled) break;
        if (onLiveWorker && at) {
          out.push({
            ...base,
            kind: 'unfinishedRetire',
            action: 'retire',
            workerId: at.instanceId,
            detach: 'afterUnmount',
            why: 'RETIRING but still on its worker',
          });
        } else {
          out.push({
            ...base,
            kind: 'unfinishedRetire',
            action: 'retire',
            ...(at ? { detach: 'force' as const } : {}),
            why: `RETIRING but not deleted (${v.state})`,
          });
        }
        break;
      }
      case VolumeState.Error: {
        if (!settled) break;
        const why = `ERROR (${r.reason ?? 'no reason'}); EC2 says ${v.state}${at ? ` on ${at.instanceId}` : ''}`;
        if (v.state === 'error') {
          out.push({
            ...base,
            kind: 'errorVolume',
            action: 'retire',
            ...(at ? { detach: 'force' as const } : {}),
            why,
          });
        } else if (onLiveWorker && at) {
          out.push({ ...base, kind: 'errorVolume', action: 'toPool', workerId: at.instanceId, why });
        } else if (!at || !live(at.instanceId)) {
          out.push({
            ...base,
            kind: 'errorVolume',
            action: 'toPool',
            ...(at ? { detach: 'force' as const } : {}),
            why,
          });
        } else if (!instance(at.instanceId)?.worker) {
          unresolved.push(`${r.volumeId} is ERROR and attached to live non-worker ${at.instanceId}`);
        }
        break;
      }
    }
  }

  const holdersInTable = new Set(
    facts.records.filter((r) => r.holder && heldStates.includes(r.state)).map((r) => r.holder),
  );
  for (const v of facts.volumes.values()) {
    if (known.has(v.volumeId)) continue;
    if (v.role !== undefined && v.role !== 'volume') continue;
    if (v.state === 'creating' || (facts.now - v.createdAt) / 1000 < bounds.graceSeconds) continue;
    const at = v.attachment;
    const provenance = provenanceOf(v, facts);
    if (!provenance.proven) {
      // Someone else's volume with the pool's tags: adopting it would wipe it (sync --delete) or delete it.
      foreign.push({
        volumeId: v.volumeId,
        az: v.az,
        state: v.state,
        ...(at ? { attachedTo: at.instanceId } : {}),
        why: provenance.why,
      });
      continue;
    }
    const base = {
      kind: 'untracked' as const,
      volumeId: v.volumeId,
      az: v.az,
      ...(provenance.bind ? { creationKey: provenance.creationKey } : {}),
    };
    if (v.state === 'error' || !facts.pool.azs.includes(v.az)) {
      if (at)
        unresolved.push(
          `${v.volumeId} cannot serve (${v.state}, ${v.az}) but is attached to ${at.instanceId}`,
        );
      else
        out.push({
          ...base,
          action: 'delete',
          why: `not in the table and cannot serve (${v.state}, ${v.az})`,
        });
    } else if (!at) {
      out.push({ ...base, action: 'adopt', why: 'not in the table, detached' });
    } else if (at.state === 'attached' && liveWorker(at.instanceId)) {
      out.push({
        ...base,
        action: 'adopt',
        workerId: at.instanceId,
        why: `not in the table, on worker ${at.instanceId}`,
      });
    } else if (!live(at.instanceId)) {
      out.push({
        ...base,
        action: 'adopt',
        detach: 'force',
        why: `not in the table, on dead ${at.instanceId}`,
      });
    } else if (
      !instance(at.instanceId)?.worker &&
      !holdersInTable.has(at.instanceId) &&
      at.state === 'attached'
    ) {
      out.push({
        ...base,
        action: 'adoptInUse',
        instanceId: at.instanceId,
        why: `not in the table, in use by ${at.instanceId}`,
      });
    } else {
      unresolved.push(`${v.volumeId} is not in the table and ${at.state} on ${at.instanceId}`);
    }
  }

  for (const p of facts.pendingLaunches) {
    const launchedAt = instance(p.instanceId)?.launchedAt;
    const waited = launchedAt === undefined ? Number.POSITIVE_INFINITY : (facts.now - launchedAt) / 1000;
    // Without the acquire's executions to look at, only the acquire's own bound tells it is lost.
    const bound = facts.runningAcquires ? bounds.graceSeconds : bounds.claimMaxAgeSeconds;
    if (waited < bound || acquireRunning(p.instanceId)) continue;
    if (!p.hookName) {
      unresolved.push(
        `${p.instanceId} waits in Pending:Wait of ${p.groupName}, whose Volsd launch hook is unknown`,
      );
      continue;
    }
    const served = facts.records.some(
      (r) =>
        r.holder === p.instanceId &&
        r.state === VolumeState.InUse &&
        facts.volumes.get(r.volumeId)?.attachment?.instanceId === p.instanceId,
    );
    out.push({
      kind: 'pendingLaunch',
      action: 'complete',
      instanceId: p.instanceId,
      ...(p.az ? { az: p.az } : {}),
      groupName: p.groupName,
      hookName: p.hookName,
      result: served ? 'CONTINUE' : failureResult,
      why: served
        ? 'in Pending:Wait with its volume in use: the acquire ended without completing the action'
        : `in Pending:Wait for ${Math.round(waited)} s with no acquire running`,
    });
  }

  const order = (r: Repair) => repairKinds.indexOf(r.kind);
  const sorted = out.sort((a, b) => order(a) - order(b));
  return {
    repairs: sorted.slice(0, bounds.maxRepairs),
    found: sorted.length,
    unresolved,
    foreign,
    staleCreations: staleCreations(facts, bounds),
  };
}

/**
 * Creation records that prove nothing any more: bound to a volume that neither EC2 (with the pool's
 * tag) nor the table knows, or unbound, past their window, with no volume carrying their tag. Only
 * records older than the grace: a volume just created may not be visible to DescribeVolumes yet.
 */
function staleCreations(facts: Facts, bounds: ReconcileBounds): string[] {
  const known = new Set(facts.records.map((r) => r.volumeId));
  const tagged = new Set([...facts.volumes.values()].flatMap((v) => (v.creation ? [v.creation] : [])));
  const out: string[] = [];
  for (const c of facts.creations) {
    const age = facts.now - c.createdAt;
    if (age < bounds.graceSeconds * 1000) continue;
    if (c.volumeId) {
      if (!facts.volumes.has(c.volumeId) && !known.has(c.volumeId)) out.push(c.key);
    } else if (age > creationWindowMs + bounds.graceSeconds * 1000 && !tagged.has(c.nonce)) out.push(c.key);
  }
  return out;
}
