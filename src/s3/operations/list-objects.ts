/**
 * ListObjects (V1), ListObjectsV2 and ListObjectVersions. Only S3's listing parameters pass
 * through (prefix, delimiter, max-keys, marker / continuation-token, start-after, key-marker,
 * version-id-marker, encoding-type, fetch-owner), nothing else a client put in its query, and of
 * the headers only x-amz-optional-object-attributes (S3 returns RestoreStatus only when asked).
 */
import type { BucketUpstream } from "../upstream.ts";
import { type OperationContext, query } from "./common.ts";

/** The listing request header S3 reads (`RestoreStatus`): a listing never carries any other. */
export const OPTIONAL_OBJECT_ATTRIBUTES = "x-amz-optional-object-attributes";

/** The headers a listing sends upstream: x-amz-optional-object-attributes when the client asked. */
function listingHeaders(optionalObjectAttributes: string | undefined): Record<string, string> | undefined {
  return optionalObjectAttributes === undefined ? undefined : { [OPTIONAL_OBJECT_ATTRIBUTES]: optionalObjectAttributes };
}

export interface ListObjectsV1Params {
  /** x-amz-optional-object-attributes as the client sent it ("RestoreStatus"). */
  optionalObjectAttributes?: string;
  prefix?: string;
  delimiter?: string;
  maxKeys?: number | string;
  marker?: string;
  /** "url": S3 URL-encodes the keys in its answer. */
  encodingType?: string;
}

export interface ListObjectsV2Params {
  /** x-amz-optional-object-attributes as the client sent it ("RestoreStatus"). */
  optionalObjectAttributes?: string;
  prefix?: string;
  delimiter?: string;
  maxKeys?: number | string;
  continuationToken?: string;
  startAfter?: string;
  encodingType?: string;
  fetchOwner?: boolean | string;
}

/** GET /bucket?prefix&delimiter&max-keys&marker&encoding-type */
export function listObjectsV1(upstream: BucketUpstream, p: ListObjectsV1Params, ctx: OperationContext): Promise<Response> {
  return upstream.send({
    method: "GET",
    key: "",
    query: query([
      ["prefix", p.prefix],
      ["delimiter", p.delimiter],
      ["max-keys", p.maxKeys],
      ["marker", p.marker],
      ["encoding-type", p.encodingType],
    ]),
    headers: listingHeaders(p.optionalObjectAttributes),
    holdAnswer: true,
    ...ctx,
  });
}

/** GET /bucket?list-type=2&prefix&delimiter&max-keys&continuation-token&start-after&encoding-type&fetch-owner */
export function listObjectsV2(upstream: BucketUpstream, p: ListObjectsV2Params, ctx: OperationContext): Promise<Response> {
  return upstream.send({
    method: "GET",
    key: "",
    query: query([
      ["list-type", "2"],
      ["prefix", p.prefix],
      ["delimiter", p.delimiter],
      ["max-keys", p.maxKeys],
      ["continuation-token", p.continuationToken],
      ["start-after", p.startAfter],
      ["encoding-type", p.encodingType],
      ["fetch-owner", p.fetchOwner],
    ]),
    headers: listingHeaders(p.optionalObjectAttributes),
    holdAnswer: true,
    ...ctx,
  });
}

export interface ListObjectVersionsParams {
  /** x-amz-optional-object-attributes as the client sent it ("RestoreStatus"). */
  optionalObjectAttributes?: string;
  prefix?: string;
  delimiter?: string;
  maxKeys?: number | string;
  keyMarker?: string;
  versionIdMarker?: string;
  encodingType?: string;
}

/** GET /bucket?versions&prefix&delimiter&max-keys&key-marker&version-id-marker&encoding-type */
export function listObjectVersions(upstream: BucketUpstream, p: ListObjectVersionsParams, ctx: OperationContext): Promise<Response> {
  return upstream.send({
    method: "GET",
    key: "",
    query: query([
      ["versions", ""],
      ["prefix", p.prefix],
      ["delimiter", p.delimiter],
      ["max-keys", p.maxKeys],
      ["key-marker", p.keyMarker],
      ["version-id-marker", p.versionIdMarker],
      ["encoding-type", p.encodingType],
    ]),
    headers: listingHeaders(p.optionalObjectAttributes),
    holdAnswer: true,
    ...ctx,
  });
}

/** max-keys as the upstream gets it: digits as their number ("0002" is 2: S3 parses an integer), empty as none, anything else as sent. */
function maxKeysOf(q: URLSearchParams): string | undefined {
  const v = q.get("max-keys");
  if (v === null || v === "") return undefined;
  return /^\d+$/.test(v) && v.length > 1 && v.startsWith("0") ? String(Number(v)) : v;
}

/** The ListObjectVersions parameters of a client's query string (only those; the rest is ignored). */
export function listObjectVersionsParams(q: URLSearchParams): ListObjectVersionsParams {
  const get = (name: string) => q.get(name) ?? undefined;
  return { prefix: get("prefix"), delimiter: get("delimiter"), maxKeys: maxKeysOf(q), keyMarker: get("key-marker"), versionIdMarker: get("version-id-marker"), encodingType: get("encoding-type") };
}

/** The V1 parameters of a client's query string (only those; the rest is ignored). */
export function listObjectsV1Params(q: URLSearchParams): ListObjectsV1Params {
  const get = (name: string) => q.get(name) ?? undefined;
  return { prefix: get("prefix"), delimiter: get("delimiter"), maxKeys: maxKeysOf(q), marker: get("marker"), encodingType: get("encoding-type") };
}

/** The V2 parameters of a client's query string (only those; the rest is ignored). */
export function listObjectsV2Params(q: URLSearchParams): ListObjectsV2Params {
  const get = (name: string) => q.get(name) ?? undefined;
  return {
    prefix: get("prefix"),
    delimiter: get("delimiter"),
    maxKeys: maxKeysOf(q),
    continuationToken: get("continuation-token"),
    startAfter: get("start-after"),
    encodingType: get("encoding-type"),
    fetchOwner: get("fetch-owner"),
  };
}
