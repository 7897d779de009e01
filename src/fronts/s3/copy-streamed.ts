/**
 * CopyObject and UploadPartCopy between proxy buckets that no server-side copy joins (another S3
 * service, or the same one with other credentials: the destination's keys may not read the
 * source): the proxy reads the source with the source bucket's credentials (failing over between
 * its replicas, as a GetObject does) and streams it into the destination's primary with the
 * destination's, never buffered whole. Within one service and identity the copy stays server-side
 * (copy.ts).
 *
 * What S3 does, done here:
 * - x-amz-copy-source-if-match / -if-none-match / -if-modified-since / -if-unmodified-since are the
 *   source read's conditions; one that fails is 412 PreconditionFailed, naming it;
 * - a source above 5 GiB (a part's range too) is S3's InvalidRequest; a range outside the source
 *   is InvalidArgument;
 * - x-amz-metadata-directive COPY (the default) keeps the source's Content-Type, Cache-Control,
 *   Content-Disposition, Content-Encoding, Content-Language, Expires and x-amz-meta-*; REPLACE
 *   takes the request's. x-amz-tagging-directive COPY keeps the source's tags (read with
 *   GetObjectTagging when the source says it has some), REPLACE takes x-amz-tagging;
 * - the destination's If-Match / If-None-Match (a copy that must not overwrite) are the write's.
 *
 * Integrity: the write declares the source's exact length, so a source cut or stalled part-way
 * ends the write before its last byte and nothing is stored (a 502 BadGateway, which the S3 front
 * answers as S3's 500 InternalError, saying so). The source is read with
 * x-amz-checksum-mode: ENABLED: its full-object checksum, when it has one, goes with the write,
 * so the destination verifies the bytes it stores are the source's. x-amz-checksum-algorithm
 * (the copy's own checksum) is computed on the way and sent as an aws-chunked trailer.
 */
import { sameEtag } from "../../http/conditional.ts";
import { ProxyError } from "../../errors.ts";
import { endToEnd } from "../../http/headers.ts";
import { framedTimeoutMs } from "../../s3/http1/budget.ts";
import { stallGuarded } from "../../http/stall-guard.ts";
import { enterUpload } from "../../proxy/phases/admit.ts";
import type { RequestContext } from "../../proxy/context.ts";
import type { BucketRuntime } from "../../runtime.ts";
import { encodeAwsChunkedUnsignedTrailer } from "../../s3/aws-chunked.ts";
import { algorithmFromHeaderName, CHECKSUM_ALGORITHMS, checksumHeaderName, type ChecksumAlgorithm } from "../../s3/checksum.ts";
import { EXPECTED_OWNER, getObjectDirect, getObjectTagging, listParts, OBJECT_HEADERS, SOURCE_EXPECTED_OWNER, pickHeaders, putObject, uploadPart, type AwsChunkedBody, type OperationContext, type PutObjectArgs } from "../../s3/operations/index.ts";
import { RequestBodyError } from "../../s3/upstream.ts";
import { s3Error } from "./errors.ts";
import { s3Fail } from "./fail.ts";
import { readUpstreamCapped, relayError, resultFail, MAX_RESULT_BODY, tryParse, upstreamBucketsOf } from "./relay.ts";
import { taggingHeader } from "./tagging.ts";
import { callOf, requestHeaders, writeUpstream } from "./writes.ts";
import { childrenNamed, childText, type XmlElement } from "./xml-reader.ts";
import type { CopySource } from "./copy.ts";

/** S3's largest copy source (CopyObject) and copied part (UploadPartCopy). */
export const MAX_COPY_BYTES = 5 * 1024 ** 3;

/** The source's conditions, as S3 names them, and the read's header for each. */
const SOURCE_CONDITIONS = [
  ["x-amz-copy-source-if-match", "if-match", "x-amz-copy-source-If-Match"],
  ["x-amz-copy-source-if-none-match", "if-none-match", "x-amz-copy-source-If-None-Match"],
  ["x-amz-copy-source-if-modified-since", "if-modified-since", "x-amz-copy-source-If-Modified-Since"],
  ["x-amz-copy-source-if-unmodified-since", "if-unmodified-since", "x-amz-copy-source-If-Unmodified-Since"],
] as const;

