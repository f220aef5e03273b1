/**
 * Pool growth: the size the pool's volumes should have and the size they all have, and the rules that
 * decide when content needs more (docs/decisions.md, "A pool that grows with its content").
 *
 * One item per pool (`POOL#<pool>` / `GROWTH`):
 * - `targetGiB`: the size every pool volume is grown to and every new volume is created with. Only
 *   ever raised (EBS volumes cannot shrink): by the fan-out when a push passes the threshold, by the
 *   grow function when the configured `volumeSizeGiB` is raised.
 * - `confirmedGiB`: the size every pool volume is known to have reached (its modification at least
 *   `optimizing`, so the OS sees it; Volsd-Sync grows the file system before each sync). The fan-out
 *   checks pushes against it.
 * - `repushPending`: a push was refused for want of space; once the volumes are grown, the grow
 *   function makes the push that brings that content.
 */

import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { keys } from './table-schema.js';

/** Share of a file system the content may fill: XFS's metadata and log, the AWS CLI's temporary files. */
export const usablePercent = 95;
/** Default of the pool setting `growThresholdPercent`: grow once the content fills this much of a volume. */
export const defaultGrowThresholdPercent = 80;
/** Each growth multiplies the size by at least this much (each step costs a 6-hour EBS cooldown). */
export const growthFactor = 1.5;
/** Largest pool volume (the pool settings' bound for volumeSizeGiB). */
export const maxPoolVolumeGiB = 16384;

/** The pool's growth item. */
export interface GrowthRecord {
  targetGiB: number;
  confirmedGiB?: number;
  repushPending: boolean;
  /** Why the last push was refused, when it was. */
  refusedReason?: string;
  updatedAt?: string;
}

const growthKey = (pool: string) => ({ pk: keys.pool(pool).pk, sk: 'GROWTH' });

const isConditionFailure = (err: unknown) =>
  err instanceof ConditionalCheckFailedException ||
  (err instanceof Error && err.name === 'ConditionalCheckFailedException');

/** Does a tree of `treeBytes` fit a file system of `fsBytes`, within {@link usablePercent}? */
export function fits(treeBytes: number, fsBytes: number): boolean {
  return treeBytes * 100 <= fsBytes * usablePercent;
}

/** Has a tree of `treeBytes` passed `thresholdPercent` of a file system of `fsBytes`? */
export function pastThreshold(treeBytes: number, fsBytes: number, thresholdPercent: number): boolean {
  return treeBytes * 100 > fsBytes * thresholdPercent;
}

/**
 * The size to grow to: at least {@link growthFactor} times the current size (few 6-hour steps as
 * content keeps growing), and enough that the tree sits below the threshold right after one step,
 * however large the push was (the next step is 6 hours away). Capped at {@link maxPoolVolumeGiB}.
 */
export function growthTarget(
  currentGiB: number,
  treeBytes: number,
  thresholdPercent: number,
  gibBytes: number,
): number {
  const needed = Math.ceil((treeBytes * 100) / (thresholdPercent * gibBytes));
  return Math.min(maxPoolVolumeGiB, Math.max(Math.ceil(currentGiB * growthFactor), needed, currentGiB + 1));
}

/** Reads and writes the pool's growth item. */
export class GrowthRecords {
  constructor(
    private readonly doc: Pick<DynamoDBDocumentClient, 'send'>,
    private readonly tableName: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** The growth item, or undefined before the first growth decision. */
  async get(pool: string): Promise<GrowthRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: growthKey(pool), ConsistentRead: true }),
    );
    const item = out?.Item;
    if (!item || typeof item.targetGiB !== 'number') return undefined;
    return {
      targetGiB: item.targetGiB,
      ...(typeof item.confirmedGiB === 'number' ? { confirmedGiB: item.confirmedGiB } : {}),
      repushPending: item.repushPending === true,
      ...(typeof item.refusedReason === 'string' ? { refusedReason: item.refusedReason } : {}),
      ...(typeof item.updatedAt === 'string' ? { updatedAt: item.updatedAt } : {}),
    };
  }

  /**
   * Raises the target to `targetGiB` (never lowers it); with `refused`, also records that a push waits
   * for the growth. `confirmedGiB` is set to `baselineGiB` when the item is new. Idempotent.
   */
  async raiseTarget(pool: string, targetGiB: number, baselineGiB: number, refused?: string): Promise<void> {
    const set = [
      'updatedAt = :now',
      'confirmedGiB = if_not_exists(confirmedGiB, :base)',
      ...(refused ? ['repushPending = :true', 'refusedReason = :why'] : []),
    ];
    const values = {
      ':now': this.now().toISOString(),
      ':base': baselineGiB,
      ...(refused ? { ':true': true, ':why': refused.slice(0, 500) } : {}),
    };
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: growthKey(pool),
          UpdateExpression: `SET targetGiB = :t, ${set.join(', ')}`,
          ConditionExpression: 'attribute_not_exists(targetGiB) OR targetGiB < :t',
          ExpressionAttributeValues: { ':t': targetGiB, ...values },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      // The target is already as high: record the waiting push all the same.
      if (refused) {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: growthKey(pool),
            UpdateExpression: `SET ${set.join(', ')}`,
            ExpressionAttributeValues: values,
          }),
        );
      }
    }
  }

  /**
   * Records that every pool volume has reached `confirmedGiB` and, when `repushed`, that the waiting
   * push was made. Never lowers the confirmed size.
   */
  async confirm(pool: string, confirmedGiB: number, repushed: boolean): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: growthKey(pool),
          UpdateExpression: `SET confirmedGiB = :c, updatedAt = :now${repushed ? ', repushPending = :false REMOVE refusedReason' : ''}`,
          ConditionExpression: 'attribute_not_exists(confirmedGiB) OR confirmedGiB <= :c',
          ExpressionAttributeValues: {
            ':c': confirmedGiB,
            ':now': this.now().toISOString(),
            ...(repushed ? { ':false': false } : {}),
          },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}
