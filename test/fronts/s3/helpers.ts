/** Shared helpers for the S3 front's unit tests. */
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@smithy/core/checksum";
import { escapeUri, extendedEncodeURIComponent } from "@smithy/core/protocols";
import type { HttpRequest } from "@smithy/types";
import type { VerifyInput } from "../../../src/fronts/s3/verify.ts";

/** A VerifyInput from a request target as sent ("/path?query") and header pairs. */
export function input(method: string, target: string, headers: Record<string, string> | Array<[string, string]>): VerifyInput {
  const q = target.indexOf("?");
  return {
    method,
    rawPath: q < 0 ? target : target.slice(0, q),
    rawQuery: q < 0 ? "" : target.slice(q + 1),
    headers: new Headers(headers),
  };
}

export interface TestCred {
  accessKeyId: string;
  secretAccessKey: string;
  name?: string;
}

/** A static-key lookup that, like S3 for long-term keys, refuses a session token. */
export function lookupOf(...creds: TestCred[]) {
  return (accessKeyId: string, sessionToken: string | undefined) => {
    const c = creds.find((x) => x.accessKeyId === accessKeyId);
    if (c === undefined) return undefined;
    if (sessionToken !== undefined) return { code: "InvalidToken" as const, status: 400, message: "The provided token is malformed or otherwise invalid." };
    return c;
  };
}

/** "20130524T000000Z" → ms */
export function msOf(amzDate: string): number {
  return Date.parse(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
}

// ------------------------------------------------------------------ an independent signer

export interface SmithyRequest {
  method?: string;
  host?: string;
  /** Wire path (already encoded); see sdkPath(). */
  path: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  date: Date;
  region?: string;
  body?: string;
}

/** How the AWS SDK puts a bucket/key on the wire (path-style): each segment extendedEncodeURIComponent'd. */
export const sdkPath = (bucket: string, key: string) => `/${bucket}/` + key.split("/").map(extendedEncodeURIComponent).join("/");

function wireQuery(query: Record<string, string | string[]> = {}): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) parts.push(escapeUri(k) + "=" + escapeUri(one));
  }
  return parts.join("&");
}

const signerFor = (r: SmithyRequest) => new SignatureV4({
  credentials: r.creds, region: r.region ?? "us-east-1", service: "s3", sha256: Sha256, uriEscapePath: false, applyChecksum: true,
});

const httpRequest = (r: SmithyRequest): HttpRequest => ({
  method: r.method ?? "GET",
  protocol: "http:",
  hostname: r.host ?? "127.0.0.1:9000",
  path: r.path,
  query: { ...r.query },
  headers: { host: r.host ?? "127.0.0.1:9000", ...r.headers } as Record<string, string>,
  body: r.body,
});

/** Signs with @smithy/signature-v4 (the AWS SDK's signer, S3 settings) and returns what the verifier sees. */
export async function smithySigned(r: SmithyRequest): Promise<VerifyInput> {
  const signed = await signerFor(r).sign(httpRequest(r), { signingDate: r.date });
  const q = wireQuery(r.query);
  return { method: signed.method, rawPath: r.path, rawQuery: q, headers: new Headers(signed.headers as Record<string, string>) };
}

/**
 * Presigns as @aws-sdk/s3-request-presigner does: x-amz-content-sha256 UNSIGNED-PAYLOAD, which
 * the signer hoists into the query as X-Amz-Content-Sha256.
 */
export async function smithyPresigned(r: SmithyRequest & { expiresIn: number }): Promise<VerifyInput> {
  const req = httpRequest(r);
  req.headers = { ...req.headers, "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD" }; // the presigner's spelling
  const signed = await signerFor(r).presign(req, { signingDate: r.date, expiresIn: r.expiresIn });
  const headers = { ...(signed.headers as Record<string, string>) };
  return { method: signed.method, rawPath: r.path, rawQuery: wireQuery(signed.query as Record<string, string>), headers: new Headers(headers) };
}
