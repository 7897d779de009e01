/** JWT authentication: see authenticator.ts (verification), rules.ts (claim rules), sources.ts (token lookup/stripping). */
export { Authenticator, DEFAULT_VERIFY_CACHE_SIZE, type AuthenticatorOptions } from "./authenticator.ts";
export type { Logger } from "./jwks.ts";
export { claimAt, describeRule, evaluateRule, type Claims } from "./rules.ts";
export { redactQuery, stripToken } from "./sources.ts";
