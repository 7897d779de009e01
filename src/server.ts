/**
 * Listeners. Two engines serve the same `handle(Request)`:
 *
 * - bun (default): Bun.serve. Fastest. Bun 1.4 drops Content-Length on ReadableStream bodies
 *   (oven-sh/bun#10507), so objects up to server.buffer_threshold_bytes are buffered (exact
 *   Content-Length) and larger ones stream chunked.
 * - node: Bun's node:http server, which honours an explicit Content-Length on a streamed body.
 *   Every GET carries Content-Length, streamed with backpressure (memory stays flat for slow
 *   clients), at a measured throughput cost.
 *
 * Plus the metrics listener (separate address/port) and graceful drain.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { Readable } from "node:stream";
import type { App } from "./app.ts";
import type { Config } from "./config/load.ts";
import { createMainHandler } from "./fronts/index.ts";
import { serverAllow } from "./fronts/plain.ts";
import { createHandler, type Front, type Handler } from "./proxy/runner.ts";
import { BUN_LISTENER_IDLE_SECONDS, LISTENER_SLOW_BYTES_PER_SECOND, markJsBody, markPeer } from "./http/framed-body.ts";
import { fallbackRewritten, rawPrefixPatterns, rawSegmentPatterns, rawTargetFor, wildcardRewritten } from "./http/raw-target.ts";
import { resolveConfigPath } from "./config/validate.ts";
import { NODE_IDLE_MS, plainErrorAnswer, writeNodeResponse, type ErrorAnswer } from "./server/node-response.ts";
import { outOfDescriptors, ProxyError, toProxyError } from "./errors.ts";
import { drainIdleWhenOutOfDescriptors } from "./util/descriptors.ts";
import { bodyBytesForwarded } from "./server/body-garbage.ts";
import { asksClose, drainRefusedBody, refusedBodyRead, unboundedBody, unreadBody } from "./server/refused-body.ts";
import { wantBlobBodies } from "./http/blob-body.ts";
import { markWriterReports, reportHeld } from "./http/delivery-report.ts";
import { validHost } from "./http/host.ts";
import { listenerHeaderLimit } from "./http/header-limit.ts";
import { editHeaders } from "./http/headers.ts";
import { guard, splitUrl } from "./proxy/phases/guard.ts";
import type { Logger } from "./observe/log.ts";


/**
 * Bun.serve's own request-body cap, on every listener: above any Content-Length a front reads, so
 * the fronts refuse an oversized upload themselves, from its Content-Length and in their own
 * dialect, before reading it (server.security_limits.max_body_size is the plain front's upload
 * limit, src/fronts/plain-write.ts; the S3 front's is 5 GiB, S3's). It was 5 GiB + 64 MiB (room
 * for aws-chunked framing): a PUT declaring more got Bun's bare 413 with no body instead of S3's
 * EntityTooLarge (and the plain front's JSON), and the node engine, which has no such cap,
 * answered the front's. Every body a front reads is bounded by the front (its declared length).
 * Infinity, not Number.MAX_SAFE_INTEGER: Bun 1.4.5 answers a bare 413 itself to a Content-Length
 * at or above the cap (2^53 and up got no EntityTooLarge). Bun's parser holds lengths up to
 * 2^59 - 1; a larger Content-Length gets Bun's own bare 400 with `Connection: close` before any
 * handler, on both engines (node:http on Bun parses the same way).
 */
const LISTENER_MAX_BODY = Infinity;

export interface Listener {
  readonly port: number;
  /** Stop accepting; resolve when in-flight requests are done (or `force` closes them). */
  stop(force: boolean): Promise<void>;
  /**
   * A bun-engine TLS listener: serves `tls` to every new connection from now on. A listener with
   * the new pair is bound beside this one on the same port (SO_REUSEPORT), then the old one stops
   * accepting and finishes the requests it has: nothing in flight is cut. Throws, the old pair
   * still served, when the new pair is unusable (a key that does not match its certificate, a
   * PEM cut short) or the bind fails. Resolves once the old listener has stopped accepting (after
   * its grace period, see RETIRE_GRACE_MS, or at stop()).
   */
  renewTls?(tls: TlsMaterial): Promise<void>;
}

/**
 * The TLS 1.2 suites a listener offers unless server.https.ciphers says otherwise: forward secrecy
 * and AEAD only (Mozilla's "intermediate" list without the DHE suites, which Bun offers only with
 * DH parameters). Bun's default also offered RSA key exchange (AES128-GCM-SHA256: a recorded
 * session is read by whoever later gets the key) and CBC suites with SHA-1 MACs. Every client of
 * the last decade has one of these; TLS 1.3's suites are not affected.
 */
export const TLS_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/** server.https's certificate and key (PEM text). */
export interface TlsMaterial {
  cert: string;
  key: string;
}

/**
 * server.https's certificate and key as the files hold them now: read at start and by each reload
 * (a renewed pair is served by new listeners, Listener.renewTls; Bun.serve cannot change a running
 * listener's certificate, oven-sh/bun#43815), and sent by a group's primary to its workers.
 */
export function readTls(cfg: Config, baseDir: string | undefined): TlsMaterial | undefined {
  const https = cfg.server.https;
  if (!https?.enabled) return undefined;
  return { cert: readFileSync(resolveConfigPath(https.cert_path, baseDir), "utf8"), key: readFileSync(resolveConfigPath(https.key_path, baseDir), "utf8") };
}

/**
 * Another listener on the same engine: its own address and handler (the S3 front, see
 * src/server/s3-listener.ts). Without it, the main listener (control plane + plain front).
 */
export interface ListenAs {
  address: string;
  port: number;
  handler: (app: App, peerOf?: (req: Request) => string) => Handler;
  /** How this listener writes an error it answers itself (default: the plain front's JSON). */
  errorAnswer?: ErrorAnswer;
  /** The Allow of this listener's answer to `OPTIONS *` (default: the plain front's). */
  asteriskAllow?: (app: App) => string;
  /** The front this listener's answer to `OPTIONS *` is logged as (default: the plain front). */
  front?: string;
}

/** How long a listener replaced by a renewed certificate goes on serving with `Connection: close` (see listenBun). */
export const RETIRE_GRACE_MS = 2_000;

