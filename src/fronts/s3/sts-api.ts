/**
 * The STS wire format for AssumeRoleWithWebIdentity and GetCallerIdentity (AWS Query protocol,
 * version 2011-06-15): parsing the form-encoded request and rendering the XML answer and STS's error body, as
 * botocore (aws-cli, boto3) and the JS SDK's web-identity provider read them. Pure functions;
 * verifying the web identity token and issuing the session happen elsewhere (auth/, sts.ts).
 */
import { el, XML_DECL } from "./xml.ts";

const STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/";
const STS_VERSION = "2011-06-15";
/** Request bodies beyond this are refused before parsing (WebIdentityToken is at most 20,000 chars). */
export const MAX_STS_BODY_BYTES = 64 * 1024;
const MIN_DURATION = 900;
const MAX_DURATION = 43200;
const DEFAULT_DURATION = 3600;

const STS_ERRORS = {
  AccessDenied: { status: 403, type: "Sender" },
  /** (a signed call's session token has expired; ExpiredTokenException is a web identity token's) */
  ExpiredToken: { status: 403, type: "Sender" },
  ExpiredTokenException: { status: 400, type: "Sender" },
  IDPCommunicationError: { status: 400, type: "Sender" },
  IDPRejectedClaim: { status: 403, type: "Sender" },
  IncompleteSignature: { status: 400, type: "Sender" },
  InternalFailure: { status: 500, type: "Receiver" },
  InvalidAction: { status: 400, type: "Sender" },
  InvalidClientTokenId: { status: 403, type: "Sender" },
  InvalidIdentityToken: { status: 400, type: "Sender" },
  InvalidParameterValue: { status: 400, type: "Sender" },
  MissingAction: { status: 400, type: "Sender" },
  MissingAuthenticationToken: { status: 403, type: "Sender" },
  MissingParameter: { status: 400, type: "Sender" },
  /** (S3's code: a request body that stopped arriving; the client's fault, not retried as a 503 would be) */
  RequestTimeout: { status: 400, type: "Sender" },
  ServiceUnavailable: { status: 503, type: "Receiver" },
  SignatureDoesNotMatch: { status: 403, type: "Sender" },
  ValidationError: { status: 400, type: "Sender" },
} as const satisfies Record<string, { status: number; type: "Sender" | "Receiver" }>;

export type StsErrorCode = keyof typeof STS_ERRORS;

export interface StsError {
  code: StsErrorCode;
  status: number;
  message: string;
}

export function stsError(code: StsErrorCode, message: string): StsError {
  return { code, status: STS_ERRORS[code].status, message };
}

export interface AssumeRoleWithWebIdentityRequest {
  roleArn: string;
  roleSessionName: string;
  webIdentityToken: string;
  /** Requested, validated against 900..43200 and the configured maximum (default 3600, capped). */
  durationSeconds: number;
  providerId?: string;
}

const lengthError = (param: string, min: number, max: number) =>
  stsError("ValidationError", `1 validation error detected: Value at '${param}' failed to satisfy constraint: Member must have length between ${min} and ${max}`);

/** A Query protocol call's parameters, each named once, with its Action and Version. */
export interface StsParameters {
  kind: "ok";
  params: URLSearchParams;
  action: string;
  version: string;
}

/** The form-encoded (or query-string) parameters of an STS call; STS's error when they are too long, repeated, or lack Action or Version. */
export function stsParameters(form: string): StsParameters | { kind: "error"; error: StsError } {
  const fail = (error: StsError) => ({ kind: "error" as const, error });
  if (Buffer.byteLength(form) > MAX_STS_BODY_BYTES) return fail(stsError("ValidationError", "The request body is too large."));
  const p = new URLSearchParams(form);
  // One pass: getAll per distinct name was quadratic, and a 64 KiB body of ~10,000 distinct names
  // (unauthenticated) held the event loop for ~0.4 s.
  const seen = new Set<string>();
  for (const name of p.keys()) {
    if (seen.has(name)) return fail(stsError("InvalidParameterValue", `The parameter ${name.slice(0, 64)} may appear only once.`));
    seen.add(name);
  }
  const action = p.get("Action");
  const version = p.get("Version");
  if (action === null) return fail(stsError("MissingAction", "Missing Action"));
  if (version === null) return fail(stsError("MissingParameter", "The request must contain the parameter Version"));
  return { kind: "ok", params: p, action, version };
}

const unknownAction = (action: string, version: string) =>
  stsError("InvalidAction", `Could not find operation ${action.slice(0, 64)} for version ${version.slice(0, 32)}`);

/**
 * GetCallerIdentity: Action and Version only (any other parameter is ignored, as STS does). Who
 * the caller is comes from the request's signature, verified by the endpoint.
 */
export function parseGetCallerIdentity(form: string | StsParameters): { kind: "ok" } | { kind: "error"; error: StsError } {
  const parsed = typeof form === "string" ? stsParameters(form) : form;
  if (parsed.kind === "error") return parsed;
  if (parsed.action !== "GetCallerIdentity" || parsed.version !== STS_VERSION) return { kind: "error", error: unknownAction(parsed.action, parsed.version) };
  return { kind: "ok" };
}

