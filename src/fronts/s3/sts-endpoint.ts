/**
 * AssumeRoleWithWebIdentity on the S3 listener: `POST /` with a form-encoded body, or with the
 * parameters in its query string and no body (STS reads both; minio-go sends them so), or
 * `GET /?Action=…` (the Query protocol's GET form, STS's documented sample request), so
 * `aws sts assume-role-with-web-identity --endpoint-url <s3 front>`, the SDKs' web-identity
 * credential providers and minio-go's work unchanged.
 *
 * The WebIdentityToken is verified exactly as the plain front verifies a JWT (signature, exp, nbf,
 * iss, aud: the Authenticator of this generation) and must pass the global jwt.claims rules. The
 * session then lasts at most min(DurationSeconds, the token's exp, s3_api.sts.max_session_seconds)
 * and carries the token's claims (sts.ts: stateless, verifiable by any replica with the key).
 * RoleArn is required by the protocol but grants nothing: a session acts as the token's user.
 *
 * GetCallerIdentity on the same endpoint (`aws sts get-caller-identity --endpoint-url <s3 front>`):
 * signed with SigV4 for the service `sts` (the body's SHA-256 is the payload hash, verified), it
 * says which identity the keys are, a static credential's (arn:aws:iam::000000000000:user/IDENTITY)
 * or a session's (the AssumedRoleUser it was issued as). It needs no permission, as in AWS.
 *
 * Errors are STS's XML (ErrorResponse), never a token, a claim value or a key.
 */
import { keyRefOf } from "../../auth/authenticator.ts";
import { TOKEN_EXPIRED } from "../../auth/jwt.ts";
import { describeRule, firstFailedRule, type Claims } from "../../auth/rules.ts";
import { authResultOf, ProxyError } from "../../errors.ts";
import { readCapped } from "../../http/read-capped.ts";
import { jwtSubject } from "../../observe/audit.ts";
import type { RequestContext } from "../../proxy/context.ts";
import type { S3Error } from "./errors.ts";
import { adoptPrincipal, type S3Identities } from "./identities.ts";
import { SESSION_KEY_REMOVED, sessionAdmitted, sessionKeyRemoved } from "./permissions.ts";
import { issueSession } from "./sts.ts";
import { FORM_TYPE } from "./route.ts";
import { readingBody } from "./writes.ts";
import {
  assumedRoleArn,
  assumedRoleId,
  callerIdentityResponse,
  MAX_STS_BODY_BYTES,
  parseAssumeRoleWithWebIdentity,
  parseGetCallerIdentity,
  sessionCallerIdentity,
  staticCallerIdentity,
  stsError,
  stsErrorResponse,
  stsParameters,
  stsResponse,
  type CallerIdentity,
  type StsError,
  type StsParameters,
} from "./sts-api.ts";
import { verifyRequest } from "./verify.ts";

/** A request body of at most `max` bytes (its size: the access log's bytes_in); undefined when it is longer. */
async function readCappedBody(ctx: RequestContext, max: number): Promise<Uint8Array | undefined> {
  const bytes = await readCapped(ctx.req, max);
  if (bytes !== undefined) ctx.bytesIn = bytes.byteLength;
  return bytes;
}

/** How a JWT verification failure reads in STS's dialect. */
function tokenError(err: unknown): StsError {
  if (err instanceof ProxyError) {
    if (err.code === "KeysUnavailable") return stsError("IDPCommunicationError", "The token verification keys (JWKS) could not be loaded; try again.");
    if (err.code === "InvalidToken") {
      // The Authenticator's details are written for clients: they name what failed, never a value.
      if (err.message === TOKEN_EXPIRED) return stsError("ExpiredTokenException", "Token expired");
      return stsError("InvalidIdentityToken", `The web identity token is not valid: ${err.message}`);
    }
  }
  return stsError("InvalidIdentityToken", "The web identity token could not be verified.");
}

const firstString = (v: unknown): string | undefined => (typeof v === "string" ? v : Array.isArray(v) && typeof v[0] === "string" ? v[0] : undefined);

/** The Audience STS answers: the token's audience that verification matched (jwt.audience), else its first. */
export function matchedAudience(aud: unknown, configured: string | readonly string[] | undefined): string | undefined {
  const token = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === "string") : [];
  const wanted = configured === undefined ? [] : typeof configured === "string" ? [configured] : configured;
  return token.find((a) => wanted.includes(a)) ?? token[0];
}

/**
 * The Query protocol's parameters of a POST: its query string's (`query`: "" or "?…") and its
 * form body's together. A parameter the body repeats with the same value is read once (a client
 * that also names the action in its URL); one given two values is left to the parser, which
 * refuses it as repeated.
 */
