import { type DynamoDBClient, GetItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';

/**
 * The `indexLag` rule: DynamoDB global secondary indexes lag their table. AWS: "Global secondary
 * indexes support eventually consistent reads only ... changes to the table data are propagated to
 * the global secondary indexes within a fraction of a second, under normal conditions" (longer under
 * load or when the index is throttled). dynalite updates its indexes with the item, so without this
 * model no test could catch a decision taken on an index read that the item no longer supports.
 *
 * How it is modelled, in the seam (an SDK middleware on the clients, nothing in the handlers):
 * - every write (PutItem, UpdateItem, DeleteItem) to a tracked table that passes through a client the
 *   model is attached to is recorded with the item's image after it (the Put's item, a consistent
 *   GetItem after an update, nothing after a delete) and the time the index will show it: the time the
 *   write was acknowledged plus a seeded lag, never before an earlier write of the same item (an index
 *   applies one item's changes in order). Before the first write of an item that has none pending, a
 *   consistent GetItem records what the index shows meanwhile;
 * - a Query on an index of a tracked table, on a client attached with `lagQueries`, is answered from
 *   the real index (dynalite) with every item that has writes not yet visible replaced by its image as
 *   the index still shows it: an item that recently entered the partition (or the key range) is
 *   missing, one that recently left it is still there with its old attributes, one that changed
 *   within it shows its old attributes. Once every write of an item is visible the model forgets it
 *   and the real index answers for it again, so any approximation (two concurrent writes of one item
 *   acknowledged out of order) heals within the lag.
 *
 * The lag of each write is `maxLagSeconds * (0.25 + 0.75 u)`, u seeded: every write lags, by 0.25-1 s
 * of modelled time with the default of 1 s. AWS publishes no bound ("a fraction of a second" is the
 * normal case); making every write late, and later than usual, is the conservative choice: it shows a
 * missing confirmation on the item more often than AWS would, never less.
 *
 * What it refuses, as AWS does: `ConsistentRead` on a global secondary index (ValidationException).
 * What it does not model, and refuses loudly rather than answering fresh: index Scans, FilterExpression,
 * ProjectionExpression and the legacy conditions on an index Query, BatchWriteItem and
 * TransactWriteItems on a tracked table. Volsd uses none of them; a change that does meets an error
 * here, not a silently consistent index. Local secondary indexes (none in Volsd) are not tracked.
 */

/** A DynamoDB item on the wire (AttributeValue maps, as the JSON protocol carries them). */
type WireItem = Record<string, WireValue>;
type WireValue = { S?: string; N?: string; B?: string } & Record<string, unknown>;

/** Key attributes of a tracked table and of its global secondary indexes. */
export interface TrackedTable {
  partitionKey: string;
  sortKey?: string;
  indexes: Record<string, { partitionKey: string; sortKey?: string }>;
}

export interface IndexLagOptions {
  /**
   * A client the model uses for its own reads (the real index, consistent GetItem). It must reach the
   * same server and must not answer index Queries with lag itself.
   */
  reader: DynamoDBClient;
  /** Tables whose indexes lag, by name. */
  tables: Record<string, TrackedTable>;
  /** Modelled time, in seconds. */
  now: () => number;
  /** Seeded randomness in [0, 1). */
  random: () => number;
  /** Longest lag of a write, in modelled seconds. @default 1 */
  maxLagSeconds?: number;
}

interface Write {
  /** The item after the write; undefined when it no longer exists. */
  image: WireItem | undefined;
  /** Modelled time from which the index shows this write. */
  visibleAt: number;
}

/** What the model knows of one item with writes the index may not show yet. */
interface Pending {
  /** The item before the first of `writes`, as the index shows it until that write is visible. */
  before: WireItem | undefined;
  /** Resolves once `before` is read. */
  ready: Promise<void>;
  writes: Write[];
  /** Writes sent and not yet acknowledged: the item is not forgotten meanwhile. */
  inFlight: number;
}

/** The smallest part of an SDK client the model attaches to. */
interface ClientWithStack {
  middlewareStack: { add(middleware: unknown, options: Record<string, unknown>): void };
}

interface WireRequest {
  headers: Record<string, string>;
  body?: unknown;
}

interface WireResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: unknown;
}

const trackedWrites = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);
const refusedWrites = new Set([
  'BatchWriteItem',
  'TransactWriteItems',
  'ExecuteStatement',
  'BatchExecuteStatement',
  'ExecuteTransaction',
]);

export const indexLagMiddlewareName = 'volsdIndexLag';

export class IndexLag {
  private readonly pending = new Map<string, Pending>();
  private readonly maxLag: number;
  /** Index Queries answered with at least one item as the index showed it earlier. */
  staleAnswers = 0;

