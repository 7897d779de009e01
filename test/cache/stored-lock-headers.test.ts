/**
 * The x-amz-object-lock-* headers are no longer stored or passed (no grant here may read an
 * object's retention or legal hold, to which S3 shows them), but entries an earlier release stored
 * with them stay answerable: not corrupt (a miss, deleted, counted as a layer error on upgrade),
 * and are served without them (dropped when the entry is read from its layer).
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { headersCanBeAnswered, storedEntryHeaders } from "../../src/cache/types.ts";
import { isObjectHeader, objectHeaders } from "../../src/http/headers.ts";

setDefaultTimeout(30_000);

test("object-lock headers: not picked from an upstream answer, still answerable in an entry stored before", () => {
  const upstream = new Headers({ etag: '"x"', "x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00.000Z", "x-amz-object-lock-legal-hold": "OFF" });
  expect(objectHeaders(upstream)).toEqual({ etag: '"x"' });
  expect(isObjectHeader("x-amz-object-lock-mode")).toBe(false);
  expect(storedEntryHeaders({ etag: '"x"', "x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-legal-hold": "OFF" })).toEqual({ etag: '"x"' });
  expect(storedEntryHeaders({ etag: '"x"', "set-cookie": "a=b" })).toBeUndefined();
  expect(headersCanBeAnswered({ etag: '"x"', "set-cookie": "a=b" })).toBe(false);
});
