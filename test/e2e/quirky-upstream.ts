/**
 * A fake S3 upstream on a raw socket that answers in legal but unusual ways real S3 does not (a
 * HEAD without Content-Length, a gzip-encoded listing, a 304 naming another ETag, a head with
 * bare LF line ends, a 10,000-key page, namespace-prefixed XML, the whole object's checksum sent
 * with a range...). Path-style requests for any bucket; the behaviour is chosen by the object key
 * or the listing's prefix. Every request is logged (method, target, the conditional and encoding
 * headers).
 *
 *   const up = await startQuirkyUpstream();
 *   up.endpoint          // "http://127.0.0.1:PORT"
 *   up.log               // requests so far
 *   await up.stop();
 */
import net from "node:net";
import { deflateSync, gzipSync } from "node:zlib";

export const BODY = "abcdefghijklmnopqrstuvwxyz"; // 26 bytes
const LM = "Wed, 01 Jan 2025 00:00:00 GMT";
const NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';

export interface QuirkyRequest {
  method: string;
  target: string;
  headers: Record<string, string>;
}

export interface QuirkyUpstream {
  endpoint: string;
  log: QuirkyRequest[];
  stop(): Promise<void>;
}

type Out = Buffer | "custom";

function head(status: string, headers: Array<[string, string]>, proto = "HTTP/1.1"): string {
  return `${proto} ${status}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
}

/** A complete answer with a Content-Length (no body bytes for a HEAD). */
function whole(method: string, status: string, headers: Array<[string, string]>, body: string | Buffer): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([Buffer.from(head(status, [...headers, ["Content-Length", String(b.length)]])), method === "HEAD" ? Buffer.alloc(0) : b]);
}

function chunked(data: string | Buffer): Buffer {
  const b = Buffer.from(data);
  return Buffer.concat([Buffer.from(b.length.toString(16) + "\r\n"), b, Buffer.from("\r\n0\r\n\r\n")]);
}

const entry = (k: string) =>
  `<Contents><Key>${k}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;e1&quot;</ETag><Size>26</Size><StorageClass>STANDARD</StorageClass></Contents>`;

/**
 * A store that does not skip the common prefix a marker falls in: every key after the marker (V1's
 * marker, a key-marker) is listed, keys under one prefix rolled up into it, so asked after "p/a/"
 * it lists "p/a/" again; max-keys entries a page, truncated without any resume marker.
 */
function relisted(q: URLSearchParams, keys: string[], write: (key: string) => string): string {
  const prefix = q.get("prefix") ?? "";
  const delimiter = q.get("delimiter") ?? "";
  const marker = q.get("marker") ?? q.get("key-marker") ?? "";
  const max = Number(q.get("max-keys") ?? q.get("max-uploads") ?? 1000);
  const entries: string[] = [];
  for (const k of keys) {
    if (!k.startsWith(prefix) || Buffer.compare(Buffer.from(k), Buffer.from(marker)) <= 0) continue;
    const at = delimiter === "" ? -1 : k.indexOf(delimiter, prefix.length);
    const e = at < 0 ? write(k) : `<CommonPrefixes><Prefix>${k.slice(0, at + delimiter.length)}</Prefix></CommonPrefixes>`;
    if (e !== entries[entries.length - 1]) entries.push(e);
  }
  const markerEl = q.has("key-marker") ? `<KeyMarker>${marker}</KeyMarker>` : `<Marker>${marker}</Marker>`;
  return `${markerEl}<MaxKeys>${max}</MaxKeys><IsTruncated>${entries.length > max}</IsTruncated>${entries.slice(0, max).join("")}`;
}
export const RELISTED_KEYS = ["relist/a/1.txt", "relist/a/2.txt", "relist/b.txt", "relist/c/1.txt", "relist/c/2.txt"];

function listingXml(q: URLSearchParams): string {
  const xml = listBucketXml(q);
  // ?versions is answered as S3 does, with a ListVersionsResult of <Version> entries; except under
  // wrongroot/, an upstream that ignores ?versions and answers a ListBucketResult
  if (!q.has("versions") || q.get("prefix") === "wrongroot/") return xml;
  return xml.replace(/(<\/?(?:s3:)?)ListBucketResult\b/g, "$1ListVersionsResult").replace(/(<\/?(?:s3:)?)Contents(\s[^<>]*)?>/g, "$1Version$2>");
}

function listBucketXml(q: URLSearchParams): string {
  const prefix = q.get("prefix") ?? "";
  const v2 = q.get("list-type") === "2";
  const top = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult${NS}><Name>fakebucket</Name><Prefix>${prefix}</Prefix>`;
  if (prefix === "big/") {
    // an upstream that ignores max-keys: one page of 10,000 keys
    const parts = [top, "<MaxKeys>10000</MaxKeys><IsTruncated>false</IsTruncated>"];
    for (let i = 0; i < 10_000; i++) parts.push(entry(`big/${String(i).padStart(5, "0")}.txt`));
    parts.push(v2 ? "<KeyCount>10000</KeyCount>" : "", "</ListBucketResult>");
    return parts.join("");
  }
  if (prefix === "commented/") {
    // a store's listing with comments holding opening tags (never closed: they are comments), a
    // truncated V2 page; S3 writes none, but the document is well-formed and its one entry fair
    const noise = "<!--<Contents><CommonPrefixes>-->".repeat(20_000) + Array.from({ length: 10_000 }, (_, i) => `<!--<o${i}:Owner>-->`).join("");
    return `${top}<MaxKeys>1</MaxKeys>${noise}<IsTruncated>true</IsTruncated>${entry("commented/a.txt")}${v2 ? "<KeyCount>1</KeyCount><NextContinuationToken>commented-next</NextContinuationToken>" : "<NextMarker>commented/a.txt</NextMarker>"}</ListBucketResult>`;
  }
  if (prefix === "spaced/") {
    // a well-formed listing whose end tags carry the white space XML allows before ">" (</Contents >):
    // 20,000 entries, then one fair entry; S3 writes none
    const spaced = '<Contents><Key>spaced/x</Key><Size>1</Size></Contents >'.repeat(20_000);
    // (no end tag written exactly: an exact one anywhere ends every search there, in one match)
    return `${top}<MaxKeys>20001</MaxKeys><IsTruncated>false</IsTruncated>${spaced}${entry("spaced/z.txt").replace("</Contents>", "</Contents >")}${v2 ? "<KeyCount>20001</KeyCount>" : ""}</ListBucketResult >`;
  }
  if (prefix === "cut/") {
    // a store that failed behind a 200: the document ends mid-<Owner> (the Content-Length is right)
    return `${top}<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>cut/a.txt</Key><Size>26</Size><Owner><ID>upstream-secret-owner-id</ID></Own`;
  }
  if (prefix === "doctype/") {
    // a hostile store: an external entity (XXE) declared and used
    const xml = `${top}<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entry("&xxe;")}${v2 ? "<KeyCount>1</KeyCount>" : ""}</ListBucketResult>`;
    return xml.replace("<ListBucketResult", '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<ListBucketResult');
  }
  if (prefix === "nomarker/") {
    // a truncated page without the NextMarker S3 gives V1 with a delimiter: a key, then two common prefixes
    const prefixes = ["nomarker/x/", "nomarker/y&z/"].map((p) => `<CommonPrefixes><Prefix>${p.replace("&", "&amp;")}</Prefix></CommonPrefixes>`).join("");
    return `${top}<MaxKeys>3</MaxKeys>${q.has("delimiter") ? "<Delimiter>/</Delimiter>" : ""}<IsTruncated>true</IsTruncated>${entry("nomarker/a.txt")}${prefixes}</ListBucketResult>`;
  }
  if (prefix === "relist/") return `${top}${relisted(q, RELISTED_KEYS, entry)}</ListBucketResult>`;
  if (prefix === "vnomarker/") {
    // a truncated ListObjectVersions page without S3's NextKeyMarker and NextVersionIdMarker: two versions of one key
    const version = (id: string) => `<Version><Key>vnomarker/a.txt</Key><VersionId>${id}</VersionId><IsLatest>${id === "v2"}</IsLatest><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;e1&quot;</ETag><Size>26</Size><StorageClass>STANDARD</StorageClass></Version>`;
    return `${top}<MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>${version("v2")}${version("v1")}</ListBucketResult>`;
  }
  if (prefix === "vkeyonly/") {
    // a truncated ListObjectVersions page with a NextKeyMarker but without its NextVersionIdMarker: two of a key's three versions
    const version = (id: string) => `<Version><Key>vkeyonly/a.txt</Key><VersionId>${id}</VersionId><IsLatest>${id === "v3"}</IsLatest><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;e1&quot;</ETag><Size>26</Size><StorageClass>STANDARD</StorageClass></Version>`;
    return `${top}<MaxKeys>2</MaxKeys><NextKeyMarker>vkeyonly/a.txt</NextKeyMarker><IsTruncated>true</IsTruncated>${version("v3")}${version("v2")}</ListBucketResult>`;
  }
  if (prefix === "badpct/") {
    // encoding-type=url asked, a truncated page whose last key's escape is broken (%E2%82 cut short, %ZZ)
    const key = q.get("start-after") === null ? "badpct/%E2%82" : "badpct/%ZZ";
    return `${top}<MaxKeys>1</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>${entry(key)}${v2 ? "<KeyCount>1</KeyCount><NextContinuationToken>bad-pct-next</NextContinuationToken>" : ""}</ListBucketResult>`;
  }
  if (prefix.startsWith("junk-")) {
    // a listing no S3 could give for the prefix: a negative or non-numeric Size, a LastModified of
    // "junk", a key or a common prefix outside the prefix asked for; junk-ok/ is a fair one
    const e = (k: string, size: string, modified: string) => `<Contents><Key>${k}</Key><LastModified>${modified}</LastModified><ETag>&quot;e1&quot;</ETag><Size>${size}</Size></Contents>`;
    const date = "2025-01-01T00:00:00.000Z";
    const entries = {
      "junk-ok/": e("junk-ok/a.txt", "0", date) + e("junk-ok/b.txt", "26", "2025-06-30T23:59:59Z") + "<CommonPrefixes><Prefix>junk-ok/d/</Prefix></CommonPrefixes>",
      "junk-size/": e("junk-size/a.txt", "26", date) + e("junk-size/b.txt", "-5", date),
      "junk-nan/": e("junk-nan/a.txt", "many", date),
      "junk-date/": e("junk-date/a.txt", "26", "junk"),
      "junk-outside/": e("junk-outside/a.txt", "26", date) + e("other/secret.txt", "26", date),
      "junk-cp/": "<CommonPrefixes><Prefix>other/</Prefix></CommonPrefixes>",
    }[prefix] ?? "";
    return `${top}<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entries}${v2 ? "<KeyCount>2</KeyCount>" : ""}</ListBucketResult>`;
  }
  if (prefix === "nschild/" || prefix === "nschild-out/") {
    // S3's namespace declared twice (default and s3:), the entries' children written with the prefix,
    // one entry declaring a prefix of its own (valid XML: the same names as S3's unprefixed ones);
    // nschild-out/: a fair entry, then one with its own prefix declared that lists a key outside the prefix
    const date = "2025-01-01T00:00:00.000Z";
    const own = (k: string) => `<Contents xmlns:x="http://s3.amazonaws.com/doc/2006-03-01/"><x:Key>${k}</x:Key><x:LastModified>${date}</x:LastModified><x:Size>26</x:Size></Contents>`;
    const entries = prefix === "nschild/"
      ? `<Contents><s3:Key>nschild/a.txt</s3:Key><s3:LastModified>${date}</s3:LastModified><s3:Size>26</s3:Size></Contents>${own("nschild/b.txt")}<CommonPrefixes><s3:Prefix>nschild/d/</s3:Prefix></CommonPrefixes>`
      : `${entry("nschild-out/a.txt")}${own("other/b.txt")}`;
    return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult${NS} xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><Name>fakebucket</Name><Prefix>${prefix}</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entries}${v2 ? "<KeyCount>3</KeyCount>" : ""}</ListBucketResult>`;
  }
  if (prefix === "cdata/" || prefix === "cdata-out/") {
    // keys written in CDATA sections, one with a comment inside (valid XML: cdata/a&b <1>.txt, cdata/x.txt)
    const x = prefix === "cdata/" ? "cdata/" : "other/";
    return `${top}<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entry(`<![CDATA[${prefix}a&b <1>.txt]]>`)}${entry(`${x}<!-- c -->x<![CDATA[.]]>txt`)}<CommonPrefixes><Prefix><![CDATA[${x}d/]]></Prefix></CommonPrefixes>${v2 ? "<KeyCount>3</KeyCount>" : ""}</ListBucketResult>`;
  }
  if (prefix === "half enc/" || prefix === "surr/") {
    // half enc/: a store that encodes its keys but echoes the Prefix as sent (Ozone; Supabase's NextMarker
    // alike): keys half enc/100%.txt, half enc/a+b.txt, half enc/d d/; surr/: one that does not encode,
    // a key holding a lone surrogate (no UTF-8 string)
    const entries = prefix === "surr/" ? entry("surr/&#xD800; x") : `${entry("half+enc/100%25.txt")}${entry("half+enc/a%2Bb.txt")}<CommonPrefixes><Prefix>half+enc/d+d/</Prefix></CommonPrefixes>`;
    return `${top}<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>${entries}${v2 ? "<KeyCount>3</KeyCount>" : ""}</ListBucketResult>`;
  }
  if (prefix === "rawenc/") {
    // a store that echoes encoding-type=url without url-encoding its keys (a "%" that starts no escape, a space, a "+")
    return `${top}<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>${entry("rawenc/100% sure.txt")}${entry("rawenc/a+b.txt")}<CommonPrefixes><Prefix>rawenc/d d/</Prefix></CommonPrefixes>${v2 ? "<KeyCount>3</KeyCount>" : ""}</ListBucketResult>`;
  }
  if (prefix === "nsprefix/") {
    return `<?xml version="1.0" encoding="UTF-8"?><s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:Name>fakebucket</s3:Name><s3:Prefix>nsprefix/</s3:Prefix><s3:MaxKeys>1000</s3:MaxKeys><s3:IsTruncated>false</s3:IsTruncated><s3:Contents><s3:Key>nsprefix/a.txt</s3:Key><s3:LastModified>2025-01-01T00:00:00.000Z</s3:LastModified><s3:ETag>"e1"</s3:ETag><s3:Size>26</s3:Size><s3:Owner><s3:ID>upstream-secret-owner-id</s3:ID><s3:DisplayName>upstream-admin</s3:DisplayName></s3:Owner></s3:Contents>${v2 ? "<s3:KeyCount>1</s3:KeyCount>" : ""}</s3:ListBucketResult>`;
  }
  return `${top}<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entry(`${prefix}a.txt`)}${v2 ? "<KeyCount>1</KeyCount>" : ""}</ListBucketResult>`;
}

function listing(method: string, q: URLSearchParams): Buffer {
  const prefix = q.get("prefix") ?? "";
  const xml = listingXml(q);
  if (prefix === "latin1/") {
    // a store that keeps its names in Latin-1: the key's bytes are not UTF-8 (caf\xe9.txt)
    return whole(method, "200 OK", [["Content-Type", "application/xml"]], Buffer.from(xml.replace("latin1/a.txt", "latin1/caf\xe9.txt"), "latin1"));
  }
  if (prefix === "bom/") {
    // a listing after a UTF-8 byte order mark, which XML allows
    return whole(method, "200 OK", [["Content-Type", "application/xml"]], Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(xml)]));
  }
  if (prefix === "gzip-denied/") {
    const err = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';
    return whole(method, "403 Forbidden", [["Content-Type", "application/xml"], ["Content-Encoding", "gzip"]], gzipSync(Buffer.from(err)));
  }
  if (prefix.startsWith("gzip")) {
    // legal: the request sent no Accept-Encoding, so any coding may come back (RFC 9110 §12.5.3)
    const coding = prefix === "gzip-br/" ? "br" : prefix === "gzip-deflate/" ? "deflate" : "gzip";
    const body = coding === "br" ? Buffer.from("not really brotli") : coding === "deflate" ? deflateSync(Buffer.from(xml)) : gzipSync(Buffer.from(xml));
    return whole(method, "200 OK", [["Content-Type", "application/xml"], ["Content-Encoding", coding]], Buffer.from(body));
  }
  return whole(method, "200 OK", [["Content-Type", "application/xml"]], xml);
}

function object(method: string, key: string, h: Record<string, string>, sock: net.Socket, counts: Map<string, number>): Out {
  const n = (counts.get(key) ?? 0) + 1;
  counts.set(key, n);
  const range = h["range"];
  const std: Array<[string, string]> = [["Last-Modified", LM], ["Content-Type", "text/plain"], ["Accept-Ranges", "bytes"]];
  switch (key) {
    case "te-head.txt": {
      // HEAD and GET answered chunked: no Content-Length anywhere (legal, RFC 9110 §8.6)
      const part = range === "bytes=0-4";
      const hs: Array<[string, string]> = [...std, ["ETag", '"te"'], ["Transfer-Encoding", "chunked"]];
      if (part) hs.push(["Content-Range", "bytes 0-4/26"]);
      const out = Buffer.from(head(part ? "206 Partial Content" : "200 OK", hs));
      return method === "HEAD" ? out : Buffer.concat([out, chunked(part ? BODY.slice(0, 5) : BODY)]);
    }
    case "close-head.txt":
      // HTTP/1.0, no length: the body (none for a HEAD) ends at the close
      sock.end(Buffer.concat([Buffer.from(head("200 OK", [...std, ["ETag", '"cl"']], "HTTP/1.0")), Buffer.from(method === "HEAD" ? "" : BODY)]));
      return "custom";
    case "ct-none.txt":
      return whole(method, "200 OK", [["ETag", '"cn"'], ["Last-Modified", LM]], BODY);
    case "ct-none-stale.txt":
      // no Content-Type, stale at once: revalidated (a 304) on every later read
      if (h["if-none-match"] === '"cs"') return whole(method, "304 Not Modified", [["ETag", '"cs"'], ["Cache-Control", "max-age=0"]], "");
      return whole(method, "200 OK", [["ETag", '"cs"'], ["Last-Modified", LM], ["Cache-Control", "max-age=0"]], BODY);
    case "reval-other.txt":
      // the object changed (v1 → v2) and a broken upstream answers the revalidation with a 304 naming v2
      if (h["if-none-match"] !== undefined) return whole(method, "304 Not Modified", [["ETag", '"v2"'], ["Last-Modified", LM], ["Cache-Control", "max-age=0"]], "");
      return whole(method, "200 OK", [...std, ["ETag", n === 1 ? '"v1"' : '"v2"'], ["Cache-Control", "max-age=0"]], n === 1 ? BODY : BODY.toUpperCase());
    case "range-sum.txt": {
      // The whole object's checksum on every answer, a range's too (Ceph RGW before 19.2.2 and
      // other S3 look-alikes): S3 sends none with a range, since it does not describe the bytes sent.
      const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? "");
      const crc = Buffer.from(new Uint32Array([Bun.hash.crc32(BODY)]).buffer).reverse().toString("base64");
      const hs: Array<[string, string]> = [...std, ["ETag", '"rs"'], ["x-amz-checksum-crc32", crc], ["x-amz-checksum-type", "FULL_OBJECT"]];
      if (m === null) return whole(method, "200 OK", hs, BODY);
      const [first, last] = [Number(m[1]), Math.min(Number(m[2]), BODY.length - 1)];
      return whole(method, "206 Partial Content", [...hs, ["Content-Range", `bytes ${first}-${last}/${BODY.length}`]], BODY.slice(first, last + 1));
    }
    case "lf-only.txt":
      return Buffer.concat([Buffer.from('HTTP/1.1 200 OK\nContent-Type: text/plain\nETag: "lf"\nContent-Length: 26\n\n'), Buffer.from(method === "HEAD" ? "" : BODY)]);
  }
  return whole(method, "404 Not Found", [["Content-Type", "application/xml"]], `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>${key}</Key></Error>`);
}

/**
 * ListMultipartUploads: a truncated page without S3's NextKeyMarker and NextUploadIdMarker (two
 * uploads of one key, then, asked with a delimiter, a common prefix).
 */
function uploadsXml(q: URLSearchParams): string {
  if (q.get("prefix") === "relist/") {
    const upload = (k: string) => `<Upload><Key>${k}</Key><UploadId>u-${k}</UploadId><Initiated>2025-01-01T00:00:00.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>`;
    return `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult${NS}><Bucket>fakebucket</Bucket><Prefix>relist/</Prefix>${relisted(q, RELISTED_KEYS, upload)}</ListMultipartUploadsResult>`;
  }
  const upload = (id: string) => `<Upload><Key>nomarker-up/a&amp;b.txt</Key><UploadId>${id}</UploadId><Initiated>2025-01-01T00:00:00.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>`;
  const prefixes = q.has("delimiter") ? "<CommonPrefixes><Prefix>nomarker-up/z/</Prefix></CommonPrefixes>" : "";
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult${NS}><Bucket>fakebucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>${q.get("prefix") ?? ""}</Prefix><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>${upload("u1")}${upload("u2")}${prefixes}</ListMultipartUploadsResult>`;
}

