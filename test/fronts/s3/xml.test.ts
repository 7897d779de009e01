/** S3 XML output (escaping, ListBuckets, GetBucketLocation, errors) and the small XML reader. */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ProxyError } from "../../../src/errors.ts";
import { escapeXml, isWellFormedResult, maskOwners, renderListBuckets, renderLocationConstraint, setFirstElementText } from "../../../src/fronts/s3/xml.ts";
import { fromProxyError, renderS3ErrorXml, s3Error, s3ErrorResponse, S3_ERRORS } from "../../../src/fronts/s3/errors.ts";
import { child, childrenNamed, childText, MAX_ATTRIBUTES, MAX_ENTITY_REFERENCES, parseXml, XmlError } from "../../../src/fronts/s3/xml-reader.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

describe("escapeXml", () => {
  test("the five special characters", () => {
    expect(escapeXml(`<a href="x">Tom & 'Jerry'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;Tom &amp; &apos;Jerry&apos;&lt;/a&gt;");
  });
  test("plain text, unicode and emoji pass untouched", () => {
    for (const s of ["", "plain key.txt", "日本語 ファイル", "emoji 😀🎉", "~!@#$%^*()_+-=[]{}|;:,./?"]) expect(escapeXml(s)).toBe(s);
  });
  test("TAB/LF/CR become references; characters XML cannot carry become U+FFFD", () => {
    expect(escapeXml("a\tb\nc\rd")).toBe("a&#9;b&#10;c&#13;d");
    expect(escapeXml("a\x00b\x1bc\x7fd")).toBe("a\ufffdb\ufffdc\x7fd");
    expect(escapeXml("lone \ud800 high, lone \udc00 low, pair \ud83d\ude00")).toBe("lone \ufffd high, lone \ufffd low, pair 😀");
    expect(escapeXml("\ufffe\uffff")).toBe("\ufffd\ufffd");
  });
  test("whatever a key holds, the escaped text reads back to it (TAB/LF/CR/&/< and emoji)", () => {
    const key = "a&b<c>d\"e'f\tg\nh\r😀";
    expect(parseXml(`<Key>${escapeXml(key)}</Key>`).text).toBe(key);
  });
});

describe("ListBuckets and GetBucketLocation", () => {
  test("ListAllMyBucketsResult with owner, escaped names, ISO dates", () => {
    const xml = renderListBuckets(
      [{ name: "products", creationDate: Date.UTC(2024, 0, 2, 3, 4, 5) }, { name: "a&b", creationDate: 0, region: "eu-west-1" }],
      { owner: { id: "app1", displayName: "App <1>" } },
    );
    expect(xml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        "<Owner><ID>app1</ID><DisplayName>App &lt;1&gt;</DisplayName></Owner><Buckets>" +
        "<Bucket><Name>products</Name><CreationDate>2024-01-02T03:04:05.000Z</CreationDate></Bucket>" +
        "<Bucket><Name>a&amp;b</Name><CreationDate>1970-01-01T00:00:00.000Z</CreationDate><BucketRegion>eu-west-1</BucketRegion></Bucket>" +
        "</Buckets></ListAllMyBucketsResult>",
    );
    const doc = parseXml(xml);
    expect(childrenNamed(child(doc, "Buckets")!, "Bucket").map((b) => childText(b, "Name"))).toEqual(["products", "a&b"]);
  });

  test("no buckets, prefix and continuation token", () => {
    const doc = parseXml(renderListBuckets([], { prefix: "p", continuationToken: "t" }));
    expect(child(doc, "Buckets")!.children).toEqual([]);
    expect(childText(doc, "Prefix")).toBe("p");
    expect(childText(doc, "ContinuationToken")).toBe("t");
    expect(child(doc, "Owner")).toBeUndefined();
  });

  test("LocationConstraint is empty for us-east-1 and the region otherwise", () => {
    expect(renderLocationConstraint("us-east-1")).toBe('<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>');
    expect(parseXml(renderLocationConstraint("us-east-1")).text).toBe("");
    expect(parseXml(renderLocationConstraint("eu-west-1")).text).toBe("eu-west-1");
  });
});

describe("S3 errors", () => {
  test("the catalogue has S3's statuses", () => {
    const expected: Record<string, number> = {
      AccessDenied: 403, InvalidAccessKeyId: 403, SignatureDoesNotMatch: 403, RequestTimeTooSkewed: 403, ExpiredToken: 400,
      InvalidToken: 400, NoSuchBucket: 404, NoSuchKey: 404, NotImplemented: 501, MethodNotAllowed: 405, InvalidArgument: 400,
      InvalidRequest: 400, AuthorizationHeaderMalformed: 400, AuthorizationQueryParametersError: 400, MissingSecurityHeader: 400,
      InvalidRange: 416, PreconditionFailed: 412, SlowDown: 503, ServiceUnavailable: 503, InternalError: 500, EntityTooLarge: 400,
      EntityTooSmall: 400, InvalidPart: 400, InvalidPartOrder: 400, NoSuchUpload: 404, MissingContentLength: 411, IncompleteBody: 400,
      BadDigest: 400, InvalidDigest: 400, XAmzContentSHA256Mismatch: 400, MalformedXML: 400, KeyTooLongError: 400, InvalidURI: 400,
    };
    for (const [code, status] of Object.entries(expected)) expect<unknown[]>([code, S3_ERRORS[code as keyof typeof S3_ERRORS]?.status]).toEqual([code, status]);
  });

  test("error XML: Code, Message, details, Resource, RequestId, all escaped", () => {
    const xml = renderS3ErrorXml(s3Error("NoSuchKey", undefined, { Key: "a<b>&c" }), { resource: "/bucket/a<b>&c", requestId: "REQ1" });
    expect(xml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>' +
        "<Key>a&lt;b&gt;&amp;c</Key><Resource>/bucket/a&lt;b&gt;&amp;c</Resource><RequestId>REQ1</RequestId></Error>",
    );
    const doc = parseXml(xml);
    expect([childText(doc, "Code"), childText(doc, "Key"), childText(doc, "Resource")]).toEqual(["NoSuchKey", "a<b>&c", "/bucket/a<b>&c"]);
  });

  test("the HTTP response: status, XML, request id header; no body for HEAD", async () => {
    const e = s3Error("SlowDown", undefined, undefined, { "retry-after": "1" });
    const res = s3ErrorResponse(e, { requestId: "R2", resource: "/b/k" });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("application/xml");
    expect(res.headers.get("x-amz-request-id")).toBe("R2");
    expect(res.headers.get("retry-after")).toBe("1");
    expect(childText(parseXml(await res.text()), "Code")).toBe("SlowDown");
    const head = s3ErrorResponse(e, { requestId: "R3", method: "HEAD" });
    expect(head.status).toBe(503);
    expect(await head.text()).toBe("");
    // every 503 says when to retry (the front's own: request_timeout, an unreachable upstream, the listener's); a given value is kept; other statuses get none
    const own = [fromProxyError(new ProxyError("GatewayTimeout")), fromProxyError(new ProxyError("UpstreamUnreachable")), s3Error("ServiceUnavailable"), s3Error("SlowDown", undefined, undefined, { "retry-after": "4" }), s3Error("InternalError")];
    expect(own.map((x) => [x.status, s3ErrorResponse(x, { requestId: "R4" }).headers.get("retry-after")])).toEqual([[503, "1"], [503, "1"], [503, "1"], [503, "4"], [500, null]]);
  });

  test("shared-phase ProxyErrors map to S3 codes, keeping their headers", () => {
    expect(fromProxyError(new ProxyError("TooManyRequests", { headers: { "retry-after": "3" } }))).toMatchObject({ code: "SlowDown", status: 503, headers: { "retry-after": "3" } });
    expect(fromProxyError(new ProxyError("Forbidden"))).toMatchObject({ code: "AccessDenied", status: 403 });
    // an upstream's 429 SlowDown (S3 never answers 429): S3's 503 SlowDown, its Retry-After kept
    expect(fromProxyError(new ProxyError("SlowDown", { headers: { "retry-after": "7" }, cause: { s3Status: 429, s3Code: "SlowDown" } }))).toMatchObject({ code: "SlowDown", status: 503, headers: { "retry-after": "7" } });
    expect(fromProxyError(new ProxyError("NoSuchKey"))).toMatchObject({ code: "NoSuchKey", status: 404 });
    expect(fromProxyError(new ProxyError("RangeNotSatisfiable", { headers: { "content-range": "bytes */10" } }))).toMatchObject({ code: "InvalidRange", status: 416 });
    expect(fromProxyError(new ProxyError("BadGateway"))).toMatchObject({ code: "InternalError", status: 500 });
    expect(fromProxyError(new ProxyError("CircuitOpen"))).toMatchObject({ code: "ServiceUnavailable", status: 503 });
    // the upstream's failures say what failed, not S3's "Please reduce your request rate"
    expect(fromProxyError(new ProxyError("UpstreamUnreachable"))).toMatchObject({ code: "ServiceUnavailable", status: 503, message: "The upstream could not be reached" });
    expect(fromProxyError(new ProxyError("GatewayTimeout", { detail: "The upstream stalled while sending the object" }))).toMatchObject({ code: "ServiceUnavailable", message: "The upstream stalled while sending the object" });
    expect(fromProxyError(new ProxyError("BadGateway"))).toMatchObject({ message: "The upstream failed" });
    expect(fromProxyError(new ProxyError("Overloaded"))).toMatchObject({ code: "SlowDown", message: "Please reduce your request rate." });
    expect(fromProxyError({ code: "NotInTheMap" as never, headers: undefined })).toMatchObject({ code: "InternalError", status: 500 });
  });
});

describe("parseXml", () => {
  test("a client's document with a character XML 1.0 does not allow is refused; an upstream's answer (lenient) keeps it, raw or referenced", () => {
    const raw = "<ListBucketResult><Contents><Key>a\u0001b</Key></Contents><Contents><Key>c&#x1;d&#2;</Key></Contents></ListBucketResult>";
    expect(() => parseXml(raw)).toThrow(XmlError);
    expect(() => parseXml("<R><Key>c&#x1;d</Key></R>")).toThrow(XmlError);
    const doc = parseXml(raw, { lenient: true });
    expect(childrenNamed(doc, "Contents").map((c) => childText(c, "Key"))).toEqual(["a\u0001b", "c\u0001d\u0002"]);
    // still XML: a reference past Unicode, an unknown entity or a DOCTYPE are refused
    for (const bad of ["<R>&#x110000;</R>", "<R>&nbsp;</R>", "<!DOCTYPE R><R/>"]) expect(() => parseXml(bad, { lenient: true })).toThrow(XmlError);
  });

  test("CompleteMultipartUpload as the SDK sends it", () => {
    const doc = parseXml(
      '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        '<Part><ETag>"a54357aff0632cce46d942af68356b38"</ETag><PartNumber>1</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>' +
        "<Part>\n  <ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag>\n  <PartNumber>2</PartNumber>\n</Part></CompleteMultipartUpload>",
    );
    expect(doc.name).toBe("CompleteMultipartUpload");
    expect(doc.attrs.xmlns).toBe("http://s3.amazonaws.com/doc/2006-03-01/");
    const parts = childrenNamed(doc, "Part").map((p) => [childText(p, "PartNumber"), childText(p, "ETag"), childText(p, "ChecksumCRC32")]);
    expect(parts).toEqual([
      ["1", '"a54357aff0632cce46d942af68356b38"', "AAAAAA=="],
      ["2", '"0c78aef83f66abc1fa1e8477f296d394"', undefined],
    ]);
  });

  test("Delete keeps keys exactly: spaces, a lone space, entities, numeric references, CDATA", () => {
    const doc = parseXml(
      "<Delete><Quiet>true</Quiet><Object><Key> </Key></Object><Object><Key>  lead and trail  </Key></Object>" +
        "<Object><Key>a&amp;b&#10;c&#x1F600;</Key><VersionId>v1</VersionId></Object><Object><Key><![CDATA[<raw & text>]]></Key></Object>" +
        "<Object><Key>0</Key></Object><Object><Key/></Object></Delete>",
    );
    expect(childText(doc, "Quiet")).toBe("true");
    expect(childrenNamed(doc, "Object").map((o) => childText(o, "Key"))).toEqual([" ", "  lead and trail  ", "a&b\nc😀", "<raw & text>", "0", ""]);
  });

  test("line ends are normalised as XML 1.0 §2.11 says: CRLF and a lone CR read as LF; &#13; stays CR", () => {
    const doc = parseXml("<Delete>\r\n<Object><Key>a\r\nb\rc&#13;d</Key></Object><Object><Key><![CDATA[e\r\nf]]></Key></Object></Delete>");
    expect(childrenNamed(doc, "Object").map((o) => childText(o, "Key"))).toEqual(["a\nb\nc\rd", "e\nf"]);
    // a body's bytes alike, around characters of several bytes and at either end
    const bytes = new TextEncoder().encode("\r\n<Delete>\r<Object><Key>\r😀\r\r\né\r\n&#13;\n</Key></Object><Object><Key><![CDATA[\r\r\n]]></Key></Object></Delete>\r");
    expect(childrenNamed(parseXml(bytes), "Object").map((o) => childText(o, "Key"))).toEqual(["\n😀\n\né\n\r\n", "\n\n"]);
  });

  test("prefixed names are reduced to local names; comments and a BOM are ignored", () => {
    const doc = parseXml("\ufeff<!-- c --><s3:Delete xmlns:s3='urn:x'><s3:Object><s3:Key>k</s3:Key></s3:Object><!-- c2 --></s3:Delete>\n");
    expect(childText(child(doc, "Object")!, "Key")).toBe("k");
    expect(parseXml(new TextEncoder().encode("<a>é</a>")).text).toBe("é");
  });

  const bad: Array<[string, string]> = [
    ["DOCTYPE", '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><d>&x;</d>'],
    ["external entity (XXE)", '<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><d>&xxe;</d>'],
    ["undeclared named entity", "<d>&nbsp;</d>"],
    ["unterminated entity", "<d>a &amp b</d>"],
    ["bare ampersand", "<d>a & b</d>"],
    ["reference to NUL", "<d>&#0;</d>"],
    ["raw control character", "<d>\x01</d>"],
    ["processing instruction", "<d><?php echo 1 ?></d>"],
    ["mismatched tags", "<a><b></a></b>"],
    ["unclosed element", "<a><b></b>"],
    ["two roots", "<a/><b/>"],
    ["text outside the root", "<a/>junk"],
    ["empty document", "  "],
    ["attribute without quotes", "<a x=1/>"],
    ["duplicate attribute", '<a x="1" x="2"/>'],
    ["< in an attribute", '<a x="<"/>'],
    ["bad name", "<1a/>"],
    ["prefix mismatch on close", "<s3:a></a>"],
    ["CDATA outside the root", "<![CDATA[x]]><a/>"],
    ["text mixed with elements (a client's document)", "<Delete><Object><Key>k<b/>7</Key></Object></Delete>"],
    ["stray text beside elements", "<Delete>junk<Object><Key>k</Key></Object></Delete>"],
    ["CDATA beside elements", "<Delete><![CDATA[x]]><Object><Key>k</Key></Object></Delete>"],
    ["an undeclared element prefix", "<x:Delete><x:Object><x:Key>k9</x:Key></x:Object></x:Delete>"],
    ["an undeclared prefix on an inner element", "<Delete xmlns:s3='urn:x'><s3:Object><y:Key>k</y:Key></s3:Object></Delete>"],
    ["an undeclared attribute prefix", "<Delete q:x='1'><Object><Key>k</Key></Object></Delete>"],
    ["a prefix declared only on a sibling", "<D><a xmlns:p='u'/><p:b/></D>"],
    ["an empty prefix", "<:a/>"],
  ];
  for (const [name, xml] of bad) {
    test(`refuses ${name}`, () => {
      expect(() => parseXml(xml)).toThrow(XmlError);
    });
  }

  test("whitespace between elements, declared prefixes (on the element, an ancestor, or a self-closing one) and xml: pass; an upstream's answer is not held to the client's rules", () => {
    expect(childText(child(parseXml("<Delete>\n  <Object>\n    <Key>k</Key>\n  </Object>\n</Delete>"), "Object")!, "Key")).toBe("k");
    expect(parseXml("<p:a xmlns:p='u'><p:b xml:lang='en'/><q:c xmlns:q='v'/></p:a>").children.map((c) => c.name)).toEqual(["b", "c"]);
    expect(parseXml("<a>x<b/>y</a>", { lenient: true }).text).toBe("xy");
    expect(parseXml("<x:a><x:b/></x:a>", { lenient: true }).name).toBe("a");
  });

  test("refuses invalid UTF-8", () => {
    expect(() => parseXml(new Uint8Array([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]))).toThrow("UTF-8");
  });

  const catchErr = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e as XmlError;
    }
    throw new Error("did not throw");
  };

  test("size, depth and element caps answer 'too-large' before the work is done", () => {
    expect(catchErr(() => parseXml("<a>" + "x".repeat(100) + "</a>", { maxBytes: 50 })).reason).toBe("too-large");
    expect(catchErr(() => parseXml(new Uint8Array(51), { maxBytes: 50 })).reason).toBe("too-large");
    expect(catchErr(() => parseXml("<a>" + "é".repeat(30) + "</a>", { maxBytes: 50 })).reason).toBe("too-large"); // bytes, not chars
    expect(catchErr(() => parseXml("<a>".repeat(17) + "</a>".repeat(17))).reason).toBe("too-large");
    expect(parseXml("<a>".repeat(16) + "</a>".repeat(16)).name).toBe("a");
    expect(catchErr(() => parseXml("<r>" + "<k/>".repeat(10) + "</r>", { maxElements: 10 })).reason).toBe("too-large");
    expect(childrenNamed(parseXml("<r>" + "<k/>".repeat(9) + "</r>", { maxElements: 10 }), "k").length).toBe(9);
  });

  test("attributes: at most MAX_ATTRIBUTES on one element and as many as the element cap in a document, refused as they are read (thousands of xmlns:pN declarations with pN:a attributes on one start tag held the event loop for seconds, the prefix check quadratic)", () => {
    expect(MAX_ATTRIBUTES).toBe(32);
    const tag = (n: number) => `<Delete xmlns:p="u" ` + Array.from({ length: n - 1 }, (_, i) => `p:a${i}=""`).join(" ") + "/>";
    expect(Object.keys(parseXml(tag(MAX_ATTRIBUTES)).attrs).length).toBe(MAX_ATTRIBUTES);
    const over = catchErr(() => parseXml(tag(MAX_ATTRIBUTES + 1)));
    expect([over.reason, over.message]).toEqual(["too-large", "too many XML attributes"]);
    // the attack's shape: 5,000 declarations and 5,000 names using the last one (~150 KB)
    const decl = Array.from({ length: 5000 }, (_, i) => `xmlns:p${i}=""`).join(" ");
    const flood = `<Delete ${decl} ${Array.from({ length: 5000 }, (_, i) => `p4999:a${i}=""`).join(" ")}/>`;
    expect(catchErr(() => parseXml(flood)).message).toBe("too many XML attributes");
    // over the whole document: as many attributes as elements at most (the root's and 9 children's here)
    const spread = (n: number) => `<r b="">` + `<k a=""/>`.repeat(n) + "</r>";
    expect(childrenNamed(parseXml(spread(9), { maxElements: 10 }), "k").length).toBe(9);
    expect(catchErr(() => parseXml(spread(9).replace("<k ", '<k c="" '), { maxElements: 10 })).message).toBe("too many XML attributes");
  });

  test("a 1,000-key Delete and a 10,000-part Complete fit the default limits", () => {
    const del = "<Delete>" + Array.from({ length: 1000 }, (_, i) => `<Object><Key>${"k".repeat(1000)}${i}</Key></Object>`).join("") + "</Delete>";
    expect(childrenNamed(parseXml(del), "Object").length).toBe(1000);
    const parts = Array.from({ length: 10000 }, (_, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>"${"0".repeat(32)}"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>`);
    expect(childrenNamed(parseXml("<CompleteMultipartUpload>" + parts.join("") + "</CompleteMultipartUpload>"), "Part").length).toBe(10000);
  });

  test("a client's document holds at most MAX_ENTITY_REFERENCES references, counted over the whole document (text and attributes) before any is decoded; S3's largest documents, escaped, fit; an upstream's answer (lenient) is not limited", () => {
    expect(MAX_ENTITY_REFERENCES).toBe(100_000);
    const half = MAX_ENTITY_REFERENCES / 2;
    const two = (extra: number) => `<Delete><Object><Key>${"&amp;".repeat(half)}</Key></Object><Object><Key a="${"&lt;".repeat(extra)}">${"&#x41;".repeat(half)}</Key></Object></Delete>`;
    const ok = parseXml(two(0), { maxBytes: 4 * 1024 * 1024 });
    expect(childrenNamed(ok, "Object").map((o) => childText(o, "Key")!.length)).toEqual([half, half]);
    const over = catchErr(() => parseXml(two(1), { maxBytes: 4 * 1024 * 1024 }));
    expect([over.reason, over.message]).toEqual(["malformed", "too many entity references"]);
    // a 4 MiB body of ~840,000 references (it held the event loop ~0.6 s): refused at the count
    const flood = "<Delete><Object><Key>" + "&amp;".repeat(838_000) + "</Key></Object></Delete>";
    expect(catchErr(() => parseXml(flood, { maxBytes: 4 * 1024 * 1024 })).message).toBe("too many entity references");
    expect(childText(child(parseXml(flood, { maxBytes: 4 * 1024 * 1024, lenient: true }), "Object")!, "Key")!.length).toBe(838_000);
    // S3's largest documents, escaped as SDKs write them: 10,000 parts with quoted ETags (20,000
    // references), 1,000 keys of 100 escaped characters each (100,000)
    const parts = Array.from({ length: 10000 }, (_, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>&quot;${"0".repeat(32)}&quot;</ETag></Part>`);
    const complete = parseXml("<CompleteMultipartUpload>" + parts.join("") + "</CompleteMultipartUpload>", { maxBytes: 4 * 1024 * 1024 });
    expect(childText(childrenNamed(complete, "Part")[9999]!, "ETag")).toBe(`"${"0".repeat(32)}"`);
    const del = "<Delete>" + Array.from({ length: 1000 }, (_, i) => `<Object><Key>${"a&amp;&lt;&gt;&#xD;".repeat(25)}${i}</Key></Object>`).join("") + "</Delete>";
    expect(childText(childrenNamed(parseXml(del, { maxBytes: 4 * 1024 * 1024 }), "Object")[999]!, "Key")).toBe("a&<>\r".repeat(25) + "999");
    expect(parseXml(`<Tagging><TagSet><Tag><Key>a&amp;b</Key><Value>&lt;v&gt;</Value></Tag></TagSet></Tagging>`).name).toBe("Tagging");
  });

  test("attribute names like __proto__ stay plain data", () => {
    const doc = parseXml('<a __proto__="x" constructor="y"/>');
    expect(Object.keys(doc.attrs)).toEqual(["__proto__", "constructor"]);
    expect(doc.attrs["__proto__"]).toBe("x");
  });
});

describe("an upstream's error relayed to the S3 front (relay.ts errorOf)", () => {
  const doc = (code: string, message: string, extra = "") => parseXml(`<Error><Code>${code}</Code><Message>${message}</Message>${extra}</Error>`);
  test("S3's own words are kept; a message naming the upstream's internals (host:port, URL, IP, ARN, access key, its bucket) gets the catalogue's", async () => {
    const { errorOf } = await import("../../../src/fronts/s3/relay.ts");
    expect(errorOf(400, doc("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"), "up").message).toBe("Part number must be an integer between 1 and 10000, inclusive");
    expect(errorOf(400, doc("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"), "up").message).toBe("Your proposed upload is smaller than the minimum allowed size"); // (bucket "up" is not named by "upload")
    for (const leak of [
      "bad header at s3-internal.corp.example:9000 signed by AKIAHOSTILET secret hostile-secret-T",
      "see http://minio-0.minio.svc:9000/health",
      "node 10.1.2.3 lost quorum",
      "key arn:aws:kms:us-east-1:111122223333:key/abcd is disabled",
      "signed by AKIAIOSFODNN7EXAMPLE",
      "bucket upstream-secret-bucket is locked",
      "backend storage-7.internal refused",
    ]) {
      const e = errorOf(400, doc("InvalidArgument", leak), "upstream-secret-bucket");
      expect([leak, e.code, e.message]).toEqual([leak, "InvalidArgument", S3_ERRORS.InvalidArgument.message]);
    }
  });
  test("a PreconditionFailed keeps the upstream's <Condition> (a plain name), never other text", async () => {
    const { errorOf } = await import("../../../src/fronts/s3/relay.ts");
    expect(errorOf(412, doc("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", "<Condition>If-None-Match</Condition>"), "up").details).toEqual({ Condition: "If-None-Match" });
    expect(errorOf(412, doc("PreconditionFailed", "x", "<Condition>If-Match at 10.0.0.1</Condition>"), "up").details).toBeUndefined();
  });
});

describe("an upstream refusal keeps the upstream's request id for the access log", () => {
  test("relayError: the ProxyError's cause names x-amz-request-id (a malformed one is dropped)", async () => {
    const { relayError } = await import("../../../src/fronts/s3/relay.ts");
    const refusal = (id: string) =>
      new Response("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>", { status: 412, headers: { "x-amz-request-id": id } });
    const caught = async (res: Response) => relayError(res, "up").then(() => undefined, (e: unknown) => e as ProxyError);
    expect(((await caught(refusal("4442587FB7D0A2F9")))!.cause as { s3RequestId?: string }).s3RequestId).toBe("4442587FB7D0A2F9");
    expect(((await caught(refusal("bad id\twith spaces")))!.cause as { s3RequestId?: string }).s3RequestId).toBeUndefined();
  });
});

describe("relayed listings: the result's own name and the owners, prefixed or not", () => {
  test("setFirstElementText: the first <Name> (or <p:Name>), never a <DisplayName>, text escaped", () => {
    expect(setFirstElementText("<R><Owner><DisplayName>x</DisplayName></Owner><Name>up</Name><Name>k</Name></R>", "Name", "a&b")).toBe("<R><Owner><DisplayName>x</DisplayName></Owner><Name>a&amp;b</Name><Name>k</Name></R>");
    expect(setFirstElementText('<s3:R xmlns:s3="u"><s3:Name>up</s3:Name></s3:R>', "Name", "nc")).toBe('<s3:R xmlns:s3="u"><s3:Name>nc</s3:Name></s3:R>');
    expect(setFirstElementText("<R><x:Bucket>up</x:Bucket></R>", "Bucket", "nc")).toBe("<R><x:Bucket>nc</x:Bucket></R>");
  });

  test("maskOwners: Owner and Initiator, with a prefix or attributes, get the identity's ID and DisplayName in the same prefix", () => {
    const plain = maskOwners("<R><Owner><ID>secret</ID><DisplayName>admin</DisplayName></Owner></R>", "tester");
    expect(plain).toMatch(/^<R><Owner><ID>[0-9a-f]{64}<\/ID><DisplayName>tester<\/DisplayName><\/Owner><\/R>$/);
    const prefixed = maskOwners("<s3:R><s3:Initiator><s3:ID>AKIASECRET</s3:ID></s3:Initiator><s3:Owner xmlns:s3=\"u\"><s3:ID>secret</s3:ID></s3:Owner ></s3:R>", "tester");
    expect(prefixed).not.toContain("secret");
    expect(prefixed).not.toContain("AKIASECRET");
    expect(prefixed).toContain("<s3:Initiator><s3:ID>");
    expect(prefixed).toContain('<s3:Owner xmlns:s3="u"><s3:ID>');
    expect(prefixed).toContain("<s3:DisplayName>tester</s3:DisplayName></s3:Owner>");
    const none = "<R><Contents><Key>OwnerX</Key></Contents></R>";
    expect(maskOwners(none, "tester")).toBe(none);
    // an empty <Owner /> is no opening tag: the entries after it stay
    const empty = maskOwners("<R><Contents><Key>a</Key><Owner /></Contents><Contents><Key>b</Key><Owner><ID>secret</ID></Owner></Contents></R>", "tester");
    expect(empty).toContain("<Key>a</Key><Owner /></Contents><Contents><Key>b</Key>");
    expect(empty).not.toContain("secret");
  });
});

import { rootOf } from "../../../src/fronts/s3/xml.ts";
test("a listing's root is found after any XML prolog (declaration, processing instructions, comments, a DOCTYPE) and a namespace prefix", () => {
  expect(rootOf('<?xml version="1.0"?>\n<ListBucketResult xmlns="x">')).toBe("ListBucketResult");
  expect(rootOf('\uFEFF<?xml version="1.0"?><?xml-stylesheet href="s.xsl"?><!-- c > d --><!DOCTYPE ListBucketResult>\n<s3:ListVersionsResult xmlns:s3="x">')).toBe("ListVersionsResult");
  expect(rootOf('<!DOCTYPE x [<!ELEMENT x ANY>]><Error><Code>InternalError</Code></Error>')).toBe("Error");
  expect(rootOf("")).toBeUndefined();
  expect(rootOf("not xml")).toBeUndefined();
});

test("a prolog of many items with no root after it is read in linear time (no exponential backtracking)", () => {
  // An upstream's 200 of 24 processing instructions and no root (2.5 KB) took the old regular
  // expression ~2.7 s; 26 of 1 KB each, ~45 s of a blocked event loop. (A bound, not a benchmark:
  // 26 items cost the exponential reading seconds, the linear one microseconds.)
  const hostile = [
    ("<?" + "a".repeat(100) + "?>").repeat(26) + "!",
    ("<!--" + "a".repeat(100) + "-->").repeat(26) + "!",
    ("<!DOCTYPE a [" + "]x".repeat(20) + "]>").repeat(26) + "!",
  ];
  for (const doc of hostile) {
    const t0 = performance.now();
    expect(rootOf(doc)).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(1000);
  }
  // each item ends at its first closing delimiter, as XML reads it
  expect(rootOf("<?a?>x<?b?><Root>")).toBeUndefined();
  expect(rootOf("<!DOCTYPE x [<!ENTITY e \"]\">]>\n<Root/>")).toBe("Root");
  expect(rootOf(("<?pi?>\n").repeat(1000) + "<s3:ListBucketResult>")).toBe("ListBucketResult");
});

test("maskOwners reads many opening tags with no closing one in linear time", () => {
  // An upstream's 512 KB listing of 64000 `<Owner>` and no `</Owner>` held the event loop ~11 s
  // (each opening tag's lazy search ran to the end of the document).
  const hostile = "<ListBucketResult>" + "<Owner>x".repeat(64000) + "<Initiator a='1'>y".repeat(20000) + "</ListBucketResult>";
  const t0 = performance.now();
  expect(maskOwners(hostile, "tester")).toBe(hostile);
  expect(performance.now() - t0).toBeLessThan(1000);
  // an unclosed one does not stop a later closed one of the other name, nor hide a later pair
  const mixed = maskOwners("<R><Owner>a<Initiator><ID>s1</ID></Initiator><Owner><ID>s2</ID></Owner ></R>", "tester");
  expect(mixed).not.toContain("s1");
  expect(mixed).not.toContain("s2");
  expect(mixed).toMatch(/^<R><Owner><ID>[0-9a-f]{64}<\/ID><DisplayName>tester<\/DisplayName><\/Owner><\/R>$/);
  expect(maskOwners("<R><Owner>a</Ownerx><Owner>b</Owner></R>", "t")).toMatch(/^<R><Owner><ID>[0-9a-f]{64}<\/ID><DisplayName>t<\/DisplayName><\/Owner><\/R>$/);
});

describe("isWellFormedResult (an upstream's listing or ListParts, before it is relayed)", () => {
  const LISTING =
    `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix/>` +
    `<Contents><Key>a &amp; b &lt;c&gt; &#x1; &#233;</Key><ETag>&quot;x&quot;</ETag><Owner><ID>o</ID></Owner></Contents><!-- c -->` +
    `<Contents><Key><![CDATA[x<y]]></Key></Contents></ListBucketResult>\n`;
  const PARTS = `<s3:ListPartsResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:Part a='1' b="2 &amp; 3"><s3:PartNumber>1</s3:PartNumber></s3:Part><Initiator><ID>i</ID></Initiator></s3:ListPartsResult><?pi after?><!-- after -->`;
  const ok = (x: string) => isWellFormedResult(x, 1 << 24);

  test("S3's documents are accepted: namespaces and prefixes, attributes, references, CDATA, comments and PIs", () => {
    expect([ok(LISTING), ok(PARTS)]).toEqual([true, true]);
  });

  test("a document cut anywhere before its root element closes is refused (the owner masking would miss a cut <Owner>)", () => {
    for (const doc of [LISTING, PARTS]) {
      const rootEnd = doc.indexOf("Result>", doc.lastIndexOf("</")) + 7;
      const accepted: number[] = [];
      for (let i = 0; i < rootEnd; i++) if (ok(doc.slice(0, i))) accepted.push(i);
      expect(accepted).toEqual([]);
    }
  });

  test("a DOCTYPE, an entity declaration, an entity other than XML's, a second root, a stray close, raw ]]> and depth over 32 are refused", () => {
    const body = `<ListBucketResult><Name>b</Name></ListBucketResult>`;
    expect(ok(`<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${body}`)).toBe(false);
    expect(ok(`<ListBucketResult><Name>&xxe;</Name></ListBucketResult>`)).toBe(false);
    expect(ok(`<ListBucketResult><Name a="&lol;">b</Name></ListBucketResult>`)).toBe(false);
    expect(ok(`<ListBucketResult><Name>a & b</Name></ListBucketResult>`)).toBe(false);
    expect(ok(`${body}${body}`)).toBe(false);
    expect(ok(`<ListBucketResult><Name>b</Key></ListBucketResult>`)).toBe(false);
    expect(ok(`<ListBucketResult><Name>a]]>b</Name></ListBucketResult>`)).toBe(false);
    expect(ok(`<ListBucketResult><Name a="<">b</Name></ListBucketResult>`)).toBe(false);
    expect(ok(`text${body}`)).toBe(false);
    expect(ok(`${"<a>".repeat(32)}${"</a>".repeat(32)}`)).toBe(true);
    expect(ok(`${"<a>".repeat(33)}${"</a>".repeat(33)}`)).toBe(false);
    expect(isWellFormedResult(body, body.length - 1)).toBe(false);
    expect(ok("")).toBe(false);
  });

  test("a 10,000-key page is accepted, and the same page one character short refused", () => {
    let page = `<ListBucketResult><Name>b</Name>`;
    for (let i = 0; i < 10_000; i++) page += `<Contents><Key>k-${i}</Key><ETag>&quot;e&quot;</ETag><Owner><ID>o</ID></Owner></Contents>`;
    page += `</ListBucketResult>`;
    expect(ok(page)).toBe(true);
    expect(ok(page.slice(0, -1))).toBe(false);
  });
});

test("every 503 says Retry-After once: 1 when the error carries none, its own (in any case) otherwise", () => {
  expect(s3ErrorResponse(s3Error("ServiceUnavailable"), { requestId: "r" }).headers.get("retry-after")).toBe("1");
  expect(s3ErrorResponse(s3Error("ServiceUnavailable", undefined, undefined, { "retry-after": "7" }), { requestId: "r" }).headers.get("retry-after")).toBe("7");
  // (an error carrying the header as "Retry-After" got a second value: "7, 1")
  expect(s3ErrorResponse(s3Error("ServiceUnavailable", undefined, undefined, { "Retry-After": "7" }), { requestId: "r" }).headers.get("retry-after")).toBe("7");
  expect(s3ErrorResponse(s3Error("AccessDenied"), { requestId: "r" }).headers.get("retry-after")).toBeNull();
});
