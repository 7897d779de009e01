/**
 * S3's ListObjectsV2 answer (ListBucketResult XML) → the entries a directory index shows. Keys
 * outside the requested prefix are dropped (defence in depth: the upstream was asked for the
 * prefix, but an index must never show more than the folder it names).
 */
import { isUrlEncodedForm, s3UrlDecode } from "../s3/list-token.ts";
import { readableEntryFields } from "../s3/list-fields.ts";
import { child, childrenNamed, childText, parseXml } from "../s3/xml-reader.ts";

export interface ListingEntry {
  /** The full object key, or the common prefix (ending in "/") for a folder. */
  key: string;
  /** The part after the listed prefix ("photo.jpg", "2024/"). */
  name: string;
  folder: boolean;
  size: number;
  /** ISO 8601, as S3 sends it; "" for folders. */
  lastModified: string;
}

export interface ListingPage {
  prefix: string;
  entries: ListingEntry[];
  /** Present when there is a next page: the upstream's token, or "" when it said truncated without one. */
  nextToken: string | undefined;
  /** The folder's own marker object (the prefix itself, as consoles create) was on this page. */
  marker?: boolean;
}

/**
 * Listings larger than this are refused. The proxy asks for a page of `listing.max_keys` (at most
 * 1,000: S3's own page), but an upstream may ignore max-keys: a page of 10,000 keys (some
 * S3-compatible stores' size) must still read. 16 MiB holds 10,000 keys of ~1 KiB url-encoded
 * with their markup (the S3 front's cap); 20 elements a key holds every field S3 sends for one
 * (Key, LastModified, ETag, Size, StorageClass, Owner with ID and DisplayName, the checksum and
 * restore fields). Before, 20,000 elements made a 10,000-key page a 502.
 */
export const MAX_LISTING_BYTES = 16 * 1024 * 1024;
const MAX_LISTING_ELEMENTS = 10_000 * 20;

export function parseListing(xml: string, prefix: string): ListingPage {
  const root = parseXml(xml, { maxBytes: MAX_LISTING_BYTES, maxElements: MAX_LISTING_ELEMENTS, lenient: true });
  if (root.name !== "ListBucketResult") throw new Error(`unexpected listing root ${root.name}`);
  const prefixes = childrenNamed(root, "CommonPrefixes");
  const contents = childrenNamed(root, "Contents");
  // (a store that echoes encoding-type=url without encoding its keys: see list.ts encodedListing)
  const urlEncoded = childText(root, "EncodingType") === "url" && [...prefixes.map((c) => childText(c, "Prefix")), ...contents.map((c) => childText(c, "Key"))].every((k) => isUrlEncodedForm(k ?? ""));
  // A key is UTF-8: decodeURIComponent refuses an encoded surrogate half (%ED%A0%80), and the
  // lenient reader's &#xD800; (which an upstream's unencoded listing may carry) is refused here
  // alike, as a listing that cannot be read; kept, it made the index a 500 (encodeURIComponent threw).
  const decode = (s: string) => {
    if (urlEncoded) return s3UrlDecode(s);
    if (!s.isWellFormed()) throw new Error("a key with a lone surrogate");
    return s;
  };
  const folders: ListingEntry[] = [];
  const files: ListingEntry[] = [];
  for (const cp of prefixes) {
    const key = decode(childText(cp, "Prefix") ?? "");
    if (!key.startsWith(prefix) || key.length <= prefix.length) continue;
    folders.push({ key, name: key.slice(prefix.length), folder: true, size: 0, lastModified: "" });
  }
  let marker = false;
  for (const c of contents) {
    const key = decode(childText(c, "Key") ?? "");
    // (a Size or LastModified no S3 could give, -5, "many", "junk", makes the listing unreadable, as
    // on the S3 front: it showed as 0 bytes, and the date as it came)
    const size = childText(c, "Size");
    const modified = childText(c, "LastModified");
    if (!readableEntryFields(size, modified)) throw new Error("an entry's Size or LastModified is not one S3 could give");
    // The "folder marker" object some tools create (the prefix itself) is not an entry of its own folder.
    if (key === prefix) marker = true;
    if (!key.startsWith(prefix) || key === prefix) continue;
    files.push({ key, name: key.slice(prefix.length), folder: false, size: Number(size ?? "0"), lastModified: modified?.trim() ?? "" });
  }
  const truncated = childText(root, "IsTruncated") === "true";
  // (a store that says truncated without a token, which S3 never does: "", and the index resumes
  // after the page's last entry, as the S3 front's token does; undefined ended the index there)
  const next = child(root, "NextContinuationToken")?.text;
  return { prefix, entries: [...folders, ...files], nextToken: truncated ? next || "" : undefined, marker };
}
