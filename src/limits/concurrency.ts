/** How many slots each client address holds (only the addresses counted: see the limiters below). */
class PerAddress {
  private readonly held = new Map<string, number>();

  count(ip: string): number {
    return this.held.get(ip) ?? 0;
  }

  add(ip: string): void {
    this.held.set(ip, this.count(ip) + 1);
  }

  /** One slot of `ip` given back ("" : an admission that was not counted per address). */
  remove(ip: string): void {
    if (ip === "") return;
    const mine = this.held.get(ip);
    if (mine === undefined) return;
    if (mine <= 1) this.held.delete(ip);
    else this.held.set(ip, mine - 1);
  }
}

/**
 * Caps the requests in flight (server.max_concurrent_requests) and, once half of them are taken,
 * what one client address may hold (server.max_concurrent_requests_per_ip, a quarter by default).
 * A slot is held until the answer's body is sent: without the second cap, clients that never read
 * their answers (100 sockets, each a GET of a large object) held every slot for a minute, and
 * everyone else got 503. The address is asked for only from half the cap on (below it nobody is
 * short of a slot; finding a request's address costs microseconds): requests admitted below that
 * are not counted per address, so one address holds at most half the cap plus its own cap.
 */
export class ConcurrencyLimiter {
  private n = 0;
  private readonly perIp = new PerAddress();

  /** `max` and `maxPerIp` may be changed at runtime (config reload); requests already in flight are kept. */
  constructor(
    public max: number,
    public maxPerIp = Infinity,
  ) {
    if (!(max >= 1)) throw new RangeError("max must be >= 1");
  }

  /**
   * "ok" (not counted per address), { ip } (counted: leave(ip) later), or which cap refused. Every
   * admission must be paired with exactly one `leave()`, given the ip it returned ("" for "ok").
   */
  tryEnter(ip?: string): "ok" | "concurrency" | "concurrency_per_ip" | { ip: string } {
    if (this.n >= this.max) return "concurrency";
    // "" : no address known (the client already gone: neither listener knows the peer of a closed
    // connection). It is not counted: leave("") gives back no address's slot, and "" held slots for good.
    if (ip === undefined || ip === "" || !this.countsAddresses) {
      this.n++;
      return "ok";
    }
    if (this.perIp.count(ip) >= this.maxPerIp) return "concurrency_per_ip";
    this.n++;
    this.perIp.add(ip);
    return { ip };
  }

  /** Whether the next request is counted per address (give tryEnter its address): from half the cap on. */
  get countsAddresses(): boolean {
    return this.n >= this.max / 2 && this.maxPerIp < this.max;
  }

  leave(ip = ""): void {
    if (this.n > 0) this.n--;
    this.perIp.remove(ip);
  }

  get inFlight(): number {
    return this.n;
  }
}

/**
 * Caps the requests whose body is being received (server.max_concurrent_uploads, in all and per
 * client address). A streamed upload holds an upstream connection (and, on fetch, one of its
 * process-wide request slots) from its head on, whether or not its body arrives: without a cap of
 * its own, a few hundred stalled upload heads took every slot, and reads and readiness probes
 * waited behind them.
 */
export class UploadLimiter {
  private n = 0;
  private readonly perIp = new PerAddress();

  constructor(
    public max: number,
    public maxPerIp: number,
  ) {}

  /**
   * "ok", or which cap refused; an "ok" must be paired with exactly one `leave(ip)`, where `ip` is
   * what `ipOf(from)` gave, or "" when it was not asked (`from`: so that a caller needs no closure
   * per upload). The address is asked for only when the uploads
   * in flight reach the per-address cap (below it no address can be at its cap): finding a
   * request's address on every upload cost a 1 KiB PutObject 11-13 µs of CPU (~13 %) in an A/B
   * with bench/uploads.ts. Uploads
   * admitted below that are not counted per address, so one address can hold at most twice its cap.
   */
  tryEnter<T>(ipOf: (from: T) => string, from?: T): "ok" | "uploads" | "uploads_per_ip" | { ip: string } {
    if (this.n >= this.max) return "uploads";
    if (this.n < this.maxPerIp) {
      this.n++;
      return "ok";
    }
    const ip = ipOf(from as T);
    // (no address known: not counted, as in ConcurrencyLimiter.tryEnter)
    if (ip === "") {
      this.n++;
      return "ok";
    }
    if (this.perIp.count(ip) >= this.maxPerIp) return "uploads_per_ip";
    this.n++;
    this.perIp.add(ip);
    return { ip };
  }

  leave(ip: string): void {
    if (this.n > 0) this.n--;
    this.perIp.remove(ip);
  }

  get inFlight(): number {
    return this.n;
  }
}
