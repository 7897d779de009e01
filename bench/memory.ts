/**
 * Memory under load: idle keep-alive connections and slow readers of large objects.
 */
import { connect, type Socket } from "node:net";
import { MIB, type Proxy, sleep } from "./lib.ts";

/** Opens `n` sockets, sends one keep-alive GET on each, reads the response, keeps them open. */
export async function idleConnections(proxy: Proxy, path: string, n: number): Promise<{ open: number; rss_before_mib: number; rss_with_idle_mib: number; rss_after_close_mib: number }> {
  Bun.gc(true);
  const before = proxy.rss() / MIB;
  const sockets: Socket[] = [];
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const s = connect(proxy.port, "127.0.0.1");
      sockets.push(s);
      let got = "";
      s.on("error", reject);
      s.on("connect", () => s.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n`));
      s.on("data", (d) => {
        got += d.toString("latin1");
        const hdrEnd = got.indexOf("\r\n\r\n");
        if (hdrEnd < 0) return;
        const len = Number(/content-length: (\d+)/i.exec(got)?.[1] ?? 0);
        if (got.length - hdrEnd - 4 >= len) {
          if (!got.startsWith("HTTP/1.1 200")) reject(new Error(got.slice(0, 200)));
          else resolve();
        }
      });
    });
  for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, one));
  await sleep(2000);
  const open = sockets.filter((s) => !s.destroyed).length;
  const withIdle = proxy.rss() / MIB;
  for (const s of sockets) s.destroy();
  await sleep(1000);
  return { open, rss_before_mib: before, rss_with_idle_mib: withIdle, rss_after_close_mib: proxy.rss() / MIB };
}

/**
 * `n` concurrent downloads of a large object, each read at about `kibPerSec` (the socket is paused
 * between reads, so TCP backpressure reaches the proxy). Samples the proxy's RSS for `ms`.
 */
export async function slowReaders(proxy: Proxy, path: string, n: number, ms: number, kibPerSec = 1024): Promise<{ readers: number; seconds: number; reader_kib_per_s: number; rss_before_mib: number; rss_max_mib: number; rss_end_mib: number; bytes_read_mib: number }> {
  const before = proxy.rss() / MIB;
  let read = 0;
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect(proxy.port, "127.0.0.1");
    s.on("error", () => {});
    s.on("connect", () => s.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`));
    let budget = 0;
    s.on("data", (d) => {
      read += d.length;
      budget -= d.length;
      if (budget <= 0) s.pause();
    });
    sockets.push(s);
    // Each 100 ms, allow kibPerSec/10 KiB more.
    const t = setInterval(() => {
      budget += (kibPerSec * 1024) / 10;
      if (budget > 0 && s.isPaused()) s.resume();
    }, 100);
    s.on("close", () => clearInterval(t));
    (s as Socket & { timer?: ReturnType<typeof setInterval> }).timer = t;
  }
  let max = before;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await sleep(250);
    max = Math.max(max, proxy.rss() / MIB);
  }
  const endRss = proxy.rss() / MIB;
  for (const s of sockets) {
    clearInterval((s as Socket & { timer?: ReturnType<typeof setInterval> }).timer);
    s.destroy();
  }
  await sleep(500);
  return { readers: n, seconds: ms / 1000, reader_kib_per_s: kibPerSec, rss_before_mib: before, rss_max_mib: max, rss_end_mib: endRss, bytes_read_mib: read / MIB };
}