export function listenBun(app: App, cfg: Config, opts: { reusePort?: boolean; baseDir?: string; as?: ListenAs; tls?: TlsMaterial } = {}): Listener {
  // (the request's own listener need not be the current one: requestIP reads the request's connection)
  const handle = (opts.as?.handler ?? createMainHandler)(app, (req) => server.requestIP(req)?.address ?? "");
  const tlsOn = cfg.server.https?.enabled === true;
  // A TLS listener is bound with SO_REUSEPORT so that a renewed certificate can be served by a
  // second listener bound beside it (renewTls); cli.ts first checks that nobody else holds the port.
  const reusePort = (opts.reusePort ?? false) || tlsOn;
  /**
   * Listeners replaced by renewTls. Stopped at once, Bun closed every keep-alive connection of
   * theirs without a word, under requests their clients had already sent (wrk: one failed request
   * per connection per renewal, ~20 per renewal with 20 connections). So a replaced listener goes
   * on for RETIRE_GRACE_MS answering `Connection: close` (each client reconnects after its next
   * answer; a new connection meanwhile may still reach it: either pair is valid), then stops
   * accepting and finishes what it has (stop(false)).
   */
  const retired = new Map<Bun.Server<undefined>, { timer: ReturnType<typeof setTimeout> | undefined; accepting: (() => void) | undefined }>();
  const answer = (srv: Bun.Server<undefined>, res: Response | Promise<Response>): Response | Promise<Response> =>
    retired.size === 0 || !retired.has(srv) ? res : res instanceof Promise ? res.then(withConnectionClose) : withConnectionClose(res);
  /** Every route's entry: the request handled at the raw target its route read. */
  const respond = (req: Request, srv: Bun.Server<undefined>, rawTarget: string | undefined): Response | Promise<Response> => {
    if (req.method === "PUT" || req.method === "POST") markPeer(req, srv);
    return answer(srv, closeAsAsked(req, expectGuard(req, handle(req, undefined, rawTarget))));
  };
  const routes = Object.fromEntries(
    rawSegmentPatterns().map(({ pattern, trailingSlash, empty }) => [
      pattern,
      (req: Bun.BunRequest, srv: Bun.Server<undefined>) => respond(req, srv, rawTargetFor(req.url, req.params as Record<string, string>, trailingSlash, empty)),
    ]),
  );
  for (const { pattern, leadingEmpty } of rawPrefixPatterns())
    routes[pattern] = (req: Bun.BunRequest, srv: Bun.Server<undefined>) => respond(req, srv, wildcardRewritten(req.url, req.params as Record<string, string>, leadingEmpty));
  const serve = (port: number, tls: TlsMaterial | undefined): Bun.Server<undefined> =>
    Bun.serve({
      hostname: opts.as?.address ?? cfg.server.address,
      port,
      reusePort,
      tls: tls === undefined ? undefined : { ...tls, ciphers: cfg.server.https?.ciphers ?? TLS_CIPHERS },
      maxRequestBodySize: LISTENER_MAX_BODY,
      idleTimeout: BUN_LISTENER_IDLE_SECONDS,
      // Never Bun's developer error page (on by default unless NODE_ENV=production): an error that
      // escaped `error` below would otherwise be answered with its stack, source lines and paths.
      development: false,
      // Parametrised routes expose the raw target's segments (see src/http/raw-target.ts): a
      // literal `\` or a dot segment is routed as the client sent it, never as Bun rewrote it.
      routes,
      fetch(req, srv) {
        return respond(req, srv, fallbackRewritten(req.url));
      },
      error(err) {
        // A file body (a disk-cache hit) is opened by Bun once the answer is under way: with no
        // file descriptor left (a connection flood, a low ulimit -n) that is a 503 to retry.
        if (outOfDescriptors(err)) {
          app.log.warn("out of file descriptors", { error: String(err?.message ?? err) });
          return (opts.as?.errorAnswer ?? plainErrorAnswer)(toProxyError(err), crypto.randomUUID());
        }
        app.log.error("listener error", { error: String(err?.message ?? err) });
        // In the listener's dialect (S3's XML on the S3 listener), with a request id and no-store:
        // a disk hit whose file an eviction or purge unlinked before Bun opened it lands here.
        return (opts.as?.errorAnswer ?? plainErrorAnswer)(new ProxyError("InternalError"), crypto.randomUUID());
      },
    });
  let server = serve(opts.as?.port ?? cfg.server.port, tlsOn ? (opts.tls ?? readTls(cfg, opts.baseDir)) : undefined);
  const port = server.port ?? opts.as?.port ?? cfg.server.port;
  const unwatch = drainIdleWhenOutOfDescriptors(() => server.closeIdleConnections(), (msg, fields) => app.log.warn(msg, fields));
  let stopping = false;
  const retire = (old: Bun.Server<undefined>, force: boolean): Promise<void> => {
    const r = retired.get(old);
    clearTimeout(r?.timer);
    const stopped = Promise.resolve(old.stop(force)).finally(() => retired.delete(old));
    r?.accepting?.();
    retired.set(old, { timer: undefined, accepting: undefined });
    return stopped;
  };
  return {
    port,
    stop: async (force) => {
      stopping = true;
      unwatch();
      await Promise.all([Promise.resolve(server.stop(force)), ...[...retired.keys()].map((old) => retire(old, force))]);
    },
    renewTls: tlsOn
      ? (tls) => {
          // A drain under way binds nothing new: what a new listener accepted would be cut at exit.
          if (stopping) throw new Error("the listener is stopping");
          // Throws (the old listener serving on) when the pair is unusable or the bind fails.
          const fresh = serve(port, tls);
          const old = server;
          server = fresh;
          return new Promise<void>((accepting) => {
            const timer = setTimeout(() => void retire(old, false), RETIRE_GRACE_MS);
            timer.unref?.();
            retired.set(old, { timer, accepting });
          });
        }
      : undefined,
  };
}

