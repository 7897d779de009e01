/** S3 addressing (path-style, virtual-hosted) and operation resolution. */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { ACTION_OF, address, bucketFromHost, hasDotSegment, isStsCall, keyTooLong, operationOf } from "../../../src/fronts/s3/route.ts";

setDefaultTimeout(10_000); // explicit: the runner's 5 s default is not a choice made here

describe("bucketFromHost", () => {
  test("<bucket>.<domain> with or without a port, case-insensitive", () => {
    expect(bucketFromHost("photos.s3.example.com", "s3.example.com")).toBe("photos");
    expect(bucketFromHost("Photos.S3.Example.com:9000", "s3.example.com")).toBe("photos");
    expect(bucketFromHost("a.b.s3.example.com", "s3.example.com")).toBe("a.b");
  });
  test("a fully qualified host (a trailing dot) is the same host", () => {
    expect(bucketFromHost("photos.s3.example.com.", "s3.example.com")).toBe("photos");
    expect(bucketFromHost("Photos.S3.Example.com.:9000", "s3.example.com")).toBe("photos");
    expect(bucketFromHost("a.b.s3.example.com.", "s3.example.com")).toBe("a.b");
    expect(bucketFromHost("s3.example.com.", "s3.example.com")).toBeUndefined();
    expect(bucketFromHost("s3.example.com.:9000", "s3.example.com")).toBeUndefined();
    expect(bucketFromHost("photos.s3.example.com..", "s3.example.com")).toBeUndefined();
  });
  test("the domain itself, another domain, a look-alike suffix or no domain configured: path-style", () => {
    expect(bucketFromHost("s3.example.com", "s3.example.com")).toBeUndefined();
    expect(bucketFromHost(".s3.example.com", "s3.example.com")).toBeUndefined();
    expect(bucketFromHost("evils3.example.com", "s3.example.com")).toBeUndefined();
    expect(bucketFromHost("127.0.0.1:9000", "s3.example.com")).toBeUndefined();
    expect(bucketFromHost("[::1]:9000", "s3.example.com")).toBeUndefined();
    expect(bucketFromHost("photos.s3.example.com", undefined)).toBeUndefined();
    expect(bucketFromHost(null, "s3.example.com")).toBeUndefined();
  });
});

describe("address", () => {
  test("path-style: first segment is the bucket, the rest (slashes kept, even doubled) the key", () => {
    expect(address("/", undefined)).toEqual({ bucket: "", key: "" });
    expect(address("/b", undefined)).toEqual({ bucket: "b", key: "" });
    expect(address("/b/", undefined)).toEqual({ bucket: "b", key: "" });
    expect(address("/b/dir/a b+c.txt", undefined)).toEqual({ bucket: "b", key: "dir/a b+c.txt" });
    expect(address("/b/a//b/", undefined)).toEqual({ bucket: "b", key: "a//b/" });
  });
  test("path-style, one request after another: each path's own bucket, whatever the last one named (the last bucket's name is reused only when this path names the same)", () => {
    const seq: Array<[string, string, string]> = [
      ["/ab/k", "ab", "k"], ["/ab/k2", "ab", "k2"], ["/abc/k", "abc", "k"], ["/ab/k", "ab", "k"], ["/abx/k", "abx", "k"],
      ["/abc/k", "abc", "k"], ["/ab", "ab", ""], ["/a/bc/k", "a", "bc/k"], ["/ab/", "ab", ""], ["abc/k", "abc", "k"], ["/abc/", "abc", ""],
    ];
    for (const [path, bucket, key] of seq) expect(address(path, undefined)).toEqual({ bucket, key });
  });
  test("virtual-hosted: the whole path is the key", () => {
    expect(address("/", "b")).toEqual({ bucket: "b", key: "" });
    expect(address("/b/k", "photos")).toEqual({ bucket: "photos", key: "b/k" });
  });
});

test("hasDotSegment: only whole '.' or '..' segments", () => {
  expect(hasDotSegment("a/../b")).toBe(true);
  // a dot inside an earlier name does not hide a later dot segment
  expect(hasDotSegment("a.txt/../b")).toBe(true);
  expect(hasDotSegment("v1.2/./x")).toBe(true);
  expect(hasDotSegment("./a")).toBe(true);
  expect(hasDotSegment("a/.")).toBe(true);
  expect(hasDotSegment("a..b/.c/d.")).toBe(false);
  expect(hasDotSegment("...")).toBe(false);
});