/** ListParts: a truncated page without S3's NextPartNumberMarker (parts 1 and 2). */
function partsXml(key: string, q: URLSearchParams): string {
  const part = (n: number) => `<Part><PartNumber>${n}</PartNumber><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;e${n}&quot;</ETag><Size>5242880</Size></Part>`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult${NS}><Bucket>fakebucket</Bucket><Key>${key}</Key><UploadId>${q.get("uploadId")}</UploadId><PartNumberMarker>0</PartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>${part(1)}${part(2)}</ListPartsResult>`;
}

export function startQuirkyUpstream(): Promise<QuirkyUpstream> {
  const log: QuirkyRequest[] = [];
  const counts = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    let buf = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
        const [method, target] = lines[0]!.split(" ") as [string, string];
        const h: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(":");
          h[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
        }
        const length = Number(h["content-length"] ?? 0);
        if (buf.length < end + 4 + length) return;
        buf = buf.subarray(end + 4 + length);
        log.push({ method, target, headers: h });
        const url = new URL(target, "http://x");
        const parts = url.pathname.split("/").filter(Boolean);
        const out = parts.length <= 1
          ? (url.searchParams.has("uploads") ? whole(method, "200 OK", [["Content-Type", "application/xml"]], uploadsXml(url.searchParams)) : url.searchParams.has("list-type") || url.searchParams.has("prefix") ? listing(method, url.searchParams) : whole(method, "200 OK", [], ""))
          : url.searchParams.has("uploadId") ? whole(method, "200 OK", [["Content-Type", "application/xml"]], partsXml(decodeURIComponent(parts.slice(1).join("/")), url.searchParams))
          : object(method, decodeURIComponent(parts.slice(1).join("/")), h, sock, counts);
        if (out !== "custom") sock.write(out);
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        endpoint: `http://127.0.0.1:${port}`,
        log,
        stop: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
