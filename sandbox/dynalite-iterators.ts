import { createRequire } from 'node:module';

/** `require` as dynalite resolves its own dependencies: the module instances its store really uses. */
export const requireAsDynalite = createRequire(createRequire(import.meta.url).resolve('dynalite'));

/**
 * dynalite 4 reads Query and Scan results through Readable streams over `memory-level` iterators, and
 * its stream's `destroy` closes the iterator with `iterator.return()`, a method abstract-level 3's
 * iterators do not have. So no iterator dynalite opens is ever closed. Each open iterator pins the
 * version of the in-memory tree it was opened on (the tree is persistent: every write makes a new
 * version), so a long sandbox run kept every value ever written alive: by 2,500 chaos operations
 * about 3,900 open iterators held 150 MB of old item buffers, and the live heap grew without bound.
 *
 * This gives the iterators the `return()` dynalite calls (the async-iterator protocol's: close, then
 * report done). The streams dynalite ends (at the end of the data, or where a Limit or the 1 MB page
 * stops its `takeWhile`) then release their iterator and the tree version with it.
 */
export function closeDynaliteIteratorsOnDestroy(): void {
  const fromMemoryLevel = createRequire(requireAsDynalite.resolve('memory-level'));
  const level = fromMemoryLevel('abstract-level') as Record<string, { prototype: IteratorLike }>;
  for (const name of ['AbstractIterator', 'AbstractKeyIterator', 'AbstractValueIterator']) {
    const proto = level[name]?.prototype;
    if (!proto || typeof proto.return === 'function') continue;
    Object.defineProperty(proto, 'return', {
      configurable: true,
      writable: true,
      value(this: IteratorLike) {
        return this.close().then(() => ({ done: true, value: undefined }));
      },
    });
  }
}

interface IteratorLike {
  close(): Promise<void>;
  return?: () => Promise<{ done: true; value: undefined }>;
}
