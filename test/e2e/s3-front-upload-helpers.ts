/**
 * Uploads through the S3 front, end to end in the test process: the S3 fixture (which verifies
 * uploads as S3 does and logs what became of every request body) as the upstream, the proxy's App
 * with its S3 listener in front.
 *
 *   await using env = await startUploadEnv();
 *   env.endpoint                // the S3 front
 *   env.s3.exists("up", key)    // what the upstream holds, bypassing everything
 *
 * Proxy buckets (all on the fixture's bucket `up`, whose upstream key may write):
 *   up      read-write, cached (memory)   WRITER: read list write delete; READER: read list; NODELETE: read list write
 *   ro      read-only                     WRITER: read list write delete (refused all the same)
 *   other   read-write                    WRITER: read write (cross-bucket copies)
 *   teamw   read-write, auth: team=a to read, and role=writer to write (STS sessions)
 *   opa     read-write, OPA authorizer (set `opaUrl`)   WRITER: read list write delete
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { connect } from "node:net";
import { buildAwsChunkedBody } from "../../src/s3/aws-chunked.ts";
import { refusedDrainLimits } from "../../src/server/refused-body.ts";
import { amzDate, canonicalHeaders, canonicalRequest, credentialScope, deriveSigningKey, S3Signer, signature, stringToSign } from "../../src/s3/sigv4.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { hs256, JWT_SECRET, startFrontsOn, STS_KEY, type S3FrontEnv } from "./s3-front-helpers.ts";

export const WRITER = { accessKeyId: "AKIDUPLOADWRITER", secretAccessKey: "upload-writer-secret/+=0123456789" };
export const READER = { accessKeyId: "AKIDUPLOADREADER", secretAccessKey: "upload-reader-secret-0123456789" };
export const NODELETE = { accessKeyId: "AKIDUPLOADNODEL1", secretAccessKey: "upload-nodelete-secret-012345678" };
export const UPSTREAM_WRITER = { accessKeyId: "AKIDUPSTREAMWRITE", secretAccessKey: "upstream-writer-secret-0123456789" };
export { hs256 };

export interface UploadEnvOptions {
  engine?: "bun" | "node";
  /** OPA base URL for bucket `opa` (omitted: the bucket has no authorizer). */
  opaUrl?: string;
  /** More proxy buckets (YAML list items, indented by 2) and credentials (indented by 4). */
  moreBuckets?: (endpoint: string) => string;
  moreCredentials?: string;
  /** Bucket up's s3.timeout in seconds (default: the proxy's, 20). */
  upstreamTimeout?: number;
  /** server.request_timeout in seconds (default: the proxy's). */
  requestTimeout?: number;
}

