/**
 * DeleteObject and DeleteObjects. S3 refuses a DeleteObjects body without an integrity header, so
 * its Content-MD5 is computed here (every S3 implementation takes it; x-amz-checksum-* is newer).
 * The XML is built from the keys, never relayed from the client: keys (and versions, ETags) are
 * escaped here, so none can inject elements.
 */
import type { BucketUpstream } from "../upstream.ts";
import { type OperationContext, S3_XMLNS, xmlText } from "./common.ts";

/**
 * DELETE /bucket/key: 204, also for a key that did not exist (S3's answer). With `ifMatch` (S3's
 * conditional delete: an ETag, or `*` for any object) S3 deletes only when the current object
 * matches: 412 PreconditionFailed when its ETag differs, 404 NoSuchKey when there is none.
 */
export function deleteObject(upstream: BucketUpstream, args: { key: string; versionId?: string; ifMatch?: string; headers?: Record<string, string> }, ctx: OperationContext): Promise<Response> {
  const headers = args.ifMatch === undefined ? args.headers : { ...args.headers, "if-match": args.ifMatch };
  return upstream.send({
    method: "DELETE",
    key: args.key,
    query: args.versionId === undefined ? undefined : [["versionId", args.versionId]],
    ...(headers === undefined ? {} : { headers }),
    emptyAnswer: true,
    ...ctx,
  });
}

/** One object of a DeleteObjects: a key, or one version of it; `etag` makes it conditional (S3's <ETag>: the ETag, or `*`). */
export interface DeleteEntry {
  key: string;
  versionId?: string;
  etag?: string;
}

export interface DeleteObjectsArgs {
  /** Keys, or keys with a version. */
  keys: ReadonlyArray<string | DeleteEntry>;
  /** Only errors in S3's answer. */
  quiet?: boolean;
  /** More request headers (Object Lock's x-amz-bypass-governance-retention, x-amz-mfa). */
  headers?: Record<string, string>;
}

/** The DeleteObjects XML. Throws TypeError for a key XML cannot carry. */
export function deleteObjectsXml(keys: ReadonlyArray<string | DeleteEntry>, quiet = false): string {
  let xml = `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="${S3_XMLNS}">`;
  if (quiet) xml += "<Quiet>true</Quiet>";
  for (const k of keys) {
    const e = typeof k === "string" ? { key: k } : k;
    xml += `<Object><Key>${xmlText(e.key, "a key")}</Key>`;
    if (e.versionId !== undefined) xml += `<VersionId>${xmlText(e.versionId, "a version id")}</VersionId>`;
    if (e.etag !== undefined) xml += `<ETag>${xmlText(e.etag, "an ETag")}</ETag>`;
    xml += "</Object>";
  }
  return `${xml}</Delete>`;
}

/**
 * POST /bucket?delete: S3 answers 200 with a per-key <Deleted>/<Error> list. Limits (at most 1000
 * keys, at least one) are S3's to enforce: its MalformedXML comes back as any other answer.
 */
export async function deleteObjects(upstream: BucketUpstream, args: DeleteObjectsArgs, ctx: OperationContext): Promise<Response> {
  const body = new TextEncoder().encode(deleteObjectsXml(args.keys, args.quiet));
  const headers = {
    ...args.headers,
    "content-type": "application/xml",
    "content-md5": new Bun.CryptoHasher("md5").update(body).digest("base64"),
  };
  // (a conditional entry's outcome depends on the object's state: not sent again after an attempt
  // whose outcome is unknown, as for any conditional write; see isResendable)
  const conditional = args.keys.some((k) => typeof k !== "string" && k.etag !== undefined);
  return upstream.send({ method: "POST", key: "", query: [["delete", ""]], headers, body, ...(conditional ? { conditional } : {}), ...ctx });
}
