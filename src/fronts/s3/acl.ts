/**
 * Object and bucket ACLs on the S3 front, answered as S3 answers them on a bucket with ACLs
 * disabled (Object Ownership "bucket owner enforced", S3's default for every new bucket since
 * April 2023): who may do what is decided by this proxy's grants, claim rules and authorizers,
 * never by an ACL, so an ACL can be read but not changed.
 *
 * - GetBucketAcl (any grant on the bucket, like GetBucketLocation) and GetObjectAcl (`read`; the
 *   object, or the version asked for, must exist: asked upstream with a HEAD): the owner with
 *   FULL_CONTROL. The owner is the requesting identity, as ListBuckets reports it.
 * - PutBucketAcl and PutObjectAcl (`write`, refused on read-only buckets): what S3 accepts on such a
 *   bucket, an ACL that grants nothing beyond the owner (`x-amz-acl: private` or
 *   `bucket-owner-full-control`, no x-amz-grant-* header; or an ACL document granting only the
 *   owner FULL_CONTROL), is answered 200 and changes nothing; any other ACL is 400
 *   AccessControlListNotSupported, as S3 answers it.
 *
 * Clients read ACLs as a matter of course (s3cmd info, aws s3api get-object-acl, desktop S3
 * browsers); before this they got 501 NotImplemented.
 */
import type { RequestContext } from "../../proxy/context.ts";
import { getObjectDirect as headUpstream } from "../../s3/operations/index.ts";
import { s3Error } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import type { S3RequestContext } from "./front.ts";
import { versionIdOf, xmlResponse } from "./operations.ts";
import { errorOf, relayError } from "./relay.ts";
import { aclsNotSupported, callOf, grantsOthers, readXmlBody, requestHeaders } from "./writes.ts";
import { child, type XmlElement } from "./xml-reader.ts";
import { escapeXml, ownerOf, S3_XMLNS, XML_DECL } from "./xml.ts";

const XSI = "http://www.w3.org/2001/XMLSchema-instance";

/** The AccessControlPolicy document of an owner-only ACL. */
function renderOwnerOnlyAcl(identity: string): string {
  const owner = ownerOf(identity);
  const who = "<ID>" + escapeXml(owner.id) + "</ID><DisplayName>" + escapeXml(owner.displayName) + "</DisplayName>";
  return (
    XML_DECL +
    '<AccessControlPolicy xmlns="' + S3_XMLNS + '"><Owner>' + who + "</Owner><AccessControlList><Grant>" +
    '<Grantee xmlns:xsi="' + XSI + '" xsi:type="CanonicalUser">' + who + "</Grantee>" +
    "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>"
  );
}

function identityOf(ctx: RequestContext): string {
  // (anonymous requests never get here: ACL actions need a principal, see permissions.ts)
  return (ctx as S3RequestContext).s3!.principal!.identity;
}

/**
 * HEAD of the object (or the version asked for) upstream: S3's error when it does not exist. A
 * HEAD's error has no body to name its code: for a version (NoSuchKey, NoSuchVersion, an invalid
 * id, a delete marker) a one-byte GET asks, and S3's own answer is relayed (a missing key is then
 * NoSuchKey, which renderError turns into AccessDenied for a caller without `list`, as on GetObject).
 */
async function requireObject(ctx: RequestContext): Promise<void> {
  const versionId = versionIdOf(ctx);
  const upstream = ctx.bucket!.upstream.primary();
  const res = await headUpstream(upstream, { method: "HEAD", key: ctx.key, versionId, headers: {} }, callOf(ctx));
  await res.body?.cancel().catch(() => {});
  if (res.status === 200) return;
  if (versionId !== undefined && (res.status === 400 || res.status === 404 || res.status === 405)) {
    const got = await headUpstream(upstream, { method: "GET", key: ctx.key, versionId, headers: { range: "bytes=0-0" } }, callOf(ctx));
    // (416: the version exists, and is empty)
    if (got.status === 200 || got.status === 206 || got.status === 416) {
      await got.body?.cancel().catch(() => {});
      return;
    }
    return relayError(got, upstream.bucket);
  }
  throw s3Fail(errorOf(res.status, undefined, upstream.bucket, res.headers.get("retry-after")));
}