function queryAndBody(query: string, body: string): string {
  if (query.length <= 1) return body;
  if (body === "") return query.slice(1);
  const form = new URLSearchParams(body);
  const extra = new URLSearchParams();
  const once = new Set<string>();
  for (const [name, value] of new URLSearchParams(query)) {
    const given = form.getAll(name);
    if (given.length === 1 && given[0] === value && !once.has(name)) once.add(name);
    else extra.append(name, value);
  }
  const rest = extra.toString();
  return rest === "" ? body : rest + "&" + body;
}

const NOT_A_FORM = "The request body must be application/x-www-form-urlencoded (POST, AWS Query protocol).";

/** The STS endpoint (POST / on the S3 listener): AssumeRoleWithWebIdentity or GetCallerIdentity, by the call's Action. */
export async function stsEndpoint(ctx: RequestContext, api: S3Identities): Promise<Response> {
  // The answer's length, for the access log, the audit line and the bytes metric (as every answer).
  const counted = (res: Response): Response => {
    ctx.bytes = Number(res.headers.get("content-length") ?? 0);
    return res;
  };
  const fail = (e: StsError): Response => {
    ctx.errorCode = e.code;
    return counted(stsErrorResponse(e, ctx.id));
  };
  if (ctx.method !== "POST" && ctx.method !== "GET") return fail(stsError("ValidationError", "STS actions are GET or POST requests (AWS Query protocol): the parameters in the query string or in a form-encoded body."));
  const type = ctx.req.headers.get("content-type") ?? "";
  const form = FORM_TYPE.test(type);
  // The Query protocol's parameters may also be in the query string of the POST, with an empty
  // body (STS reads both): minio-go's web-identity and IAM providers send them so, no Content-Type.
  if (!form && ctx.query.length <= 1) {
    return fail(stsError("ValidationError", NOT_A_FORM));
  }
  // (read with ctx.readingBody: a body that stops arriving is the client's RequestTimeout)
  const bytes = await readingBody(ctx, readCappedBody(ctx, MAX_STS_BODY_BYTES));
  if (bytes === undefined) return fail(stsError("ValidationError", "The request body is too large."));
  if (!form && bytes.byteLength > 0) {
    return fail(stsError("ValidationError", NOT_A_FORM));
  }
  const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  const parsed = stsParameters(queryAndBody(ctx.query, body));
  if (parsed.kind === "error") return fail(parsed.error);
  const reply: Reply = { fail, counted };
  if (parsed.action === "GetCallerIdentity") return getCallerIdentity(ctx, api, parsed, bytes, reply);
  return assumeRoleWithWebIdentity(ctx, api, parsed, reply);
}

/**
 * A verification failure in STS's words: an unknown key or a foreign session token is
 * InvalidClientTokenId, an expired session ExpiredToken, a signature for another service or
 * region, or outside the allowed clock skew, SignatureDoesNotMatch (as STS answers them).
 */