test("keyTooLong: S3's limit is 1024 bytes of UTF-8, the 1024th byte included", () => {
  expect(keyTooLong("a".repeat(1024))).toBe(false);
  expect(keyTooLong("a".repeat(1025))).toBe(true);
  expect(keyTooLong("é".repeat(512))).toBe(false); // 1024 bytes
  expect(keyTooLong("é".repeat(513))).toBe(true);
  expect(keyTooLong("日".repeat(342))).toBe(true); // 342 characters, 1026 bytes
});

describe("operationOf", () => {
  const q = (s: string): Array<[string, string]> => [...new URLSearchParams(s)];
  const op = (method: string, path: string, query = "") => {
    const r = operationOf(method, address(path, undefined), q(query));
    return typeof r === "string" ? r : `${r.status} ${r.code}`;
  };
  test("the read operations", () => {
    expect(op("GET", "/")).toBe("ListBuckets");
    // (a POST with no query is STS's when s3Address says so, isStsCall: one that gets here was signed for s3, its body no form)
    expect(op("POST", "/")).toBe("405 MethodNotAllowed");
    // (nor does one naming an Action: isStsCall, on the same parsed query, sent it to STS first)
    expect(isStsCall("POST", q("Action=AssumeRoleWithWebIdentity&Version=2011-06-15"), new Headers())).toBe(true);
    expect(isStsCall("POST", q("%41ction=AssumeRoleWithWebIdentity"), new Headers())).toBe(true);
    expect(isStsCall("POST", q("&"), new Headers())).toBe(true);
    expect(isStsCall("POST", q("delete"), new Headers())).toBe(false);
    expect(isStsCall("POST", undefined, new Headers())).toBe(false);
    // (a service POST naming an S3 sub-resource is no STS call: S3 has no POST on the service)
    expect(op("POST", "/", "delete")).toBe("405 MethodNotAllowed");
    expect(op("HEAD", "/b")).toBe("HeadBucket");
    expect(op("GET", "/b", "location")).toBe("GetBucketLocation");
    expect(op("GET", "/b", "versioning")).toBe("GetBucketVersioning");
    expect(op("PUT", "/b", "versioning")).toBe("403 AccessDenied");
    // (S3 dispatches a bucket's location and versioning at a key's path too: the bucket's, the key ignored)
    expect(op("GET", "/b/k", "versioning")).toBe("GetBucketVersioning");
    expect(op("GET", "/b/k/deeper", "location")).toBe("GetBucketLocation");
    expect(op("GET", "/b/k", "location&versionId=1")).toBe("501 NotImplemented");
    // (but a bucket's listing of uploads or versions is S3's 400 there, not the bucket's listing)
    expect(op("GET", "/b/k", "uploads")).toBe("400 InvalidRequest");
    expect(op("GET", "/b/k/deeper", "versions&prefix=a")).toBe("400 InvalidRequest");
    expect(op("GET", "/b", "prefix=a&delimiter=/")).toBe("ListObjects");
    expect(op("GET", "/b/", "list-type=2&max-keys=2")).toBe("ListObjectsV2");
    expect(op("GET", "/b/k", "x-id=GetObject&response-content-type=a")).toBe("GetObject");
    expect(op("HEAD", "/b/k")).toBe("HeadObject");
  });
  test("the write operations (x-id is the SDK's own marker, not a sub-resource)", () => {
    expect(op("PUT", "/b/k", "x-id=PutObject")).toBe("PutObject");
    expect(operationOf("PUT", address("/b/k", undefined), [], true)).toBe("CopyObject");
    expect(op("DELETE", "/b/k")).toBe("DeleteObject");
    expect(op("POST", "/b", "delete")).toBe("DeleteObjects");
    expect(op("POST", "/b/", "delete=")).toBe("DeleteObjects");
    expect(op("POST", "/b/k", "uploads")).toBe("CreateMultipartUpload");
    expect(op("PUT", "/b/k", "partNumber=3&uploadId=abc")).toBe("UploadPart");
    expect(op("POST", "/b/k", "uploadId=abc")).toBe("CompleteMultipartUpload");
    expect(op("DELETE", "/b/k", "uploadId=abc")).toBe("AbortMultipartUpload");
    expect(op("GET", "/b/k", "uploadId=abc&max-parts=2")).toBe("ListParts");
    expect(op("GET", "/b", "uploads&prefix=a")).toBe("ListMultipartUploads");
    // CreateBucket: answered from config (BucketAlreadyOwnedByYou / AccessDenied), never sent upstream.
    expect(op("PUT", "/b", "")).toBe("CreateBucket");
    // a browser form upload (POST Object) goes to the bucket; its key is in the form
    expect(op("POST", "/b", "")).toBe("PostObject");
    expect(ACTION_OF.PostObject).toBe("s3:PutObject");
  });
  test("versions: ListObjectVersions, and GetObject / HeadObject / DeleteObject of one version (a part of one too)", () => {
    expect(op("GET", "/b", "versions&prefix=a&key-marker=k&version-id-marker=null")).toBe("ListObjectVersions");
    expect(op("GET", "/b/k", "versionId=3")).toBe("GetObjectVersion");
    expect(op("HEAD", "/b/k", "versionId=3&response-content-type=a")).toBe("HeadObjectVersion");
    expect(op("GET", "/b/k", "versionId=3&partNumber=2")).toBe("GetObjectVersion");
    expect(op("DELETE", "/b/k", "versionId=3")).toBe("DeleteObjectVersion");
    expect(op("DELETE", "/b/k", "versionId=3&partNumber=2")).toBe("501 NotImplemented");
    expect(ACTION_OF.GetObjectVersion).toBe("s3:GetObjectVersion");
    expect(ACTION_OF.ListObjectVersions).toBe("s3:ListBucketVersions");
    expect(ACTION_OF.DeleteObjectVersion).toBe("s3:DeleteObjectVersion");
  });
  test("newer sub-resources are not plain object or bucket operations (PutObjectAnnotation overwrote the object, DeleteObjectAnnotation deleted it)", () => {
    for (const [m, p, s] of [
      ["PUT", "/b/k", "annotation&annotationName=a"],
      ["DELETE", "/b/k", "annotation&annotationName=a"],
      ["DELETE", "/b/k", "annotation&annotationName=a&versionId=3"],
      ["GET", "/b/k", "annotation&annotationName=a&x-id=GetObjectAnnotation"],
      ["GET", "/b/k", "annotation&x-id=ListObjectAnnotations"],
      ["GET", "/b", "abac"],
      ["PUT", "/b", "abac"],
      ["GET", "/b", "metadataConfiguration"],
      ["POST", "/b", "metadataConfiguration"],
      ["PUT", "/b", "metadataInventoryTable"],
      ["PUT", "/b", "metadataJournalTable"],
      ["PUT", "/b", "metadataAnnotationTable"],
      // a write with a bare parameter this front does not know: refused, never a PutObject / DeleteObject
      ["PUT", "/b/k", "someFutureSubresource"],
      ["DELETE", "/b/k", "someFutureSubresource&x-id=DeleteObject"],
      ["POST", "/b/k", "someFutureSubresource"],
      ["PUT", "/b", "someFutureSubresource"],
    ]) expect(`${m} ${p}?${s} → ${op(m, p, s)}`).toBe(`${m} ${p}?${s} → 501 NotImplemented`);
    // parameters with values, and the SDKs' x-id, are not sub-resources
    expect(op("DELETE", "/b/k", "x-id=DeleteObject")).toBe("DeleteObject");
    expect(op("PUT", "/b/k", "x-id=PutObject&foo=bar")).toBe("PutObject");
    expect(op("GET", "/b/k", "foo")).toBe("GetObject");
  });
  test("anything else is 501 NotImplemented; a bad list-type is InvalidArgument", () => {
    for (const [m, p, s] of [
      ["PUT", "/b/k", "versionId=3"],
      ["POST", "/b/k", "uploadId=1&versionId=3"],
      ["DELETE", "/b/k", "uploadId=1&versionId=3"],
      ["GET", "/b", "versionId=3"],
      ["GET", "/b/k", "acl&tagging"],
      ["GET", "/b/k", "acl&uploadId=1"],
      ["GET", "/", "acl"],
      ["GET", "/b", "uploadId=1"],
      ["DELETE", "/b/k", "partNumber=1"], // not a DeleteObject of the whole object
      ["POST", "/b/k", "uploadId=1&partNumber=1"], // not a CompleteMultipartUpload
      ["GET", "/b", "delete"], // DeleteObjects is a POST
      ["GET", "/b", "acl&versioning"],
      // (whichever comes first: it was the first one's operation when that one was served)
      ["GET", "/b", "location&acl"],
      ["GET", "/b", "versioning&tagging"],
      ["GET", "/b", "uploads&policy"],
      ["GET", "/b", "versions&cors"],
      ["POST", "/b", "delete&acl"],
      ["POST", "/b/k", "uploads&tagging"],
      ["POST", "/b/k", "uploads&someNewSubresource"],
      ["GET", "/b/k", "location&acl"],
    ]) expect(`${m} ${p}?${s} → ${op(m, p, s)}`).toBe(`${m} ${p}?${s} → 501 NotImplemented`);
    // DeleteBucket, and a bucket setting's write at a key's path (the bucket's, as S3 dispatches it): 403 AccessDenied, as a setting's write at the bucket's path (they were 501).
    for (const [m, p, s] of [["DELETE", "/b", ""], ["PUT", "/b/k", "cors"], ["DELETE", "/b/k", "policy"], ["PUT", "/b/k", "versioning"]]) {
      const r = operationOf(m!, address(p!, undefined), s === "" ? [] : [[s!, ""]]);
      expect(`${m} ${p}?${s} → ${typeof r === "string" ? r : `${r.status} ${r.code}`}`).toBe(`${m} ${p}?${s} → 403 AccessDenied`);
    }
    // A method S3 has no operation for is S3's 405 MethodNotAllowed, naming the method and resource type.
    for (const m of ["PATCH", "TRACE", "PROPFIND", "CONNECT", "MKCOL"]) {
      for (const [p, type] of [["/", "SERVICE"], ["/b", "BUCKET"], ["/b/k", "OBJECT"]] as const) {
        const r = operationOf(m, address(p, undefined), []);
        expect(typeof r === "string" ? r : [r.status, r.code, r.details, r.headers]).toEqual([405, "MethodNotAllowed", { Method: m, ResourceType: type }, { allow: "GET, HEAD, PUT, POST, DELETE" }]);
      }
    }
    // No sub-resource has a HEAD form: S3's 405 (bucket or key known or not), Allow naming the
    // methods the sub-resource takes here; it was 501, as if the front might serve it some day.
    const head405 = (target: string) => {
      const [p, s = ""] = target.split("?");
      const r = operationOf("HEAD", address(p!, undefined), [...new URLSearchParams(s)]);
      return typeof r === "string" ? r : `${r.status} ${r.code} ${r.details?.Method} ${r.details?.ResourceType} [${r.headers?.allow}]`;
    };
    expect(["/b?acl", "/b?location", "/b?versions", "/b?uploads", "/b?lifecycle", "/nope?acl"].map(head405)).toEqual(
      ["[GET, PUT]", "[GET]", "[GET]", "[GET]", "[GET]", "[GET, PUT]"].map((allow) => `405 MethodNotAllowed HEAD BUCKET ${allow}`),
    );
    expect(["/b/k?acl", "/b/k?tagging", "/b/k?attributes", "/b/k?uploadId=1", "/b/k?retention", "/b/k?location"].map(head405)).toEqual(
      ["[GET, PUT]", "[GET, PUT, DELETE]", "[GET]", "[GET, POST, DELETE]", "[]", "[GET]"].map((allow) => `405 MethodNotAllowed HEAD OBJECT ${allow}`),
    );
    // Two sub-resources at once: S3's 400, no Allow (it was a 405 with an empty Allow)
    expect(["/b?acl&versioning", "/b/k?acl&tagging", "/nope/k?location&acl"].map(head405)).toEqual(Array(3).fill("400 InvalidRequest undefined undefined [undefined]"));
    // A write a sub-resource does not take is S3's 405 naming the sub-resource's type (before the
    // bucket is looked for), Allow the methods served there; one it takes but this front does not
    // serve stays 501.
    const write405 = (m: string, target: string) => {
      const [p, s = ""] = target.split("?");
      const r = operationOf(m, address(p!, undefined), [...new URLSearchParams(s)]);
      return typeof r === "string" ? r : `${r.status} ${r.code} ${r.details?.Method} ${r.details?.ResourceType ?? ""} [${r.headers?.allow ?? "-"}]`;
    };
    expect([
      ["DELETE", "/b?acl"], ["POST", "/b?acl"], ["PUT", "/b?versions"], ["PUT", "/b?delete"], ["POST", "/b?versioning"], ["DELETE", "/b?versioning"],
      ["PUT", "/b?location"], ["POST", "/b?policy"], ["DELETE", "/nope?acl"], ["DELETE", "/b/k?acl"], ["POST", "/b/k?tagging"], ["PUT", "/b/k?attributes"],
      ["DELETE", "/b/k?restore"], ["PUT", "/b/k?uploads"], ["POST", "/b/k?torrent"], ["POST", "/b/k"], ["POST", "/b/k?x-id=Foo"], ["PUT", "/"], ["DELETE", "/?acl"],
    ].map(([m, t]) => write405(m!, t!))).toEqual([
      "405 MethodNotAllowed DELETE ACL [GET, PUT]", "405 MethodNotAllowed POST ACL [GET, PUT]", "405 MethodNotAllowed PUT BUCKETVERSIONS [GET]",
      "405 MethodNotAllowed PUT MULTI_OBJECT_DELETE [POST]", "405 MethodNotAllowed POST VERSIONING [GET]", "405 MethodNotAllowed DELETE VERSIONING [GET]",
      "405 MethodNotAllowed PUT LOCATION [GET]", "405 MethodNotAllowed POST BUCKETPOLICY [GET]", "405 MethodNotAllowed DELETE ACL [GET, PUT]",
      "405 MethodNotAllowed DELETE ACL [GET, PUT]", "405 MethodNotAllowed POST OBJECT_TAGGING [GET, PUT, DELETE]", "405 MethodNotAllowed PUT OBJECT_ATTRIBUTES [GET]",
      "405 MethodNotAllowed DELETE RESTORE []", "405 MethodNotAllowed PUT UPLOADS [POST]", "405 MethodNotAllowed POST TORRENT []",
      // (an object takes no POST of its own: a form upload goes to the bucket)
      "405 MethodNotAllowed POST OBJECT [GET, HEAD, PUT, DELETE]", "405 MethodNotAllowed POST OBJECT [GET, HEAD, PUT, DELETE]",
      // (nor does the service take a PUT or a DELETE: ListBuckets is its GET, STS its POST)
      "405 MethodNotAllowed PUT SERVICE [GET, POST]", "405 MethodNotAllowed DELETE SERVICE [GET, POST]",
    ]);
    // (setting a bucket's configuration: the proxy's, S3's 403 for a caller without the permission; it was 501)
    for (const [m, t] of [["PUT", "/b?policy"], ["DELETE", "/b?lifecycle"], ["PUT", "/b?versioning"], ["PUT", "/b?requestPayment"], ["PUT", "/b?cors"], ["DELETE", "/b?metrics&id=m"], ["PUT", "/b?tagging"]]) {
      expect([m, t, write405(m!, t!).slice(0, 16)]).toEqual([m, t, "403 AccessDenied"]);
    }
    for (const [m, t] of [["PUT", "/b?abac"], ["POST", "/b/k?restore"], ["PUT", "/b/k?retention"], ["PUT", "/b/k?annotation"], ["DELETE", "/b?acl&versioning"]]) {
      expect([m, t, write405(m!, t!).slice(0, 18)]).toEqual([m, t, "501 NotImplemented"]);
    }
    expect(operationOf("PUT", address("/b/k", undefined), [["partNumber", "1"], ["uploadId", "u"]], true)).toBe("UploadPartCopy");
    expect(op("GET", "/b/k", "tagging")).toBe("GetObjectTagging");
    // ACLs (acl.ts): read, and set only to what they already are
    expect(op("GET", "/b/k", "acl")).toBe("GetObjectAcl");
    expect(op("GET", "/b/k", "acl&versionId=3")).toBe("GetObjectAcl");
    expect(op("PUT", "/b/k", "acl")).toBe("PutObjectAcl");
    expect(op("GET", "/b", "acl")).toBe("GetBucketAcl");
    expect(op("PUT", "/b", "acl")).toBe("PutBucketAcl");
    // a bucket's configuration documents (bucket-config.ts): answered from config, at the bucket's path only
    expect(["policy", "policyStatus", "cors", "requestPayment", "encryption", "tagging", "lifecycle", "website", "publicAccessBlock", "ownershipControls", "logging", "notification"].map((s) => op("GET", "/b", s))).toEqual([
      "GetBucketPolicy", "GetBucketPolicyStatus", "GetBucketCors", "GetBucketRequestPayment", "GetBucketEncryption", "GetBucketTagging",
      "GetBucketLifecycleConfiguration", "GetBucketWebsite", "GetPublicAccessBlock", "GetBucketOwnershipControls", "GetBucketLogging", "GetBucketNotificationConfiguration",
    ]);
    expect([ACTION_OF.GetBucketCors, ACTION_OF.GetBucketEncryption, ACTION_OF.GetPublicAccessBlock]).toEqual(["s3:GetBucketCORS", "s3:GetEncryptionConfiguration", "s3:GetBucketPublicAccessBlock"]);
    // (a bucket's analytics, inventory, metrics and Intelligent-Tiering configurations: listed, or one by its id; they were 501)
    expect(["analytics", "inventory", "metrics", "intelligent-tiering", "analytics&id=a", "id=a&metrics", "intelligent-tiering&id=x&continuation-token=t"].map((s) => op("GET", "/b", s))).toEqual([
      "ListBucketAnalyticsConfigurations", "ListBucketInventoryConfigurations", "ListBucketMetricsConfigurations", "ListBucketIntelligentTieringConfigurations",
      "GetBucketAnalyticsConfiguration", "GetBucketMetricsConfiguration", "GetBucketIntelligentTieringConfiguration",
    ]);
    expect([ACTION_OF.ListBucketInventoryConfigurations, ACTION_OF.GetBucketInventoryConfiguration]).toEqual(["s3:GetInventoryConfiguration", "s3:GetInventoryConfiguration"]);
    expect([op("GET", "/b", "cors&versionId=1"), op("GET", "/b/k", "policy&versionId=1")]).toEqual(["501 NotImplemented", "501 NotImplemented"]);
    // (S3 dispatches a bucket's documents at a key's path too, the key ignored: they were 501; `?tagging` there is the object's)
    expect(["policy", "cors", "requestPayment", "object-lock", "metrics", "analytics&id=a", "tagging"].map((s) => op("GET", "/b/k/deeper", s))).toEqual([
      "GetBucketPolicy", "GetBucketCors", "GetBucketRequestPayment", "GetObjectLockConfiguration", "ListBucketMetricsConfigurations", "GetBucketAnalyticsConfiguration", "GetObjectTagging",
    ]);
    expect([ACTION_OF.GetObjectAcl, ACTION_OF.PutObjectAcl, ACTION_OF.GetBucketAcl, ACTION_OF.PutBucketAcl]).toEqual(["s3:GetObjectAcl", "s3:PutObjectAcl", "s3:GetBucketAcl", "s3:PutBucketAcl"]);
    expect(op("GET", "/b/k", "partNumber=2")).toBe("GetObjectPart");
    expect(op("HEAD", "/b/k", "partNumber=2&response-content-type=a")).toBe("HeadObjectPart");
    // a tag set of one version, or tagging with another sub-resource, is not served as the current object's
    expect(op("GET", "/b/k", "tagging&versionId=3")).toBe("501 NotImplemented");
    expect(op("GET", "/b/k", "versionId=3&tagging")).toBe("501 NotImplemented");
    expect(op("GET", "/b/k", "attributes")).toBe("GetObjectAttributes");
    expect(op("GET", "/b/k", "attributes&versionId=3")).toBe("GetObjectAttributes");
    expect(op("GET", "/b", "attributes")).toBe("501 NotImplemented");
    expect(op("PUT", "/b/k", "tagging")).toBe("PutObjectTagging");
    expect(op("DELETE", "/b/k", "tagging")).toBe("DeleteObjectTagging");
    expect(op("PUT", "/b/k", "tagging&versionId=2")).toBe("501 NotImplemented");
    expect(op("GET", "/b", "tagging")).toBe("GetBucketTagging"); // a bucket's tags: S3's NoSuchTagSet (bucket-config.ts)
    expect(op("GET", "/b", "list-type=3")).toBe("400 InvalidArgument");
    expect(op("PUT", "/b/k", "partNumber=1")).toBe("400 InvalidRequest");
    expect(op("PUT", "/b/k", "uploadId=1")).toBe("400 InvalidRequest"); // UploadPart needs both
  });
});