  constructor(private readonly o: IndexLagOptions) {
    this.maxLag = o.maxLagSeconds ?? 1;
  }

  /**
   * Adds the model to `client`: its writes to tracked tables are recorded, and with `lagQueries` its
   * index Queries are answered as the lagging index would. It sits inside the SDK's deserializer (a
   * `deserialize` middleware of low priority), so it sees the wire form of every attempt whatever the
   * command class (document client or not), and retries are the SDK's as on AWS.
   */
  attach(client: ClientWithStack, options: { lagQueries: boolean }): void {
    client.middlewareStack.add(
      (next: (args: unknown) => Promise<{ response: WireResponse }>) =>
        async (args: { request: WireRequest }) => {
          const call = this.parse(args.request);
          if (!call) return next(args);
          if (call.op === 'Query' && call.body.IndexName !== undefined) {
            if (!options.lagQueries) return next(args);
            return { response: await this.answerQuery(call.table, call.body) };
          }
          if (call.op === 'Scan' && call.body.IndexName !== undefined && options.lagQueries) {
            throw new Error('indexLag: an index Scan is not modelled (Volsd queries its index)');
          }
          if (refusedWrites.has(call.op)) {
            throw new Error(`indexLag: ${call.op} on a table with a lagging index is not modelled`);
          }
          if (!trackedWrites.has(call.op)) return next(args);
          return this.recordWrite(call.table, call.op, call.body, () => next(args));
        },
      { step: 'deserialize', priority: 'low', name: indexLagMiddlewareName, override: true },
    );
  }

  /** Items with writes the index does not show yet (for tests and reports). */
  pendingItems(): number {
    this.prune();
    return this.pending.size;
  }

  /**
   * Resolves once the index shows every write recorded so far (and those in flight meanwhile), waiting
   * with `sleep` in modelled seconds. For a test that arranges table state and then acts on it: a real
   * operator's table state is never that young. The workflows never wait for it.
   */
  async settled(sleep: (modelSeconds: number) => Promise<void>): Promise<void> {
    for (;;) {
      this.prune();
      if (this.pending.size === 0) return;
      const now = this.o.now();
      let until = now;
      for (const entry of this.pending.values()) {
        // A write in flight is visible at most maxLag after its acknowledgement.
        const last = entry.inFlight > 0 ? now + this.maxLag : (entry.writes.at(-1)?.visibleAt ?? now);
        until = Math.max(until, last);
      }
      await sleep(Math.max(until - now, 0.01));
    }
  }

  private parse(
    request: WireRequest,
  ): { op: string; table: TrackedTable & { name: string }; body: Record<string, unknown> } | undefined {
    const target = Object.entries(request.headers).find(([k]) => k.toLowerCase() === 'x-amz-target')?.[1];
    const op = target?.split('.')[1];
    if (!op) return undefined;
    // The JSON protocol's body: a string, or bytes with the SDK's schema-based serializers.
    const text =
      typeof request.body === 'string'
        ? request.body
        : request.body instanceof Uint8Array
          ? new TextDecoder().decode(request.body)
          : undefined;
    if (text === undefined) return undefined;
    const body = JSON.parse(text) as Record<string, unknown>;
    const name = typeof body.TableName === 'string' ? body.TableName : undefined;
    if (name === undefined) {
      // BatchWriteItem and TransactWriteItems name their tables inside.
      if (refusedWrites.has(op) && JSON.stringify(body).match(this.tableNamePattern())) {
        return { op, table: { name: '', partitionKey: '', indexes: {} }, body };
      }
      return undefined;
    }
    const table = this.o.tables[name];
    return table ? { op, table: { ...table, name }, body } : undefined;
  }

  private tableNamePattern(): RegExp {
    const names = Object.keys(this.o.tables).map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    return new RegExp(`"(${names.join('|')})"`);
  }

  private keyOf(table: TrackedTable & { name: string }, item: WireItem): string {
    const parts = [item[table.partitionKey], table.sortKey ? item[table.sortKey] : undefined];
    return `${table.name}\u0000${JSON.stringify(parts)}`;
  }

  private keyAttributes(table: TrackedTable, item: WireItem): WireItem {
    const key: WireItem = {};
    for (const name of [table.partitionKey, table.sortKey]) {
      const value = name ? item[name] : undefined;
      if (name && value) key[name] = value;
    }
    return key;
  }

  private async getItem(table: string, key: WireItem): Promise<WireItem | undefined> {
    const out = await this.o.reader.send(
      new GetItemCommand({ TableName: table, Key: key as never, ConsistentRead: true }),
    );
    return out.Item as WireItem | undefined;
  }

