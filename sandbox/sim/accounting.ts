import { AsyncLocalStorage } from 'node:async_hooks';

/** What is counted: the cost drivers of an operation. */
export type CountKind = 'awsCall' | 'stateTransition' | 'lambdaInvocation' | 'tableWrite';

/** The kinds, in report order. */
export const countKinds: readonly CountKind[] = [
  'awsCall',
  'stateTransition',
  'lambdaInvocation',
  'tableWrite',
];

/** Per-kind totals and, per kind, totals by detail (e.g. `byDetail.awsCall['ec2:AttachVolume']`). */
export type Counts = Record<CountKind, number> & { byDetail: Record<CountKind, Record<string, number>> };

function emptyCounts(): Counts {
  return {
    awsCall: 0,
    stateTransition: 0,
    lambdaInvocation: 0,
    tableWrite: 0,
    byDetail: { awsCall: {}, stateTransition: {}, lambdaInvocation: {}, tableWrite: {} },
  };
}

function cloneCounts(c: Counts): Counts {
  return {
    awsCall: c.awsCall,
    stateTransition: c.stateTransition,
    lambdaInvocation: c.lambdaInvocation,
    tableWrite: c.tableWrite,
    byDetail: {
      awsCall: { ...c.byDetail.awsCall },
      stateTransition: { ...c.byDetail.stateTransition },
      lambdaInvocation: { ...c.byDetail.lambdaInvocation },
      tableWrite: { ...c.byDetail.tableWrite },
    },
  };
}

function add(c: Counts, kind: CountKind, detail: string, n: number): void {
  c[kind] += n;
  c.byDetail[kind][detail] = (c.byDetail[kind][detail] ?? 0) + n;
}

/**
 * Counts AWS calls, state transitions, Lambda invocations and table writes, attributed to the
 * operation (an acquire, a push...) in whose async context they happen. Attribution rides on
 * AsyncLocalStorage, so code deep in a handler counts without knowing which operation it serves.
 */
export class Accounting {
  private readonly storage = new AsyncLocalStorage<string>();
  private readonly perOperation = new Map<string, Counts>();
  private readonly all = emptyCounts();

  /** Runs `fn` so that every count made in its async context (awaits, timers, callbacks) goes to `operationId`. */
  withOperation<T>(operationId: string, fn: () => Promise<T>): Promise<T> {
    return this.storage.run(operationId, fn);
  }

  /** The operation the current async context belongs to, if any. */
  currentOperation(): string | undefined {
    return this.storage.getStore();
  }

  /** Counts `n` (default 1) of `kind`; `detail` names what, e.g. `ec2:AttachVolume`. */
  count(kind: CountKind, detail: string, n = 1): void {
    add(this.all, kind, detail, n);
    const op = this.storage.getStore();
    if (op === undefined) return;
    let counts = this.perOperation.get(op);
    if (!counts) {
      counts = emptyCounts();
      this.perOperation.set(op, counts);
    }
    add(counts, kind, detail, n);
  }

  /** Counts of one operation (zeros if it counted nothing). A copy: later counts do not change it. */
  forOperation(operationId: string): Counts {
    const counts = this.perOperation.get(operationId);
    return counts ? cloneCounts(counts) : emptyCounts();
  }

  /** How many of `kind` one operation counted so far (cheaper than {@link forOperation}). */
  countOf(operationId: string, kind: CountKind): number {
    return this.perOperation.get(operationId)?.[kind] ?? 0;
  }

  /** Ids of every operation that counted something, in first-count order. */
  operations(): string[] {
    return [...this.perOperation.keys()];
  }

  /** Counts of everything, attributed or not. A copy. */
  totals(): Counts {
    return cloneCounts(this.all);
  }

  /** Forgets every count. */
  reset(): void {
    this.perOperation.clear();
    Object.assign(this.all, emptyCounts());
  }
}

/**
 * The one slice of an SDK v3 client this module needs. Typed loosely because each client's stack
 * has its own input/output generics; the middleware only reads `context.commandName`.
 */
export interface ClientWithStack {
  middlewareStack: {
    // biome-ignore lint/suspicious/noExplicitAny: SDK middleware generics differ per client.
    add(middleware: any, options: any): void;
  };
}

/** `AttachVolumeCommand` -> `AttachVolume`. */
export function operationName(commandName: unknown): string {
  const name = typeof commandName === 'string' ? commandName : 'Unknown';
  return name.endsWith('Command') ? name.slice(0, -'Command'.length) : name;
}

/** DynamoDB operations that write (low-level and DocumentClient names). */
const tableWriteOperations = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
  'Put',
  'Update',
  'Delete',
  'BatchWrite',
  'TransactWrite',
]);

/** Name the counting middleware registers under (re-adding it replaces it). */
export const countingMiddlewareName = 'volsdAccountingCounter';

/**
 * Adds a pass-through middleware to `client` that counts every request attempt as an `awsCall`
 * (`<service>:<Operation>`) and, for DynamoDB writes (PutItem, UpdateItem, DeleteItem,
 * BatchWriteItem, TransactWriteItems), also a `tableWrite`. It sits inside the SDK's retry
 * middleware, so each retried attempt counts (AWS bills those too; a failed conditional write
 * consumes write capacity as well). Do not combine with `attachSimulator` on the same client:
 * that one already counts.
 */
export function countingMiddleware(client: ClientWithStack, accounting: Accounting, service: string): void {
  client.middlewareStack.add(
    // biome-ignore lint/suspicious/noExplicitAny: generic SDK middleware signature.
    (next: (args: any) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      const op = operationName(context.commandName);
      accounting.count('awsCall', `${service}:${op}`);
      if (service === 'dynamodb' && tableWriteOperations.has(op))
        accounting.count('tableWrite', `dynamodb:${op}`);
      return next(args);
    },
    { step: 'deserialize', priority: 'high', name: countingMiddlewareName, override: true },
  );
}
