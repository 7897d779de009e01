/**
 * The reasons one Redis outage logs (the cache layer's link, the shared rate limits): the one it
 * started with, then each other reason once, OUTAGE_REASONS in all. A Redis whose password changed
 * while connected (CONFIG SET requirepass: open connections stay authenticated) is first a lost
 * connection, then a refusal at every reconnect; logged as the lost connection only, the refusal
 * was in /ready alone. Never a line at each retry: a Redis alternating between failures is not
 * logged every time it alternates.
 */
export const OUTAGE_REASONS = 4;

/**
 * A reason as an outage's reasons count it: every way of not answering in time (a command's
 * timeout, a silent connection, a connect whose handshake got no answer), whatever its wait, is one
 * reason, a slow Redis, logged once, not a line per way; and one in another case is the same one.
 */
function reasonKind(reason: string): string {
  return /\bno answer\b/i.test(reason) ? "no answer" : reason.toLowerCase();
}

export class OutageReasons {
  private readonly said = new Set<string>();

  /** An outage starts, logged with `what`: the reasons an earlier one said are forgotten. */
  start(what: string): void {
    this.said.clear();
    this.said.add(reasonKind(what));
  }

  /**
   * Whether `what`, met while the outage lasts, is to be logged: not said yet in this outage, and
   * fewer than OUTAGE_REASONS said. The first one met in an outage whose start this did not see (a
   * reload's new limiter, its predecessor having logged the start) is taken as said.
   */
  isNew(reason: string): boolean {
    // (the rate limits' `connection closed`, when the connection's close came first, and Bun's
    // `Connection closed`, a request's error, were two lines; the cache layer's `no answer for
    // 2001 ms`, a lookup's, and `no answer within 500 ms`, its reconnection's, too)
    const what = reasonKind(reason);
    if (this.said.size === 0) {
      this.said.add(what);
      return false;
    }
    if (this.said.has(what) || this.said.size >= OUTAGE_REASONS) return false;
    this.said.add(what);
    return true;
  }
}