/**
 * Bun.serve 1.4.5 answers `100 Continue` itself only to `Expect: 100-continue` spelled in lower
 * case; the token is case-insensitive, and aws-sdk-go (rclone) sends `100-Continue`. Such a
 * client waits for the 100 (or a final answer) before sending its body. Answered early (a 401,
 * a 403, a 413...), it correctly never sends it, and reuses the connection, where the listener
 * still expects Content-Length bytes of body: the next request was taken as that body, and bytes
 * inside ITS body as a request (a hidden `GET` of another object was served). Such an answer,
 * given without the body read, or an error, now closes the connection. That holds for every
 * method (a GET or HEAD announcing a body is answered without reading it) and for every Expect
 * value Bun does not answer itself (`100-continue, x` is a list holding 100-continue, and a client
 * may withhold its body for it too): only the exact lower-case `100-continue` got its 100. A
 * request that announces no body (no Transfer-Encoding, no or a zero Content-Length) keeps its
 * connection. The metrics listener is guarded the same way.
 */
function expectGuard(req: Request, res: Response | Promise<Response>): Response | Promise<Response> {
  // Bun.serve takes every byte after a CONNECT's head as tunnel data, whatever the answer: a kept
  // connection swallowed the client's next requests, unanswered, until the idle timeout (60 s).
  // The answer (405, or the metrics listener's 404) closes it, as the node engine's does.
  if (req.method === "CONNECT") return res instanceof Promise ? res.then(withConnectionClose) : withConnectionClose(res);
  const expect = req.headers.get("expect");
  if (expect === null || expect === "100-continue") {
    if (req.method !== "HEAD") return res;
    return res instanceof Promise ? res.then(headAnswer) : headAnswer(res);
  }
  const head = req.method === "HEAD";
  const length = req.headers.get("content-length");
  const announced = req.headers.get("transfer-encoding") !== null || (length !== null && length.trim() !== "0");
  const close = (answer: Response): Response => {
    const r = head ? headAnswer(answer) : answer;
    if (!announced || (r.status < 300 && req.bodyUsed)) return r;
    return withConnectionClose(r);
  };
  return res instanceof Promise ? res.then(close) : close(res);
}

/**
 * Bun.serve closes the connection after answering a request whose Connection field holds `close`,
 * but says nothing of it in the answer; RFC 9112 §9.6 asks the server to (SHOULD), and the node
 * engine does.
 */
export function closeAsAsked(req: Request, res: Response | Promise<Response>): Response | Promise<Response> {
  const asked = asksClose(req.headers.get("connection"));
  // Kept alive, a chunked body or one declared past the drain's bound that the answer leaves
  // unread (a refusal) closes the connection the same way, not dropped at the client's pace.
  // (a GET or HEAD, whose body Bun never gives, before any field is read; then the fields before
  // req.body, which makes the request's ReadableStream a small PutObject, read whole with
  // req.bytes(), never needs: 1 us and more each, upload-body.ts)
  if (!asked && (req.method === "GET" || req.method === "HEAD" || !unboundedBody(req.headers.get("content-length"), req.headers.get("transfer-encoding")) || req.body === null)) return res;
  // A body left unread (a refusal answered before it) is read and dropped first, within bounds:
  // closed under the client still sending, the connection went out as a reset that could reach
  // it before the answer (src/server/refused-body.ts). Only where Bun sent the 100 (or none was
  // asked for): a client told nothing withholds its body, and expectGuard closes at once.
  const expect = req.headers.get("expect");
  const withheld = expect !== null && expect !== "100-continue";
  const close = (answer: Response): Response | Promise<Response> =>
    !asked && (req.bodyUsed || req.body!.locked)
      ? answer
      : withheld || !unreadBody(req)
        ? withConnectionClose(answer)
        : drainRefusedBody(req.body!).then(() => withConnectionClose(answer));
  return res instanceof Promise ? res.then(close) : close(res);
}

/** `r` with `Connection: close`. */
function withConnectionClose(r: Response): Response {
  return editHeaders(r, (h) => h.set("connection", "close"));
}

/**
 * A HEAD answer on the bun engine, made as the GET's would be:
 * - Bun.serve 1.4.5 gives a HEAD answer without a body and without Content-Length a
 *   `content-length: 0` of its own: a HEAD of an object whose upstream answered without a length
 *   (chunked, HTTP/1.0 until close) told clients the object is empty (aws-cli reported
 *   ContentLength 0, rclone failed "sizes differ"; an error whose GET document the proxy cannot
 *   know, src/errors.ts guessedFromStatus, said 0 too). RFC 9110 §8.6: a HEAD answer carries no
 *   Content-Length unless it is the GET's. `Transfer-Encoding: chunked` is what the GET would use
 *   (RFC 9112 §6.1 lets a HEAD answer say so), and keeps Bun from adding the 0. The node engine
 *   adds nothing.
 * - Bun.serve 1.4.5 sends no `Date` on any HEAD answer (it does on every GET's): RFC 9110 §6.6.1
 *   asks an origin with a clock for one on every 2xx-4xx answer, S3 sends it on every HeadObject,
 *   and the node engine did. It is added here when the answer has none.
 */
export function headAnswer(r: Response): Response {
  const wantsDate = !r.headers.has("date");
  const wantsChunked = !(r.body !== null || r.status < 200 || (r.status >= 300 && r.status < 400) || r.status === 204 || r.headers.has("content-length"));
  if (!wantsDate && !wantsChunked) return r;
  return editHeaders(r, (h) => {
    if (wantsDate) h.set("date", new Date().toUTCString());
    if (wantsChunked) h.set("transfer-encoding", "chunked");
  });
}

