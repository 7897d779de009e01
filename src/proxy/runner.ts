/**
 * The one runner. A request is a list of phases over one RequestContext (pingora's ProxyHttp,
 * Hono's single dispatch point):
 *
 *   phase(ctx) → undefined        pass the request on to the next phase
 *              → Response         the request is answered; later phases do not run
 *              → Promise of either, when the phase has to wait
 *
 * "Sync or async" is decided here, once: a phase that answers synchronously costs no promise, so
 * a fresh cache hit on an unauthenticated bucket is answered without a single microtask (Bun.serve
 * sends a plain Response measurably faster than a Promise of one: ~11 vs ~15 µs CPU per hit).
 *
 * Every request then goes through `deliver` (deliver.ts) exactly once, however it ended: a thrown
 * ProxyError is rendered by the request's front (JSON on the plain front, XML on the S3 front).
 */
import { ProxyError, toProxyError } from "../errors.ts";
import type { Services } from "../app.ts";
import { createContext, type RequestContext } from "./context.ts";
import { deliver } from "./deliver.ts";
import { abandonUpstream } from "../s3/upstream.ts";
import { errorType } from "../observe/trace/client.ts";

export type PhaseResult = Response | undefined | void;
export type Phase = (ctx: RequestContext) => PhaseResult | Promise<PhaseResult>;

/** A front: how requests of one protocol are parsed (its phases) and how its errors look. */
export interface Front {
  readonly name: string;
  readonly phases: readonly Phase[];
  /** Renders an error in the front's dialect. Never includes stack traces or secrets. */
  renderError(err: ProxyError, ctx: RequestContext): Response;
}

/** Runs `phases` from index `from` until one answers. Synchronous until a phase returns a promise. */
export function runPhases(phases: readonly Phase[], ctx: RequestContext, from = 0): Response | Promise<Response> {
  for (let i = from; i < phases.length; i++) {
    const out = phases[i](ctx);
    if (out === undefined) continue;
    if (out instanceof Response) return out;
    return i + 1 === phases.length ? out.then(lastAnswer) : thenRest(out, phases, ctx, i + 1);
  }
  return noAnswer();
}

// (functions of their own, not closures in runPhases: a closure over its loop made every phase it
// ran allocate a scope, on synchronous answers too)
function thenRest(out: Promise<PhaseResult>, phases: readonly Phase[], ctx: RequestContext, next: number): Promise<Response> {
  return out.then((r) => (r === undefined ? runPhases(phases, ctx, next) : r));
}

function lastAnswer(r: PhaseResult): Response {
  return r === undefined ? noAnswer() : r;
}

/** A front whose last phase can pass is a programming error, not a client's. */
function noAnswer(): never {
  throw new ProxyError("InternalError", { detail: "No phase answered the request" });
}

/**
 * `peer`: the TCP peer when the listener has it at hand; otherwise `peerOf(req)` is asked, only if
 * needed. `rawTarget`: the request target exactly as received, when the listener knows it
 * (node:http does; Bun.serve only exposes the URL after its URL parser, see README Known limits).
 */
export type Handler = (req: Request, peer?: string, rawTarget?: string) => Response | Promise<Response>;

export function createHandler(svc: Services, front: Front, peerOf: (req: Request) => string = () => ""): Handler {
  const phases = front.phases;
  const deadlines = new Deadlines();
  return function handle(req, peer, rawTarget) {
    const ctx = createContext(svc, front.name, req, rawTarget ?? req.url, peer, peerOf);
    svc.metrics.inFlight(1);
    let out: Response | Promise<Response>;
    try {
      out = runPhases(phases, ctx);
    } catch (thrown) {
      return deliver(ctx, failed(front, ctx, thrown));
    }
    if (out instanceof Response) return deliver(ctx, out);
    // Answered later: the peer is read now if the log, the audit trail or the request's span will
    // want it, since Bun.serve no longer knows it once the client has gone (a 499 would be logged
    // without it; a span, with logging above info, traced with client.address "").
    if (ctx.peer === undefined && (svc.audit !== undefined || svc.log.enabled("info") || ctx.span?.recording === true)) ctx.peer = peerOf(req);
    return withDeadline(out, ctx.rt.config.server.request_timeout * 1000, ctx, front, deadlines);
  };
}

/** The answer to a request whose phases failed (or whose deadline passed), delivered. */
function deliverFailure(front: Front, ctx: RequestContext, thrown: unknown): Response {
  const res = failed(front, ctx, thrown);
  // (the deadline's answer never passed the CORS phase, which decorates every other one)
  return deliver(ctx, ctx.corsHeaders === undefined ? res : ctx.corsHeaders(res));
}

/** How often a handler's pending deadlines are checked: a late request gets its 504 at most this much after the deadline. */
const SWEEP_MS = 50;

interface Deadline {
  due: number;
  readonly ms: number;
  readonly ctx: RequestContext;
  readonly front: Front;
  late: boolean;
  /** Settle the request: with its delivered answer, or (that failing) as the listener's error. */
  readonly resolve: (res: Response) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The deadlines of one handler's waiting requests, checked by one interval timer that runs only
 * while some are pending. A setTimeout + clearTimeout per request cost ~0.6 µs of CPU (Bun 1.4.5,
 * micro-benchmark); a Set add + delete costs a tenth of that.
 */
class Deadlines {
  private readonly pending = new Set<Deadline>();
  private timer: ReturnType<typeof setInterval> | undefined;

  add(d: Deadline): void {
    this.pending.add(d);
    this.timer ??= setInterval(() => this.sweep(), SWEEP_MS);
  }

  remove(d: Deadline): void {
    this.pending.delete(d);
  }

