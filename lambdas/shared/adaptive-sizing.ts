import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { workersFor } from './fleet-size.js';

/**
 * Adaptive sizing: the idle target per AZ follows the group's launches. Each acquire counts its launch in
 * an hourly bucket per AZ; on the replenish schedule the target becomes the `percentile` of the daily
 * demand (launches of the busiest AZ in the `windowHours` starting at this hour of the day, on each of the
 * past `lookbackDays` days), kept within [`min`, `max`] and never above the monthly at-rest budget.
 */
export interface AdaptiveSettings {
  min: number;
  max: number;
  /** Monthly at-rest budget in dollars: idle volumes, sync workers and their root volumes. */
  budgetDollarsPerMonth: number;
  /** Past days whose launches count. */
  lookbackDays: number;
  /** Hours from now whose launches on past days make that day's demand (the pool fills ahead of them). */
  windowHours: number;
  /** Percentile of the daily demands (nearest rank). */
  percentile: number;
  prices: AtRestPrices;
}

/** Monthly prices of what an idle pool keeps (docs/cost.md, "At rest"). */
export interface AtRestPrices {
  /** One idle volume a month (size x $/GB-month, plus IOPS and throughput above the gp3 baseline). */
  volumeDollarsPerMonth: number;
  /** One sync worker a month: its instance and its root volume. */
  workerDollarsPerMonth: number;
  /** Volumes one worker holds. */
  perWorker: number;
}

/** Hours in a month, as AWS prices them (730). */
export const hoursPerMonth = 730;
/** gp3 list prices, us-east-1 (FACTS.md, docs/cost.md). */
export const gp3Prices = { perGiBMonth: 0.08, perIopsMonthAbove3000: 0.005, perMiBpsMonthAbove125: 0.04 };

/** Monthly price of one idle gp3 volume. */
export function gp3VolumeDollarsPerMonth(sizeGiB: number, iops = 3000, throughputMiBps = 125): number {
  return (
    sizeGiB * gp3Prices.perGiBMonth +
    Math.max(0, iops - 3000) * gp3Prices.perIopsMonthAbove3000 +
    Math.max(0, throughputMiBps - 125) * gp3Prices.perMiBpsMonthAbove125
  );
}

/** At-rest dollars a month of `targetPerAz` idle volumes in each of `azs` AZs, with their workers. */
export function atRestDollarsPerMonth(targetPerAz: number, azs: number, prices: AtRestPrices): number {
  const workers = workersFor(targetPerAz, prices.perWorker);
  return azs * (targetPerAz * prices.volumeDollarsPerMonth + workers * prices.workerDollarsPerMonth);
}