export function uploadYaml(endpoint: string, o: UploadEnvOptions = {}): string {
  const up = `bucket: up, endpoint: "${endpoint}", access_key: "${UPSTREAM_WRITER.accessKeyId}", secret_key: "${UPSTREAM_WRITER.secretAccessKey}"${o.upstreamTimeout === undefined ? "" : `, timeout: ${o.upstreamTimeout}`}`;
  // (opa_timeout_ms: the default 100 ms, which no test here measures, was a 503 on a loaded host)
  const opa = o.opaUrl ? `    authorization: { type: opa, opa_url: "${o.opaUrl}", opa_policy_path: yatagarasu/allow, opa_cache_ttl_seconds: 0, opa_timeout_ms: 5000 }\n` : "";
  return `server: { address: 127.0.0.1, port: 0, engine: ${o.engine ?? "bun"}${o.requestTimeout === undefined ? "" : `, request_timeout: ${o.requestTimeout}`} }
logging: { level: error }
jwt: { enabled: true, algorithm: HS256, secret: "${JWT_SECRET}" }
cache: { enabled: true }
buckets:
  - name: up
    path_prefix: /up
    access: read-write
    s3: { ${up} }
    cache: { enabled: true }
  - name: ro
    path_prefix: /ro
    s3: { ${up} }
  - name: other
    path_prefix: /other
    access: read-write
    s3: { ${up} }
  - name: teamw
    path_prefix: /teamw
    access: read-write
    s3: { ${up} }
    auth: { enabled: true, claims: [{ claim: team, operator: equals, value: a }], write_claims: [{ claim: role, operator: equals, value: writer }] }
  - name: opa
    path_prefix: /opa
    access: read-write
    s3: { ${up} }
${opa}${o.moreBuckets?.(endpoint) ?? ""}s3_api:
  address: 127.0.0.1
  port: 0
  sts: { enabled: true, session_key: "${STS_KEY}" }
  credentials:
    - { access_key_id: "${WRITER.accessKeyId}", secret_access_key: "${WRITER.secretAccessKey}", identity: writer, claims: { role: writer },
        buckets: { up: [read, list, write, delete], ro: [read, list, write, delete], other: [read, write], opa: [read, list, write, delete] } }
    - { access_key_id: "${READER.accessKeyId}", secret_access_key: "${READER.secretAccessKey}", identity: reader, claims: { role: reader },
        buckets: { up: [read, list], opa: [read, list, write, delete] } }
    - { access_key_id: "${NODELETE.accessKeyId}", secret_access_key: "${NODELETE.secretAccessKey}", identity: nodelete, buckets: { up: [read, list, write] } }
${o.moreCredentials ?? ""}`;
}

/** The upload tests' environment: the same shape as the read tests' (see startFrontsOn). */
export type UploadEnv = S3FrontEnv;

export async function startUploadFixture(): Promise<S3Fixture> {
  return startS3Fixture({ buckets: [{ name: "up" }], credentials: [{ ...UPSTREAM_WRITER, buckets: ["up"], write: true }] });
}

export async function startUploadEnv(o: UploadEnvOptions = {}, fixture?: S3Fixture): Promise<UploadEnv> {
  const s3 = fixture ?? (await startUploadFixture());
  return startFrontsOn(uploadYaml(s3.endpoint, o), s3, fixture === undefined);
}

export interface Answer {
  status: number;
  code: string;
  message: string;
  body: string;
  headers: Headers;
}

/** The S3 error parts of an answer. */
export async function answerOf(res: Response): Promise<Answer> {
  const body = await res.text();
  return { status: res.status, code: /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? "", message: /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? "", body, headers: res.headers };
}

export interface SignedOptions {
  method: string;
  /** "/bucket/key" as a client sends it (already URL-encoded where needed). */
  path: string;
  query?: Array<[string, string]>;
  headers?: Record<string, string>;
  /** x-amz-content-sha256 (default UNSIGNED-PAYLOAD with a body, the hash of nothing without). */
  payloadHash?: string;
  body?: Uint8Array | string | ReadableStream<Uint8Array>;
  creds?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  signal?: AbortSignal;
}

/** A request to the S3 front signed with the project's own SigV4 signer (header auth). */
/**
 * A read-write bucket over the fixture's `up` bucket, authenticated and authorized by the OpenFGA
 * test server `fga` (no decision cache), `extra` added to its authorization section
 * (`, openfga_bypass_relation: editor`).
 */
export function openFgaBucketYaml(name: string, endpoint: string, fga: { url: string; storeId: string }, extra = ""): string {
  return `  - name: ${name}
    path_prefix: /${name}
    access: read-write
    s3: { bucket: up, endpoint: "${endpoint}", access_key: "${UPSTREAM_WRITER.accessKeyId}", secret_key: "${UPSTREAM_WRITER.secretAccessKey}" }
    auth: { enabled: true }
    authorization: { type: openfga, openfga_endpoint: "${fga.url}", openfga_store_id: "${fga.storeId}", openfga_cache_ttl_seconds: 0, openfga_timeout_ms: 5000${extra} }
`;
}

