/**
 * The proxy's own upstream calls a request makes on work it started and must not leave behind,
 * which a shutdown lets finish: a form upload's multipart upload (PostObject), from its Create
 * until it is completed or aborted. Cut by the drain's end, a form upload aborts its multipart
 * upload (bounded at 30 s); the process waited ~1 s for cut requests, so a slower abort was
 * dropped with the exit, its parts left in the bucket and no line said so. Each is described by
 * the fields a warn line gives (bucket, key, upload_id).
 */
export class OpenWork {
  private readonly open = new Set<Record<string, string>>();
  private emptied: Array<() => void> = [];

  /** `what` is open until the returned function is called (what it says may change meanwhile: an upload id once known). */
  add(what: Record<string, string>): () => void {
    this.open.add(what);
    return () => {
      this.open.delete(what);
      if (this.open.size === 0) for (const f of this.emptied.splice(0)) f();
    };
  }

  get size(): number {
    return this.open.size;
  }

  /** Waits until nothing is open, at most `ms`; what is still open then. */
  async settle(ms: number): Promise<Array<Record<string, string>>> {
    if (this.open.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([new Promise<void>((r) => this.emptied.push(r)), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
      clearTimeout(timer);
    }
    return [...this.open].map((w) => ({ ...w }));
  }
}
