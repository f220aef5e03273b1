import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { type VolumeRecord, VolumeState } from '../lambdas/shared/model.js';
import { poolTag, Role, roleTag } from '../lambdas/shared/tags.js';
import { webMountPath } from './readiness.js';
import type { Sandbox } from './runtime.js';
import { bucketTreeNow, mountedVolumes, servedTree, treeDifferences } from './truth.js';

/** One broken invariant, with what shows it. */
export interface Violation {
  invariant: string;
  detail: string;
}

/** The invariants checked after a scenario, against ground truth: the simulator's EC2 state, the host trees, the table. */
export const invariantNames = [
  'noSharedVolume',
  'oneVolumePerInstance',
  'noLeakedVolume',
  'tableMatchesEc2',
  'noOrphanClaim',
  'lifecycleCompletedInTime',
  'inServiceHasCurrentVolume',
  'currentAtReady',
  'noFileOutsideMountRoot',
] as const;

export interface InvariantReport {
  checked: string[];
  violations: Violation[];
}

/** Reads a volume's generation marker from its data (what the instance really serves). */
export function volumeGeneration(sandbox: Sandbox, volumeId: string): number | undefined {
  try {
    const text = readFileSync(
      join(sandbox.cloud.volumeDataDir(volumeId), '.volsd', 'generation'),
      'utf8',
    ).trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checks every invariant once the sandbox has settled. EC2 (the simulator) and the files are the
 * truth; the table is checked against them, never the other way round.
 */
export async function checkInvariants(sandbox: Sandbox): Promise<InvariantReport> {
  const violations: Violation[] = [];
  const add = (invariant: string, detail: string) => violations.push({ invariant, detail });
  const state = sandbox.cloud.snapshotState();
  const pool = sandbox.options.pool;
  const records = await sandbox.repo.listVolumes({ pool });
  const byId = new Map<string, VolumeRecord>(records.map((r) => [r.volumeId, r]));
  // A volume being deleted is on its way out (its record is already forgotten): not a leak.
  const poolVolumes = state.volumes.filter(
    (v) => v.tags[poolTag] === pool && v.state !== 'deleted' && v.state !== 'deleting',
  );
  const instances = new Map(state.instances.map((i) => [i.instanceId, i]));
  const isWorker = (id: string) => instances.get(id)?.tags[roleTag] === Role.Worker;

  // An instance never holds two pool volumes (EC2's attachments).
  const holders = new Map<string, string[]>();
  for (const v of poolVolumes) {
    const at = v.attachment;
    if (!at || at.state === 'detached' || isWorker(at.instanceId)) continue;
    const list = holders.get(at.instanceId) ?? [];
    list.push(v.volumeId);
    holders.set(at.instanceId, list);
  }
  for (const [instanceId, volumes] of holders) {
    if (volumes.length > 1) add('oneVolumePerInstance', `${instanceId} has ${volumes.join(', ')} attached`);
  }
  for (const detail of sharedVolumes(sandbox)) add('noSharedVolume', detail);
  for (const v of poolVolumes) {
    const at = v.attachment;
    const r = byId.get(v.volumeId);
    if (!r) {
      add('noLeakedVolume', `EC2 volume ${v.volumeId} (${v.state}) is not in the table`);
      continue;
    }
    if (!at || at.state === 'detached') {
      // Detached volumes are legitimate only on their way somewhere, which after settling means SYNCING
      // (waiting for the worker to adopt it) or ERROR (waiting for reconcile).
      if (r.state !== VolumeState.Syncing && r.state !== VolumeState.Error) {
        add('tableMatchesEc2', `${v.volumeId} is detached in EC2 but ${r.state} in the table`);
      }
      continue;
    }
    const instance = instances.get(at.instanceId);
    if (isWorker(at.instanceId)) {
      if (r.state !== VolumeState.Idle && r.state !== VolumeState.Syncing && r.state !== VolumeState.Error) {
        add('tableMatchesEc2', `${v.volumeId} is on worker ${at.instanceId} but ${r.state} in the table`);
      }
    } else if (r.state !== VolumeState.InUse || r.holder !== at.instanceId) {
      add(
        'tableMatchesEc2',
        `${v.volumeId} is attached to ${at.instanceId} (${instance?.state}) but table says ${r.state}/${r.holder ?? '-'}`,
      );
    }
  }
  const ec2Ids = new Set(poolVolumes.map((v) => v.volumeId));
  for (const r of records) {
    if (!ec2Ids.has(r.volumeId))
      add('tableMatchesEc2', `table volume ${r.volumeId} (${r.state}) does not exist in EC2`);
    if (
      r.state === VolumeState.Claimed ||
      r.state === VolumeState.Detaching ||
      r.state === VolumeState.Attaching
    ) {
      add('noOrphanClaim', `${r.volumeId} is ${r.state} for ${r.holder ?? '-'} with nothing running`);
    }
  }

  for (const a of state.lifecycleActions) {
    if (a.completedAt === undefined)
      add('lifecycleCompletedInTime', `${a.instanceId} ${a.transition} still waiting`);
    else if (a.timedOut)
      add('lifecycleCompletedInTime', `${a.instanceId} ${a.transition} timed out (${a.completedBy})`);
  }

  // Every InService instance serves what the bucket holds (its served tree against the bucket's, file
  // by file); and every instance served it from the moment it went InService (sandbox/readiness.ts).
  const bucket = bucketTreeNow(sandbox.s3.directory, sandbox.wiring.bucket);
  for (const g of state.groups) {
    if (g.name !== sandbox.wiring.groupName) continue;
    for (const member of g.instances) {
      if (member.lifecycleState !== 'InService') continue;
      if ((holders.get(member.instanceId) ?? []).length === 0) {
        add('inServiceHasCurrentVolume', `${member.instanceId} is InService without a volume`);
        continue;
      }
      const differences = treeDifferences(
        servedTree(sandbox.cloud.hostRoot(member.instanceId), webMountPath),
        bucket,
      );
      if (differences.length > 0)
        add(
          'inServiceHasCurrentVolume',
          `${member.instanceId} differs from the bucket: ${brief(differences)}`,
        );
    }
  }
  for (const r of sandbox.readiness.staleAtReady(sandbox.wiring.groupName)) {
    add(
      'currentAtReady',
      `${r.instanceId} went InService at ${r.at.toFixed(1)} s behind the bucket: ${brief(r.differences)}`,
    );
  }

  for (const where of filesOutsideMountRoots(sandbox)) add('noFileOutsideMountRoot', where);
  return { checked: [...invariantNames], violations };
}

const brief = (differences: string[]) =>
  differences.slice(0, 3).join(', ') + (differences.length > 3 ? ` and ${differences.length - 3} more` : '');

/**
 * Volumes reachable from two places, from the mounts in the host trees of the instances not yet
 * terminated and EC2's attachments: a volume mounted on two hosts, or mounted on one host while EC2 has
 * it attached to another. The table is not asked: it cannot even record such a state.
 */
export function sharedVolumes(sandbox: Sandbox): string[] {
  const out: string[] = [];
  const state = sandbox.cloud.snapshotState();
  const volumesDir = join(sandbox.rootDir, 'volumes');
  const mountedOn = new Map<string, { instanceId: string; points: string[] }[]>();
  // Hosts that serve: running sync workers and running members of a group that are InService. A mount
  // left on an instance on its way out (abandoned, terminating) is dead on AWS once the volume is detached:
  // it reads nothing, so it shares nothing.
  for (const i of state.instances) {
    if (i.state !== 'running') continue;
    const serving = i.tags[roleTag] === Role.Worker || i.autoScaling?.lifecycleState === 'InService';
    if (!serving) continue;
    for (const [volumeId, points] of mountedVolumes(sandbox.cloud.hostRoot(i.instanceId), volumesDir)) {
      mountedOn.set(volumeId, [...(mountedOn.get(volumeId) ?? []), { instanceId: i.instanceId, points }]);
    }
  }
  const attachments = new Map(state.volumes.map((v) => [v.volumeId, v.attachment]));
  for (const [volumeId, hosts] of mountedOn) {
    hosts.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
    const where = hosts.map((h) => `${h.instanceId} (${h.points.join(', ')})`);
    if (hosts.length > 1) out.push(`${volumeId} is mounted on ${where.join(' and ')}`);
    const at = attachments.get(volumeId);
    if (!at || at.state === 'detached') continue;
    for (const [i, h] of hosts.entries()) {
      if (h.instanceId !== at.instanceId)
        out.push(`${volumeId} is attached to ${at.instanceId} in EC2 but mounted on ${where[i]}`);
    }
  }
  return out;
}

/**
 * Walks every host tree without following links. A regular file is allowed only under the host's own
 * system paths (dev, proc, run, tmp, etc/volsd); a symlink only as a mount point into a volume's data. So
 * content written beside a mount, into an unmounted mount point, or through `..` shows up here. Volume
 * data dirs are checked for symlinks that escape the volume.
 */
export function filesOutsideMountRoots(sandbox: Sandbox): string[] {
  const out: string[] = [];
  const root = sandbox.rootDir;
  const volumesDir = resolve(root, 'volumes');
  // sys/: the simulator's /sys/block/<dev>/size of attached devices (the kernel's, never content).
  const systemPaths = ['dev/', 'proc/', 'run/', 'sys/', 'tmp/', 'etc/volsd/'];
  const list = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  for (const id of list(join(root, 'hosts'))) {
    const hostRoot = join(root, 'hosts', id);
    const walk = (dir: string) => {
      for (const name of list(dir)) {
        const path = join(dir, name);
        const rel = relative(hostRoot, path);
        const st = lstatSync(path);
        if (st.isSymbolicLink()) {
          if (rel.startsWith('dev/')) continue;
          const target = resolve(dir, readlinkSync(path));
          if (relative(volumesDir, target).startsWith('..'))
            out.push(`${id}: /${rel} links outside the volumes`);
        } else if (st.isDirectory()) {
          walk(path);
        } else if (!systemPaths.some((p) => rel.startsWith(p))) {
          out.push(`${id}: file /${rel} is outside any mount`);
        }
      }
    };
    walk(hostRoot);
  }
  for (const id of list(volumesDir)) {
    const base = resolve(volumesDir, id);
    const walk = (dir: string) => {
      for (const name of list(dir)) {
        const path = join(dir, name);
        const st = lstatSync(path);
        if (st.isSymbolicLink()) {
          const target = resolve(dir, readlinkSync(path));
          if (relative(base, target).startsWith('..'))
            out.push(`${id}: symlink ${relative(base, path)} escapes the volume`);
        } else if (st.isDirectory()) walk(path);
      }
    };
    walk(base);
  }
  return out;
}