/**
 * Parses a form-encoded (or query-string) AssumeRoleWithWebIdentity call. Session policies
 * (Policy, PolicyArns) are refused: this endpoint cannot apply them, and ignoring one would grant
 * more than the caller asked for.
 */
export function parseAssumeRoleWithWebIdentity(
  form: string | StsParameters,
  opts: { maxSessionSeconds: number },
): { kind: "ok"; request: AssumeRoleWithWebIdentityRequest } | { kind: "error"; error: StsError } {
  const fail = (error: StsError) => ({ kind: "error" as const, error });
  const parsed = typeof form === "string" ? stsParameters(form) : form;
  if (parsed.kind === "error") return parsed;
  const { params: p, action, version } = parsed;
  if (action !== "AssumeRoleWithWebIdentity" || version !== STS_VERSION) return fail(unknownAction(action, version));
  for (const name of p.keys()) {
    if (name === "Policy" || name.startsWith("PolicyArns.")) {
      return fail(stsError("InvalidParameterValue", "Session policies (Policy, PolicyArns) are not supported by this endpoint."));
    }
  }
  const roleArn = p.get("RoleArn");
  const roleSessionName = p.get("RoleSessionName");
  const webIdentityToken = p.get("WebIdentityToken");
  for (const [name, value] of [["RoleArn", roleArn], ["RoleSessionName", roleSessionName], ["WebIdentityToken", webIdentityToken]] as const) {
    if (value === null) return fail(stsError("MissingParameter", `The request must contain the parameter ${name}`));
  }
  if (roleArn!.length < 20 || roleArn!.length > 2048) return fail(lengthError("roleArn", 20, 2048));
  // AWS parses it (arn:partition:service:region:account:resource) before anything else.
  if (!/^arn:[a-z0-9-]+:[a-z0-9-]*:[a-z0-9-]*:\d*:.+$/.test(roleArn!)) return fail(stsError("ValidationError", "Request ARN is invalid"));
  if (roleSessionName!.length < 2 || roleSessionName!.length > 64) return fail(lengthError("roleSessionName", 2, 64));
  if (!/^[\w+=,.@-]*$/.test(roleSessionName!)) {
    return fail(stsError("ValidationError", "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"));
  }
  if (webIdentityToken!.length < 4 || webIdentityToken!.length > 20000) return fail(lengthError("webIdentityToken", 4, 20000));
  const providerId = p.get("ProviderId");
  if (providerId !== null && (providerId.length < 4 || providerId.length > 2048)) return fail(lengthError("providerId", 4, 2048));

  const rawDuration = p.get("DurationSeconds");
  let durationSeconds = Math.min(DEFAULT_DURATION, opts.maxSessionSeconds);
  if (rawDuration !== null) {
    // A negative number is out of range for AWS too (its range message); anything else is not a number.
    if (/^-\d{1,19}$/.test(rawDuration)) {
      return fail(stsError("ValidationError", `1 validation error detected: Value '${rawDuration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to ${MIN_DURATION}`));
    }
    if (!/^\d{1,20}$/.test(rawDuration)) return fail(stsError("ValidationError", "DurationSeconds must be an integer."));
    durationSeconds = Number(rawDuration);
    if (durationSeconds < MIN_DURATION || durationSeconds > MAX_DURATION) {
      // the value is echoed only when short (digits only, so nothing to escape)
      const shown = rawDuration.length <= 12 ? `Value '${rawDuration}' at 'durationSeconds'` : "The value at 'durationSeconds'";
      // (AWS's words name the bound that was crossed)
      const bound = durationSeconds < MIN_DURATION ? `greater than or equal to ${MIN_DURATION}` : `less than or equal to ${MAX_DURATION}`;
      return fail(stsError("ValidationError", `1 validation error detected: ${shown} failed to satisfy constraint: Member must have value ${bound}`));
    }
    if (durationSeconds > opts.maxSessionSeconds) {
      return fail(stsError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."));
    }
  }
  const request: AssumeRoleWithWebIdentityRequest = {
    roleArn: roleArn!,
    roleSessionName: roleSessionName!,
    // A token file written with a trailing newline (echo, a secret mounted from a text field) is
    // sent as it is by the SDKs' web-identity providers; a JWT never contains whitespace.
    webIdentityToken: webIdentityToken!.trim(),
    durationSeconds,
  };
  if (providerId !== null) request.providerId = providerId;
  return { kind: "ok", request };
}

/** ISO 8601 without milliseconds, as STS writes Expiration. */
function stsTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The account of every ARN the endpoint makes up: static identities', and sessions' whose role ARN names none. */
const STS_ACCOUNT = "000000000000";

/** arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION from the role ARN (ACCOUNT 000000000000 if it has none). */
export function assumedRoleArn(roleArn: string, roleSessionName: string): string {
  const m = /^arn:([a-z0-9-]+):iam::(\d{12}):role\/(?:[^\s]*\/)?([\w+=,.@-]+)$/.exec(roleArn);
  const [partition, account, role] = m ? [m[1], m[2], m[3]] : ["aws", STS_ACCOUNT, "web-identity"];
  return `arn:${partition}:sts::${account}:assumed-role/${role}/${roleSessionName}`;
}

/** The AssumedRoleId of a session (AWS: the role's unique id, AROA…, then ":" and the session name). */
export function assumedRoleId(roleArn: string, roleSessionName: string): string {
  return "AROA" + Bun.CryptoHasher.hash("sha256", roleArn, "hex").slice(0, 17).toUpperCase() + ":" + roleSessionName;
}

/** What GetCallerIdentity answers. */
export interface CallerIdentity {
  arn: string;
  userId: string;
  account: string;
}

/**
 * A static s3_api credential as STS names an IAM user: arn:aws:iam::000000000000:user/IDENTITY,
 * UserId AIDA… (a stable hash of the identity, as AWS's unique id of a user).
 */
export function staticCallerIdentity(identity: string): CallerIdentity {
  const userId = "AIDA" + Bun.CryptoHasher.hash("sha256", identity, "hex").slice(0, 17).toUpperCase();
  return { arn: `arn:aws:iam::${STS_ACCOUNT}:user/${identity}`, userId, account: STS_ACCOUNT };
}

/** A session, as AssumeRoleWithWebIdentity's AssumedRoleUser named it (Arn, AssumedRoleId). */
export function sessionCallerIdentity(arn: string, assumedRoleId: string): CallerIdentity {
  const account = arn.split(":")[4];
  return { arn, userId: assumedRoleId, account: account !== undefined && /^\d{12}$/.test(account) ? account : STS_ACCOUNT };
}

export function renderGetCallerIdentity(c: CallerIdentity, requestId: string): string {
  return XML_DECL + '<GetCallerIdentityResponse xmlns="' + STS_XMLNS + '"><GetCallerIdentityResult>' + el("Arn", c.arn) +
    el("UserId", c.userId) + el("Account", c.account) + "</GetCallerIdentityResult><ResponseMetadata>" + el("RequestId", requestId) +
    "</ResponseMetadata></GetCallerIdentityResponse>";
}

export interface AssumeRoleWithWebIdentityAnswer {
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string; expiration: number };
  /** The web identity token's `sub`. */
  subject: string;
  roleArn: string;
  roleSessionName: string;
  /** The token's `aud` (first one if several) and `iss` (the request's ProviderId for a token without one). */
  audience?: string;
  provider?: string;
  requestId: string;
}

