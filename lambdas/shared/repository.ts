import { randomBytes } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import {
  AssignmentConflict,
  ConcurrentModification,
  IllegalTransition,
  InvalidInput,
  NoIdleVolume,
  UnknownPool,
  VolumeHeldElsewhere,
  VolumeNotFound,
} from './errors.js';
import { GrowthRecords } from './growth.js';
import {
  type AssignmentRecord,
  allVolumeStates,
  canTransition,
  type PoolRecord,
  type VolumeRecord,
  VolumeState,
} from './model.js';
import { keys, tableSchema } from './table-schema.js';
import {
  azSchema,
  instanceIdSchema,
  parseOrThrow,
  poolNameSchema,
  snapshotIdSchema,
  volumeIdSchema,
} from './validate.js';

/** Points in `claimVolume` where a test can inject a crash (the real code never sets it). */
export type ClaimStep = 'afterAssignmentPut' | 'afterVolumeClaimed';

export interface RepositoryOptions {
  tableName: string;
  /** Clock for timestamps; tests pin it. */
  now?: () => Date;
  /** Test hook: called after each claim step; throwing simulates a crash there. */
  onClaimStep?: (step: ClaimStep) => void;
}

const isConditionFailure = (err: unknown): boolean =>
  err instanceof ConditionalCheckFailedException ||
  (err instanceof Error && err.name === 'ConditionalCheckFailedException');

const volumeStateSchema = z.enum(allVolumeStates as [VolumeState, ...VolumeState[]]);

/** Fields a transition may set or clear alongside the state. */
export interface TransitionChanges {
  holder?: string | null;
  device?: string | null;
  generation?: number;
  reason?: string | null;
  claimedAt?: string | null;
  untrusted?: boolean | null;
}

export interface TransitionRequest {
  volumeId: string;
  from: VolumeState;
  to: VolumeState;
  /** Version the caller read; omit to accept any version in state `from`. */
  expectedVersion?: number;
  /** When given, the write also requires the volume's holder to be this one. */
  expectedHolder?: string;
  set?: TransitionChanges;
  /**
   * The record as the caller just read it (its pool and AZ place the index key): saves the transition
   * its own read. The write stays conditional on the state (and holder, version), so a record that
   * changed since is ConcurrentModification all the same.
   */
  read?: VolumeRecord;
}

/**
 * The volume table's repository: every read and write of volume, assignment and pool items.
 * All writes that change a volume's state are conditional on its current state (and version when
 * given) and checked against the model's transition table first.
 */
