/**
 * The audit trail: "who read or wrote this object, and when". One JSON line per request on a
 * front (plain or S3: object reads, listings, STS, and every refused attempt), none for the
 * control plane (/health, /ready, /admin). Written from the logging step (deliver.ts `finish`),
 * so the line carries the real outcome: status, bytes actually sent, total duration.
 *
 *   {"time":"2025-01-01T00:00:00.000Z","request_id":"…","trace_id":"…","principal":"jwt",
 *    "identity":"alice","client_ip":"10.0.0.7","front":"plain","action":"s3:GetObject","method":"GET",
 *    "bucket":"products","key":"a/b.jpg","result":"allowed","status":200,"bytes":1024,
 *    "duration_ms":3.2}
 *
 * On the S3 front, `operation` names the S3 operation (PutObject, UploadPart, CopyObject,
 * CompleteMultipartUpload, ...: several share one action); `copy_source` is a copy's source as
 * the client named it ("bucket/key"); `objects` a DeleteObjects' entries, each with its `key`
 * (`version_id`), `result` and `reason`; `bytes_in` the request body bytes taken from the client and
 * passed on (uploads, XML bodies), as the access log has them. `bytes` is the response body.
 *
 * result: "allowed" (any status below 400), "denied" (401/403, or a 400 that refuses the
 * credentials presented: see REFUSED_CREDENTIALS; `reason` is the error code: Unauthorized,
 * InvalidToken, Forbidden, AccessDenied, SignatureDoesNotMatch, …) or "failed" (any other error
 * status, or a body that broke off; `reason` is the error code).
 *
 * action: the S3 action; "presign" for a plain-front `POST …?presign`, which only issues a URL
 * (presigned_action: the action the URL is for, s3:PutObject or s3:GetObject).
 *
 * principal: who authenticated the request: jwt, s3_static, s3_session or anonymous (ctx.principal).
 * identity: the JWT `sub` (a sub that is not a string: its JSON text, or "(no sub)" when missing;
 * see jwtSubject), the S3 identity's configured name, or "anonymous" for an anonymous principal.
 *
 * No secrets by construction: the identity is the JWT `sub` or the S3 identity's configured name
 * (never an access key id, token or signature), and nothing from the query string is written.
 *
 * Metrics: yatagarasu_audit_events_total{result}, yatagarasu_audit_write_errors_total,
 * yatagarasu_audit_dropped_total, yatagarasu_audit_queue_bytes (registered only when enabled).
 */
import { basename, dirname, extname, isAbsolute, join } from "node:path";
import type { AuditConfig } from "../config/audit.ts";
import { clientIp, type RequestContext } from "../proxy/context.ts";
import { AuditFile } from "./audit-file.ts";
import { escapeLineSeparators, type Logger } from "./log.ts";
import type { CounterChild, Registry } from "./registry.ts";
import { cutText, wellFormed } from "../util/text.ts";
import { CREDENTIAL_CODES } from "../s3/errors.ts";

export type AuditResult = "allowed" | "denied" | "failed";

export interface AuditDeps {
  baseDir: string;
  log: Logger;
  registry: Registry;
  /** Processes in the group (server.workers): each writes its own file (see auditPath). */
  share?: number;
  worker?: number;
  /** Tests: a shorter flush period. */
  flushIntervalMs?: number;
  queueBytes?: number;
}

/**
 * The file this process writes. With several processes each has its own file, so rotation never
 * races another process: audit.log → audit.worker-<i>.log.
 */
export function auditPath(cfg: AuditConfig, deps: Pick<AuditDeps, "baseDir" | "share" | "worker">): string {
  const p = isAbsolute(cfg.path!) ? cfg.path! : join(deps.baseDir, cfg.path!);
  if ((deps.share ?? 1) <= 1) return p;
  const ext = extname(p);
  return join(dirname(p), `${basename(p, ext)}.worker-${deps.worker ?? 0}${ext}`);
}

/** The trace id of a request, when tracing gave it one (read loosely: tracing owns those fields). */
function traceIdOf(ctx: RequestContext): string | undefined {
  const c = ctx as unknown as { traceId?: unknown; span?: { traceId?: unknown } };
  const t = c.traceId ?? c.span?.traceId;
  return typeof t === "string" && t !== "" ? t : undefined;
}

/**
 * Longest identity written for a JWT `sub`: the issuer chooses it, and it goes into every audit and
 * access line of its bearer (a 4 KB sub made each one 4 KB: the headers' limit is all that held it). An STS session's subject is held to
 * the same (src/fronts/s3/sts.ts MAX_SUBJECT_BYTES).
 */
const MAX_SUB_TEXT = 256;

/**
 * The name a verified JWT gives its bearer, for the audit trail and the logs: its `sub` when that
 * is a string; otherwise its JSON text (a numeric sub 12345 is "12345"), either cut to 256
 * characters, or "(no sub)" when it has none. Never undefined: an authenticated request is never
 * written as anonymous. (Control characters are the log writers' to escape: see escapeLineSeparators.)
 */
export function jwtSubject(claims: Readonly<Record<string, unknown>>): string {
  const sub = claims.sub;
  if (typeof sub === "string") return cutText(wellFormed(sub), MAX_SUB_TEXT);
  if (sub === undefined || sub === null) return "(no sub)";
  return cutText(JSON.stringify(sub) ?? String(sub), MAX_SUB_TEXT);
}