export function signedFetch(env: { endpoint: string; port: number }, o: SignedOptions): Promise<Response> {
  const creds = o.creds ?? WRITER;
  const signer = new S3Signer(creds, "us-east-1");
  const host = `127.0.0.1:${env.port}`;
  const headers: Record<string, string> = { ...o.headers };
  const body = typeof o.body === "string" ? new TextEncoder().encode(o.body) : o.body;
  const payloadHash = o.payloadHash ?? (body === undefined ? undefined : "UNSIGNED-PAYLOAD");
  const signed = signer.signRequest({ method: o.method, host, path: decodeURIComponent(o.path), query: o.query, headers, payloadHash });
  const target = signed.path + (signed.query ? `?${signed.query}` : "");
  return fetch(env.endpoint + target, { method: o.method, headers: { ...headers, ...signed.headers }, body, signal: o.signal, duplex: "half" } as RequestInit);
}

/** DeleteObjects (POST /bucket?delete) with the given XML body and its Content-MD5. */
export function signedDeleteObjects(env: { endpoint: string; port: number }, bucket: string, xml: string, creds = WRITER): Promise<Response> {
  const md5 = new Bun.CryptoHasher("md5").update(xml).digest("base64");
  return signedFetch(env, { method: "POST", path: `/${bucket}`, query: [["delete", ""]], body: xml, headers: { "content-md5": md5 }, creds });
}

/** Asserts S3's refusal (status and code) and that nothing reached the upstream. */
export async function expectRefused(env: UploadEnv, p: Promise<Response>, status: number, code: string): Promise<void> {
  // p is in flight but not yet handled: the fixture runs in this process, after this turn.
  env.mark();
  const a = await answerOf(await p);
  expect({ status: a.status, code: a.code }).toEqual({ status, code });
  expect(env.upstreamCalls()).toEqual([]);
}

/** Deterministic bytes (xorshift), fast enough for hundreds of MiB. */
export function bytesOf(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = i & 0xff;
  return out;
}

export const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

// ------------------------------------------------------------------ aws-chunked requests, signed here

export interface ChunkedRequest {
  /** Header lines to send (host included), the body framed as aws-chunked. */
  headers: Record<string, string>;
  body: Uint8Array;
  /** Each chunk's signature (the final 0-size one last); empty when unsigned. */
  chunkSignatures: string[];
}

export interface ChunkedOptions {
  mode: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" | "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  host: string;
  /** "/bucket/key" (no characters that need encoding). */
  path: string;
  payload: Uint8Array;
  chunkSize: number;
  /** e.g. ["x-amz-checksum-crc32", "<base64>"]: declared in x-amz-trailer and sent as the trailer. */
  trailer?: [string, string];
  creds?: { accessKeyId: string; secretAccessKey: string };
  /** x-amz-decoded-content-length to declare (default the payload's length; null: none). */
  decodedLength?: number | null;
  /** Send Content-Length (default true); false: the framed length is not declared (Transfer-Encoding: chunked). */
  contentLength?: boolean;
  date?: Date;
  region?: string;
}

