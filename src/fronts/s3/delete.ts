/**
 * DeleteObject and DeleteObjects on the S3 front.
 *
 * DeleteObjects (POST /bucket?delete) is decided key by key, as S3 does: the body is S3's XML
 * (read with the safe reader, at most 1,000 keys; MalformedXML otherwise), each key is checked
 * for the identity's `delete` grant and by the bucket's authorizer with s3:DeleteObject and that
 * key, and only the allowed keys go upstream (in one DeleteObjects, whose XML is built from the
 * keys, never relayed). The answer merges the upstream's per-key results with the refusals
 * (AccessDenied per key), in request order; Quiet lists only the errors. S3 requires an integrity
 * header on this body: Content-MD5 or an x-amz-checksum-* value (checked on the body).
 *
 * Every key the upstream reports deleted is invalidated in every cache layer.
 */
import { clientIp, type RequestContext } from "../../proxy/context.ts";
import { deleteObject, deleteObjects } from "../../s3/operations/index.ts";
import { s3Error } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import type { S3RequestContext } from "./front.ts";
import { mayAccess } from "./permissions.ts";
import { emptyAnswer, errorOf, MAX_RESULT_BODY, readCapped, relayError, tryParse, xmlAnswer } from "./relay.ts";
import { hasDotSegment, MAX_KEY_BYTES } from "./route.ts";
import { el, S3_XMLNS, XML_DECL } from "./xml.ts";
import { child, childText, childrenNamed } from "./xml-reader.ts";
import { callOf, malformed, purgeKey, readXmlBody, writeUpstream } from "./writes.ts";

const MAX_DELETE_KEYS = 1000;
/** Authorizer calls in flight at once for one DeleteObjects (decisions are cached per key). */
const AUTHZ_CONCURRENCY = 16;
const CHECKSUM_HEADERS = ["content-md5", "x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme", "x-amz-checksum-sha1", "x-amz-checksum-sha256"];

export async function deleteObjectOp(ctx: RequestContext): Promise<Response> {
  const upstream = writeUpstream(ctx);
  const res = await deleteObject(upstream, { key: ctx.key }, callOf(ctx));
  if (res.status !== 204 && res.status !== 200) return relayError(res, upstream.bucket);
  const purged = purgeKey(ctx, ctx.key);
  if (purged !== undefined) await purged;
  return emptyAnswer(ctx, res, 204);
}

interface Outcome {
  key: string;
  deleted?: boolean;
  code?: string;
  message?: string;
}

/** Whether the identity may delete `key`: the grant (already known per bucket), then the authorizer. */
async function allowedKeys(ctx: RequestContext, keys: readonly string[]): Promise<boolean[]> {
  const s = (ctx as S3RequestContext).s3!;
  const granted = mayAccess(ctx.rt, s.principal, ctx.bucket!, "s3:DeleteObject");
  const out = keys.map(() => granted);
  const authorizer = ctx.bucket!.authorizer;
  if (!granted || authorizer === undefined) return out;
  const ip = clientIp(ctx);
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      const key = keys[i]!;
      out[i] = await authorizer
        .authorize({ claims: ctx.claims, bucket: ctx.bucketName, key, path: `/${ctx.bucketName}/${key}`, method: "DELETE", action: "s3:DeleteObject", clientIp: ip, trace: ctx.span })
        .catch(() => false);
    }
  };
  await Promise.all(Array.from({ length: Math.min(AUTHZ_CONCURRENCY, keys.length) }, worker));
  return out;
}

/** A key a single request could not name: refused per key, as the plain path would refuse it. */
function keyProblem(key: string): string | undefined {
  if (key === "") return "The key is empty.";
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return "Your key is too long";
  if (hasDotSegment(key)) return "Object keys with '.' or '..' path segments are not served by this proxy.";
  return undefined;
}

export async function deleteObjectsOp(ctx: RequestContext): Promise<Response> {
  if (!CHECKSUM_HEADERS.some((h) => ctx.req.headers.has(h))) {
    throw s3Fail(s3Error("InvalidRequest", "Missing required header for this request: Content-MD5 or x-amz-checksum-*"));
  }
  const doc = await readXmlBody(ctx, "Delete");
  const objects = childrenNamed(doc, "Object");
  if (objects.length === 0 || objects.length > MAX_DELETE_KEYS) throw s3Fail(malformed());
  const quiet = childText(doc, "Quiet")?.trim().toLowerCase() === "true";
  const outcomes: Outcome[] = objects.map((o) => {
    const key = child(o, "Key")?.text;
    if (key === undefined) throw s3Fail(malformed());
    if (child(o, "VersionId") !== undefined) return { key, code: "NotImplemented", message: "Deleting a version is not supported by this proxy." };
    const problem = keyProblem(key);
    return problem === undefined ? { key } : { key, code: "InvalidArgument", message: problem };
  });
  const pending = outcomes.filter((o) => o.code === undefined);
  const allowed = await allowedKeys(ctx, pending.map((o) => o.key));
  const send: Outcome[] = [];
  pending.forEach((o, i) => {
    if (allowed[i]) send.push(o);
    else {
      o.code = "AccessDenied";
      o.message = "Access Denied";
    }
  });

  let res: Response | undefined;
  if (send.length > 0) {
    const upstream = writeUpstream(ctx);
    // Unique keys upstream; every occurrence in the request gets the key's result.
    const keys = [...new Set(send.map((o) => o.key))];
    res = await deleteObjects(upstream, { keys }, callOf(ctx));
    if (res.status !== 200) return relayError(res, upstream.bucket);
    const result = tryParse(await readCapped(res, MAX_RESULT_BODY));
    if (result?.name !== "DeleteResult") throw s3Fail(errorOf(res.status, result, upstream.bucket));
    const byKey = new Map<string, Outcome>();
    for (const d of childrenNamed(result, "Deleted")) {
      const key = childText(d, "Key");
      if (key !== undefined) byKey.set(key, { key, deleted: true });
    }
    for (const e of childrenNamed(result, "Error")) {
      const key = childText(e, "Key");
      if (key !== undefined) byKey.set(key, { key, code: childText(e, "Code")?.trim() || "InternalError", message: childText(e, "Message") ?? "" });
    }
    for (const o of send) {
      const r = byKey.get(o.key) ?? { key: o.key, code: "InternalError", message: "The upstream did not report on this key." };
      o.deleted = r.deleted;
      o.code = r.code;
      o.message = r.message;
    }
    await Promise.all(keys.map((k) => purgeKey(ctx, k)));
  }

  let xml = XML_DECL + `<DeleteResult xmlns="${S3_XMLNS}">`;
  for (const o of outcomes) {
    if (o.deleted) {
      if (!quiet) xml += "<Deleted>" + el("Key", o.key) + "</Deleted>";
    } else {
      xml += "<Error>" + el("Key", o.key) + el("Code", o.code ?? "InternalError") + el("Message", o.message ?? "") + "</Error>";
    }
  }
  return xmlAnswer(ctx, res, xml + "</DeleteResult>");
}
