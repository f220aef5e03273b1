import { fail } from './errors.js';

/** EC2 filter value matching: `*` is any run of characters, `?` one character (as EC2 documents). */
export function wildcardMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === value;
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's').test(value);
}

/** True when any candidate matches any filter value (values of one filter are ORed). */
export function anyMatch(values: readonly string[], candidates: readonly (string | undefined)[]): boolean {
  return candidates.some((c) => c !== undefined && values.some((v) => wildcardMatch(v, c)));
}

/** An EC2-style filter as it arrives from the SDK. */
export interface InputFilter {
  Name?: string;
  Values?: string[];
}

/**
 * Applies EC2 filters (ANDed; values ORed). `extract(name, item)` returns the item's candidate values
 * for a filter name; `known` lists the accepted names (`tag:<key>` is always accepted). An unknown
 * name fails as EC2 fails it, even when there is nothing to filter.
 */
export function applyFilters<T>(
  items: readonly T[],
  filters: readonly InputFilter[] | undefined,
  known: ReadonlySet<string>,
  extract: (name: string, item: T) => readonly (string | undefined)[],
): T[] {
  const list = filters ?? [];
  for (const f of list) {
    const name = f.Name ?? '';
    if (!name.startsWith('tag:') && !known.has(name))
      fail('InvalidParameterValue', `The filter '${name}' is invalid`);
  }
  return items.filter((item) => list.every((f) => anyMatch(f.Values ?? [], extract(f.Name ?? '', item))));
}

/** Candidate values for the generic tag filters `tag:<key>`, `tag-key`, `tag-value`. */
export function tagFilter(name: string, tags: ReadonlyMap<string, string>): readonly string[] {
  if (name.startsWith('tag:')) {
    const value = tags.get(name.slice(4));
    return value === undefined ? [] : [value];
  }
  if (name === 'tag-key') return [...tags.keys()];
  if (name === 'tag-value') return [...tags.values()];
  return [];
}

/** Tags as the SDK returns them. */
export function tagList(tags: ReadonlyMap<string, string>): { Key: string; Value: string }[] {
  return [...tags].map(([Key, Value]) => ({ Key, Value }));
}

/** The tags of TagSpecifications entries for `resourceType`. */
export function tagsFromSpecifications(
  specs: readonly { ResourceType?: string; Tags?: { Key?: string; Value?: string }[] }[] | undefined,
  resourceType: string,
): Map<string, string> {
  const tags = new Map<string, string>();
  for (const spec of specs ?? []) {
    if (spec.ResourceType !== undefined && spec.ResourceType !== resourceType) {
      fail(
        'InvalidParameterValue',
        `'${spec.ResourceType}' is not a valid taggable resource type for this operation.`,
      );
    }
    for (const t of spec.Tags ?? []) if (t.Key !== undefined) tags.set(t.Key, t.Value ?? '');
  }
  return tags;
}

/** Options of `paginate`. */
export interface PageOptions {
  maxResults?: number;
  nextToken?: string;
  /** Page size when MaxResults is absent; `Infinity` returns everything. */
  defaultSize: number;
  min: number;
  max: number;
  /** Error code for a bad NextToken. */
  badTokenCode: string;
  /** Error code for MaxResults out of range. */
  badSizeCode?: string;
}

/** Cuts `items` into a page: the NextToken is an opaque encoded offset. */
export function paginate<T>(items: readonly T[], o: PageOptions): { page: T[]; nextToken?: string } {
  let offset = 0;
  if (o.nextToken !== undefined) {
    const decoded = Number(
      Buffer.from(o.nextToken, 'base64url')
        .toString('utf8')
        .replace(/^offset:/, ''),
    );
    if (!Number.isInteger(decoded) || decoded < 0) fail(o.badTokenCode, 'The token is invalid or expired.');
    offset = decoded;
  }
  if (o.maxResults !== undefined && (o.maxResults < o.min || o.maxResults > o.max)) {
    fail(
      o.badSizeCode ?? 'InvalidParameterValue',
      `Value ( ${o.maxResults} ) for parameter maxResults is invalid. Expecting a value between ${o.min} and ${o.max}.`,
    );
  }
  const size = o.maxResults ?? o.defaultSize;
  const page = items.slice(offset, offset + size);
  const next = offset + page.length;
  return next < items.length
    ? { page, nextToken: Buffer.from(`offset:${next}`, 'utf8').toString('base64url') }
    : { page };
}

/** Throws `MissingParameter` (EC2 style) when `value` is absent. */
export function required<T>(value: T | undefined | null, name: string, code = 'MissingParameter'): T {
  if (value === undefined || value === null || value === '') {
    fail(code, `The request must contain the parameter ${name}`);
  }
  return value;
}