/** An aws-chunked PUT as the SDKs send it: header auth over the STREAMING-* mode, then the framed body. */
export function chunkedRequest(o: ChunkedOptions): ChunkedRequest {
  const creds = o.creds ?? WRITER;
  const region = o.region ?? "us-east-1";
  const date = amzDate(o.date ?? new Date());
  const day = date.slice(0, 8);
  const scope = credentialScope(day, region, "s3");
  const key = deriveSigningKey(creds.secretAccessKey, day, region, "s3");
  const headers: Record<string, string> = {
    "content-encoding": "aws-chunked",
    host: o.host,
    "x-amz-content-sha256": o.mode,
    "x-amz-date": date,
  };
  if (o.decodedLength !== null) headers["x-amz-decoded-content-length"] = String(o.decodedLength ?? o.payload.byteLength);
  if (o.trailer) headers["x-amz-trailer"] = o.trailer[0];
  // The framed length is known before signing: build once unsigned to measure it (signatures have a fixed size).
  const signed = o.mode !== "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  const placeholder = { signingKey: key, amzDate: date, scope, seedSignature: "0".repeat(64) };
  const measured = buildAwsChunkedBody(o.payload, { signing: signed ? placeholder : undefined, chunkSize: o.chunkSize, trailers: o.trailer ? [o.trailer] : undefined });
  if (o.contentLength !== false) headers["content-length"] = String(measured.body.byteLength);
  const c = canonicalHeaders(headers);
  const creq = canonicalRequest("PUT", o.path, "", c.canonical, c.signed, o.mode);
  const seed = signature(key, stringToSign(date, scope, creq));
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${c.signed}, Signature=${seed}`;
  if (!signed) return { headers, body: measured.body, chunkSignatures: [] };
  const built = buildAwsChunkedBody(o.payload, { signing: { ...placeholder, seedSignature: seed }, chunkSize: o.chunkSize, trailers: o.trailer ? [o.trailer] : undefined });
  return { headers, body: built.body, chunkSignatures: built.chunkSignatures };
}

// ------------------------------------------------------------------ raw HTTP/1.1 exchanges

export interface RawReply {
  status: number;
  head: string;
  body: string;
  /** Interim answers seen before the final one ("HTTP/1.1 100 Continue"). */
  interim: string[];
}

/**
 * One request written on a socket, byte for byte (fetch would not send a chosen Host, an
 * Expect: 100-continue handshake or a body that stops half-way). `body`: the pieces to write; with
 * `waitContinue` they are written only after the server's 100 Continue; `cut`: close the socket
 * after the pieces instead of waiting for the answer (a client that goes away).
 */
export function rawRequest(port: number, head: string[], body: Uint8Array[] = [], o: { waitContinue?: boolean; cut?: boolean; timeoutMs?: number } = {}): Promise<RawReply> {
  return new Promise<RawReply>((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const interim: string[] = [];
    let sent = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`rawRequest: no answer within ${o.timeoutMs ?? 20_000} ms`));
    }, o.timeoutMs ?? 20_000);
    const sendBody = () => {
      if (sent) return;
      sent = true;
      for (const piece of body) sock.write(piece);
      if (o.cut) {
        sock.end(() => sock.destroy());
        clearTimeout(timer);
        resolve({ status: 0, head: "", body: "", interim });
      }
    };
    sock.on("connect", () => {
      sock.write(head.join("\r\n") + "\r\n\r\n");
      if (!o.waitContinue) sendBody();
    });
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const h = buf.subarray(0, end).toString("latin1");
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(h)?.[1] ?? 0);
        if (status >= 100 && status < 200) {
          interim.push(h);
          buf = buf.subarray(end + 4);
          sendBody();
          continue;
        }
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(h)?.[1] ?? -1);
        const rest = buf.subarray(end + 4);
        if (len >= 0 && rest.length < len) return;
        clearTimeout(timer);
        sock.destroy();
        resolve({ status, head: h, body: rest.subarray(0, len >= 0 ? len : rest.length).toString("utf8"), interim });
        return;
      }
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * For the tests of the enclosing scope: a refused body shorter than its Content-Length, its answer
 * closing (rawRequest's `connection: close`), is answered once the drain gives up on the rest
 * (REFUSED_DRAIN_MS, 5 s); here after `ms`. The drain's own bound is refused-body-close's subject.
 */
export function shortRefusedDrain(ms = 500): void {
  const saved = { ...refusedDrainLimits };
  beforeAll(() => {
    refusedDrainLimits.ms = ms;
  });
  afterAll(() => {
    Object.assign(refusedDrainLimits, saved);
  });
}

/** Header lines for rawRequest from a record. */
export const lines = (first: string, headers: Record<string, string>): string[] => [first, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), "connection: close"];

/** The fixture's verdict on the body of the upstream PUT to `/up/<key>` (complete, aborted or rejected). */
export function upstreamBody(env: UploadEnv, key: string, timeoutMs = 10_000) {
  return env.s3.waitForRequest((e) => !e.admin && e.method === "PUT" && e.pathname === `/up/${key}` && (e.body === "complete" || e.body === "aborted" || e.body === "rejected"), timeoutMs);
}