export function renderAssumeRoleWithWebIdentity(a: AssumeRoleWithWebIdentityAnswer): string {
  let xml = XML_DECL + '<AssumeRoleWithWebIdentityResponse xmlns="' + STS_XMLNS + '"><AssumeRoleWithWebIdentityResult>';
  xml += el("SubjectFromWebIdentityToken", a.subject);
  if (a.audience !== undefined) xml += el("Audience", a.audience);
  xml += "<AssumedRoleUser>" + el("Arn", assumedRoleArn(a.roleArn, a.roleSessionName)) +
    el("AssumedRoleId", assumedRoleId(a.roleArn, a.roleSessionName)) + "</AssumedRoleUser>";
  xml += "<Credentials>" + el("AccessKeyId", a.credentials.accessKeyId) + el("SecretAccessKey", a.credentials.secretAccessKey) +
    el("SessionToken", a.credentials.sessionToken) + el("Expiration", stsTimestamp(a.credentials.expiration)) + "</Credentials>";
  if (a.provider !== undefined) xml += el("Provider", a.provider);
  xml += "</AssumeRoleWithWebIdentityResult><ResponseMetadata>" + el("RequestId", a.requestId) + "</ResponseMetadata>";
  return xml + "</AssumeRoleWithWebIdentityResponse>";
}

export function renderStsError(err: StsError, requestId: string): string {
  return XML_DECL + '<ErrorResponse xmlns="' + STS_XMLNS + '"><Error>' + el("Type", STS_ERRORS[err.code].type) +
    el("Code", err.code) + el("Message", err.message) + "</Error>" + el("RequestId", requestId) + "</ErrorResponse>";
}

const headersFor = (requestId: string, body: string) => ({
  "content-type": "text/xml",
  "content-length": String(Buffer.byteLength(body)), // also what the access log, audit and bytes metric count
  "cache-control": "no-store",
  "x-amzn-requestid": requestId.replace(/[^\x21-\x7e]/g, ""),
});

export function stsResponse(a: AssumeRoleWithWebIdentityAnswer): Response {
  const body = renderAssumeRoleWithWebIdentity(a);
  return new Response(body, { status: 200, headers: headersFor(a.requestId, body) });
}

export function callerIdentityResponse(c: CallerIdentity, requestId: string): Response {
  const body = renderGetCallerIdentity(c, requestId);
  return new Response(body, { status: 200, headers: headersFor(requestId, body) });
}

export function stsErrorResponse(err: StsError, requestId: string): Response {
  const body = renderStsError(err, requestId);
  return new Response(body, { status: err.status, headers: headersFor(requestId, body) });
}