/** What a copy with x-amz-metadata-directive COPY keeps of the source's headers. */
const SOURCE_OBJECT_HEADERS = { names: new Set(OBJECT_HEADERS), meta: true, contentEncoding: true };

/** A copy source in another proxy bucket, readable by the request's principal. */
export interface ForeignSource extends CopySource {
  from: BucketRuntime;
  /** The source bucket's authorizer refused s3:GetObjectTagging: a copy of its tags is refused. */
  tagsDenied?: boolean;
}

/** The source as read: the upstream's answer (body unread) and the bytes it carries. */
interface SourceRead {
  res: Response;
  length: number;
  /** The source bucket's s3.timeout: the longest its body may send nothing. */
  stallMs: number;
  /** The source's full-object checksum, when the upstream gave one. */
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
  /** Why stallGuarded failed the body (it stalled, or trickled too slowly), once it did: the error's detail. */
  failure?: string;
  /** The source's bytes handed to the write so far (the access log's bytes_in). */
  passed: number;
}

/**
 * GET of the source (or of `range`, "bytes=first-last", already checked for form), mapped to S3's
 * copy errors. Resolves with a 200 or 206 whose body is the bytes to copy.
 */
async function readSource(ctx: RequestContext, src: ForeignSource, range: { first: number; last: number } | undefined): Promise<SourceRead> {
  const h = requestHeaders(ctx);
  const forward: Record<string, string> = { "x-amz-checksum-mode": "ENABLED" };
  for (const [name, as] of SOURCE_CONDITIONS) {
    const v = h.get(name);
    if (v !== null) forward[as] = v;
  }
  // (the source bucket's expected owner is its read's: the source upstream checks it)
  const owner = h.get(SOURCE_EXPECTED_OWNER);
  if (owner !== null) forward[EXPECTED_OWNER] = owner;
  if (range !== undefined) forward.range = `bytes=${range.first}-${range.last}`;
  // The source bucket's primary only, as a server-side copy reads it: a copy is a write, and a
  // secondary's lagging object written to the destination stays there (a read's stale answer
  // does not), while an UploadPartCopy per part could take parts from different replicas' versions.
  const up = src.from.upstream.primary();
  // (every replica's name hidden all the same)
  const upstreamBuckets = upstreamBucketsOf(src.from.upstream);
  // (fetchObject signs only the checksum mode of the x-amz-* headers: an owner check goes the signed-everything way)
  const res =
    src.versionId === undefined && owner === null
      ? await up.fetchObject("GET", src.key, forward, ctx.req.signal, ctx.timing)
      : await getObjectDirect(up, { method: "GET", key: src.key, versionId: src.versionId, headers: forward }, callOf(ctx));
  const refuse = (e: Parameters<typeof s3Fail>[0]): never => {
    res.body?.cancel().catch(() => {});
    throw s3Fail(e);
  };
  if (res.status === 304 || res.status === 412) {
    // (which condition: the first of the failing kind that was given)
    const kinds = res.status === 412 ? [0, 3] : [1, 2];
    const failed = kinds.map((i) => SOURCE_CONDITIONS[i]!).find(([name]) => h.has(name));
    refuse(s3Error("PreconditionFailed", undefined, failed === undefined ? undefined : { Condition: failed[2] }));
  }
  if (res.status === 416 && range !== undefined) {
    const size = /\/(\d+)\s*$/.exec(res.headers.get("content-range") ?? "")?.[1];
    refuse(rangeError(size));
  }
  // S3: a copy source may not name a delete marker by its version id.
  if (res.status === 405 && src.versionId !== undefined && res.headers.get("x-amz-delete-marker") === "true") {
    refuse(s3Error("InvalidRequest", "The source of a copy request may not specifically refer to a delete marker by version id."));
  }
  if (res.status !== 200 && res.status !== 206) return relayError(res, upstreamBuckets);
  // (Number(null) is 0: a missing header must not read as an empty object, which the write would
  // then store complete, over the destination, before the first byte showed the length wrong)
  const declared = res.headers.get("content-length");
  const length = declared === null || !/^\d{1,16}$/.test(declared.trim()) ? NaN : Number(declared);
  if (!Number.isSafeInteger(length)) {
    res.body?.cancel().catch(() => {});
    throw new ProxyError("BadGateway", { detail: "The copy source's upstream sent no Content-Length: nothing was copied" });
  }
  if (range !== undefined) {
    // A store that ignored the Range (200), or cut it at the object's end, did not give the bytes asked for.
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range")?.trim() ?? "");
    const whole = res.status === 200 && range.first === 0 && range.last === length - 1;
    if (!whole && (m === null || Number(m[1]) !== range.first || Number(m[2]) !== range.last)) refuse(rangeError(m?.[3] ?? (res.status === 200 ? String(length) : undefined)));
  }
  if (length > MAX_COPY_BYTES) {
    refuse(s3Error("InvalidRequest", `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_COPY_BYTES}`));
  }
  return { res, length, stallMs: src.from.cfg.s3.timeout * 1000, checksum: range === undefined ? fullObjectChecksum(res.headers) : undefined, passed: 0 };
}

