/**
 * The project's one LRU, shared by the rate limiter (per-IP buckets), the cache's memory layer
 * (recency, bounded by bytes elsewhere), verified tokens and authorization decisions (TtlLru).
 *
 * A Map for lookup plus an intrusive doubly linked list for order. (Evicting through
 * `map.keys().next()` is not O(1) in JavaScriptCore: the iterator walks over the holes left by
 * earlier deletions, which made a million-client flood take seconds; moving a key by Map
 * delete + re-insert was measured at tens of µs per hit once the map churns.)
 */
interface Node<V> {
  key: string;
  value: V;
  prev: Node<V> | null;
  next: Node<V> | null;
}

export class LruMap<V> {
  private readonly map = new Map<string, Node<V>>();
  /** Least recently used end. */
  private head: Node<V> | null = null;
  /** Most recently used end. */
  private tail: Node<V> | null = null;

  /** `maxEntries` may be Infinity for a caller that bounds by something else (the cache: bytes). */
  constructor(readonly maxEntries: number) {
    if (!(maxEntries >= 1)) throw new RangeError("maxEntries must be >= 1");
  }

  /** The value without touching recency. */
  peek(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  /** Values from most to least recently used. */
  *newestFirst(): IterableIterator<V> {
    for (let n = this.tail; n !== null; n = n.prev) yield n.value;
  }

  /** Values from least to most recently used. */
  *oldestFirst(): IterableIterator<V> {
    for (let n = this.head; n !== null; n = n.next) yield n.value;
  }

  /** [key, value] pairs from least to most recently used (deleting the entry being visited ends the walk: snapshot first). */
  *entries(): IterableIterator<[string, V]> {
    for (let n = this.head; n !== null; n = n.next) yield [n.key, n.value];
  }

  get size(): number {
    return this.map.size;
  }

  /** Returns the value and marks it most recently used. */
  get(key: string): V | undefined {
    const node = this.map.get(key);
    if (node === undefined) return undefined;
    if (node !== this.tail) {
      this.unlink(node);
      this.append(node);
    }
    return node.value;
  }

  /** Inserts a new key (the caller has checked it is absent), evicting the LRU entry if full. */
  insert(key: string, value: V): void {
    if (this.map.size >= this.maxEntries && this.head !== null) this.deleteOldest();
    const node: Node<V> = { key, value, prev: null, next: null };
    this.map.set(key, node);
    this.append(node);
  }

  /** Inserts or replaces a key, marking it most recently used. */
  set(key: string, value: V): void {
    const node = this.map.get(key);
    if (node === undefined) return this.insert(key, value);
    node.value = value;
    if (node !== this.tail) {
      this.unlink(node);
      this.append(node);
    }
  }

  delete(key: string): boolean {
    const node = this.map.get(key);
    if (node === undefined) return false;
    this.unlink(node);
    this.map.delete(key);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.head = this.tail = null;
  }

  /** The least recently used value, or undefined when empty. */
  oldest(): V | undefined {
    return this.head === null ? undefined : this.head.value;
  }

  deleteOldest(): void {
    const node = this.head;
    if (node === null) return;
    this.unlink(node);
    this.map.delete(node.key);
  }

  private append(node: Node<V>): void {
    node.prev = this.tail;
    node.next = null;
    if (this.tail !== null) this.tail.next = node;
    else this.head = node;
    this.tail = node;
  }

  private unlink(node: Node<V>): void {
    if (node.prev !== null) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next !== null) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = null;
  }
}

/**
 * LruMap with a per-entry expiry (verified tokens, authorization decisions). The caller passes the
 * clock to get/set, so an injected clock drives expiry. maxEntries 0 makes every call a no-op
 * (a disabled cache needs no branch at its call sites).
 */
export class TtlLru<V> {
  private readonly lru: LruMap<{ value: V; expiresAt: number }> | undefined;

  constructor(readonly maxEntries: number) {
    this.lru = maxEntries > 0 ? new LruMap(maxEntries) : undefined;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  /** The value while now < its expiresAt (an expired entry is dropped on the way). */
  get(key: string, now: number): V | undefined {
    const e = this.lru?.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      this.lru!.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V, expiresAt: number): void {
    this.lru?.set(key, { value, expiresAt });
  }

  clear(): void {
    this.lru?.clear();
  }
}