export async function listenNode(app: App, cfg: Config, opts: { reusePort?: boolean; as?: ListenAs } = {}): Promise<Listener> {
  const handle = (opts.as?.handler ?? createMainHandler)(app);
  const idleMs = nodeIdleMs();
  wantBlobBodies(); // memory-cache hits carry their Blob, written in slices (writeNodeResponse)
  // node:http's limit covers the request line too: at the configured size, a URI over it got node's
  // bare 431 where the bun engine, whose listener takes heads up to its own limit, has the proxy
  // answer 414 (the proxy counts header fields against max_header_size itself, guard.ts).
  const maxHeaderSize = Math.max(cfg.server.security_limits.max_header_size + 1024, listenerHeaderLimit());
  /** The Allow of an answer to `OPTIONS *` (answerAsteriskOptions). */
  const asteriskAllow = opts.as?.asteriskAllow ?? ((a: App) => serverAllow(a.runtime));
  /** `OPTIONS *`, a request like any other (its access line, request id and the guard's limits). */
  const asterisk = createHandler(app, asteriskFront(opts.as?.front ?? "plain", () => asteriskAllow(app), opts.as?.errorAnswer ?? plainErrorAnswer));
  // requireHostHeader off: Bun's node:http answered an HTTP/1.1 request without Host itself, a 400
  // chunked (Transfer-Encoding: chunked and a 0 chunk); wellFormedHead refuses it here instead, as
  // for a connection handed over (400, Content-Length: 0, close).
  const server = http.createServer({ maxHeaderSize, requireHostHeader: false }, (req, res) => {
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    // An answer whose head went out keep-alive before the signal leaves its connection open and
    // idle once it ends: node closes only the connections idle when the drain starts, and this
    // one held the drain until shutdown_timeout.
    res.on("finish", () => {
      if (stopping) setImmediate(() => server.closeIdleConnections());
    });
    inTurn(req, res, () => serve(req, res, abort));
  });
  /** One exchange, once the connection's earlier ones are over (inTurn). */
  const serve = (req: http.IncomingMessage, res: http.ServerResponse, abort: AbortController): void => {
    // The client went away while this request waited its turn: nothing to answer, nothing to run.
    if (abort.signal.aborted || res.destroyed) return;
    if (!wellFormedHead(req)) {
      res.writeHead(400, { connection: "close", "content-length": "0" }).end();
      return;
    }
    // `OPTIONS *` as a connection handed over parses it (answerAsteriskOptions: the others' parser
    // refuses it): the same answer (asteriskFront), and the connection goes on.
    const asteriskForm = req.url === "*" && req.method === "OPTIONS";
    const headers = new Headers();
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
    let request: Request;
    try {
      // Origin-form targets ("/path?query"), and absolute-form ones, which a server must accept
      // too (RFC 9112 §3.2.2) and which route on their path alike; the host part is irrelevant.
      if (req.url !== undefined && !req.url.startsWith("/") && !asteriskForm) req.url = originFormOf(req.url);
      if (!req.url?.startsWith("/") && !asteriskForm) throw new Error("not origin-form");
      // A body only where the method may have one (the S3 front's STS form; uploads), streamed.
      const body = req.method === "GET" || req.method === "HEAD" ? undefined : watchedNodeBody(req, idleMs);
      request = new Request(`http://localhost${asteriskForm ? "/" : req.url}`, { method: req.method, headers, signal: abort.signal, body, duplex: "half" } as RequestInit);
      if (body !== undefined) markJsBody(request);
      markWriterReports(request);
    } catch {
      // (in the listener's dialect, with a request id, as the fronts answer other malformed requests)
      void writeNodeResponse(res, (opts.as?.errorAnswer ?? plainErrorAnswer)(new ProxyError("BadRequest"), crypto.randomUUID()), req.method === "HEAD", idleMs, opts.as?.errorAnswer);
      return;
    }
    Promise.resolve((asteriskForm ? asterisk : handle)(request, req.socket.remoteAddress ?? "", req.url)).then(
      (response) => {
        // (answered before the body was all read: a refusal, whose body is read and dropped)
        if (!req.complete) {
          const drained = afterRefusedBody(req, res, response);
          if (drained !== undefined) return drained.then(() => writeNodeResponse(res, response, req.method === "HEAD", idleMs, opts.as?.errorAnswer));
        }
        // Draining: this answer is the connection's last (RFC 9112 §9.6), so the drain ends when
        // the requests in flight do, not at shutdown_timeout.
        if (stopping) res.setHeader("connection", "close");
        return writeNodeResponse(res, response, req.method === "HEAD", idleMs, opts.as?.errorAnswer);
      },
      () => res.destroy(),
    );
  };
  let stopping = false;
  configureNodeServer(server);
  server.on("clientError", (err: Error & { code?: string; rawPacket?: unknown }, socket: import("node:net").Socket) => {
    if (!answerAsteriskOptions(err, socket, maxHeaderSize, (r) => asterisk(r, socket.remoteAddress ?? "", "*"))) answerClientError(err, socket);
  });
  // node:http answers a bare 417 (no request id, no log line) to an Expect without 100-continue,
  // an empty one too, where Bun.serve serves the request: RFC 9110 §10.1.1 makes that a MAY, and
  // the same request must not be served by one engine and refused by the other.
  server.on("checkExpectation", (req: http.IncomingMessage, res: http.ServerResponse) => server.emit("request", req, res));
  // CONNECT: answered by the front, then closed (answerConnect).
  server.on("connect", (req: http.IncomingMessage, socket: import("node:net").Socket) => answerConnect(req, socket, handle));
  // Bun 1.4.5's node:http ignores `reusePort` (a second listener on the port failed "Failed to
  // start server. Is port in use?": with server.workers > 1 every worker but the first could not
  // start, and was restarted for ever). Its node:net honours it: then the port is bound by a
  // node:net listener whose connections are handed to the HTTP server, which parses and answers
  // them as its own (clientError, CONNECT, closeIdleConnections included).
  // Bun's node:http closes a connection it accepted itself when no request head comes within about
  // 10 s, or none after an answer within keepAliveTimeout; a connection handed over gets neither
  // (one that sent nothing, half a head, or stayed idle after its answer was held for ever):
  // the front applies both (handedOver).
  const front = opts.reusePort
    ? net.createServer((socket) => {
        socket.setNoDelay(true);
        handedOver(server, socket);
        server.emit("connection", socket);
      })
    : undefined;
  if (front !== undefined) server.prependListener("request", exchangeOnHandedOver);
  const listener: net.Server = front ?? server;
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen({ host: opts.as?.address ?? cfg.server.address, port: opts.as?.port ?? cfg.server.port, reusePort: opts.reusePort } as net.ListenOptions, () => resolve());
  });
  const addr = listener.address();
  const unwatch = drainIdleWhenOutOfDescriptors(() => server.closeIdleConnections(), (msg, fields) => app.log.warn(msg, fields));
  return {
    port: typeof addr === "object" && addr ? addr.port : (opts.as?.port ?? cfg.server.port),
    stop: (force) =>
      new Promise<void>((resolve) => {
        unwatch();
        // From now on every answer closes its connection (above), so a connection with a request
        // in flight at the signal closes once it is answered; node closes only the connections
        // idle at this call. (Both close callbacks wait for the listener's connections to end.)
        stopping = true;
        listener.close(() => resolve());
        server.closeIdleConnections();
        if (force) server.closeAllConnections();
      }),
  };
}