const rangeError = (size: string | undefined) =>
  s3Error("InvalidArgument", size === undefined ? "Range specified is not valid for the source object" : `Range specified is not valid for source object of size: ${size}`, { ArgumentName: "x-amz-copy-source-range" });

/** The x-amz-checksum-* value of a whole object's GET when it covers the whole object (not a multipart upload's checksum of checksums). */
function fullObjectChecksum(h: Headers): SourceRead["checksum"] {
  const type = h.get("x-amz-checksum-type");
  if (type !== null && type.trim().toUpperCase() !== "FULL_OBJECT") return undefined;
  let found: SourceRead["checksum"];
  h.forEach((value, name) => {
    const algorithm = found === undefined && name.startsWith("x-amz-checksum-") ? algorithmFromHeaderName(name) : undefined;
    // (a composite value ends in "-<parts>")
    if (algorithm !== undefined && /^[A-Za-z0-9+/]+=*$/.test(value.trim())) found = { algorithm, value: value.trim() };
  });
  return found;
}

/** The copy's own checksum algorithm (x-amz-checksum-algorithm), or undefined; S3's InvalidRequest for one it does not have. */
function askedAlgorithm(h: Headers): ChecksumAlgorithm | undefined {
  const v = h.get("x-amz-checksum-algorithm");
  if (v === null) return undefined;
  const a = CHECKSUM_ALGORITHMS.find((x) => x === v.trim().toUpperCase());
  if (a === undefined) throw s3Fail(s3Error("InvalidRequest", "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]"));
  return a;
}

/** The source's tags as an x-amz-tagging value ("" for none), read when the source says it has some. */
async function sourceTags(ctx: RequestContext, src: ForeignSource, read: SourceRead): Promise<string> {
  const count = Number(read.res.headers.get("x-amz-tagging-count") ?? "0");
  if (!(count > 0)) return "";
  if (src.tagsDenied === true) throw s3Fail(s3Error("AccessDenied"));
  const up = src.from.upstream.primary();
  const res = await getObjectTagging(up, src.key, callOf(ctx), src.versionId);
  if (res.status !== 200) return relayError(res, up.bucket);
  const doc = tryParse(await readUpstreamCapped(res, MAX_RESULT_BODY));
  if (doc?.name !== "Tagging") throw new ProxyError("BadGateway", { detail: "The copy source's tags could not be read: nothing was copied" });
  const tags: Array<[string, string]> = [];
  for (const set of childrenNamed(doc, "TagSet")) for (const t of childrenNamed(set, "Tag")) tags.push([childText(t, "Key") ?? "", childText(t, "Value") ?? ""]);
  return taggingHeader(tags);
}

/**
 * The write's body: the source's bytes with their exact length, or framed as aws-chunked with
 * `algorithm`'s checksum as the trailer.
 */
