/**
 * Entity references named like Object.prototype's members: the predefined-entity table was a
 * plain object, so `&constructor;` in a DeleteObjects key decoded to "function Object() { [native
 * code] }" (and `&__proto__;` to "[object Object]"), and that key was deleted upstream. Only the
 * five predefined entities exist: anything else is malformed (S3's MalformedXML).
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { parseXml, XmlError } from "../../../src/fronts/s3/xml-reader.ts";

setDefaultTimeout(30_000);

test("&constructor; &toString; &__proto__; &hasOwnProperty; are not entities", () => {
  for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
    expect(() => parseXml(`<Delete><Object><Key>&${name};</Key></Object></Delete>`)).toThrow(XmlError);
  }
  expect(parseXml("<Delete><Object><Key>a&amp;b&lt;</Key></Object></Delete>").children[0].children[0].text).toBe("a&b<");
});