export function getBucketAclOp(ctx: RequestContext): Response {
  return xmlResponse(ctx, renderOwnerOnlyAcl(identityOf(ctx)));
}

export async function getObjectAclOp(ctx: RequestContext): Promise<Response> {
  await requireObject(ctx);
  return xmlResponse(ctx, renderOwnerOnlyAcl(identityOf(ctx)));
}

/** PutBucketAcl / PutObjectAcl: an owner-only ACL is a no-op (200); any other is refused. */
export async function putAclOp(ctx: RequestContext): Promise<Response> {
  const h = requestHeaders(ctx);
  const length = h.get("content-length");
  const body = (length !== null && length.trim() !== "0") || h.has("transfer-encoding");
  const acl = h.get("x-amz-acl");
  if (grantsOthers(h) || (acl !== null && body)) throw s3Fail(aclsNotSupported());
  if (body) {
    // An ACL document: S3 takes the owner's full control "expressed in the XML format" as it takes
    // the canned ACL (s3cmd cp/mv write back the document GetObjectAcl gave them); anything else
    // names other grantees.
    const doc = await readXmlBody(ctx, "AccessControlPolicy");
    if (!ownerOnlyDocument(doc, ownerOf(identityOf(ctx)).id)) throw s3Fail(aclsNotSupported());
  } else if (acl === null) {
    throw s3Fail(s3Error("MissingSecurityHeader", "Your request was missing a required header: x-amz-acl (or an ACL document)."));
  }
  if (ctx.key !== "") await requireObject(ctx);
  return new Response(null, { status: 200 });
}

/**
 * True for an AccessControlPolicy whose every grant is FULL_CONTROL to the owner this front
 * reports (GetObjectAcl's document, as clients send it back), and whose Owner, when named, is it.
 * Only S3's elements, each where and as often as its schema has it: a second AccessControlList,
 * Grantee, Permission or ID, or a Grant outside the list, is not the owner-only ACL (a document
 * that also granted AllUsers READ in a second list was answered 200, as if applied).
 */
function ownerOnlyDocument(doc: XmlElement, ownerId: string): boolean {
  if (!hasOnly(doc, POLICY_FIELDS)) return false;
  const owner = child(doc, "Owner");
  if (owner !== undefined && (!hasOnly(owner, PARTY_FIELDS) || fieldOf(owner, "ID") !== ownerId)) return false;
  const list = child(doc, "AccessControlList");
  const granted = list === undefined ? [] : list.children;
  if (granted.length === 0 || granted.some((g) => g.name !== "Grant")) return false;
  return granted.every((g) => {
    if (!hasOnly(g, GRANT_FIELDS)) return false;
    const who = child(g, "Grantee");
    if (who === undefined || !hasOnly(who, PARTY_FIELDS)) return false;
    // (xsi:type, when given, says which kind of grantee: the owner is a CanonicalUser)
    for (const [name, v] of Object.entries(who.attrs)) if ((name === "type" || name.endsWith(":type")) && v.trim() !== "CanonicalUser") return false;
    return fieldOf(who, "ID") === ownerId && fieldOf(g, "Permission") === "FULL_CONTROL";
  });
}

const POLICY_FIELDS: ReadonlySet<string> = new Set(["Owner", "AccessControlList"]);
const GRANT_FIELDS: ReadonlySet<string> = new Set(["Grantee", "Permission"]);
/** An Owner's, and a CanonicalUser Grantee's (URI and EmailAddress name other grantees). */
const PARTY_FIELDS: ReadonlySet<string> = new Set(["ID", "DisplayName"]);

/** Whether every child of `node` is one of `names`, none of them twice. */
function hasOnly(node: XmlElement, names: ReadonlySet<string>): boolean {
  const seen = new Set<string>();
  for (const c of node.children) {
    if (!names.has(c.name) || seen.has(c.name)) return false;
    seen.add(c.name);
  }
  return true;
}

/** The trimmed text of the child `name` that holds text only, or undefined. */
function fieldOf(node: XmlElement, name: string): string | undefined {
  const c = child(node, name);
  return c === undefined || c.children.length > 0 ? undefined : c.text.trim();
}