/**
 * The proxy's own 400 answers that refuse the credentials a client presented, as the plain front's
 * 401 InvalidToken does (yatagarasu_auth_total counts them `invalid`): the S3 front's InvalidToken
 * and ExpiredToken (a forged or expired session token), AuthorizationHeaderMalformed and
 * AuthorizationQueryParametersError, STS's InvalidIdentityToken and ExpiredTokenException (a bad
 * or expired web identity token) and IncompleteSignature. Only the proxy's code (`errorCode`) is
 * read: an upstream refusing the proxy's own credentials is not the client's denial.
 */
const REFUSED_CREDENTIALS: ReadonlySet<string> = new Set([...CREDENTIAL_CODES, "InvalidIdentityToken", "ExpiredTokenException", "IncompleteSignature"]);

export function resultOf(ctx: RequestContext): { result: AuditResult; reason?: string } {
  const st = ctx.status;
  if (st === 401 || st === 403 || (st === 400 && ctx.errorCode !== undefined && REFUSED_CREDENTIALS.has(ctx.errorCode))) {
    return { result: "denied", reason: ctx.errorCode ?? ctx.s3Code ?? (st === 401 ? "Unauthorized" : "Forbidden") };
  }
  if (st >= 400 || st < 100 || ctx.bodyError !== undefined) return { result: "failed", reason: ctx.bodyError ?? ctx.errorCode ?? ctx.s3Code };
  // A failure S3 answers after a 200 head (src/fronts/s3/patient.ts): its error code says what it was.
  if (ctx.errorCode !== undefined) return { result: ctx.errorCode === "AccessDenied" ? "denied" : "failed", reason: ctx.errorCode };
  return { result: "allowed" };
}

export class AuditTrail {
  private readonly events: Record<AuditResult, CounterChild>;

  constructor(
    readonly path: string,
    private readonly file: AuditFile,
    registry: Registry,
  ) {
    const ev = registry.counter("yatagarasu_audit_events_total", "Audit trail events recorded, by result (allowed, denied, failed).", ["result"]);
    this.events = { allowed: ev.labels("allowed"), denied: ev.labels("denied"), failed: ev.labels("failed") };
    const queue = registry.gauge("yatagarasu_audit_queue_bytes", "Audit trail text waiting to be written.").labels();
    registry.onCollect(() => queue.set(file.pending));
  }

  /** Called once per request by the logging step; control-plane requests are not audited. */
  record(ctx: RequestContext): void {
    if (ctx.front === "control") return;
    const { result, reason } = resultOf(ctx);
    this.events[result].value++;
    const rec = {
      time: new Date().toISOString(),
      request_id: ctx.id,
      trace_id: traceIdOf(ctx),
      principal: ctx.principal,
      identity: ctx.subject ?? "anonymous",
      session: ctx.session,
      client_ip: clientIp(ctx),
      front: ctx.front,
      // Issuing a presigned URL is not the action it presigns: "presign", and which one.
      action: ctx.presign !== undefined ? "presign" : ctx.action,
      presigned_action: ctx.presign !== undefined ? ctx.action : undefined,
      // The S3 front's operation: the action alone does not tell an UploadPart, a
      // CompleteMultipartUpload or a CopyObject from a PutObject (all s3:PutObject).
      operation: ctx.operation,
      method: ctx.method,
      bucket: ctx.bucket?.name,
      key: ctx.key === "" ? undefined : ctx.key,
      copy_source: ctx.copySource,
      // DeleteObjects: every entry's key (and version) with its own result and reason.
      objects: ctx.auditObjects,
      result,
      reason,
      status: ctx.status,
      bytes: ctx.bytes,
      bytes_in: ctx.bytesIn,
      duration_ms: Math.round((performance.now() - ctx.start) * 1000) / 1000,
    };
    // U+2028/U+2029 (a key may hold them) escaped, as in the logs: one record, one line for any reader.
    this.file.append(escapeLineSeparators(JSON.stringify(rec)) + "\n");
  }

  /** Writes what is queued (tests; shutdown goes through close). */
  flush(): Promise<void> {
    return this.file.flush();
  }

  /** A reload (SIGHUP): the file is opened again if it was moved or deleted (see AuditFile.reopen). */
  reopen(): Promise<void> {
    return this.file.reopen();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/** The process's audit trail, or undefined when `audit.enabled` is false. */
export function createAuditTrail(cfg: AuditConfig, deps: AuditDeps): AuditTrail | undefined {
  if (!cfg.enabled) return undefined;
  const path = auditPath(cfg, deps);
  const errors = deps.registry.counter("yatagarasu_audit_write_errors_total", "Failed audit trail writes (open, write or rotation; retried every second).").labels();
  const dropped = deps.registry.counter("yatagarasu_audit_dropped_total", "Audit trail events lost because the queue was full (the file could not be written fast enough, or at all).").labels();
  const file = new AuditFile({
    path,
    maxBytes: Math.max(1, Math.floor(cfg.max_size_mb * 1024 * 1024)),
    maxFiles: cfg.max_files,
    log: deps.log,
    onError: () => errors.value++,
    onDrop: (n) => (dropped.value += n),
    flushIntervalMs: deps.flushIntervalMs,
    queueBytes: deps.queueBytes,
  });
  deps.log.info("audit trail", { path, max_size_mb: cfg.max_size_mb, max_files: cfg.max_files });
  return new AuditTrail(path, file, deps.registry);
}