  private async recordWrite(
    table: TrackedTable & { name: string },
    op: string,
    body: Record<string, unknown>,
    send: () => Promise<{ response: WireResponse }>,
  ): Promise<{ response: WireResponse }> {
    const item = (op === 'PutItem' ? body.Item : body.Key) as WireItem;
    const key = this.keyAttributes(table, item);
    const id = this.keyOf(table, key);
    let entry = this.pending.get(id);
    if (!entry) {
      const created: Pending = { before: undefined, ready: Promise.resolve(), writes: [], inFlight: 0 };
      created.ready = this.getItem(table.name, key).then((before) => {
        created.before = before;
      });
      this.pending.set(id, created);
      entry = created;
    }
    entry.inFlight++;
    try {
      await entry.ready;
      const result = await send();
      const ok = result.response.statusCode < 300;
      let image: WireItem | undefined;
      if (ok && op === 'PutItem') image = item;
      else if (ok && op === 'DeleteItem') image = undefined;
      else image = await this.getItem(table.name, key);
      // A refused write (a failed condition) changed nothing: nothing for the index to show later.
      const last = entry.writes.at(-1)?.image ?? entry.before;
      if (ok || JSON.stringify(image) !== JSON.stringify(last)) {
        const ackedAt = this.o.now();
        const lag = this.maxLag * (0.25 + 0.75 * this.o.random());
        const previous = entry.writes.at(-1)?.visibleAt ?? 0;
        entry.writes.push({ image, visibleAt: Math.max(previous, ackedAt + lag) });
      }
      return result;
    } finally {
      entry.inFlight--;
    }
  }

  /** Forgets the items whose every write the index shows now. */
  private prune(): void {
    const now = this.o.now();
    for (const [id, entry] of this.pending) {
      if (entry.inFlight === 0 && entry.writes.every((w) => w.visibleAt <= now)) this.pending.delete(id);
    }
  }

  private async answerQuery(
    table: TrackedTable & { name: string },
    body: Record<string, unknown>,
  ): Promise<WireResponse> {
    const indexName = String(body.IndexName);
    const index = table.indexes[indexName];
    if (!index)
      return next400('ValidationException', `The table does not have the specified index: ${indexName}`);
    if (body.ConsistentRead === true) {
      return next400('ValidationException', 'Consistent reads are not supported on global secondary indexes');
    }
    for (const field of [
      'FilterExpression',
      'ProjectionExpression',
      'QueryFilter',
      'KeyConditions',
      'AttributesToGet',
    ]) {
      if (body[field] !== undefined) throw new Error(`indexLag: ${field} on an index Query is not modelled`);
    }
    if (
      body.Select !== undefined &&
      body.Select !== 'COUNT' &&
      body.Select !== 'ALL_ATTRIBUTES' &&
      body.Select !== 'ALL_PROJECTED_ATTRIBUTES'
    ) {
      throw new Error(`indexLag: Select ${String(body.Select)} on an index Query is not modelled`);
    }
    const names = (body.ExpressionAttributeNames ?? {}) as Record<string, string>;
    const values = (body.ExpressionAttributeValues ?? {}) as Record<string, WireValue>;
    const matches = keyCondition(String(body.KeyConditionExpression ?? ''), names, values);

    // The real index, whole (the handler's Limit and start key apply to the stale view, below).
    const real: WireItem[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.o.reader.send(
        new QueryCommand({
          TableName: table.name,
          IndexName: indexName,
          KeyConditionExpression: body.KeyConditionExpression as string,
          ExpressionAttributeNames: body.ExpressionAttributeNames as never,
          ExpressionAttributeValues: body.ExpressionAttributeValues as never,
          ExclusiveStartKey: startKey as never,
        }),
      );
      real.push(...((page.Items ?? []) as WireItem[]));
      startKey = page.LastEvaluatedKey;
    } while (startKey);

    this.prune();
    const now = this.o.now();
    const stale = new Map<string, WireItem | undefined>();
    for (const [id, entry] of this.pending) {
      if (!id.startsWith(`${table.name}\u0000`)) continue;
      await entry.ready;
      const shown = entry.writes.filter((w) => w.visibleAt <= now).at(-1);
      stale.set(id, shown ? shown.image : entry.before);
    }
    const inIndex = (item: WireItem | undefined): item is WireItem =>
      item !== undefined &&
      item[index.partitionKey] !== undefined &&
      (index.sortKey === undefined || item[index.sortKey] !== undefined) &&
      matches(item);
    let changed = false;
    const view: WireItem[] = [];
    for (const item of real) {
      if (stale.has(this.keyOf(table, item))) changed = true;
      else view.push(item);
    }
    for (const image of stale.values()) if (inIndex(image)) view.push(image);
    if (changed || view.length !== real.length) this.staleAnswers++;

    const order = (a: WireItem, b: WireItem): number =>
      compareValues(
        index.sortKey ? a[index.sortKey] : undefined,
        index.sortKey ? b[index.sortKey] : undefined,
      ) ||
      compareValues(a[table.partitionKey], b[table.partitionKey]) ||
      compareValues(
        table.sortKey ? a[table.sortKey] : undefined,
        table.sortKey ? b[table.sortKey] : undefined,
      );
    const forward = body.ScanIndexForward !== false;
    view.sort((a, b) => (forward ? order(a, b) : order(b, a)));
    const esk = body.ExclusiveStartKey as WireItem | undefined;
    let items = esk ? view.filter((item) => (forward ? order(item, esk) : order(esk, item)) > 0) : view;
    const limit = typeof body.Limit === 'number' ? body.Limit : undefined;
    let lastKey: WireItem | undefined;
    if (limit !== undefined && items.length > limit) {
      items = items.slice(0, limit);
      const last = items.at(-1) as WireItem;
      lastKey = {};
      for (const name of [table.partitionKey, table.sortKey, index.partitionKey, index.sortKey]) {
        const value = name ? last[name] : undefined;
        if (name && value) lastKey[name] = value;
      }
    }
    const out: Record<string, unknown> = { Count: items.length, ScannedCount: items.length };
    if (body.Select !== 'COUNT') out.Items = items;
    if (lastKey) out.LastEvaluatedKey = lastKey;
    return jsonResponse(200, out);
  }
}

