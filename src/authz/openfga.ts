/**
 * OpenFGA per-bucket authorization through the Check API:
 *
 *   POST {openfga_endpoint}/stores/{openfga_store_id}/check
 *   Authorization: Bearer {openfga_api_token}            (only when configured)
 *   {"tuple_key": {"user": "user:<claims[openfga_user_claim]>", "relation": "<openfga_relation>",
 *                  "object": "file:<bucket name>/<object key>"},
 *    "authorization_model_id": "<openfga_authorization_model_id>"}   (only when configured)
 *
 * Allowed only when the answer has `"allowed": true`.
 *
 * ── Authorization model (bucket and folder inheritance) ──────────────────────────────────────────
 *
 *   model
 *     schema 1.1
 *
 *   type user
 *
 *   type folder
 *     relations
 *       define parent: [folder]
 *       define viewer: [user, user:*] or viewer from parent
 *
 *   type file
 *     relations
 *       define parent: [folder]
 *       define viewer: [user, user:*] or viewer from parent
 *
 * Object ids. The proxy asks about `file:<bucket>/<key>` (<bucket> is the bucket's `name` in the
 * proxy config, not the S3 bucket). Folders are `folder:<bucket>/` (the whole bucket) and
 * `folder:<bucket>/<dir>/` for each directory level, always with the trailing slash.
 *
 * Tuples the operator writes. OpenFGA does not derive a hierarchy from names, so the chain is written
 * explicitly. For the object `products/shoes/red.jpg` in bucket `catalog`:
 *
 *   file:catalog/products/shoes/red.jpg#parent@folder:catalog/products/shoes/
 *   folder:catalog/products/shoes/#parent@folder:catalog/products/
 *   folder:catalog/products/#parent@folder:catalog/
 *
 * (object#relation@user notation; as JSON: {"user": "folder:catalog/products/shoes/",
 * "relation": "parent", "object": "file:catalog/products/shoes/red.jpg"}, and so on). One parent
 * tuple per file, one per folder. Then grants, at any level:
 *
 *   folder:catalog/#viewer@user:alice                  alice reads the whole bucket
 *   folder:catalog/products/#viewer@user:bob           bob reads everything under products/
 *   file:catalog/products/shoes/red.jpg#viewer@user:carol   carol reads that one object
 *   folder:catalog/public/#viewer@user:*               any authenticated user reads public/
 *
 * With openfga_relation other than `viewer`, define that relation the same way.
 *
 * Writes. s3:PutObject, s3:DeleteObject, the multipart actions and tag changes (WRITE_ACTIONS,
 * src/proxy/context.ts)
 * are checked with `openfga_write_relation` (default `editor`) instead; reads and listings with
 * `openfga_relation`. The model then gains, on both `folder` and `file`:
 *
 *       define editor: [user, user:*] or editor from parent
 *       define viewer: [user, user:*] or editor or viewer from parent
 *
 * so an editor of a folder may write (and read) everything below it, and a viewer may only read:
 *
 *   folder:catalog/uploads/#editor@user:alice          alice writes and reads under uploads/
 *
 * The governance bypass. s3:BypassGovernanceRetention (a delete's x-amz-bypass-governance-retention,
 * src/fronts/s3/delete.ts) is a permission of its own in S3, which a delete does not include: it is
 * checked with `openfga_bypass_relation`, and without one it is never granted (not asked). (Until
 * 2026-12-07 it was checked with openfga_relation, the read relation every editor has: whoever
 * could delete a version deleted it past its governance retention.)
 *
 * Versions. Unset `openfga_version_relation`, a version is the object's: a viewer of `file:b/k`
 * reads every version of k (GET ?versionId=, ListObjectVersions of its folder) and an editor
 * deletes them. Set, the version actions (VERSIONS) need that relation: a version read is checked
 * with it instead of openfga_relation, a version write (s3:DeleteObjectVersion,
 * s3:PutObjectVersionAcl) with openfga_write_relation and then with it (two checks, both must
 * allow: a relation for reading history does not let its holders delete it). The model gains, e.g.:
 *
 *       define versions: [user, user:*] or versions from parent
 *
 * Limits (OpenFGA's id rules): an object id cannot contain ASCII whitespace, ':' or '#', and an object is
 * at most 256 characters, a user at most 512 characters. Requests whose key or user id break these rules are
 * denied without asking OpenFGA (logged at info). A token without the user claim is denied.
 */
import type { AuthorizationConfig } from "../config/schema.ts";
import { claimAt } from "../auth/rules.ts";
import { BackendError, DecidingAuthorizer, postJson, type Authorizer, type DecisionResult, type Logger } from "./decide.ts";
import { WRITE_ACTIONS, type S3Action } from "../proxy/context.ts";

/**
 * OpenFGA's validation patterns are Go (RE2) regular expressions, whose `\s` is ASCII whitespace
 * only ([\t\n\f\r ]): an id with a no-break or ideographic space is valid there (JavaScript's `\s`
 * would have refused it here, denying keys OpenFGA can hold a tuple for).
 */