  private sweep(): void {
    if (this.pending.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = performance.now();
    for (const d of this.pending) {
      if (now < d.due) continue;
      // An upload's body is still arriving at its client's pace: put the deadline off by a period.
      if (d.ctx.uploading) {
        d.due = now + d.ms;
        continue;
      }
      this.pending.delete(d);
      d.late = true;
      // Still reading the client's body: the client is late, not the upstream (S3: RequestTimeout).
      const err = d.ctx.readingBody
        ? new ProxyError("RequestTimeout", { detail: "The request body did not arrive within server.request_timeout" })
        : new ProxyError("GatewayTimeout", { detail: "The request took longer than the proxy allows (server.request_timeout)" });
      // What the phases still wait for upstream is cut, not left to run on its own.
      abandonUpstream(d.ctx.timing, err);
      try {
        d.resolve(deliverFailure(d.front, d.ctx, err));
      } catch (thrown) {
        d.reject(thrown);
      }
    }
  }
}

/**
 * server.request_timeout: the most a request may take until its response head is ready (retries,
 * authorizers and JWKS fetches included; s3.timeout bounds each upstream attempt). Only waiting
 * requests pay for it: a synchronous answer never gets here. When the deadline wins, the client
 * gets 504 and whatever the phases answer later is discarded (its body cancelled, so an upstream
 * connection is not left half-read).
 *
 * An upload's body arrives at its client's pace (a 5 GiB PUT takes minutes), bounded by the
 * listener's idle timeout and s3.timeout's stall check: while `ctx.uploading`, the deadline is
 * put off by whole periods, so it bounds what happens before and after the body.
 */
function withDeadline(p: Promise<Response>, ms: number, ctx: RequestContext, front: Front, deadlines: Deadlines): Promise<Response> {
  // (the answer is delivered here, in p's own reactions: no further promise per request)
  return new Promise<Response>((resolve, reject) => {
    const d: Deadline = { due: performance.now() + ms, ms, ctx, front, late: false, resolve, reject };
    deadlines.add(d);
    p.then(
      (res) => {
        deadlines.remove(d);
        if (d.late) {
          res.body?.cancel().catch(() => {});
          return;
        }
        try {
          resolve(deliver(ctx, res));
        } catch (thrown) {
          reject(thrown); // (as a throw in a .then callback would: the listener's own error answer)
        }
      },
      (err) => {
        deadlines.remove(d);
        if (d.late) return;
        try {
          resolve(deliverFailure(front, ctx, err));
        } catch (thrown) {
          reject(thrown);
        }
      },
    );
  });
}

/** Turns anything thrown by a phase into the front's error response, recording why. */
export function failed(front: Front, ctx: RequestContext, thrown: unknown): Response {
  // Whatever a phase started streaming is abandoned: the answer is the error.
  ctx.streaming = false;
  ctx.bytes = 0;
  ctx.declaredBytes = -1;
  const err = toProxyError(thrown);
  if (ctx.req.signal.aborted && !(thrown instanceof ProxyError)) {
    ctx.errorCode = "ClientClosedRequest"; // nobody is listening for an answer
    return new Response(null, { status: 499 });
  }
  if (err.code === "InternalError") ctx.svc.log.error("unexpected error", { request_id: ctx.id, error: String((thrown as Error)?.stack ?? thrown) });
  ctx.errorCode = err.code;
  // A 412/416 the cache answered (X-Cache: HIT, counted as a hit): the access line says so too.
  const xCache = err.headers?.["x-cache"];
  if (ctx.cache === undefined && typeof xCache === "string") ctx.cache = xCache;
  // A refused token or claim rule: the cause the client was told, for the operator too.
  if ((err.code === "InvalidToken" || err.code === "Forbidden") && err.detail !== undefined) ctx.errorReason = err.detail;
  const cause = err.cause as { s3Code?: string; s3RequestId?: string; s3Status?: unknown; bareStatus?: unknown } | undefined;
  if (cause?.s3Code) ctx.s3Code = cause.s3Code;
  if (cause?.s3RequestId) ctx.s3RequestId = cause.s3RequestId;
  // No answer from the upstream: what failed (refused, a certificate, a reset...), for the operator.
  // An answer the proxy cannot use (a redirect, a 5xx): S3's code (s3_error) when it gave one, else
  // its status (HTTP_301: a redirect to https, a web server's), never an opaque _OTHER.
  // (a 503 or 429 the upstream answered with no S3 code, too: its line must not read as the
  // proxy's own 503, an open breaker's or an overload's, which have no upstream cause)
  const throttled = (err.code === "ServiceUnavailable" || err.code === "SlowDown") && typeof cause?.s3Status === "number";
  if (cause !== undefined && (err.code === "UpstreamUnreachable" || err.code === "BadGateway" || err.code === "GatewayTimeout" || throttled)) {
    if (typeof cause.s3Status === "number") {
      if (!cause.s3Code) ctx.upstreamError = `HTTP_${cause.s3Status}`;
    } else ctx.upstreamError = errorType(cause);
  }
  // (an S3-front write's or XML operation's upstream answer with no S3 code, relayed as S3's
  // InternalError or ServiceUnavailable: what the upstream answered, not only the code it was told as)
  const bare = cause?.bareStatus;
  if (typeof bare === "number" && (bare < 400 || bare >= 500)) ctx.upstreamError = `HTTP_${bare}`;
  const res = front.renderError(err, ctx);
  // The error document's length, for the access log and the bytes metric (HEAD has none).
  if (ctx.method !== "HEAD") ctx.bytes = Number(res.headers.get("content-length") ?? 0);
  return res;
}