/**
 * A request answered before its body was all read (a refusal: 401, 403, 413, a bad signature...):
 * the rest is read and dropped, as Bun.serve does, so a client that sends its whole body before
 * reading the answer (aws-cli, boto3, most HTTP libraries) gets it at once. Left unread, the body
 * filled the socket buffers and the client stalled for the idle timeout (60 s), then saw the
 * connection reset. (The web stream made of it is abandoned.) An answer that closes the connection
 * waits for that rest (within bounds): the promise of it, after which the answer is written;
 * undefined when the answer is written at once.
 */
function afterRefusedBody(req: http.IncomingMessage, res: http.ServerResponse, response: Response): Promise<void> | undefined {
  endsBody(req);
  req.removeAllListeners("data");
  req.removeAllListeners("readable");
  req.on("error", () => {});
  req.resume();
  // (closed under a client still sending, the connection was reset: src/server/refused-body.ts;
  // not for an Expect node:http did not answer with its 100: such a client withholds its body)
  const expect = req.headers.expect;
  // Kept alive, a chunked body or one past the drain's bound is not read at the client's pace: the answer closes.
  const closes = asksClose(req.headers.connection) || unboundedBody(req.headers["content-length"], req.headers["transfer-encoding"]);
  if (closes) res.setHeader("connection", "close");
  if (!closes || (expect !== undefined && !/^100-continue$/i.test(expect))) return undefined;
  // (The request's slots are given back meanwhile: reportHeld.)
  reportHeld(response);
  // (a body that turns out malformed while drained ends the drain: its refusal is the answer, not node's 400: answerClientError)
  const socket = req.socket;
  const malformed = new Promise<void>((resolve) => refusalsDraining.set(socket, resolve));
  return Promise.race([refusedBodyRead(req), malformed]).then(() => {
    refusalsDraining.delete(socket);
  });
}

/**
 * CONNECT (a tunnel request) is not something a proxy for S3 does: answered, not left hanging, by
 * the front as on the bun engine (its 405 with Allow, JSON or S3's XML, the request id), then
 * closed (what follows is tunnel bytes). It was a bare 405 with no body nor request id.
 */
function answerConnect(req: http.IncomingMessage, socket: import("node:net").Socket, handle: ReturnType<typeof createMainHandler>): void {
  socket.on("error", () => {});
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  const target = req.url?.startsWith("/") === true ? req.url : "/";
  Promise.resolve(handle(new Request(`http://localhost${target}`, { method: "CONNECT", headers }), socket.remoteAddress ?? "", target))
    .then((res) => endWithAnswer(socket, res))
    .catch(() => socket.destroy());
}

export { NODE_IDLE_MS };

/**
 * A request head the parser of the connections Bun's node:http accepts itself refuses (400), but
 * which the one it uses for connections handed over (server.workers > 1, the node:net front)
 * passes: an HTTP version other than 1.0 and 1.1 (`GET /k` with none, read as 0.9; `HTTP/2.0`),
 * and an HTTP/1.1 request without Host (RFC 9112 §3.2). With workers they were served (200 and
 * the object) where a single process answered 400; now 400 on both, the connection closed.
 * The other way round, a Transfer-Encoding whose last coding is not `chunked` (a body of no
 * knowable length: 400 and close, RFC 9112 §6.3), which Bun.serve and the handed-over parser
 * refuse: the connections node:http accepts itself served it keep-alive (a PUT's 411, a GET
 * proxied), then swallowed what the client sent next, unanswered. So is any coding before the
 * `chunked` (`gzip, chunked`), which Bun.serve refuses too: node:http undid the chunks only (a GET
 * was served, a PUT's body read still gzipped); `identity, chunked` included (identity is no
 * transfer coding since RFC 7230), which Bun.serve answers with its own 400 and node:http served.
 */
function wellFormedHead(req: Pick<http.IncomingMessage, "httpVersion" | "headers">): boolean {
  const te = req.headers["transfer-encoding"];
  if (te !== undefined && !CHUNKED_ONLY.test(te)) return false;
  if (req.httpVersion === "1.0") return true;
  return req.httpVersion === "1.1" && req.headers.host !== undefined;
}

/** A Transfer-Encoding of chunked alone (what Bun.serve takes). */
const CHUNKED_ONLY = /^[ \t]*chunked[ \t]*$/i;

/** How long a new connection has for its first request head (Bun's node:http and Bun.serve: about 10 s). */
const HEAD_DEADLINE_MS = 10_000;

/** A connection the node:net front handed to the HTTP server: its deadline timer, and its exchanges under way. */
interface HandedOver {
  server: http.Server;
  timer: ReturnType<typeof setTimeout> | undefined;
  open: number;
}
const handedOverSockets = new WeakMap<object, HandedOver>();

function deadline(socket: net.Socket, h: HandedOver, ms: number): void {
  clearTimeout(h.timer);
  h.timer = setTimeout(() => socket.destroy(), ms);
  h.timer.unref?.();
}

/** A connection handed over: closed unless a request head comes within HEAD_DEADLINE_MS. */
function handedOver(server: http.Server, socket: net.Socket): void {
  const h: HandedOver = { server, timer: undefined, open: 0 };
  handedOverSockets.set(socket, h);
  deadline(socket, h, HEAD_DEADLINE_MS);
  socket.once("close", () => clearTimeout(h.timer));
}

/** A request on a handed-over connection: no deadline while exchanges are under way; the idle one (keepAliveTimeout) from the last answer's end. */
function exchangeOnHandedOver(req: http.IncomingMessage, res: http.ServerResponse): void {
  const socket = req.socket;
  const h = handedOverSockets.get(socket);
  if (h === undefined) return;
  h.open++;
  clearTimeout(h.timer);
  h.timer = undefined;
  res.once("close", () => {
    if (--h.open === 0 && !socket.destroyed) deadline(socket, h, h.server.keepAliveTimeout);
  });
}

