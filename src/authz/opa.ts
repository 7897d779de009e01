/**
 * OPA (Open Policy Agent) per-bucket authorization through OPA's Data API:
 *
 *   POST {opa_url}/v1/data/{opa_policy_path}
 *   {"input": {"jwt_claims": {...} | null, "principal": "jwt", "bucket": "<bucket name>", "key": "<object key>",
 *              "path": "<request path>", "method": "GET", "action": "s3:GetObject", "client_ip": "<ip>"}}
 *
 * `principal` says who the claims describe: "jwt" (a token, plain front), "s3_static" (an S3
 * identity of s3_api.credentials), "s3_session" (an STS session), "anonymous" (no claims).
 *
 * `action` is the S3 action on both fronts (the plain front's GET is s3:GetObject; the S3 front
 * also sends s3:ListBucket, s3:GetBucketLocation, ...). `jwt_claims` holds an S3 identity's
 * configured claims (with `sub` = the identity) or an STS session's token claims.
 *
 * Allowed when the answer's `result` is `true`, or an object with `"allow": true` (so the policy path
 * may name the rule, e.g. `yatagarasu/allow`, or its package, e.g. `yatagarasu`). Anything else
 * denies: `false`, other shapes, and no `result` at all (OPA's answer for an undefined document,
 * e.g. a typo in the policy path — logged at warn once per path, since it denies everything).
 *
 * opa_policy_path may be written with slashes (`yatagarasu/allow`) or as a dotted Rego reference
 * (`yatagarasu.allow` or `data.yatagarasu.allow`); both map to the same URL.
 *
 * The client IP is part of the input, so it is part of the decision-cache key too.
 */
import type { AuthorizationConfig } from "../config/schema.ts";
import { BackendError, DecidingAuthorizer, postJson, type Authorizer, type DecisionResult, type Logger } from "./decide.ts";

/** "data.a.b" / "a.b" / "/a/b/" → "a/b". */
export function opaDataPath(policyPath: string): string {
  let p = policyPath.trim().replace(/^\/+|\/+$/g, "");
  if (!p.includes("/")) p = p.replace(/^data\./, "").replace(/\./g, "/");
  return p
    .split("/")
    .map((s) => encodeURIComponent(s))
    .join("/");
}

export function createOpaAuthorizer(cfg: AuthorizationConfig, fetchFn: typeof fetch, now: () => number, log: Logger, onDecision?: (result: DecisionResult) => void): Authorizer {
  if (!cfg.opa_url || !cfg.opa_policy_path) throw new Error("authorization type opa needs opa_url and opa_policy_path");
  const url = `${cfg.opa_url.replace(/\/+$/, "")}/v1/data/${opaDataPath(cfg.opa_policy_path)}`;
  let warnedUndefined = false;
  return new DecidingAuthorizer(
    {
      name: "opa",
      onDecision,
      ttlSeconds: cfg.opa_cache_ttl_seconds,
      failMode: cfg.opa_fail_mode,
      timeoutMs: cfg.opa_timeout_ms,
      // Everything OPA is sent is in the decision's cache key: the client address and the path
      // too (the S3 front's path differs with the addressing style for the same bucket and key).
      extraKey: (input) => `${input.clientIp}\n${input.path}`,
      url,
      spanName: "POST /v1/data/{policy}",
      ask: async (input, signal, span) => {
        const body = {
          input: { jwt_claims: input.claims ?? null, principal: input.principal, bucket: input.bucket, key: input.key, path: input.path, method: input.method, action: input.action ?? null, client_ip: input.clientIp },
        };
        const answer = await postJson(fetchFn, url, body, signal, undefined, span);
        if (answer === null || typeof answer !== "object" || Array.isArray(answer)) throw new BackendError("answer is not a JSON object");
        if (!("result" in answer)) {
          if (!warnedUndefined) log("warn", "OPA has no document at the policy path (undefined result); every request is denied", { policy_path: cfg.opa_policy_path });
          warnedUndefined = true;
          return false;
        }
        const result = (answer as { result: unknown }).result;
        if (result === true) return true;
        return result !== null && typeof result === "object" && (result as { allow?: unknown }).allow === true;
      },
    },
    now,
    log,
  );
}
