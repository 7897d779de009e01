/**
 * DeleteObject and DeleteObjects on the S3 front, of keys or of versions (?versionId, <VersionId>).
 *
 * DeleteObjects (POST /bucket?delete) is decided key by key, as S3 does: the body is S3's XML
 * (read with the safe reader, at most 1,000 keys; MalformedXML otherwise), each key is checked
 * for the identity's `delete` grant and by the bucket's authorizer with s3:DeleteObject (or
 * s3:DeleteObjectVersion for an entry with a VersionId) and that key, and only the allowed
 * entries go upstream (in one DeleteObjects, whose XML is built from the entries, never relayed).
 * The answer merges the upstream's per-entry results with the refusals (AccessDenied per key), in
 * request order; Quiet lists only the errors. S3 requires an integrity check on this body:
 * Content-MD5, an x-amz-checksum-* value, or an aws-chunked checksum trailer (checked on the body).
 *
 * Conditional deletes (S3's, on general purpose buckets): DeleteObject's If-Match (an ETag, or `*`)
 * goes upstream with the request, and each <Object>'s <ETag> into the DeleteObjects XML the proxy
 * builds; S3's refusals come back as S3 answers them (412 PreconditionFailed, 404 NoSuchKey when
 * there is no object; per key in DeleteObjects). The conditions the proxy does not carry are
 * refused, never dropped (a conditional delete must not become an unconditional one):
 * x-amz-if-match-last-modified-time / x-amz-if-match-size, If-None-Match, If-Unmodified-Since
 * (unkeptDeleteCondition), and a DeleteObjects <Object>'s <LastModifiedTime> / <Size> (directory
 * buckets only in S3): 501 NotImplemented, nothing deleted.
 *
 * Every key the upstream may have deleted is invalidated in every cache layer (not one whose
 * condition S3 refused: nothing changed).
 */
import { clientIp, type RequestContext } from "../../proxy/context.ts";
import { mayAlso } from "../../proxy/phases/authorize.ts";
import { deleteObject, deleteObjects, EXPECTED_OWNER, type DeleteEntry } from "../../s3/operations/index.ts";
import { s3Error } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import type { S3RequestContext } from "./front.ts";
import { mayAccess, refusalReason } from "./permissions.ts";
import { emptyAnswer, entryErrorOf, MAX_RESULT_BODY, readUpstreamCapped, relayError, resultFail, tryParse, xmlAnswer } from "./relay.ts";
import { keyRefusal, MAX_KEY_BYTES } from "./route.ts";
import { el, S3_XMLNS, XML_DECL } from "./xml.ts";
import { child, childText, childrenNamed, type XmlElement } from "./xml-reader.ts";
import { callOf, fieldText, malformed, readXmlBody, requestHeaders, unkeptDeleteCondition, writeUpstream } from "./writes.ts";
import { purgeIfUnsure, purgeWritten } from "../purge.ts";
import { versionIdOf, versionIdProblem } from "./operations.ts";
import { cutText } from "../../util/text.ts";
import { algorithmFromHeaderName } from "../../s3/checksum.ts";