function jsonResponse(statusCode: number, body: unknown): WireResponse {
  return {
    statusCode,
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'indexlag' },
    body: new TextEncoder().encode(JSON.stringify(body)),
  };
}

function next400(type: string, message: string): WireResponse {
  return jsonResponse(400, { __type: `com.amazon.coral.validate#${type}`, message });
}

/** Orders two key values as DynamoDB orders them (strings by code unit, numbers by value). */
function compareValues(a: WireValue | undefined, b: WireValue | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  if (a.N !== undefined && b.N !== undefined) return Number(a.N) - Number(b.N);
  const x = a.S ?? a.B ?? '';
  const y = b.S ?? b.B ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * A KeyConditionExpression as a predicate on an item: `pk = :v` and, optionally, `AND` one of `sk = :v`,
 * `<`, `<=`, `>`, `>=`, `BETWEEN :a AND :b`, `begins_with(sk, :p)` (the whole grammar DynamoDB allows).
 */
export function keyCondition(
  expression: string,
  names: Record<string, string>,
  values: Record<string, WireValue>,
): (item: WireItem) => boolean {
  const attr = (token: string): string => (token.startsWith('#') ? (names[token] ?? token) : token);
  const value = (token: string): WireValue => {
    const v = values[token];
    if (!v) throw new Error(`indexLag: no value ${token} in ExpressionAttributeValues`);
    return v;
  };
  const clauses: Array<(item: WireItem) => boolean> = [];
  // BETWEEN's own AND must not split its clause.
  const parts = expression
    .replace(/\s+BETWEEN\s+(:\w+)\s+AND\s+(:\w+)/gi, ' BETWEEN $1 ~AND~ $2')
    .split(/\s+AND\s+/i)
    .map((p) =>
      p
        .trim()
        .replace(/^\((.*)\)$/, '$1')
        .trim(),
    );
  for (const part of parts) {
    let m = /^([#\w.]+)\s*(=|<=|<|>=|>)\s*(:\w+)$/.exec(part);
    if (m) {
      const [, a, op, v] = m as unknown as [string, string, string, string];
      const name = attr(a);
      const operand = value(v);
      clauses.push((item) => {
        const c = item[name] === undefined ? Number.NaN : compareValues(item[name], operand);
        if (op === '=') return c === 0;
        if (op === '<') return c < 0;
        if (op === '<=') return c <= 0;
        if (op === '>') return c > 0;
        return c >= 0;
      });
      continue;
    }
    m = /^begins_with\s*\(\s*([#\w.]+)\s*,\s*(:\w+)\s*\)$/i.exec(part);
    if (m) {
      const name = attr(m[1] as string);
      const prefix = value(m[2] as string);
      clauses.push((item) => {
        const v = item[name];
        const text = v?.S ?? v?.B;
        const p = prefix.S ?? prefix.B;
        return text !== undefined && p !== undefined && text.startsWith(p);
      });
      continue;
    }
    m = /^([#\w.]+)\s+BETWEEN\s+(:\w+)\s+~AND~\s+(:\w+)$/i.exec(part);
    if (m) {
      const name = attr(m[1] as string);
      const low = value(m[2] as string);
      const high = value(m[3] as string);
      clauses.push(
        (item) =>
          item[name] !== undefined &&
          compareValues(item[name], low) >= 0 &&
          compareValues(item[name], high) <= 0,
      );
      continue;
    }
    throw new Error(`indexLag: key condition '${part}' is not understood`);
  }
  return (item) => clauses.every((c) => c(item));
}
