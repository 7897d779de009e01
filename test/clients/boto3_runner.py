"""Runs boto3 operations for test/clients/boto3.ts (Debian's python3-boto3, /usr/bin/python3).

Input: one JSON document on stdin: {"client": {...}, "ops": [{"op": ..., ...}, ...]}.
Output: one JSON document on stdout: {"versions": {...}, "results": [{"ok": true, "value": ...}
or {"ok": false, "error": {"code", "message", "status"}}, ...]}. The ops run in order in one
process (importing boto3 costs ~0.3 s); a failing op does not stop the next ones.
"""
import base64
import datetime
import json
import sys

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError


def jsonable(v):
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return {"base64": base64.b64encode(v).decode()}
    if hasattr(v, "read"):  # StreamingBody
        return {"base64": base64.b64encode(v.read()).decode()}
    return v


def make_client(c, service="s3"):
    kwargs = {
        # (S3's signer for s3; any other service, sts, gets its own default, plain SigV4)
        "signature_version": "s3v4" if service == "s3" else "v4",
        "s3": {"addressing_style": c.get("addressingStyle", "path")},
        "retries": {"total_max_attempts": c.get("maxAttempts", 1), "mode": "standard"},
    }
    if not c.get("credentials"):
        kwargs["signature_version"] = UNSIGNED
    # only newer botocore (>= 1.36) knows these; passing them to an older one is a TypeError
    for key, name in (("requestChecksumCalculation", "request_checksum_calculation"),
                      ("responseChecksumValidation", "response_checksum_validation")):
        if c.get(key):
            kwargs[name] = c[key]
    creds = c.get("credentials") or {}
    return boto3.session.Session().client(
        service,
        endpoint_url=c["endpoint"],
        region_name=c.get("region", "us-east-1"),
        aws_access_key_id=creds.get("accessKeyId"),
        aws_secret_access_key=creds.get("secretAccessKey"),
        aws_session_token=creds.get("sessionToken"),
        config=Config(**kwargs),
    )


def op_list(s3, o):
    params = {"Bucket": o["Bucket"]}
    for k in ("Prefix", "Delimiter", "StartAfter", "EncodingType", "FetchOwner"):
        if k in o:
            params[k] = o[k]
    pag = {"PageSize": o["PageSize"]} if "PageSize" in o else {}
    method = o.get("Method", "list_objects_v2")
    if method != "list_objects_v2":
        params.pop("StartAfter", None)
        params.pop("FetchOwner", None)
    pages, keys, prefixes = 0, [], []
    for page in s3.get_paginator(method).paginate(**params, PaginationConfig=pag):
        pages += 1
        keys += [{"Key": x["Key"], "Size": x["Size"], "ETag": x.get("ETag")} for x in page.get("Contents", page.get("Versions", []))]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return {"pages": pages, "keys": keys, "prefixes": prefixes}


def transfer_config(o):
    kw = {}
    if "multipartThreshold" in o:
        kw["multipart_threshold"] = o["multipartThreshold"]
    if "multipartChunksize" in o:
        kw["multipart_chunksize"] = o["multipartChunksize"]
    if "maxConcurrency" in o:
        kw["max_concurrency"] = o["maxConcurrency"]
    return TransferConfig(**kw)


def op_download_file(s3, o):
    s3.download_file(o["Bucket"], o["Key"], o["Filename"], Config=transfer_config(o))
    return {}


def op_upload_file(s3, o):
    s3.upload_file(o["Filename"], o["Bucket"], o["Key"], ExtraArgs=o.get("ExtraArgs"), Config=transfer_config(o))
    return {}


def op_put_object(s3, o):
    body = base64.b64decode(o["BodyBase64"]) if "BodyBase64" in o else o.get("BodyText", "").encode()
    return s3.put_object(Bucket=o["Bucket"], Key=o["Key"], Body=body, **o.get("Params", {}))


def op_delete_objects(s3, o):
    out = s3.delete_objects(
        Bucket=o["Bucket"],
        Delete={"Objects": [{"Key": k} for k in o["Keys"]], "Quiet": o.get("Quiet", False)},
    )
    return {"Deleted": out.get("Deleted", []), "Errors": out.get("Errors", [])}


def op_get_object(s3, o):
    params = {"Bucket": o["Bucket"], "Key": o["Key"], **o.get("Params", {})}
    return s3.get_object(**params)


def run_op(clients, cfg, o):
    service = o.get("service", "s3")
    if service not in clients:
        clients[service] = make_client(cfg, service)
    c = clients[service]
    kind = o["op"]
    if kind == "call":
        headers = o.get("headers")
        if not headers:
            return getattr(c, o["method"])(**o.get("params", {}))
        # request headers this botocore's model may predate (S3's If-None-Match on a
        # CompleteMultipartUpload, say), added before the request is signed
        def add_headers(request, **kwargs):
            for name, value in headers.items():
                request.headers[name] = value
        c.meta.events.register("before-sign.%s" % service, add_headers)
        try:
            return getattr(c, o["method"])(**o.get("params", {}))
        finally:
            c.meta.events.unregister("before-sign.%s" % service, add_headers)
    return {
        "list": op_list,
        "download_file": op_download_file,
        "upload_file": op_upload_file,
        "put_object": op_put_object,
        "delete_objects": op_delete_objects,
        "get_object": op_get_object,
    }[kind](c, o)


def main():
    doc = json.load(sys.stdin)
    clients, results = {}, []
    for o in doc["ops"]:
        try:
            value = jsonable(run_op(clients, doc["client"], o))
            if isinstance(value, dict):
                meta = value.pop("ResponseMetadata", None)
                if meta:
                    value["HTTPStatusCode"] = meta.get("HTTPStatusCode")
            results.append({"ok": True, "value": value})
        except ClientError as e:
            err = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # (the error document's other elements, as botocore parsed them: <Key>, <UploadId>, <BucketName>, ...)
            fields = {k: v for k, v in err.items() if k not in ("Code", "Message")}
            error = {"code": err.get("Code", ""), "message": err.get("Message", ""), "status": status}
            if fields:
                error["fields"] = fields
            results.append({"ok": False, "error": error})
        except Exception as e:  # noqa: BLE001 - reported to the test, which decides
            results.append({"ok": False, "error": {"code": type(e).__name__, "message": str(e), "status": None}})
    versions = {"boto3": boto3.__version__, "botocore": botocore.__version__, "python": sys.version.split()[0]}
    json.dump({"versions": versions, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