export class VolumeRepository {
  private readonly tableName: string;
  private readonly now: () => Date;
  private readonly onClaimStep: (step: ClaimStep) => void;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    options: RepositoryOptions,
  ) {
    this.tableName = options.tableName;
    this.now = options.now ?? (() => new Date());
    this.onClaimStep = options.onClaimStep ?? (() => {});
  }

  private iso(): string {
    return this.now().toISOString();
  }

  // ---------------------------------------------------------------- pool

  /** Creates the pool record, or updates its AZs and target when it exists (generation is kept). */
  async putPool(input: { pool: string; azs: string[]; targetIdlePerAz: number }): Promise<PoolRecord> {
    const pool = parseOrThrow(poolNameSchema, input.pool, 'pool');
    const azs = parseOrThrow(z.array(azSchema).min(1), input.azs, 'azs');
    const target = parseOrThrow(z.number().int().min(0).max(1000), input.targetIdlePerAz, 'targetIdlePerAz');
    const result = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.pool(pool),
        UpdateExpression:
          'SET #pool = :pool, azs = :azs, targetIdlePerAz = :t, updatedAt = :now, generation = if_not_exists(generation, :zero)',
        ExpressionAttributeNames: { '#pool': 'pool' },
        ExpressionAttributeValues: {
          ':pool': pool,
          ':azs': azs,
          ':t': target,
          ':now': this.iso(),
          ':zero': 0,
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return toPool(result.Attributes);
  }

  /** Reads the pool record; UnknownPool when it does not exist. */
  async getPool(poolName: string): Promise<PoolRecord> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const result = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keys.pool(pool), ConsistentRead: true }),
    );
    if (!result.Item) throw new UnknownPool(`pool ${pool} does not exist`);
    return toPool(result.Item);
  }

  /** Sets the idle target per AZ of an existing pool. */
  async setTarget(poolName: string, targetIdlePerAz: number): Promise<PoolRecord> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const target = parseOrThrow(z.number().int().min(0).max(1000), targetIdlePerAz, 'targetIdlePerAz');
    return this.updateExistingPool(pool, 'SET targetIdlePerAz = :t, updatedAt = :now', { ':t': target });
  }

  /** Atomically increments the pool's content generation and returns the new value. */
  async bumpGeneration(poolName: string): Promise<number> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const record = await this.updateExistingPool(pool, 'SET updatedAt = :now ADD generation :one', {
      ':one': 1,
    });
    return record.generation;
  }

  /** Records the newest completed snapshot, unless a newer generation is already recorded. */
  async setLatestSnapshot(
    poolName: string,
    snapshot: { snapshotId: string; generation: number; createdAt: string },
  ): Promise<PoolRecord> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    parseOrThrow(snapshotIdSchema, snapshot.snapshotId, 'snapshotId');
    try {
      return await this.updateExistingPool(
        pool,
        'SET latestSnapshot = :s, updatedAt = :now',
        { ':s': snapshot, ':g': snapshot.generation },
        'attribute_not_exists(latestSnapshot) OR latestSnapshot.generation <= :g',
      );
    } catch (err) {
      if (err instanceof ConcurrentModification) return this.getPool(pool);
      throw err;
    }
  }

  private async updateExistingPool(
    pool: string,
    update: string,
    values: Record<string, unknown>,
    extraCondition?: string,
  ): Promise<PoolRecord> {
    const condition = `attribute_exists(pk)${extraCondition ? ` AND (${extraCondition})` : ''}`;
    try {
      const result = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.pool(pool),
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeValues: { ...values, ':now': this.iso() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toPool(result.Attributes);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      await this.getPool(pool); // throws UnknownPool when that is why
      throw new ConcurrentModification(`pool ${pool} changed concurrently`, { cause: err });
    }
  }

  /** The pool's grown volume size (the growth item's target), if growth ever raised it. */
  async grownVolumeSizeGiB(poolName: string): Promise<number | undefined> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    return (await new GrowthRecords(this.doc, this.tableName).get(pool))?.targetGiB;
  }

  // ---------------------------------------------------------------- volumes

  /**
   * Registers a new volume of the pool (state CREATING unless given). Idempotent for the same id:
   * registering a volume that exists returns the existing record.
   */
  async registerVolume(input: {
    volumeId: string;
    pool: string;
    az: string;
    state?: VolumeState;
    holder?: string;
    snapshotId?: string;
    generation?: number;
    /** Out of Volsd's hands before (an adopted volume): replenish rebuilds it from the bucket. */
    untrusted?: boolean;
  }): Promise<VolumeRecord> {
    const volumeId = parseOrThrow(volumeIdSchema, input.volumeId, 'volumeId');
    const pool = await this.getPool(input.pool);
    const az = parseOrThrow(azSchema, input.az, 'az');
    if (!pool.azs.includes(az)) throw new InvalidInput(`AZ ${az} is not one of pool ${pool.pool}'s AZs`);
    const state = parseOrThrow(volumeStateSchema, input.state ?? VolumeState.Creating, 'state');
    const now = this.iso();
    const record: VolumeRecord = {
      volumeId,
      pool: pool.pool,
      az,
      state,
      version: 1,
      generation: input.generation ?? 0,
      createdAt: now,
      updatedAt: now,
      ...(input.holder ? { holder: parseOrThrow(instanceIdSchema, input.holder, 'holder') } : {}),
      ...(input.snapshotId
        ? { snapshotId: parseOrThrow(snapshotIdSchema, input.snapshotId, 'snapshotId') }
        : {}),
      ...(state === VolumeState.Claimed ? { claimedAt: now } : {}),
      ...(input.untrusted ? { untrusted: true } : {}),
    };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.volume(volumeId), ...keys.byPool(pool.pool, az, state, volumeId), ...record },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return record;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return this.getVolume(volumeId);
    }
  }

  /** Reads a volume; VolumeNotFound when the table has no such volume. */
  async getVolume(volumeId: string): Promise<VolumeRecord> {
    const found = await this.findVolume(volumeId);
    if (!found) throw new VolumeNotFound(`volume ${volumeId} is not in the table`);
    return found;
  }

  /** Reads a volume, or undefined. */
  async findVolume(volumeIdInput: string): Promise<VolumeRecord | undefined> {
    const volumeId = parseOrThrow(volumeIdSchema, volumeIdInput, 'volumeId');
    const result = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keys.volume(volumeId), ConsistentRead: true }),
    );
    return result.Item ? toVolume(result.Item) : undefined;
  }

  /**
   * Moves a volume from `from` to `to` with a conditional write on its state (and version and holder
   * when given). Refuses transitions the model does not allow with IllegalTransition, and a lost race
   * with ConcurrentModification (VolumeNotFound when the volume is gone).
   */
  async transition(req: TransitionRequest): Promise<VolumeRecord> {
    const volumeId = parseOrThrow(volumeIdSchema, req.volumeId, 'volumeId');
    const from = parseOrThrow(volumeStateSchema, req.from, 'from');
    const to = parseOrThrow(volumeStateSchema, req.to, 'to');
    if (!canTransition(from, to)) {
      throw new IllegalTransition(`volume ${volumeId}: ${from} -> ${to} is not an allowed transition`);
    }
    const current = req.read?.volumeId === volumeId ? req.read : await this.getVolume(volumeId);
    if (current.state !== from) {
      throw new ConcurrentModification(`volume ${volumeId} is ${current.state}, not ${from}`);
    }
    const names: Record<string, string> = { '#state': 'state', '#version': 'version' };
    const values: Record<string, unknown> = {
      ':from': from,
      ':to': to,
      ':one': 1,
      ':now': this.iso(),
      ':gsi': keys.byPool(current.pool, current.az, to, volumeId).gsi1sk,
    };
    const sets = ['#state = :to', 'updatedAt = :now', 'gsi1sk = :gsi'];
    const removes: string[] = [];
    for (const [field, value] of Object.entries(req.set ?? {})) {
      if (value === undefined) continue;
      names[`#${field}`] = field;
      if (value === null) removes.push(`#${field}`);
      else {
        sets.push(`#${field} = :${field}`);
        values[`:${field}`] = value;
      }
    }
    let condition = '#state = :from';
    if (req.expectedVersion !== undefined) {
      condition += ' AND #version = :v';
      values[':v'] = req.expectedVersion;
    }
    if (req.expectedHolder !== undefined) {
      names['#holder'] = 'holder';
      condition += ' AND #holder = :expectedHolder';
      values[':expectedHolder'] = req.expectedHolder;
    }
    const update = `SET ${sets.join(', ')} ADD #version :one${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`;
    try {
      const result = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.volume(volumeId),
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toVolume(result.Attributes);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const now = await this.getVolume(volumeId);
      throw new ConcurrentModification(
        `volume ${volumeId} changed concurrently (now ${now.state} v${now.version}, holder ${now.holder ?? '-'})`,
        { cause: err },
      );
    }
  }

  /** Sets who holds a volume without changing its state (a worker adopting a volume in SYNCING). */
  async setHolder(volumeIdInput: string, state: VolumeState, holder: string): Promise<void> {
    const volumeId = parseOrThrow(volumeIdSchema, volumeIdInput, 'volumeId');
    parseOrThrow(instanceIdSchema, holder, 'holder');
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.volume(volumeId),
          UpdateExpression: 'SET holder = :h, updatedAt = :now ADD #version :one',
          ConditionExpression: '#state = :s',
          ExpressionAttributeNames: { '#state': 'state', '#version': 'version' },
          ExpressionAttributeValues: { ':h': holder, ':s': state, ':now': this.iso(), ':one': 1 },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      throw new ConcurrentModification(`volume ${volumeId} is no longer ${state}`, { cause: err });
    }
  }

  /** Records the generation a volume holds now, without changing its state (after a sync). */
  async setVolumeGeneration(volumeIdInput: string, generation: number): Promise<void> {
    const volumeId = parseOrThrow(volumeIdSchema, volumeIdInput, 'volumeId');
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.volume(volumeId),
          UpdateExpression: 'SET generation = :g, updatedAt = :now ADD #version :one',
          ConditionExpression:
            'attribute_exists(pk) AND (attribute_not_exists(generation) OR generation < :g)',
          ExpressionAttributeNames: { '#version': 'version' },
          ExpressionAttributeValues: { ':g': generation, ':now': this.iso(), ':one': 1 },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      await this.getVolume(volumeId); // VolumeNotFound if gone; otherwise it is already at least as new
    }
  }

  /** Removes a RETIRING volume's record once EC2 has deleted it. Idempotent. */
  async forgetVolume(volumeIdInput: string): Promise<void> {
    const volumeId = parseOrThrow(volumeIdSchema, volumeIdInput, 'volumeId');
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.volume(volumeId),
          ConditionExpression: 'attribute_not_exists(pk) OR #state = :retiring OR #state = :error',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':retiring': VolumeState.Retiring, ':error': VolumeState.Error },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const now = await this.getVolume(volumeId);
      throw new IllegalTransition(
        `volume ${volumeId} is ${now.state}: only RETIRING or ERROR volumes are forgotten`,
      );
    }
  }

  /**
   * Lists a pool's volumes, optionally in one AZ and one state (a Query on the byPool index). The index
   * is eventually consistent: a volume may be missing, or shown in a state it has left. Anything decided
   * on a volume listed here must be confirmed on the item (a conditional write, or `findVolume`).
   */
  async listVolumes(filter: { pool: string; az?: string; state?: VolumeState }): Promise<VolumeRecord[]> {
    const pool = parseOrThrow(poolNameSchema, filter.pool, 'pool');
    const az = filter.az === undefined ? undefined : parseOrThrow(azSchema, filter.az, 'az');
    const state =
      filter.state === undefined ? undefined : parseOrThrow(volumeStateSchema, filter.state, 'state');
    if (state && !az) {
      const all = await this.listVolumes({ pool });
      return all.filter((v) => v.state === state);
    }
    const prefix = az ? `${az}#${state ? `${state}#` : ''}` : '';
    const index = tableSchema.byPoolIndex;
    const out: VolumeRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: index.name,
          KeyConditionExpression: prefix ? '#pk = :pk AND begins_with(#sk, :prefix)' : '#pk = :pk',
          ExpressionAttributeNames: prefix
            ? { '#pk': index.partitionKey, '#sk': index.sortKey }
            : { '#pk': index.partitionKey },
          ExpressionAttributeValues: prefix ? { ':pk': pool, ':prefix': prefix } : { ':pk': pool },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) if (item.sk === 'VOLUME') out.push(toVolume(item));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return out;
  }

  // ---------------------------------------------------------------- device names

  /**
   * Records device names a forced detach may have left unusable on the instance until it reboots (EBS
   * user guide, "Detach an Amazon EBS volume"): an attach at one of them can stay `attaching`. Kept per
   * instance so a later run (a sync worker lives through many) does not pick them again. Idempotent.
   */
  async addUnusableDevices(instanceIdInput: string, devices: readonly string[]): Promise<void> {
    const instanceId = parseOrThrow(instanceIdSchema, instanceIdInput, 'instanceId');
    if (devices.length === 0) return;
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.unusableDevices(instanceId),
        UpdateExpression: 'ADD devices :d SET updatedAt = :now',
        ExpressionAttributeValues: { ':d': new Set(devices), ':now': this.now().toISOString() },
      }),
    );
  }

  /** The device names recorded unusable on the instance (empty when none). */
  async unusableDevices(instanceIdInput: string): Promise<string[]> {
    const instanceId = parseOrThrow(instanceIdSchema, instanceIdInput, 'instanceId');
    const result = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: keys.unusableDevices(instanceId),
        ConsistentRead: true,
      }),
    );
    const devices = result.Item?.devices as Set<string> | undefined;
    return devices ? [...devices].sort() : [];
  }

  // ---------------------------------------------------------------- assignments and claims

  /** Reads an instance's assignment, or undefined. */
  async getAssignment(instanceIdInput: string): Promise<AssignmentRecord | undefined> {
    const instanceId = parseOrThrow(instanceIdSchema, instanceIdInput, 'instanceId');
    const result = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keys.assignment(instanceId), ConsistentRead: true }),
    );
    return result.Item ? toAssignment(result.Item) : undefined;
  }

  /**
   * Claims an IDLE volume of the pool in the AZ for the instance. Idempotent per instance: a repeated
   * claim returns the volume already claimed. Steps, each safe to crash after:
   *  1. put the instance's assignment (attribute_not_exists); an existing one with a volume is the answer;
   *  2. if a volume of the pool is already CLAIMED by this instance (a crash after step 2), take it;
   *     otherwise claim an IDLE candidate with a conditional write on state = IDLE, next on conflict;
   *  3. write the volume id into the assignment.
   * A crash after 1 leaves an assignment without a volume; after 2 a CLAIMED volume whose assignment
   * lacks its id. A retry of the same claim completes both; reconcile recognises both by their age.
   * Throws NoIdleVolume when nothing can be claimed; the volume-less assignment stays as the instance's
   * place in the queue (see markWaiting) until a retry claims or the acquire gives up and drops it.
   */
  async claimVolume(input: { pool: string; az: string; instanceId: string }): Promise<VolumeRecord> {
    const instanceId = parseOrThrow(instanceIdSchema, input.instanceId, 'instanceId');
    const az = parseOrThrow(azSchema, input.az, 'az');
    const pool = await this.getPool(input.pool);
    if (!pool.azs.includes(az)) throw new InvalidInput(`AZ ${az} is not one of pool ${pool.pool}'s AZs`);

    const assignment = await this.putAssignment(pool.pool, az, instanceId);
    this.onClaimStep('afterAssignmentPut');
    if (assignment.volumeId) return this.getVolume(assignment.volumeId);

    const claimed =
      (await this.findClaimedBy(pool.pool, az, instanceId)) ??
      (await this.claimIdle(pool.pool, az, instanceId));
    if (!claimed) {
      await this.markWaiting(pool.pool, az, instanceId);
      throw new NoIdleVolume(`no idle volume in pool ${pool.pool}, AZ ${az}`);
    }
    this.onClaimStep('afterVolumeClaimed');
    await this.setAssignmentVolume(instanceId, claimed.volumeId);
    return claimed;
  }

  /**
   * The fast path of a claim: records a volume just created from a snapshot for the instance (its AZ
   * had none idle) as CLAIMED by it, then writes it into the instance's assignment (left volume-less by
   * the claim that found nothing). Idempotent: a retry after a crash finds its own record and completes
   * the assignment. VolumeHeldElsewhere when the record names another holder; AssignmentConflict when
   * the assignment already names another volume.
   */
  async claimCreated(input: {
    volumeId: string;
    pool: string;
    az: string;
    instanceId: string;
    snapshotId: string;
    generation: number;
  }): Promise<VolumeRecord> {
    const instanceId = parseOrThrow(instanceIdSchema, input.instanceId, 'instanceId');
    const record = await this.registerVolume({ ...input, state: VolumeState.Claimed, holder: instanceId });
    if (record.holder !== instanceId || record.state !== VolumeState.Claimed) {
      throw new VolumeHeldElsewhere(
        `volume ${record.volumeId} is ${record.state}, held by ${record.holder ?? 'nobody'}`,
      );
    }
    await this.setAssignmentVolume(instanceId, record.volumeId);
    return record;
  }

  private async putAssignment(pool: string, az: string, instanceId: string): Promise<AssignmentRecord> {
    const record: AssignmentRecord = { instanceId, pool, az, createdAt: this.iso() };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.assignment(instanceId), ...record },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return record;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const existing = await this.getAssignment(instanceId);
      if (!existing) return this.putAssignment(pool, az, instanceId); // dropped meanwhile: try again
      if (existing.pool !== pool || existing.az !== az) {
        throw new AssignmentConflict(
          `instance ${instanceId} already has an assignment in pool ${existing.pool}, AZ ${existing.az}`,
        );
      }
      return existing;
    }
  }

  private async findClaimedBy(
    pool: string,
    az: string,
    instanceId: string,
  ): Promise<VolumeRecord | undefined> {
    // The index lags the table (eventually consistent): a volume it shows CLAIMED by this instance may
    // since have gone back to the pool and to another instance. Only the item, read consistently,
    // says whose it is. (A claim the index does not show yet is missed: the retry then claims another
    // volume, and the first, CLAIMED with no assignment naming it, is a stale claim reconcile returns.)
    const listed = await this.listVolumes({ pool, az, state: VolumeState.Claimed });
    for (const candidate of listed.filter((v) => v.holder === instanceId)) {
      const current = await this.findVolume(candidate.volumeId);
      if (current?.state === VolumeState.Claimed && current.holder === instanceId) return current;
    }
    return undefined;
  }

  private async claimIdle(pool: string, az: string, instanceId: string): Promise<VolumeRecord | undefined> {
    // Each round reads the idle volumes afresh and tries a few of them, starting at an offset derived
    // from the instance id so that concurrent claimers spread over the candidates. Re-reading after a
    // few conflicts keeps a lost race cheap: a loser never walks a long list of volumes already taken.
    // The index lags the table: it may still list volumes already claimed. The conditional write on the
    // item (state = IDLE) is what decides; a candidate that lost is not tried again in this claim, so a
    // stale index ends in NoIdleVolume once every volume it lists is known taken, instead of 50 rounds
    // of lost races on the same items.
    const taken = new Set<string>();
    for (let round = 0; round < 50; round++) {
      const listed = await this.listVolumes({ pool, az, state: VolumeState.Idle });
      const candidates = listed.filter((v) => !taken.has(v.volumeId));
      if (candidates.length === 0) return undefined;
      const offset = (hash(instanceId) + round) % candidates.length;
      for (let i = 0; i < Math.min(3, candidates.length); i++) {
        const candidate = candidates[(offset + i) % candidates.length];
        if (!candidate) continue;
        const claimed = await this.tryClaim(candidate, instanceId);
        if (claimed) return claimed;
        taken.add(candidate.volumeId);
      }
    }
    throw new ConcurrentModification(`claim for ${instanceId} kept losing races in pool ${pool}, AZ ${az}`);
  }

  /** One conditional write IDLE -> CLAIMED on a volume read from the index; undefined when it lost. */
  private async tryClaim(candidate: VolumeRecord, instanceId: string): Promise<VolumeRecord | undefined> {
    if (!canTransition(VolumeState.Idle, VolumeState.Claimed)) {
      throw new IllegalTransition('the model does not allow IDLE -> CLAIMED');
    }
    try {
      const result = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.volume(candidate.volumeId),
          UpdateExpression:
            'SET #state = :claimed, holder = :holder, claimedAt = :now, updatedAt = :now, gsi1sk = :gsi ADD #version :one',
          ConditionExpression: '#state = :idle',
          ExpressionAttributeNames: { '#state': 'state', '#version': 'version' },
          ExpressionAttributeValues: {
            ':claimed': VolumeState.Claimed,
            ':idle': VolumeState.Idle,
            ':holder': instanceId,
            ':now': this.iso(),
            ':one': 1,
            ':gsi': keys.byPool(candidate.pool, candidate.az, VolumeState.Claimed, candidate.volumeId).gsi1sk,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toVolume(result.Attributes);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  private async setAssignmentVolume(instanceId: string, volumeId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.assignment(instanceId),
          UpdateExpression: 'SET volumeId = :v REMOVE gsi1pk, gsi1sk, waitingSince',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(volumeId) OR volumeId = :v)',
          ExpressionAttributeValues: { ':v': volumeId },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      throw new AssignmentConflict(
        `instance ${instanceId}'s assignment names another volume, or was dropped`,
        {
          cause: err,
        },
      );
    }
  }

  /**
   * Leaves the volume-less assignment in place as a demand signal: it joins the byPool index under
   * `<az>#WAITING#<instance>`, so replenish creates volumes for the instances waiting, not only for the
   * target. Setting the volume (or dropping the assignment) takes it out of the index.
   */
  private async markWaiting(pool: string, az: string, instanceId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.assignment(instanceId),
          UpdateExpression:
            'SET gsi1pk = :pool, gsi1sk = :sk, waitingSince = if_not_exists(waitingSince, :now)',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(volumeId)',
          ExpressionAttributeValues: {
            ':pool': pool,
            ':sk': `${az}#WAITING#${instanceId}`,
            ':now': this.iso(),
          },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /**
   * Instances waiting for an idle volume in the pool and AZ (claims that found nothing, not yet given up).
   * An estimate of demand read from the lagging index, never a decision on one item: a waiter missed or
   * counted twice makes one replenish round create a volume fewer or more, and the next round corrects it.
   */
  async countWaiting(poolName: string, azInput: string): Promise<number> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const az = parseOrThrow(azSchema, azInput, 'az');
    const index = tableSchema.byPoolIndex;
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: index.name,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
        ExpressionAttributeNames: { '#pk': index.partitionKey, '#sk': index.sortKey },
        ExpressionAttributeValues: { ':pk': pool, ':prefix': `${az}#WAITING#` },
        Select: 'COUNT',
      }),
    );
    return out.Count ?? 0;
  }

  // ---------------------------------------------------------------- provenance

  /**
   * Opens the record of a volume creation before CreateVolume is called (idempotent per `key`, the
   * creation's client token: a retried step gets the same record and nonce). The nonce is random; the
   * volume is tagged with it at creation, which is how reconcile recognises a volume Volsd created but
   * never got to record (docs/decisions.md, "Volume provenance").
   */
  async openCreation(input: { pool: string; az: string; key: string }): Promise<CreationRecord> {
    const pool = parseOrThrow(poolNameSchema, input.pool, 'pool');
    const az = parseOrThrow(azSchema, input.az, 'az');
    const key = parseOrThrow(creationKeySchema, input.key, 'creation key');
    const record: CreationRecord = {
      key,
      pool,
      az,
      nonce: randomBytes(16).toString('hex'),
      createdAt: this.iso(),
    };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...creationKeys(pool, key), ...record },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return record;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const found = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: creationKeys(pool, key), ConsistentRead: true }),
      );
      if (!found.Item) return this.openCreation(input); // dropped meanwhile: open it again
      return toCreation(found.Item, pool);
    }
  }

  /**
   * Binds a creation record to the volume CreateVolume returned: from then on the volume id, not the
   * tag, proves the volume is Volsd's. A record bound to another volume stays bound to it (the first
   * volume of a creation is the one it proves); returns whether the record names `volumeId`.
   */
  async bindCreation(poolName: string, keyInput: string, volumeIdInput: string): Promise<boolean> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const key = parseOrThrow(creationKeySchema, keyInput, 'creation key');
    const volumeId = parseOrThrow(volumeIdSchema, volumeIdInput, 'volumeId');
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: creationKeys(pool, key),
          UpdateExpression: 'SET volumeId = :v',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(volumeId) OR volumeId = :v)',
          ExpressionAttributeValues: { ':v': volumeId },
        }),
      );
      return true;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return false;
    }
  }

  /** The pool's creation records (those starting with `keyPrefix`, when given). */
  async listCreations(poolName: string): Promise<CreationRecord[]> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const out: CreationRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': keys.pool(pool).pk, ':prefix': creationPrefix },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) out.push(toCreation(item, pool));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /** Drops a creation record (its volume is gone, or its creation never happened). Idempotent. */
  async dropCreation(poolName: string, keyInput: string): Promise<void> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const key = parseOrThrow(creationKeySchema, keyInput, 'creation key');
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: creationKeys(pool, key) }));
  }

  /**
   * Records the volumes tagged with the pool that reconcile could not prove Volsd created (replacing the
   * previous report), for `volsd-client volumes`.
   */
  async putForeignVolumes(poolName: string, volumes: ForeignVolume[]): Promise<void> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: keys.pool(pool).pk, sk: foreignSk, pool, volumes, checkedAt: this.iso() },
      }),
    );
  }

  /** The last foreign-volume report of the pool (empty when reconcile never wrote one). */
  async getForeignVolumes(poolName: string): Promise<{ volumes: ForeignVolume[]; checkedAt?: string }> {
    const pool = parseOrThrow(poolNameSchema, poolName, 'pool');
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: keys.pool(pool).pk, sk: foreignSk } }),
    );
    const item = out.Item;
    if (!item) return { volumes: [] };
    const volumes = Array.isArray(item.volumes) ? (item.volumes as ForeignVolume[]) : [];
    const checkedAt = str(item, 'checkedAt');
    return { volumes, ...(checkedAt ? { checkedAt } : {}) };
  }

  /**
   * Drops the instance's assignment. With `volumeId`, only if it names that volume (a release must not
   * drop an assignment a newer claim wrote). Idempotent.
   */
  async dropAssignment(instanceIdInput: string, volumeId?: string): Promise<void> {
    const instanceId = parseOrThrow(instanceIdSchema, instanceIdInput, 'instanceId');
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.assignment(instanceId),
          ...(volumeId
            ? {
                ConditionExpression: 'attribute_not_exists(volumeId) OR volumeId = :v',
                ExpressionAttributeValues: { ':v': volumeId },
              }
            : {}),
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      throw new VolumeHeldElsewhere(
        `instance ${instanceId}'s assignment names another volume than ${volumeId}`,
      );
    }
  }

  // ---------------------------------------------------------------- leases

  /**
   * Takes a named lease for `owner` until `ttlSeconds` from now: the lease is free, expired, or already
   * the owner's (a retried step). Returns false when someone else holds it. This is how one pool and AZ
   * never gets two replenishes at once; an owner that crashed loses the lease when it expires. Taking it
   * clears its `wanted` mark ({@link markLeaseWanted}): what the owner does next covers what was wanted
   * before; {@link renewLease} keeps the mark.
   */
  async acquireLease(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    return this.writeLease(name, owner, ttlSeconds, 'REMOVE wanted');
  }

  /** Extends the owner's lease (taking it again if it expired meanwhile), keeping a `wanted` mark. */
  async renewLease(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    return this.writeLease(name, owner, ttlSeconds, '');
  }

  private async writeLease(name: string, owner: string, ttlSeconds: number, also: string) {
    const now = this.now().getTime();
    try {
      // An update, not a put: a put would drop the `wanted` mark a requester set meanwhile.
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.lease(name),
          UpdateExpression: `SET #owner = :owner, expiresAt = :expires ${also}`.trim(),
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':now': now, ':owner': owner, ':expires': now + ttlSeconds * 1000 },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Asks the live holder of a lease to run once more: marks it `wanted`, if someone holds it and it has
   * not expired. True when marked (the holder will see it when it gives the lease back); false when
   * nobody holds it, and the caller must start the work itself.
   */
  async markLeaseWanted(name: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.lease(name),
          UpdateExpression: 'SET wanted = :wanted',
          ConditionExpression: 'attribute_exists(pk) AND expiresAt > :now',
          ExpressionAttributeValues: { ':wanted': true, ':now': this.now().getTime() },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Gives a lease back if `owner` holds it. Idempotent. Says whether it was marked `wanted` while held
   * (someone asked for another run meanwhile), read atomically with the delete.
   */
  async releaseLease(name: string, owner: string): Promise<{ wanted: boolean }> {
    try {
      const out = await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.lease(name),
          ConditionExpression: 'attribute_not_exists(pk) OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return { wanted: out.Attributes?.wanted === true };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { wanted: false };
    }
  }
}

const creationPrefix = 'CREATION#';
const foreignSk = 'FOREIGN';
// Under the pool's partition, beside its pushes (keys of table-schema.ts: pk `POOL#<pool>`).
const creationKeys = (pool: string, key: string) => ({
  pk: keys.pool(pool).pk,
  sk: `${creationPrefix}${key}`,
});
const creationKeySchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a creation key is 1-64 of A-Za-z0-9_-');

/** A volume creation Volsd recorded before calling CreateVolume (see `openCreation`). */
export interface CreationRecord {
  /** The creation's key (derived from its client token). */
  key: string;
  pool: string;
  az: string;
  /** Random, the value of the volume's `volsd:creation` tag. */
  nonce: string;
  createdAt: string;
  /** The volume CreateVolume returned, once recorded. */
  volumeId?: string;
}

/** A volume tagged with the pool that reconcile could not prove Volsd created: reported, never touched. */
export interface ForeignVolume {
  volumeId: string;
  az: string;
  /** EC2's state of the volume. */
  state: string;
  /** The instance it is attached to, if any. */
  attachedTo?: string;
  why: string;
}

function toCreation(item: Record<string, unknown>, pool: string): CreationRecord {
  const volumeId = str(item, 'volumeId');
  return {
    key: str(item, 'key') ?? '',
    pool,
    az: str(item, 'az') ?? '',
    nonce: str(item, 'nonce') ?? '',
    createdAt: str(item, 'createdAt') ?? '',
    ...(volumeId ? { volumeId } : {}),
  };
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function str(item: Record<string, unknown>, field: string): string | undefined {
  const value = item[field];
  return typeof value === 'string' ? value : undefined;
}

function num(item: Record<string, unknown>, field: string): number {
  const value = item[field];
  return typeof value === 'number' ? value : 0;
}

function toVolume(item: Record<string, unknown> | undefined): VolumeRecord {
  if (!item) throw new VolumeNotFound('volume item missing');
  const state = volumeStateSchema.parse(item.state);
  const record: VolumeRecord = {
    volumeId: str(item, 'volumeId') ?? '',
    pool: str(item, 'pool') ?? '',
    az: str(item, 'az') ?? '',
    state,
    version: num(item, 'version'),
    generation: num(item, 'generation'),
    createdAt: str(item, 'createdAt') ?? '',
    updatedAt: str(item, 'updatedAt') ?? '',
  };
  for (const field of ['holder', 'device', 'snapshotId', 'reason', 'claimedAt'] as const) {
    const value = str(item, field);
    if (value !== undefined) record[field] = value;
  }
  if (item.untrusted === true) record.untrusted = true;
  return record;
}

function toAssignment(item: Record<string, unknown>): AssignmentRecord {
  const record: AssignmentRecord = {
    instanceId: str(item, 'instanceId') ?? '',
    pool: str(item, 'pool') ?? '',
    az: str(item, 'az') ?? '',
    createdAt: str(item, 'createdAt') ?? '',
  };
  const volumeId = str(item, 'volumeId');
  if (volumeId) record.volumeId = volumeId;
  return record;
}

function toPool(item: Record<string, unknown> | undefined): PoolRecord {
  if (!item) throw new UnknownPool('pool item missing');
  const record: PoolRecord = {
    pool: str(item, 'pool') ?? '',
    azs: Array.isArray(item.azs) ? item.azs.filter((a): a is string => typeof a === 'string') : [],
    targetIdlePerAz: num(item, 'targetIdlePerAz'),
    generation: num(item, 'generation'),
    updatedAt: str(item, 'updatedAt') ?? '',
  };
  const snap = item.latestSnapshot;
  if (snap && typeof snap === 'object') {
    const s = snap as Record<string, unknown>;
    record.latestSnapshot = {
      snapshotId: str(s, 'snapshotId') ?? '',
      generation: num(s, 'generation'),
      createdAt: str(s, 'createdAt') ?? '',
    };
  }
  return record;
}