/** An `OPTIONS *` request line (the asterisk-form target, RFC 9112 §3.2.4), as the first bytes of a request. */
const ASTERISK_OPTIONS = /^OPTIONS \* HTTP\/1\.[01]\r?\n/;
/** A request line in origin or absolute form (RFC 9112 §3: a token method, a target, the version). */
const REQUEST_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \r\n]+ HTTP\/1\.[01]\r?\n/;
/**
 * A header field line (RFC 9110 §5.1 token, then the value; Headers trims the blanks around it). A
 * lazy value before `[ \t]*$` backtracked quadratically: one line of 60 KB of blanks held the
 * event loop ~5 s.
 */
const FIELD_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):(.*)$/;

/**
 * The listener's answer to `OPTIONS *`, as a front of its own (the request's access line, its
 * request id, the guard's limits on the head): 200, `allow()` and no content.
 */
function asteriskFront(name: string, allow: () => string, errorAnswer: ErrorAnswer): Front {
  return {
    name,
    phases: [guard, () => new Response(null, { status: 200, headers: { allow: allow(), "content-length": "0" } })],
    renderError: (err, ctx) => errorAnswer(err, ctx.id),
  };
}

/**
 * Connections where the body of a request answered before it was all read ended in the bytes
 * being parsed now (until the next turn of the event loop): an `OPTIONS *` request line that
 * node:http then fails on began with that body's last bytes, and is no request line.
 */
const bodyEndedNow = new WeakSet<object>();

/** Notes, for answerAsteriskOptions, when the body of `req` (answered before it was all read) ends. */
function endsBody(req: http.IncomingMessage): void {
  const socket = req.socket as object;
  req.once("end", () => {
    bodyEndedNow.add(socket);
    setImmediate(() => bodyEndedNow.delete(socket));
  });
}

/**
 * The head of an `OPTIONS *` request node:http could not parse, as a Request; "overflow" for a
 * head over the listener's limit (node:http's 431, as for any other request); undefined for one
 * that is incomplete, malformed (the usual 400), or announces a body (which could not be read).
 */
function asteriskRequest(raw: Buffer, maxHeaderSize: number): Request | "overflow" | undefined {
  const text = raw.toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  if (end < 0) return raw.length > maxHeaderSize ? "overflow" : undefined;
  if (end > maxHeaderSize) return "overflow";
  const lines = text.slice(0, end).split(/\r?\n/);
  const version = /^OPTIONS \* HTTP\/(1\.[01])$/.exec(lines[0]!)?.[1];
  if (version === undefined) return undefined;
  const headers = new Headers();
  try {
    for (const line of lines.slice(1)) {
      const m = FIELD_LINE.exec(line);
      if (m === null) return undefined;
      headers.append(m[1]!, m[2]!);
    }
  } catch {
    return undefined; // (a value Headers refuses: a control character)
  }
  const length = headers.get("content-length");
  if (headers.has("transfer-encoding") || (length !== null && length.trim() !== "0")) return undefined;
  if (version === "1.1" && !headers.has("host")) return undefined;
  return new Request("http://localhost/", { method: "OPTIONS", headers });
}

/**
 * `OPTIONS *` (RFC 9110 §9.3.7: the server's options, not a resource's): node:http's parser takes
 * no asterisk-form target and reports a parse error, which answerClientError made a bare 400. When
 * the bytes it failed on hold such a request's whole head (alone, or after requests it parsed from
 * the same packet: pipelined), the head is handed to `answer` (asteriskFront: logged, with a
 * request id, as any other request) and its answer written once the connection's earlier
 * exchanges are answered, then the connection closed (the parser cannot go on past its error); a
 * head over `maxHeaderSize` gets node:http's 431. True when taken care of. A head split across
 * packets cannot be: Bun 1.4.5's node:http gives only the packet it failed on, and no later byte
 * of that connection reaches a listener (no 'data' or 'readable', bytesRead 0), so its fields
 * cannot be read (README, Known limits). (The bun engine cannot at all: Bun.serve answers its own
 * bare 400 before any handler runs.)
 */
function answerAsteriskOptions(
  err: Error & { rawPacket?: unknown },
  socket: import("node:net").Socket,
  maxHeaderSize: number,
  answer: (req: Request) => Response | Promise<Response>,
): boolean {
  const raw = err.rawPacket;
  if (!Buffer.isBuffer(raw)) return false;
  const answered = lastRequests.get(socket);
  const turns = connectionTurns.get(socket);
  // (the bytes the body of a request already answered, those that ended it included, or a request
  // whose body is still being read: the usual answer)
  if ((answered !== undefined && !answered.complete) || (turns !== undefined && !turns.req.complete) || bodyEndedNow.has(socket) || !socket.writable) return false;
  // node:http hands over the whole packet it failed on: one that began with requests it parsed
  // (pipelined: `GET /a ...` then `OPTIONS *` in one write) holds those first (they were 400 too),
  // whether they are still under way or already answered (a `GET /health` is answered before the
  // parser reaches the next line: looked for only while one was under way, it was a bare 400).
  // The first asterisk-form line after them is where it failed (an earlier one would be inside a
  // parsed request's body, which is no request line: answered as this one, then the connection closed).
  const at = turns === undefined && answered === undefined ? 0 : Math.max(0, raw.indexOf("OPTIONS * HTTP/1."));
  if (!ASTERISK_OPTIONS.test(raw.toString("latin1", at, at + 24))) return false;
  // (after parsed requests the packet begins with one: bytes that are none, after an exchange in
  // an earlier packet, are what the parser failed on)
  if (at > 0 && !REQUEST_LINE.test(raw.toString("latin1", 0, at))) return false;
  const req = asteriskRequest(at === 0 ? raw : raw.subarray(at), maxHeaderSize);
  if (req === undefined) return false;
  if (req === "overflow") {
    answerClientError(Object.assign(new Error("request head too large"), { code: "HPE_HEADER_OVERFLOW" }), socket);
    return true;
  }
  const respond = () => {
    if (socket.destroyed || !socket.writable) return void socket.destroy();
    Promise.resolve(answer(req))
      .then((res) => endWithAnswer(socket, res))
      .then(
        // (a client that never closes its side: the socket goes after a while)
        () => setTimeout(() => socket.destroy(), 5_000).unref?.(),
        () => socket.destroy(),
      );
  };
  // (after the connection's earlier exchanges are answered, in order, as inTurn runs requests)
  if (turns === undefined) respond();
  else void turns.tail.then(respond);
  return true;
}

