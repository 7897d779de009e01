/**
 * Why Redis closed the connection at once. Bun's RedisClient authenticates in its HELLO and, when
 * Redis refuses the credentials, reports only ERR_REDIS_CONNECTION_CLOSED, which reads like a
 * network fault. On that error one plain connection asks Redis the same question (AUTH, or PING
 * when the URL gives no password) and reads its first reply line, so a wrong password is reported
 * as such. The URL's user name and password never appear in what is returned. The same close
 * hides a TLS certificate the process does not trust (rediss://): the asking connection's
 * handshake names it; and a connection refused or a host name that does not resolve, which the
 * asking connection's own failure names.
 */
import { certRefusalHint } from "./tls-refusal.ts";
import { unresolvedHost } from "./text.ts";

/**
 * Whether a failed connect is worth asking Redis about (redisAuthFailure): Redis refusing the URL's
 * credentials reads as ERR_REDIS_CONNECTION_CLOSED, and a rediss:// URL to a Redis without TLS as
 * that or as no answer at all (the server waits for a line), so a client never connected.
 */
export function worthAskingWhy(err: unknown, connected: boolean, url: string): boolean {
  return (err as { code?: string } | undefined)?.code === "ERR_REDIS_CONNECTION_CLOSED" || (!connected && url.startsWith("rediss:"));
}

/** "authentication failed (...)" / "authentication required (...)" / "TLS: ... not trusted (...)" / "connection refused (...)" / "no answer within N ms" (a server that took the connection and said nothing: a Redis stalled or slower than the timeout, which Bun's client reported as a closed connection) / Redis's own refusal (of the connection, or of the URL's database), or undefined when Redis refused nothing. */
export async function redisAuthFailure(url: string, timeoutMs: number): Promise<string | undefined> {
  const u = URL.parse(url);
  if (u === null) return undefined;
  const password = decodeURIComponent(u.password);
  const user = decodeURIComponent(u.username) || "default";
  const arg = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  const ask = password !== "" ? `*3\r\n${arg("AUTH")}${arg(user)}${arg(password)}` : `*1\r\n${arg("PING")}`;
  // The URL's database too: one Redis does not have (/20 of its 16) closes the client's connection
  // as well, and only the first attempt's command got Redis's refusal: /ready then said
  // ERR_REDIS_CONNECTION_CLOSED for as long as it lasted.
  const db = /^\/(\d+)$/.exec(u.pathname)?.[1];
  const select = db !== undefined && Number(db) !== 0 ? `*2\r\n${arg("SELECT")}${arg(db)}` : "";
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const reply = await firstLine(host, Number(u.port || 6379), u.protocol === "rediss:", ask + select, timeoutMs, select !== "" ? 2 : 1);
  if (reply === undefined) return undefined;
  const [line, selected] = reply.split("\r\n") as [string, string | undefined];
  if (line.startsWith(UNREACHABLE)) {
    const code = line.slice(UNREACHABLE.length);
    if (code === "ECONNREFUSED") return "connection refused (nothing listens at the URL's host and port)";
    return unresolvedHost(code) ?? (code !== "" ? `cannot connect (${code})` : undefined);
  }
  if (line.startsWith(UNTRUSTED)) {
    const code = line.slice(UNTRUSTED.length);
    if (/ALTNAME|HOST|IP/i.test(code)) return `TLS: the Redis server's certificate does not name the URL's host (${code})`;
    const hint = certRefusalHint(code, "the Redis server");
    // (expired, not yet valid...: trusted, refused for another reason; the code names it)
    return hint !== "" ? `TLS: the Redis server's certificate is not trusted (${code}${hint})` : `TLS: the Redis server's certificate was refused (${code})`;
  }
  if (line === NO_ANSWER) return `no answer within ${timeoutMs} ms`;
  if (line === NO_HANDSHAKE) return "TLS: the server took the connection but completed no TLS handshake (a Redis server without TLS is addressed with redis://, not rediss://)";
  if (line.startsWith("-WRONGPASS") || /^-ERR invalid (password|username-password pair)/i.test(line)) return "authentication failed (wrong user name or password in the Redis URL)";
  if (line.startsWith("-NOAUTH")) return "authentication required (the Redis URL gives no password)";
  // Any other refusal in Redis's words: one at its maxclients says so to every new connection and
  // closes it, which read as a bare closed connection.
  return [line, selected].find((l) => l?.startsWith("-"))?.slice(1);
}

/** firstLine's answer when no connection could be made, followed by the error's code. */
const UNREACHABLE = "\0unreachable:";

/** firstLine's answer when the TLS handshake failed verification, followed by the error's code. */
const UNTRUSTED = "\0untrusted:";

/** firstLine's answer when a TLS connection was opened but its handshake never completed (a plain-text server waits for a line, or closes). */
const NO_HANDSHAKE = "\0no-handshake";

/** firstLine's answer when the connection was opened (its handshake done) but no whole reply line came within the timeout. */
const NO_ANSWER = "\0no-answer";

/** The first `lines` reply lines, joined by CRLF (the first alone when fewer came). */
function firstLine(hostname: string, port: number, tls: boolean, payload: string, timeoutMs: number, lines = 1): Promise<string | undefined> {
  return new Promise((resolve) => {
    let got = "";
    let socket: { end(): void } | undefined;
    let settled = false;
    let shook = !tls;
    let opened = false;
    const unshaken = () => (opened && !shook ? NO_HANDSHAKE : undefined);
    /** The lines that came before a close, when fewer than asked for. */
    const answered = () => (got.includes("\r\n") ? got.slice(0, got.lastIndexOf("\r\n")) : undefined);
    const finish = (v: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.end();
      resolve(v);
    };
    const unreachable = (err: unknown) => finish(UNREACHABLE + ((err as { code?: string } | undefined)?.code ?? ""));
    const timer = setTimeout(() => finish(unshaken() ?? answered() ?? (opened ? NO_ANSWER : undefined)), timeoutMs);
    Bun.connect({
      hostname,
      port,
      tls,
      socket: {
        // (TLS: the question goes once the handshake is done; written at open, Bun drops it)
        handshake(s, ok, err) {
          shook = true;
          if (!ok && err) finish(UNTRUSTED + ((err as { code?: string }).code ?? err.message));
          else s.write(payload);
        },
        open(s) {
          socket = s;
          opened = true;
          if (!tls) s.write(payload);
        },
        data(_s, d) {
          got += d.toString("latin1");
          const complete = got.split("\r\n").slice(0, -1);
          if (complete.length >= lines) finish(complete.slice(0, lines).join("\r\n"));
          else if (got.length > 4096) finish(undefined);
        },
        close: () => finish(answered() ?? unshaken()),
        error: () => finish(answered() ?? unshaken()),
        connectError: (_s, err) => unreachable(err),
      },
    }).then(
      (s) => {
        socket = s;
        if (settled) s.end();
      },
      unreachable,
    );
  });
}
