/** JWT authentication: see authenticator.ts (verification), rules.ts (claim rules), sources.ts (token lookup; the token never reaches S3 because only an allowlist of headers and no query is forwarded). */
export { Authenticator, DEFAULT_VERIFY_CACHE_SIZE, type AuthenticatorOptions } from "./authenticator.ts";
export type { Logger } from "./jwks.ts";
export { claimAt, describeRule, evaluateRule, type Claims } from "./rules.ts";