function signatureError(e: S3Error): StsError {
  switch (e.code) {
    case "InvalidAccessKeyId":
    case "InvalidToken":
      return stsError("InvalidClientTokenId", "The security token included in the request is invalid.");
    case "ExpiredToken":
      return stsError("ExpiredToken", "The security token included in the request is expired");
    case "SignatureDoesNotMatch":
      return stsError("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.");
    case "RequestTimeTooSkewed":
      return stsError("SignatureDoesNotMatch", `Signature expired or not yet current: the request time ${e.details?.RequestTime ?? ""} is more than ${Number(e.details?.MaxAllowedSkewMilliseconds ?? 0) / 1000} s from ${e.details?.ServerTime ?? "now"}.`);
    case "AuthorizationHeaderMalformed":
    case "AuthorizationQueryParametersError":
      if (/incorrect service/.test(e.message)) return stsError("SignatureDoesNotMatch", "Credential should be scoped to correct service: 'sts'.");
      if (/the region '/.test(e.message)) return stsError("SignatureDoesNotMatch", "Credential should be scoped to a valid region.");
      return stsError("IncompleteSignature", e.message);
    case "AccessDenied":
      return stsError("AccessDenied", e.message);
    default:
      return stsError("IncompleteSignature", e.message);
  }
}

/** How an STS action answers: an error (named for the access log), or a result (its length counted). */
interface Reply {
  fail(e: StsError): Response;
  counted(res: Response): Response;
}

function getCallerIdentity(ctx: RequestContext, api: S3Identities, parsed: StsParameters, body: Uint8Array, { fail, counted }: Reply): Response {
  ctx.operation = "GetCallerIdentity";
  ctx.action = "sts:GetCallerIdentity";
  const call = parseGetCallerIdentity(parsed);
  if (call.kind === "error") return fail(call.error);
  const v = verifyRequest(ctx, api.lookup, {
    region: api.region,
    now: api.now(),
    maxSkewSeconds: api.maxSkewSeconds,
    sts: { payloadHash: Bun.SHA256.hash(body, "hex") },
  });
  const metrics = ctx.svc.metrics;
  if (v.kind === "anonymous") {
    metrics.auth("missing");
    return fail(stsError("MissingAuthenticationToken", "Request is missing Authentication Token"));
  }
  if (v.kind === "error") {
    metrics.auth("invalid");
    return fail(signatureError(v));
  }
  // (no permission: AWS lets no policy deny it; a session answers as the role user it was issued as)
  const principal = v.principal;
  adoptPrincipal(ctx, principal);
  // A session a reload no longer admits (jwt.claims tightened: an iat cut-off after a revocation;
  // jwt.issuer or jwt.audience changed) is refused everything else; it answered here as if still good.
  if (principal.kind === "session" && !sessionAdmitted(ctx.rt, principal.claims)) {
    // (its token's key removed: the session no longer verifies, STS's answer to a token it cannot verify)
    if (sessionKeyRemoved(ctx.rt, principal.claims)) {
      metrics.auth("invalid");
      return fail(stsError("InvalidClientTokenId", SESSION_KEY_REMOVED));
    }
    metrics.auth("forbidden");
    return fail(stsError("AccessDenied", "The session is no longer admitted: the token it was issued from does not pass the current jwt rules."));
  }
  metrics.auth("success");
  let identity: CallerIdentity;
  if (principal.kind === "static") identity = staticCallerIdentity(principal.identity);
  else {
    // (a session issued before its AssumedRoleUser was kept: the ARN its role would have had without an account)
    const role = principal.session.assumedRole ?? { arn: assumedRoleArn("", "session"), id: assumedRoleId("", "session") };
    identity = sessionCallerIdentity(role.arn, role.id);
  }
  return counted(callerIdentityResponse(identity, ctx.id));
}

async function assumeRoleWithWebIdentity(ctx: RequestContext, api: S3Identities, parsedCall: StsParameters, { fail, counted }: Reply): Promise<Response> {
  const auth = ctx.rt.auth;
  if (api.sts === undefined || auth === undefined) return fail(stsError("InvalidAction", "AssumeRoleWithWebIdentity is not enabled on this endpoint (s3_api.sts)."));
  const parsed = parseAssumeRoleWithWebIdentity(parsedCall, { maxSessionSeconds: api.sts.maxSessionSeconds });
  if (parsed.kind === "error") return fail(parsed.error);
  const request = parsed.request;

  let claims: Claims;
  try {
    const c = auth.verifyFast(request.webIdentityToken);
    claims = c instanceof Promise ? await c : c;
  } catch (err) {
    ctx.svc.metrics.auth(authResultOf(err));
    return fail(tokenError(err));
  }
  // A verified token: the audit line names its bearer, even when it is refused below.
  ctx.principal = "jwt";
  ctx.subject = jwtSubject(claims);
  const sub = claims.sub;
  if (typeof sub !== "string" || sub === "") {
    ctx.svc.metrics.auth("invalid");
    return fail(stsError("InvalidIdentityToken", "The web identity token has no sub claim."));
  }
  const failed = firstFailedRule(ctx.rt.config.jwt?.claims ?? [], claims);
  if (failed !== undefined) {
    ctx.svc.metrics.auth("forbidden");
    return fail(stsError("AccessDenied", `Not authorized to perform sts:AssumeRoleWithWebIdentity: ${describeRule(failed)}`));
  }

  const now = Date.now();
  let expiresAt = now + request.durationSeconds * 1000;
  if (typeof claims.exp === "number") expiresAt = Math.min(expiresAt, claims.exp * 1000);
  const assumedRole = { arn: assumedRoleArn(request.roleArn, request.roleSessionName), id: assumedRoleId(request.roleArn, request.roleSessionName) };
  const issued = issueSession({ sessionKey: api.sts.sessionKey, subject: sub, claims, expiresAt, now, assumedRole, keyRef: keyRefOf(claims) });
  if (issued.kind === "error") {
    ctx.svc.metrics.auth("invalid");
    return fail(issued.expired === true ? stsError("ExpiredTokenException", "Token expired") : stsError("InvalidIdentityToken", `The web identity token cannot become a session: ${issued.message}`));
  }
  ctx.svc.metrics.auth("success");
  ctx.claims = claims;
  ctx.session = issued.sessionId;
  return counted(stsResponse({
    credentials: { accessKeyId: issued.accessKeyId, secretAccessKey: issued.secretAccessKey, sessionToken: issued.sessionToken, expiration: issued.expiration },
    subject: sub,
    roleArn: request.roleArn,
    roleSessionName: request.roleSessionName,
    audience: matchedAudience(claims.aud, ctx.rt.config.jwt?.audience),
    // (STS: an OpenID Connect token's iss; ProviderId names an OAuth 2.0 access token's provider, one without iss)
    provider: firstString(claims.iss) ?? request.providerId,
    requestId: ctx.id,
  }));
}
