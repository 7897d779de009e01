/**
 * Per-bucket authorization (a bucket's `authorization:` section): OPA or OpenFGA, asked after
 * authentication. See decide.ts (cache, fail modes), opa.ts and openfga.ts (protocols, the
 * OpenFGA authorization model).
 */
import type { AuthorizationConfig } from "../config/schema.ts";
import type { Authorizer, DecisionResult, Logger } from "./decide.ts";
import { createOpaAuthorizer } from "./opa.ts";
import { createOpenFgaAuthorizer } from "./openfga.ts";

export type { AuthzInput, Authorizer, DecisionResult, Logger } from "./decide.ts";
export { identityOf } from "./decide.ts";

/** `onDecision`: each authorize() call's result, with the authorizer's type (the metrics' labels). */
export function createAuthorizer(
  cfg: AuthorizationConfig,
  opts: { fetch?: typeof fetch; now?: () => number; log?: Logger; onDecision?: (authorizer: "opa" | "openfga", result: DecisionResult) => void } = {},
): Authorizer {
  const fetchFn = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const log = opts.log ?? (() => {});
  const on = opts.onDecision;
  const count = on === undefined ? undefined : (r: DecisionResult) => on(cfg.type, r);
  return cfg.type === "opa" ? createOpaAuthorizer(cfg, fetchFn, now, log, count) : createOpenFgaAuthorizer(cfg, fetchFn, now, log, count);
}