function bodyOf(read: SourceRead, algorithm: ChecksumAlgorithm | undefined): { body: ReadableStream<Uint8Array>; contentLength: number; awsChunked?: AwsChunkedBody; releaseChunks?: boolean } {
  // The source's body, failed when it sends nothing for its bucket's s3.timeout (while a copy is
  // kept alive, patient.ts, no client timeout would end it: a stalled https source held a copy for
  // Bun's 5-minute fetch limit), or when it trickles, never silent that long, once its reads have
  // waited longer in all than `length` takes at the slowest steady rate a body is given (budget.ts).
  const source =
    read.res.body === null
      ? new Response(new Uint8Array(0)).body!
      : stallGuarded(read.res.body, {
          ms: read.stallMs,
          budgetMs: framedTimeoutMs(read.stallMs, read.length),
          detail: (stalled) => (stalled ? "The copy source's upstream stalled while sending the object: nothing was written" : "The copy source's upstream sent the object too slowly: nothing was written"),
          onFail: (why) => (read.failure = why),
          onBytes: (n) => (read.passed += n),
        });
  // The source's chunks are the copy's own (fresh socket buffers): freed as the write takes them.
  // Not through the encoder, whose chunk headers are shared constants.
  if (algorithm === undefined) return { body: source, contentLength: read.length, releaseChunks: true };
  const framed = encodeAwsChunkedUnsignedTrailer(source, algorithm, { decodedLength: read.length });
  framed.finished.catch(() => {});
  return { body: framed.stream, contentLength: framed.encodedLength, awsChunked: { decodedLength: read.length, trailer: checksumHeaderName(algorithm) } };
}

/**
 * Runs the write: while the source streams, server.request_timeout is put off as for an upload
 * body (both upstreams' stall checks bound it). A source that failed part-way cut the write
 * (RequestBodyError: nothing stored): BadGateway, saying so. The bytes handed on are the request's
 * bytes_in, as an upload's body (the source's payload: aws-chunked framing not counted).
 */
async function writing(ctx: RequestContext, read: SourceRead, send: (call: OperationContext) => Promise<Response>): Promise<Response> {
  const was = ctx.uploading;
  ctx.uploading = true;
  try {
    return await send(callOf(ctx));
  } catch (err) {
    if (err instanceof RequestBodyError && !ctx.req.signal.aborted) {
      throw new ProxyError("BadGateway", { detail: read.failure ?? "The copy source's upstream failed while sending the object: nothing was written", cause: err });
    }
    throw err;
  } finally {
    ctx.uploading = was;
    ctx.bytesIn = read.passed;
  }
}

/** The write's answer as a copy result's fields (ETag, LastModified, checksums), or the upstream's error relayed. */
export interface StreamedResult {
  res: Response;
  fields: Array<[string, string]>;
  sourceVersionId?: string;
}

const RESULT_CHECKSUMS: ReadonlyArray<[string, string]> = [
  ["x-amz-checksum-crc32", "ChecksumCRC32"],
  ["x-amz-checksum-crc32c", "ChecksumCRC32C"],
  ["x-amz-checksum-crc64nvme", "ChecksumCRC64NVME"],
  ["x-amz-checksum-sha1", "ChecksumSHA1"],
  ["x-amz-checksum-sha256", "ChecksumSHA256"],
];

async function resultOf(res: Response, read: SourceRead, upstreamBucket: string): Promise<StreamedResult> {
  if (!res.ok) return relayError(res, upstreamBucket);
  // A 200 may still carry S3's <Error> (a failure after the head went out, as a copy's may): the
  // body is read before the write is called done (it was left unread: reported as the copy's success).
  // (a body that cannot be read says nothing against the 200 it came with)
  const doc = tryParse(await readUpstreamCapped(res, MAX_RESULT_BODY).catch(() => undefined));
  if (doc?.name === "Error") throw resultFail(res, doc, upstreamBucket);
  // (none the upstream's Connection header names: hop-by-hop, the proxy's alone, as relay.ts drops them)
  const h = res.headers;
  const fields: Array<[string, string]> = [];
  const etag = endToEnd(h, "etag");
  if (etag !== null) fields.push(["ETag", etag]);
  const when = Date.parse(endToEnd(h, "last-modified") ?? h.get("date") ?? "");
  fields.push(["LastModified", new Date(Number.isFinite(when) ? when : Date.now()).toISOString()]);
  for (const [header, element] of RESULT_CHECKSUMS) {
    const v = endToEnd(h, header);
    if (v !== null) fields.push([element, v]);
  }
  const type = endToEnd(h, "x-amz-checksum-type");
  if (type !== null && fields.length > 2) fields.push(["ChecksumType", type]);
  const sourceVersionId = endToEnd(read.res.headers, "x-amz-version-id") ?? undefined;
  return { res, fields, sourceVersionId };
}

/**
 * Ends what a copy read and did not hand on: the write's body when the write never took it (a
 * breaker open, a request given up before sending: its reader, the source's connection and the
 * stall guard's timer would stay), else the source's (a no-op once the write owns it, or it ended).
 */
