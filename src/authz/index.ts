/**
 * Per-bucket authorization (a bucket's `authorization:` section): OPA or OpenFGA, asked after
 * authentication. See decide.ts (cache, fail modes), opa.ts and openfga.ts (protocols, the
 * OpenFGA authorization model).
 */
import type { AuthorizationConfig } from "../config/schema.ts";
import type { Authorizer, Logger } from "./decide.ts";
import { createOpaAuthorizer } from "./opa.ts";
import { createOpenFgaAuthorizer } from "./openfga.ts";

export type { AuthzInput, Authorizer, Logger } from "./decide.ts";
export { identityOf } from "./decide.ts";

export function createAuthorizer(cfg: AuthorizationConfig, opts: { fetch?: typeof fetch; now?: () => number; log?: Logger } = {}): Authorizer {
  const fetchFn = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const log = opts.log ?? (() => {});
  return cfg.type === "opa" ? createOpaAuthorizer(cfg, fetchFn, now, log) : createOpenFgaAuthorizer(cfg, fetchFn, now, log);
}
