/**
 * Per-bucket authorization (a bucket's `authorization:` section): OPA or OpenFGA, asked after
 * authentication. See decide.ts (cache, fail modes), opa.ts and openfga.ts (protocols, the
 * OpenFGA authorization model).
 */
import type { AuthorizationConfig } from "../config/schema.ts";
import { monotonicClock } from "../limits/token-bucket.ts";
import type { Authorizer, DecisionResult, Logger } from "./decide.ts";
import { createOpaAuthorizer } from "./opa.ts";
import { createOpenFgaAuthorizer } from "./openfga.ts";

export type { AuthzInput, Authorizer, DecisionResult, Logger } from "./decide.ts";
export { identityOf } from "./decide.ts";

/** `onDecision`: each authorize() call's result, with the authorizer's type (the metrics' labels). */
export function createAuthorizer(
  cfg: AuthorizationConfig,
  opts: { fetch?: typeof fetch; /** milliseconds, monotonic (the decision cache's TTL) */ now?: () => number; log?: Logger; onDecision?: (authorizer: "opa" | "openfga", result: DecisionResult) => void } = {},
): Authorizer {
  const fetchFn = opts.fetch ?? fetch;
  // (elapsed time, not the wall clock: a clock stepped back an hour kept every cached decision,
  // a revoked allow too, an hour past its cache TTL)
  const now = opts.now ?? monotonicClock;
  const log = opts.log ?? (() => {});
  const on = opts.onDecision;
  const count = on === undefined ? undefined : (r: DecisionResult) => on(cfg.type, r);
  return cfg.type === "opa" ? createOpaAuthorizer(cfg, fetchFn, now, log, count) : createOpenFgaAuthorizer(cfg, fetchFn, now, log, count);
}