/** Writes `res` whole on a connection node:http parses no more (a CONNECT's, an `OPTIONS *` it refused), then closes it. */
async function endWithAnswer(socket: import("node:net").Socket, res: Response): Promise<void> {
  const body = Buffer.from(await res.arrayBuffer());
  let head = `HTTP/1.1 ${res.status} ${http.STATUS_CODES[res.status] ?? ""}\r\n`;
  res.headers.forEach((v, k) => {
    if (k !== "connection" && k !== "content-length" && k !== "transfer-encoding") head += `${k}: ${v}\r\n`;
  });
  socket.end(Buffer.concat([Buffer.from(`${head}date: ${new Date().toUTCString()}\r\ncontent-length: ${body.byteLength}\r\nconnection: close\r\n\r\n`, "latin1"), body]));
}

/**
 * A request node:http cannot parse (a malformed head, bytes after a `Connection: close` request, a
 * head over the limit). node:http's default answer, a bare 400 written at once, went out in place
 * of the answer to a pipelined request still being served: a PUT was stored, or a DELETE done,
 * while its client read 400 (and the DELETE's 400 came before the upstream had even answered), and
 * a GET's object never reached its client. The connection's earlier exchanges are now answered
 * first, then the 400 (431 for a head too large; nothing more after a `Connection: close`
 * exchange, whose answer already said so) and the close. A parse error in the body of the request
 * being served (a bad chunk) ends that exchange at once, as before.
 */
function answerClientError(err: Error & { code?: string }, socket: import("node:net").Socket): void {
  const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
  const answer = `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
  const draining = refusalsDraining.get(socket);
  if (draining !== undefined) {
    // The error is in the body of a refused request being drained before its closing answer
    // (listenNode): that answer goes out, then the close (a bare 400 went out in its place).
    refusalsDraining.delete(socket);
    draining();
    return;
  }
  const turns = connectionTurns.get(socket);
  const answered = lastRequests.get(socket);
  if (turns === undefined && answered !== undefined && !answered.complete) {
    // The error is in the body of a request already answered (refused before its body was read,
    // which is then read and dropped): its answer was the exchange's; a 400 after it is an answer
    // to no request, which a client reusing the connection reads as its next request's.
    socket.destroy();
    return;
  }
  const last = () => {
    if (socket.destroyed) return;
    if (err.code === "HPE_CLOSED_CONNECTION" || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(answer);
    // (a client that never closes its side: the socket goes after a while)
    setTimeout(() => socket.destroy(), 5_000).unref?.();
  };
  if (turns !== undefined && !turns.req.complete && turns.before !== undefined) {
    // The error is in the body of a request still waiting its turn (a bad chunk): it is never
    // served, and the exchanges before it are answered first (the 400 went out at once, in place
    // of theirs, and the socket's end cut them).
    turns.dropped = turns.req;
    void turns.before.then(last);
    return;
  }
  if (turns === undefined || !turns.req.complete) {
    // Nothing under way on this connection, or the error is in the body of the request being
    // served: node:http's own way (the answer, and the socket destroyed, which aborts that exchange).
    if (socket.writable && (turns === undefined || !turns.res.headersSent)) socket.write(answer);
    socket.destroy();
    return;
  }
  void turns.tail.then(last);
}

/**
 * Per connection, while an exchange is under way: the end of its latest exchange, how many requests
 * wait behind the one running, and the latest request (answerClientError: is a parse error in its
 * body, or in a request after it?).
 */
interface Turns {
  tail: Promise<void>;
  waiting: number;
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** While the latest request waits its turn: the end of the exchanges before it. */
  before: Promise<void> | undefined;
  /** A waiting request that is never to run (a parse error in its body, answerClientError). */
  dropped?: http.IncomingMessage;
}
const connectionTurns = new WeakMap<object, Turns>();
/** Per connection, its latest request (answerClientError: is the error in the body of one already answered?). */
const lastRequests = new WeakMap<object, http.IncomingMessage>();
/** Per socket: ends the drain of a refused body before its closing answer (listenNode), when that body turns out malformed. */
const refusalsDraining = new WeakMap<object, () => void>();

/**
 * The most requests one connection may have waiting behind the one being served (inTurn). node:http
 * under Bun goes on parsing a connection's pipelined requests whatever the listener does
 * (socket.pause() does not stop it), and a waiting request writes nothing that would push back on
 * the client: one connection that wrote 100,000 pipelined GETs without reading an answer took the
 * process from 68 to 823 MB. Past this depth the connection is closed (RFC 9112 §9.6 lets a server
 * close at any time; a client retries what it was not answered). Clients that pipeline send a few.
 */
export const MAX_PIPELINED_WAITING = 64;

/**
 * Runs `serve` for a request once every earlier exchange on its connection is over: its answer
 * written completely ('finish') or the exchange ended otherwise ('close': cut, client gone).
 * node:http emits pipelined requests as soon as it parses them and only queues their answers, so
 * they ran at the same time: a pipelined `PUT` then `DELETE` of one key got 200 and 204 and the
 * object stayed (the DELETE reached the upstream first), a `GET` behind a `PUT` read the previous
 * version. RFC 9112 §9.3.2 allows parallel processing only for safe methods; requests on one
 * connection now run one after another, whatever their method (as a client that waits for each
 * answer sees them). A request that finds no exchange under way runs at once; one that would be
 * the (MAX_PIPELINED_WAITING + 1)th waiting closes the connection instead.
 */
export function inTurn(req: http.IncomingMessage, res: http.ServerResponse, serve: () => void): void {
  const socket = req.socket as object;
  lastRequests.set(socket, req);
  const turns = connectionTurns.get(socket);
  if (turns !== undefined && turns.waiting >= MAX_PIPELINED_WAITING) {
    req.socket.destroy();
    return;
  }
  const ended = new Promise<void>((resolve) => {
    if (res.writableFinished || res.destroyed) return resolve();
    res.once("finish", () => resolve());
    res.once("close", () => resolve());
  });
  if (turns === undefined) {
    const first: Turns = { tail: ended, waiting: 0, req, res, before: undefined };
    connectionTurns.set(socket, first);
    void ended.then(() => {
      if (first.tail === ended) connectionTurns.delete(socket);
    });
    serve();
    return;
  }
  const previous = turns.tail;
  const tail = previous.then(() => ended);
  turns.tail = tail;
  turns.waiting++;
  turns.req = req;
  turns.res = res;
  turns.before = previous;
  void tail.then(() => {
    if (turns.tail === tail) connectionTurns.delete(socket);
  });
  void previous.then(() => {
    turns.waiting--;
    if (turns.req === req) turns.before = undefined;
    // (the connection was closed meanwhile: nobody will read this answer, nothing is started for
    // it; or its body could not be parsed)
    if (res.destroyed || req.socket.destroyed || turns.dropped === req) return;
    serve();
  });
}

/**
 * How long the node engine waits for a client that moves nothing (ms): a request body that stops
 * arriving, an answer it stops reading. Bun.serve's idleTimeout (60 s); YATAGARASU_NODE_IDLE_MS
 * overrides it (tests), read when a listener starts.
 */
function nodeIdleMs(): number {
  const env = Number(process.env.YATAGARASU_NODE_IDLE_MS);
  // (a day at most: a larger value overflows the timers, which then fire every millisecond)
  return Number.isInteger(env) && env > 0 && env <= 86_400_000 ? env : NODE_IDLE_MS;
}

/**
 * The node engine's timeouts. node:http's requestTimeout (300 s for the whole request, body
 * included) cut every upload that took longer with a bare 408 (a 5 GiB PUT at 15 MB/s takes 340 s):
 * off. A client that stops sending, or trickles, is bounded by watchedNodeBody instead.
 */
export function configureNodeServer(server: http.Server): void {
  server.keepAliveTimeout = 60_000;
  server.requestTimeout = 0;
}

/**
 * The node engine's request body as a web stream, its connection closed when, while the body still
 * arrives, fewer than `minBytes` come within a period of `idleMs` (by default 16 KiB for each
 * second of it: Bun.serve's rule on the bun engine, framed-body.ts). Without it, a client that
 * sent half its body and then nothing held an upload slot and an upstream connection; and with a
 * socket timeout (reset by every byte) one byte a second held them for ever (four such clients
 * took every upload slot). Only while the body arrives: once it is complete, an answer may take as
 * long as the upstream does (a CompleteMultipartUpload of minutes; a listener-wide socket timeout
 * cut those at 60 s). The bytes are counted as the body is read (node:http under Bun does not
 * count a socket's bytes).
 */
export function watchedNodeBody(req: http.IncomingMessage, idleMs = NODE_IDLE_MS, minBytes = LISTENER_SLOW_BYTES_PER_SECOND * (idleMs / 1000)): ReadableStream<Uint8Array> {
  const source = Readable.toWeb(req) as ReadableStream<Uint8Array>;
  if (req.complete) return source;
  let got = 0;
  let base = 0;
  let since = performance.now();
  const tick = setInterval(
    () => {
      if (req.complete) return clearInterval(tick);
      if (got - base >= minBytes) {
        base = got;
        since = performance.now();
      } else if (performance.now() - since >= idleMs) {
        clearInterval(tick);
        req.socket.destroy();
      }
    },
    Math.max(10, Math.min(1000, idleMs / 4)),
  );
  tick.unref?.();
  const done = () => clearInterval(tick);
  req.once("end", done);
  req.once("close", done);
  return source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        got += chunk.byteLength;
        bodyBytesForwarded(chunk.byteLength);
        c.enqueue(chunk);
      },
    }),
  );
}

/**
 * The path and query of an absolute-form target ("http://host/p?q" → "/p?q"); anything else unchanged (then refused).
 * A `#` after the host is kept, as in an origin-form target (README: not the start of a fragment; it
 * stays in the key or the last query value), which is what Bun.serve routes too; one in the host
 * part is no host (refused).
 */