/** Nearest-rank percentile of `values` (0 when empty). */
export function percentileOf(values: readonly number[], percentile: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((percentile / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

/** Why the target is what it is: every input of the decision, for the log, the metric and the client. */
export interface TargetDecision {
  target: number;
  /** The percentile of the daily demands before the bounds. */
  demand: number;
  demandPerDay: number[];
  /** Which bound set the target, if one did. */
  boundedBy?: 'min' | 'max' | 'budget';
  atRestDollarsPerMonth: number;
  budgetDollarsPerMonth: number;
  decidedAt: string;
}

/** The target for these daily demands, within the bounds and the budget. */
export function chooseTarget(
  demandPerDay: readonly number[],
  azs: number,
  s: AdaptiveSettings,
  decidedAt: string,
): TargetDecision {
  const demand = percentileOf(demandPerDay, s.percentile);
  let target = demand;
  let boundedBy: TargetDecision['boundedBy'];
  if (target < s.min) [target, boundedBy] = [s.min, 'min'];
  if (target > s.max) [target, boundedBy] = [s.max, 'max'];
  while (target > 0 && atRestDollarsPerMonth(target, azs, s.prices) > s.budgetDollarsPerMonth) {
    target--;
    boundedBy = 'budget';
  }
  return {
    target,
    demand,
    demandPerDay: [...demandPerDay],
    ...(boundedBy ? { boundedBy } : {}),
    atRestDollarsPerMonth: round2(atRestDollarsPerMonth(target, azs, s.prices)),
    budgetDollarsPerMonth: s.budgetDollarsPerMonth,
    decidedAt,
  };
}

const round2 = (n: number) => Math.round(n * 100) / 100;
const hourMs = 3_600_000;
const dayMs = 24 * hourMs;
const hourKey = (hour: number) => `HOUR#${String(hour).padStart(8, '0')}`;

/** Launches in one hour item: its distinct instances, plus the plain counter (items written before the set). */
export function launchesOf(item: Record<string, unknown>): number {
  const instances = item.instances instanceof Set ? item.instances.size : 0;
  return instances + Number(item.launches ?? 0);
}

/** The table items of adaptive sizing: hourly launch counts per AZ, and the last target decision. */
export class LaunchHistory {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * Counts one launch in its AZ's hour: one item per AZ and hour with launches, holding the instance ids
   * as a string set, so a step run twice for one instance (a crash after the write, then the retry)
   * counts it once: ADD of an element already in a set changes nothing. An item past DynamoDB's 400 KB
   * (about 20,000 ids in one AZ's hour) refuses the ADD with ValidationException: the launch is then
   * counted in the plain `launches` counter (not idempotent, but counted).
   */
  async recordLaunch(pool: string, az: string, atMs: number, instanceId: string): Promise<void> {
    const Key = { pk: `LAUNCHES#${pool}#${az}`, sk: hourKey(Math.floor(atMs / hourMs)) };
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key,
          UpdateExpression: 'ADD instances :id',
          ExpressionAttributeValues: { ':id': new Set([instanceId]) },
        }),
      );
    } catch (err) {
      if (!(err instanceof Error) || err.name !== 'ValidationException') throw err;
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key,
          UpdateExpression: 'ADD launches :one',
          ExpressionAttributeValues: { ':one': 1 },
        }),
      );
    }
  }

  /**
   * Per past day (1..`days` days ago), the launches of the busiest AZ in the `windowHours` that start at
   * this hour of that day.
   */
  async demandPerDay(pool: string, azs: readonly string[], nowMs: number, days: number, windowHours: number) {
    const perDay = Array.from({ length: days }, () => 0);
    for (const az of azs) {
      const counts = new Map<number, number>();
      let start: Record<string, unknown> | undefined;
      do {
        const page = await this.doc.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
            ExpressionAttributeValues: {
              ':pk': `LAUNCHES#${pool}#${az}`,
              ':from': hourKey(Math.floor((nowMs - days * dayMs) / hourMs)),
              ':to': hourKey(Math.floor(nowMs / hourMs)),
            },
            ExclusiveStartKey: start,
          }),
        );
        for (const item of page.Items ?? []) counts.set(Number(String(item.sk).slice(5)), launchesOf(item));
        start = page.LastEvaluatedKey;
      } while (start);
      for (let d = 1; d <= days; d++) {
        const first = Math.floor((nowMs - d * dayMs) / hourMs);
        let sum = 0;
        for (let h = first; h < first + windowHours; h++) sum += counts.get(h) ?? 0;
        perDay[d - 1] = Math.max(perDay[d - 1] ?? 0, sum);
      }
    }
    return perDay;
  }

  /** Records the decision behind the pool's current target. */
  async putDecision(pool: string, decision: TargetDecision): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: `POOL#${pool}`, sk: 'TARGET_DECISION', ...decision },
      }),
    );
  }

  /** The decision behind the pool's current target, when adaptive sizing set it. */
  async getDecision(pool: string): Promise<TargetDecision | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: `POOL#${pool}`, sk: 'TARGET_DECISION' } }),
    );
    if (!out.Item) return undefined;
    const { pk: _pk, sk: _sk, ...decision } = out.Item;
    return decision as TargetDecision;
  }
}
