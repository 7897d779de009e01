/**
 * The README's list of the plain front's `error` codes ("Every `error` code, by status") against
 * the catalogue in src/errors.ts: each code is listed under its status, and the list names no other.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CATALOGUE } from "../../src/errors.ts";

setDefaultTimeout(30_000);

const README = readFileSync(join(import.meta.dir, "../../README.md"), "utf8");

test("every error code of src/errors.ts is in the README's list under its status, and no other", () => {
  const start = README.indexOf("Every `error` code, by status");
  expect(start).toBeGreaterThan(0);
  let text = README.slice(start, README.indexOf("\n- ", start));
  // (the parentheses say when a code is used, `versionId`, `SignatureDoesNotMatch`...: not codes)
  for (let prev = ""; prev !== text; ) [prev, text] = [text, text.replace(/\([^()]*\)/g, "")];
  const listed: Record<string, number> = {};
  let status = 0;
  for (const m of text.slice(text.indexOf(":")).matchAll(/\b([1-5]\d\d)\b|`([A-Za-z]+)`/g)) {
    if (m[1] !== undefined) status = Number(m[1]);
    else listed[m[2]!] = status;
  }
  const catalogue = Object.fromEntries(Object.entries(CATALOGUE).map(([code, spec]) => [code, spec.status]));
  expect(Object.keys(catalogue).length).toBeGreaterThan(25);
  expect(listed).toEqual(catalogue);
});