function originFormOf(target: string): string {
  const m = /^https?:\/\/[^/?#]*([/?].*)?$/i.exec(target);
  if (m === null) return target;
  const rest = m[1] ?? "/";
  return rest.startsWith("?") ? `/${rest}` : rest;
}

/**
 * The separate Prometheus listener. `render` may merge several worker processes. Answers only
 * `GET`/`HEAD /metrics`: 404 for any other target (a CONNECT's authority-form one too), 405 for
 * another method, 400 for a Host that is not host[:port] (as the other listeners), and a plain
 * 500 if rendering fails. Never Bun's developer error page (`development: false`): a request
 * without a Host (HTTP/1.0), with an empty one or a CONNECT made `new URL(req.url)` throw, and
 * that page, with stack frames, source lines and the working directory, was the answer.
 */
export function listenMetrics(cfg: Config, render: () => string | Promise<string>, log?: Logger): Listener {
  const server = Bun.serve({
    hostname: cfg.metrics.address,
    port: cfg.metrics.port,
    development: false,
    // (Bun's default cap, 128 MiB, answered a larger declared body a bare 413 before this handler:
    // its 404 or 405 is the answer, and closeAsAsked closes the connection on the unread body)
    maxRequestBodySize: LISTENER_MAX_BODY,
    fetch(req) {
      // The metrics listener never reads a body: an Expect Bun did not answer is the same desync,
      // and a chunked one is not read at the client's pace (closeAsAsked).
      return closeAsAsked(req, expectGuard(req, metricsAnswer(req, render)));
    },
    error(err) {
      log?.error("metrics listener error", { error: String(err?.message ?? err) });
      return new Response("Internal error\n", { status: 500, headers: { "content-type": "text/plain; charset=utf-8" } });
    },
  });
  return { port: server.port ?? cfg.metrics.port, stop: (force) => server.stop(force) ?? Promise.resolve() };
}

async function metricsAnswer(req: Request, render: () => string | Promise<string>): Promise<Response> {
  // req.url is "/path" without a Host, "http://host/path" with one, "host:port" for a CONNECT.
  const host = req.headers.get("host");
  if (host !== null && !validHost(host)) return new Response("Bad request: the Host header must name one host (host or host:port)\n", { status: 400 });
  if (splitUrl(req.url).path !== "/metrics") return new Response("Not found: metrics are at /metrics\n", { status: 404 });
  if (req.method !== "GET" && req.method !== "HEAD") return new Response("Method not allowed: /metrics answers GET and HEAD\n", { status: 405, headers: { allow: "GET, HEAD" } });
  return new Response(await render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
}