function release(read: SourceRead, body: ReturnType<typeof bodyOf> | undefined): void {
  if (body !== undefined && !body.body.locked) body.body.cancel().catch(() => {});
  else if (body === undefined) read.res.body?.cancel().catch(() => {});
}

/** CopyObject from another proxy bucket, streamed (see the module comment). */
export async function copyObjectStreamed(ctx: RequestContext, src: ForeignSource): Promise<StreamedResult> {
  const h = requestHeaders(ctx);
  const asked = askedAlgorithm(h);
  // (it holds an upstream read and write while it runs: an upload slot, as admission takes one for a body)
  enterUpload(ctx);
  const read = await readSource(ctx, src, undefined);
  let body: ReturnType<typeof bodyOf> | undefined;
  try {
    const replace = (h.get("x-amz-metadata-directive") ?? "").trim() === "REPLACE";
    const headers = pickHeaders(replace ? h : read.res.headers, SOURCE_OBJECT_HEADERS);
    for (const name of ["if-match", "if-none-match", EXPECTED_OWNER]) {
      const v = h.get(name);
      if (v !== null) headers[name] = v;
    }
    const tags = (h.get("x-amz-tagging-directive") ?? "").trim() === "REPLACE" ? (h.get("x-amz-tagging") ?? "") : await sourceTags(ctx, src, read);
    if (tags !== "") headers["x-amz-tagging"] = tags;
    // The source's own checksum, when it is of the algorithm asked for (or none was): the
    // destination checks the bytes against it. Else the asked one, computed on the way.
    let algorithm = asked;
    if (read.checksum !== undefined && (asked === undefined || asked === read.checksum.algorithm)) {
      headers[checksumHeaderName(read.checksum.algorithm)] = read.checksum.value;
      algorithm = undefined;
    }
    const up = writeUpstream(ctx);
    const key = ctx.key;
    body = bodyOf(read, algorithm);
    const b = body;
    const res = await writing(ctx, read, (call) => putObject(up, { key, headers, ...b } as PutObjectArgs, call));
    const result = await resultOf(res, read, up.bucket);
    await storedLastModified(ctx, up, key, result);
    return result;
  } finally {
    release(read, body);
  }
}

/**
 * The copy's LastModified as the destination stored it: a PutObject's answer has no Last-Modified
 * (S3 sends none), and its Date is when the answer was sent, not the object's time (a store that
 * stamps an object when its upload starts, or whose clock differs from its answers'). A HEAD of
 * what was written (its version, or its ETag) tells, when it answers with that ETag; when it
 * cannot, or nothing names what was written, the answer's Date stays.
 */
async function storedLastModified(ctx: RequestContext, up: ReturnType<typeof writeUpstream>, key: string, result: StreamedResult): Promise<void> {
  const at = result.fields.findIndex(([name]) => name === "LastModified");
  if (at < 0 || endToEnd(result.res.headers, "last-modified") !== null) return;
  const versionId = endToEnd(result.res.headers, "x-amz-version-id") ?? undefined;
  const etag = result.fields.find(([name]) => name === "ETag")?.[1];
  // (neither names what was written: the HEAD could only describe whatever object is there now)
  if (versionId === undefined && etag === undefined) return;
  try {
    // (once: the copy is stored, and this only refines its answer; no retries, no backoff before it)
    const res = await getObjectDirect(up, { method: "HEAD", key, versionId, headers: etag === undefined ? undefined : { "if-match": etag } }, { ...callOf(ctx), maxAttempts: 1 });
    await res.body?.cancel().catch(() => {});
    // (another object answering, a store that ignores If-Match, another writer's since: not the copy's time)
    const answered = endToEnd(res.headers, "etag");
    const same = etag === undefined || (answered !== null && sameEtag(answered, etag));
    const when = res.status === 200 && same ? Date.parse(endToEnd(res.headers, "last-modified") ?? "") : NaN;
    if (Number.isFinite(when)) result.fields[at] = ["LastModified", new Date(when).toISOString()];
  } catch {
    // (the copy is done: its answer keeps the write's Date)
  }
}