const MAX_DELETE_KEYS = 1000;
/** Authorizer calls in flight at once for one DeleteObjects (decisions are cached per key). */
const AUTHZ_CONCURRENCY = 16;
/** A DeleteObjects <Object>'s conditions for S3's directory buckets only: refused. */
const DIRECTORY_BUCKET_CONDITIONS = ["LastModifiedTime", "Size"];
/** What an <Object> of a Delete document may hold (S3's ObjectIdentifier). */
const OBJECT_FIELDS = new Set(["Key", "VersionId", "ETag", ...DIRECTORY_BUCKET_CONDITIONS]);
/** The forms of an xsd:boolean (<Quiet>). */
const QUIET_VALUES = new Set(["true", "false", "1", "0"]);
const CHECKSUM_HEADERS = ["content-md5", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme", "x-amz-checksum-sha1", "x-amz-checksum-sha256"];

/**
 * A delete's headers passed on beside its condition: x-amz-expected-bucket-owner (the upstream
 * checks the bucket's owner), and Object Lock's: x-amz-mfa (the bucket owner's MFA device, for a
 * version's delete on a bucket with MFA delete: the upstream checks it, and it grants nothing the
 * request's own authorization did not), and x-amz-bypass-governance-retention: true only when the
 * bucket's authorizer allows s3:BypassGovernanceRetention, a permission of its own in S3 that a
 * delete grant does not include (without an authorizer, or refused, it is dropped: the upstream
 * then refuses a version under governance retention as S3 refuses a caller without the permission;
 * with the authorizer down, 503 whatever its fail mode: fail_mode open keeps objects readable
 * through an outage, it must not make retained versions deletable).
 * Undefined when there are none (every delete but these).
 */
async function passedDeleteHeaders(ctx: RequestContext, headers: Headers, keys: readonly string[] = [ctx.key]): Promise<Record<string, string> | undefined> {
  const owner = headers.get(EXPECTED_OWNER);
  const mfa = headers.get("x-amz-mfa");
  const bypass = headers.get("x-amz-bypass-governance-retention");
  if (owner === null && mfa === null && bypass === null) return undefined;
  const out: Record<string, string> = {};
  if (owner !== null) out[EXPECTED_OWNER] = owner;
  if (mfa !== null) out["x-amz-mfa"] = mfa;
  if (bypass?.trim().toLowerCase() === "true" && ctx.bucket?.authorizer !== undefined && (await mayBypass(ctx, keys))) out["x-amz-bypass-governance-retention"] = "true";
  return out;
}

/**
 * Whether the authorizer allows s3:BypassGovernanceRetention on every key of `keys` (S3 checks it
 * per object; the header covers a DeleteObjects' every key): asked with each key, as the deletes
 * are, so that a policy refusing it under some prefix is not asked about the bucket instead.
 */
async function mayBypass(ctx: RequestContext, keys: readonly string[]): Promise<boolean> {
  if (keys.length === 1 && keys[0] === ctx.key) return mayAlso(ctx, "s3:BypassGovernanceRetention", true);
  const authorizer = ctx.bucket!.authorizer!;
  const ip = clientIp(ctx);
  let next = 0;
  let all = true;
  const worker = async () => {
    while (all && next < keys.length) {
      const key = keys[next++]!;
      try {
        if (!(await authorizer.authorize({ claims: ctx.claims, principal: ctx.principal, bucket: ctx.bucketName, key, path: `/${ctx.bucketName}/${key}`, method: "DELETE", action: "s3:BypassGovernanceRetention", clientIp: ip, trace: ctx.span, failClosed: true }))) all = false;
      } catch (err) {
        all = false; // the other workers stop asking (the outage fails the request: 503)
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(AUTHZ_CONCURRENCY, keys.length) }, worker));
  return all;
}

/** DeleteObject, of the key or (?versionId) of one version; either way the cached copy goes. */
export async function deleteObjectOp(ctx: RequestContext): Promise<Response> {
  const versionId = versionIdOf(ctx);
  const headers = requestHeaders(ctx);
  const unkept = unkeptDeleteCondition(headers);
  if (unkept !== undefined) throw s3Fail(unkept);
  const ifMatch = headers.get("if-match") ?? undefined;
  const lock = await passedDeleteHeaders(ctx, headers);
  const upstream = writeUpstream(ctx);
  const res = await purgeIfUnsure(ctx, [ctx.key], () => deleteObject(upstream, { key: ctx.key, versionId, ...(ifMatch === undefined ? {} : { ifMatch }), ...(lock === undefined ? {} : { headers: lock }) }, callOf(ctx)));
  // (any 2xx: S3 answers 204, a gateway may say 200 or 202; the object is gone either way)
  if (!res.ok) return relayError(res, upstream.bucket);
  const purged = purgeWritten(ctx, ctx.key);
  if (purged !== undefined) await purged;
  return emptyAnswer(ctx, res, 204);
}

interface Outcome extends DeleteEntry {
  deleted?: boolean;
  deleteMarker?: string;
  deleteMarkerVersionId?: string;
  code?: string;
  message?: string;
}

/** Whether the identity may delete each entry: the grant (known per bucket and action), then the authorizer. */
async function allowedEntries(ctx: RequestContext, entries: readonly DeleteEntry[]): Promise<boolean[]> {
  const s = (ctx as S3RequestContext).s3!;
  const actionOf = (e: DeleteEntry): "s3:DeleteObject" | "s3:DeleteObjectVersion" => (e.versionId === undefined ? "s3:DeleteObject" : "s3:DeleteObjectVersion");
  const granted = { "s3:DeleteObject": mayAccess(ctx.rt, s.principal, ctx.bucket!, "s3:DeleteObject"), "s3:DeleteObjectVersion": mayAccess(ctx.rt, s.principal, ctx.bucket!, "s3:DeleteObjectVersion") };
  const out = entries.map((e) => granted[actionOf(e)]);
  const authorizer = ctx.bucket!.authorizer;
  if (authorizer === undefined) return out;
  const ip = clientIp(ctx);
  let next = 0;
  // An authorizer that cannot decide (AuthorizerUnavailable, a 503) fails the whole request, which
  // SDKs retry; a per-key AccessDenied would read as a policy denial and never be retried.
  const worker = async () => {
    while (next < entries.length) {
      const i = next++;
      if (!out[i]) continue;
      const { key } = entries[i]!;
      try {
        out[i] = await authorizer.authorize({ claims: ctx.claims, principal: ctx.principal, bucket: ctx.bucketName, key, path: `/${ctx.bucketName}/${key}`, method: "DELETE", action: actionOf(entries[i]!), clientIp: ip, trace: ctx.span });
      } catch (err) {
        next = entries.length; // the other workers stop asking
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(AUTHZ_CONCURRENCY, entries.length) }, worker));
  return out;
}

/** Longest part of a refused key the access log's reason shows. */
const REASON_KEY_CHARS = 256;

/**
 * Why `entry` was refused (the access log's reason, as s3Permit gives one for a refused request):
 * the identity's grant or the session's rules, else the bucket's authorizer. On the refusal path only.
 */
function deniedReason(ctx: RequestContext, entry: DeleteEntry): string {
  const principal = (ctx as S3RequestContext).s3!.principal;
  const action = entry.versionId === undefined ? "s3:DeleteObject" : "s3:DeleteObjectVersion";
  const why = mayAccess(ctx.rt, principal, ctx.bucket!, action) ? undefined : refusalReason(ctx.rt, principal, ctx.bucket, action);
  return `${cutText(entry.key, REASON_KEY_CHARS)}: ${why ?? `the authorization policy denied ${action}`}`;
}

/** One entry's identity in a DeleteResult: its key and version (a version id never contains a NUL). */
const entryId = (e: DeleteEntry) => (e.versionId === undefined ? e.key : `${e.key}\u0000${e.versionId}`);
/** An entry with its condition: one upstream entry per distinct condition. */
const conditionalId = (e: DeleteEntry) => (e.etag === undefined ? entryId(e) : `${entryId(e)}\u0000\u0000${e.etag}`);

function add<T>(map: Map<string, T[]>, id: string, v: T): void {
  const list = map.get(id);
  if (list === undefined) map.set(id, [v]);
  else list.push(v);
}

/** A key a single request could not name: refused per key, as the plain path would refuse it. */
function keyProblem(key: string): string | undefined {
  if (key === "") return "The key is empty.";
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return "Your key is too long";
  const refusal = keyRefusal(key);
  if (refusal !== undefined) return refusal;
  return undefined;
}

/**
 * Whether the body's checksum comes as an aws-chunked trailer (x-amz-trailer naming one the decoder
 * checks, in a trailer payload mode): S3 takes it as a DeleteObjects' integrity check ("Content-MD5
 * or x-amz-sdk-checksum-algorithm"); the decoder refuses the body if the trailer is missing or wrong.
 */
function checksumTrailer(ctx: RequestContext): boolean {
  const mode = (ctx as S3RequestContext).s3?.payload?.mode;
  if (mode !== "streaming-trailer" && mode !== "streaming-unsigned-trailer") return false;
  const trailer = ctx.req.headers.get("x-amz-trailer");
  return trailer !== null && algorithmFromHeaderName(trailer) !== undefined;
}

export async function deleteObjectsOp(ctx: RequestContext): Promise<Response> {
  if (!CHECKSUM_HEADERS.some((h) => ctx.req.headers.has(h)) && !checksumTrailer(ctx)) {
    throw s3Fail(s3Error("InvalidRequest", "Missing required header for this request: Content-MD5 or x-amz-checksum-*"));
  }
  const { outcomes, quiet } = requestedEntries(await readXmlBody(ctx, "Delete"));
  const pending = outcomes.filter((o) => o.code === undefined);
  const allowed = await allowedEntries(ctx, pending);
  const send: Outcome[] = [];
  const denied: Outcome[] = [];
  pending.forEach((o, i) => {
    if (allowed[i]) send.push(o);
    else {
      denied.push(o);
      o.code = "AccessDenied";
      o.message = "Access Denied";
    }
  });
  // (the access log's reason, one for up to 1,000 refusals: their count and the first one's why)
  if (denied.length > 0) ctx.errorReason = `AccessDenied for ${denied.length} of ${outcomes.length} keys; the first, ${deniedReason(ctx, denied[0]!)}`;

  let res: Response | undefined;
  if (send.length > 0) {
    const upstream = writeUpstream(ctx);
    const sentKeys = [...new Set(send.map((o) => o.key))];
    const lock = await passedDeleteHeaders(ctx, requestHeaders(ctx), sentKeys);
    // Unique entries upstream (an entry and its condition); every occurrence in the request gets
    // that entry's result. The same entry named with different conditions (an <ETag> and none, two
    // <ETag>s) goes upstream once per condition.
    const unique = new Map<string, DeleteEntry>();
    for (const o of send) {
      const e: DeleteEntry = o.versionId === undefined ? { key: o.key } : { key: o.key, versionId: o.versionId };
      if (o.etag !== undefined) e.etag = o.etag;
      unique.set(conditionalId(o), e);
    }
    res = await purgeIfUnsure(ctx, sentKeys, () => deleteObjects(upstream, { keys: [...unique.values()], ...(lock === undefined ? {} : { headers: lock }) }, callOf(ctx)));
    if (res.status !== 200) return relayError(res, upstream.bucket);
    // (a 200 whose result is cut or unreadable: any key sent may have been deleted)
    const unsure = () => Promise.all(sentKeys.map((k) => purgeWritten(ctx, k)));
    const result = tryParse(await readUpstreamCapped(res, MAX_RESULT_BODY).catch(async (err) => (await unsure(), Promise.reject(err))));
    if (result?.name !== "DeleteResult") {
      await unsure();
      throw resultFail(res, result, upstream.bucket);
    }
    const deletedKeys = takeResults(result, unique, send, upstream.bucket);
    // A key S3 deleted, or one whose entries did not all fail their condition (an error may have
    // changed it): purged from every cache layer. A key whose every entry S3 refused on its
    // condition was left as it was: nothing to invalidate.
    const changed = new Set(send.filter((o) => o.code !== "PreconditionFailed").map((o) => o.key));
    for (const k of deletedKeys) changed.add(k);
    for (const o of send) if (o.key.includes("\r") && deletedKeys.has(o.key.replace(/\r\n?/g, "\n"))) changed.add(o.key);
    await Promise.all([...changed].map((k) => purgeWritten(ctx, k)));
  }

  // The audit trail names each entry and what became of it (a bulk delete is one line, and a key
  // refused by the policy inside it is a refused attempt, as a refused DeleteObject is).
  // An entry refused as too long is named by its first 1024 characters (no valid key or version
  // id is longer): a signed body of 4 MiB had made one audit line of 4 MiB.
  ctx.auditObjects = outcomes.map((o) => ({
    key: cutText(o.key, MAX_KEY_BYTES),
    version_id: o.versionId === undefined ? undefined : cutText(o.versionId, MAX_KEY_BYTES),
    result: o.deleted ? "allowed" : o.code === "AccessDenied" ? "denied" : "failed",
    reason: o.deleted ? undefined : (o.code ?? "InternalError"),
  }));
  return xmlAnswer(ctx, res, deleteResultXml(outcomes, quiet));
}

/**
 * The entries of a Delete document, in request order, and its Quiet. The document's shape is
 * checked whole first (MalformedXML, nothing deleted); an entry whose key or version id a single
 * request could not name is an InvalidArgument outcome of its own, not sent.
 */
function requestedEntries(doc: XmlElement): { outcomes: Outcome[]; quiet: boolean } {
  // (a delete is not undone: an element S3's schema does not have there, such as an <Object>
  // nested in another, is MalformedXML, never skipped while the entry around it is acted on)
  if (doc.children.some((c) => c.name !== "Object" && c.name !== "Quiet")) throw s3Fail(malformed());
  const objects = childrenNamed(doc, "Object");
  if (objects.length === 0 || objects.length > MAX_DELETE_KEYS) throw s3Fail(malformed());
  // (S3's schema: an xsd:boolean, whose forms are true, false, 1 and 0, as older SDKs write it;
  // anything else is MalformedXML)
  const quietText = fieldText(doc, "Quiet")?.trim().toLowerCase();
  if (quietText !== undefined && !QUIET_VALUES.has(quietText)) throw s3Fail(malformed());
  const quiet = quietText === "true" || quietText === "1";
  const outcomes: Outcome[] = objects.map((o) => {
    // (an entry names one key, at most one version and one ETag, each as text: a second one, or
    // elements inside one, is MalformedXML, never silently dropped)
    if (o.children.some((c) => !OBJECT_FIELDS.has(c.name))) throw s3Fail(malformed());
    const key = fieldText(o, "Key");
    const versionId = fieldText(o, "VersionId");
    const etag = fieldText(o, "ETag");
    if (key === undefined) throw s3Fail(malformed());
    // (S3's conditions for directory buckets: refused rather than dropped, see above)
    for (const name of DIRECTORY_BUCKET_CONDITIONS) {
      if (child(o, name) !== undefined) throw s3Fail(s3Error("NotImplemented", `A delete conditional on <${name}> is not supported through this proxy (only <ETag> is): the object would be deleted without the condition.`));
    }
    const entry: Outcome = versionId === undefined ? { key } : { key, versionId };
    if (etag !== undefined) entry.etag = etag;
    const problem = keyProblem(key) ?? (versionId === undefined ? undefined : versionIdProblem(versionId));
    if (problem !== undefined) {
      entry.code = "InvalidArgument";
      entry.message = problem;
    }
    return entry;
  });
  return { outcomes, quiet };
}

/**
 * Gives each entry of `send` its result from the upstream's DeleteResult (`unique`: the entries
 * sent, by conditionalId); an entry the upstream did not report on is an InternalError. Returns
 * the keys the upstream reports deleted.
 */
function takeResults(result: XmlElement, unique: ReadonlyMap<string, DeleteEntry>, send: readonly Outcome[], bucket: string): Set<string> {
  // Every result the upstream gave for an entry (a key, or a key's version), and for a key: one
  // entry named twice with different conditions (an <ETag> and none, or two <ETag>s) has one
  // result per condition, and S3's results do not say which condition each answers.
  const byEntry = new Map<string, Outcome[]>();
  // A key's results as S3 reports them even if it adds a VersionId the request did not name.
  const byKey = new Map<string, Outcome[]>();
  /** Keys S3 reports deleted: purged from the cache whatever the other entries of the key say. */
  const deletedKeys = new Set<string>();
  for (const c of result.children) {
    if (c.name !== "Deleted" && c.name !== "Error") continue;
    const key = childText(c, "Key");
    if (key === undefined) continue;
    const r: Outcome =
      c.name === "Deleted"
        ? { key, versionId: childText(c, "VersionId"), deleted: true, deleteMarker: childText(c, "DeleteMarker"), deleteMarkerVersionId: childText(c, "DeleteMarkerVersionId") }
        : { key, versionId: childText(c, "VersionId"), ...entryErrorOf(c, bucket) };
    if (r.deleted) deletedKeys.add(key);
    add(byEntry, entryId(r), r);
    add(byKey, key, r);
  }
  // Each entry sent gets one of its results: the entries named without a condition take the
  // deletions first (a deletion with no condition cannot have failed one), the conditional ones
  // what is left, in the order sent; every occurrence of an entry in the request gets its result.
  const resultOf = new Map<DeleteEntry, Outcome>();
  const groups = new Map<string, DeleteEntry[]>();
  for (const e of unique.values()) add(groups, entryId(e), e);
  for (const [id, entries] of groups) {
    const e0 = entries[0]!;
    // (a store that writes a key's CR raw in its answer, as s3rver does where S3 writes &#13;, is
    // read with the CR as LF, XML's line-end rule: such a key is matched that way too)
    const readKey = e0.key.includes("\r") ? e0.key.replace(/\r\n?/g, "\n") : undefined;
    const found =
      byEntry.get(id) ??
      (readKey === undefined ? undefined : byEntry.get(entryId({ ...e0, key: readKey }))) ??
      (e0.versionId === undefined ? (byKey.get(e0.key) ?? (readKey === undefined ? undefined : byKey.get(readKey))) : undefined);
    if (found === undefined) continue;
    const results = [...found].sort((a, b) => Number(b.deleted === true) - Number(a.deleted === true));
    const ordered = [...entries].sort((a, b) => Number(a.etag !== undefined) - Number(b.etag !== undefined));
    ordered.forEach((e, i) => resultOf.set(e, results[Math.min(i, results.length - 1)]!));
  }
  for (const o of send) {
    const sent = unique.get(conditionalId(o))!;
    const r = resultOf.get(sent) ?? { key: o.key, code: "InternalError", message: "The upstream did not report on this key." };
    o.deleted = r.deleted;
    o.deleteMarker = r.deleteMarker;
    o.deleteMarkerVersionId = r.deleteMarkerVersionId;
    o.code = r.code;
    o.message = r.message;
  }
  return deletedKeys;
}

/** The DeleteResult the client gets: every entry in request order (Quiet: only the errors). */
function deleteResultXml(outcomes: readonly Outcome[], quiet: boolean): string {
  let xml = XML_DECL + `<DeleteResult xmlns="${S3_XMLNS}">`;
  for (const o of outcomes) {
    const version = o.versionId === undefined ? "" : el("VersionId", o.versionId);
    if (o.deleted) {
      if (quiet) continue;
      xml += "<Deleted>" + el("Key", o.key) + version;
      if (o.deleteMarker !== undefined) xml += el("DeleteMarker", o.deleteMarker);
      if (o.deleteMarkerVersionId !== undefined) xml += el("DeleteMarkerVersionId", o.deleteMarkerVersionId);
      xml += "</Deleted>";
    } else {
      xml += "<Error>" + el("Key", o.key) + version + el("Code", o.code ?? "InternalError") + el("Message", o.message ?? "") + "</Error>";
    }
  }
  return xml + "</DeleteResult>";
}