const ID = /^[^\t\n\f\r :#]+$/;

/**
 * Characters (code points), as Check's patterns count them (`^[^\s]{2,256}$` for the object,
 * `{2,512}` for the user): a byte limit refused a long non-ASCII key OpenFGA holds a tuple for.
 */
const chars = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};


/**
 * The listings, whose key is their prefix. A listing names every key that starts with it: the
 * prefix `a/b.txt` lists `a/b.txt.old` and `a/b.txt/x` too, which a viewer of the file `a/b.txt`
 * may not see (until 2026-12-06 it was asked about `file:<bucket>/a/b.txt`, so that viewer listed
 * them). A prefix is checked as the folder it is in (`a/b.txt` → `file:<bucket>/a/`, `a/` itself
 * when it ends with "/", the bucket's `file:<bucket>/` without one), which holds all it can list.
 */
const LISTINGS: ReadonlySet<string> = new Set<S3Action>(["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"]);

/** The actions on a version other than the current one (and ListObjectVersions, which lists them). */
const VERSIONS: ReadonlySet<string> = new Set<S3Action>([
  "s3:GetObjectVersion",
  "s3:GetObjectVersionAttributes",
  "s3:GetObjectVersionAcl",
  "s3:ListBucketVersions",
  "s3:DeleteObjectVersion",
  "s3:PutObjectVersionAcl",
]);

/** The user id from the configured claim: a non-empty string (or a finite number), or undefined. */
function userId(claims: Record<string, unknown> | undefined, claim: string): string | undefined {
  if (!claims) return undefined;
  const v = claimAt(claims, claim);
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

export function createOpenFgaAuthorizer(cfg: AuthorizationConfig, fetchFn: typeof fetch, now: () => number, log: Logger, onDecision?: (result: DecisionResult) => void): Authorizer {
  if (!cfg.openfga_endpoint || !cfg.openfga_store_id) throw new Error("authorization type openfga needs openfga_endpoint and openfga_store_id");
  const url = `${cfg.openfga_endpoint.replace(/\/+$/, "")}/stores/${encodeURIComponent(cfg.openfga_store_id)}/check`;
  const headers: Record<string, string> = cfg.openfga_api_token ? { authorization: `Bearer ${cfg.openfga_api_token}` } : {};
  let warnedBypass = false;
  const deny = (why: string, fields: object) => {
    log("info", `openfga: request denied without a check: ${why}`, fields);
    return false;
  };
  return new DecidingAuthorizer(
    {
      name: "openfga",
      onDecision,
      ttlSeconds: cfg.openfga_cache_ttl_seconds,
      failMode: cfg.openfga_fail_mode,
      timeoutMs: cfg.openfga_timeout_ms,
      url,
      spanName: "POST /stores/{store_id}/check",
      ask: async (input, signal, span) => {
        const bypass = input.action === "s3:BypassGovernanceRetention";
        if (bypass && cfg.openfga_bypass_relation === undefined) {
          if (!warnedBypass) log("info", "openfga: x-amz-bypass-governance-retention is not passed on: openfga_bypass_relation is not set", { bucket: input.bucket });
          warnedBypass = true;
          return false;
        }
        const uid = userId(input.claims, cfg.openfga_user_claim);
        if (uid === undefined) return deny(`the token has no usable '${cfg.openfga_user_claim}' claim`, { bucket: input.bucket });
        const user = `user:${uid}`;
        const key = input.action !== undefined && LISTINGS.has(input.action) ? input.key.slice(0, input.key.lastIndexOf("/") + 1) : input.key;
        const object = `file:${input.bucket}/${key}`;
        if (!ID.test(uid) || uid === "*" || chars(user) > 512) return deny("the user id is not a valid OpenFGA id", { bucket: input.bucket });
        if (!ID.test(`${input.bucket}/${key}`) || chars(object) > 256)
          return deny("the object key is not a valid OpenFGA id (whitespace, ':' or '#', or longer than 256 characters)", { bucket: input.bucket, key: input.key });
        const write = input.action !== undefined && WRITE_ACTIONS.has(input.action as S3Action);
        const check = async (relation: string) => {
          const body: Record<string, unknown> = { tuple_key: { user, relation, object } };
          if (cfg.openfga_authorization_model_id) body.authorization_model_id = cfg.openfga_authorization_model_id;
          const answer = await postJson(fetchFn, url, body, signal, headers, span);
          if (answer === null || typeof answer !== "object") throw new BackendError("answer is not a JSON object");
          return (answer as { allowed?: unknown }).allowed === true;
        };
        if (bypass) return check(cfg.openfga_bypass_relation!);
        const version = cfg.openfga_version_relation;
        if (version === undefined || input.action === undefined || !VERSIONS.has(input.action)) return check(write ? cfg.openfga_write_relation : cfg.openfga_relation);
        // (a version was checked as the object: a viewer of file:b/k read every older version of k)
        return write ? (await check(cfg.openfga_write_relation)) && check(version) : check(version);
      },
    },
    now,
    log,
  );
}