/** UploadPartCopy from another proxy bucket: the source's bytes (or `range` of them) sent as the part, streamed. */
export async function uploadPartCopyStreamed(ctx: RequestContext, src: ForeignSource, part: { uploadId: string; partNumber: number; range?: { first: number; last: number } }): Promise<StreamedResult> {
  // (it holds an upstream read and write while it runs: an upload slot, as admission takes one for a body)
  enterUpload(ctx);
  const up = writeUpstream(ctx);
  const key = ctx.key;
  // The part's checksum, when the upload was created with an algorithm: S3 computes it for a part
  // it copies, but a part sent as UploadPart must carry it (MinIO refuses one without).
  const algorithm = await uploadAlgorithm(ctx, part.uploadId);
  const read = await readSource(ctx, src, part.range);
  let body: ReturnType<typeof bodyOf> | undefined;
  try {
    body = bodyOf(read, algorithm);
    const b = body;
    const owner = requestHeaders(ctx).get(EXPECTED_OWNER);
    const headers = owner === null ? undefined : { [EXPECTED_OWNER]: owner };
    const res = await writing(ctx, read, (call) => uploadPart(up, { key, uploadId: part.uploadId, partNumber: part.partNumber, headers, ...b }, call));
    const result = await resultOf(res, read, up.bucket);
    await storedPartLastModified(ctx, up, part, result);
    return result;
  } finally {
    release(read, body);
  }
}

/**
 * The part copy's LastModified as the destination stored the part (S3's CopyPartResult gives the
 * part's time): an UploadPart's answer has no Last-Modified, and its Date is when the answer was
 * sent. ListParts from just before the part tells, when it lists that part with the ETag the write
 * answered; else (another part there, a store without ListParts or refusing it) the Date stays.
 */
async function storedPartLastModified(ctx: RequestContext, up: ReturnType<typeof writeUpstream>, part: { uploadId: string; partNumber: number }, result: StreamedResult): Promise<void> {
  const at = result.fields.findIndex(([name]) => name === "LastModified");
  const etag = result.fields.find(([name]) => name === "ETag")?.[1];
  if (at < 0 || etag === undefined || endToEnd(result.res.headers, "last-modified") !== null) return;
  try {
    // (once: the part is stored, and this only refines its answer)
    const doc = await listPartsResult(up, { key: ctx.key, uploadId: part.uploadId, maxParts: 1, partNumberMarker: part.partNumber - 1 }, { ...callOf(ctx), maxAttempts: 1 });
    const listed = doc === undefined ? undefined : childrenNamed(doc, "Part").find((p) => childText(p, "PartNumber")?.trim() === String(part.partNumber));
    const listedEtag = listed === undefined ? undefined : childText(listed, "ETag");
    if (listed === undefined || listedEtag === undefined || !sameEtag(listedEtag, etag)) return;
    const when = Date.parse(childText(listed, "LastModified") ?? "");
    if (Number.isFinite(when)) result.fields[at] = ["LastModified", new Date(when).toISOString()];
  } catch {
    // (the part is stored: its answer keeps the write's Date)
  }
}

/** ListParts' ListPartsResult, or undefined for any other answer (its body cancelled) or a body that cannot be read. */
async function listPartsResult(up: ReturnType<typeof writeUpstream>, args: Parameters<typeof listParts>[1], call: OperationContext): Promise<XmlElement | undefined> {
  const res = await listParts(up, args, call);
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {});
    return undefined;
  }
  const doc = tryParse(await readUpstreamCapped(res, MAX_RESULT_BODY).catch(() => undefined));
  return doc?.name === "ListPartsResult" ? doc : undefined;
}

/** The checksum algorithm a multipart upload was created with (ListParts says), or undefined (none, or the upstream does not say or refuses to). */
async function uploadAlgorithm(ctx: RequestContext, uploadId: string): Promise<ChecksumAlgorithm | undefined> {
  // Not known (a key without s3:ListMultipartUploadParts, a store without ListParts): the part
  // goes without a checksum, as before; a gone upload is the part's own NoSuchUpload.
  const doc = await listPartsResult(writeUpstream(ctx), { key: ctx.key, uploadId, maxParts: 1 }, callOf(ctx));
  const named = doc === undefined ? undefined : childText(doc, "ChecksumAlgorithm")?.trim().toUpperCase();
  return CHECKSUM_ALGORITHMS.find((a) => a === named);
}
