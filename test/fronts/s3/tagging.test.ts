import { describe, expect, test, setDefaultTimeout } from "bun:test";
import type { ProxyError } from "../../../src/errors.ts";
import { s3ErrorOf } from "../../../src/fronts/s3/fail.ts";
import { tagsOf } from "../../../src/fronts/s3/tagging.ts";
import { objectSettingsProblem } from "../../../src/fronts/s3/writes.ts";
import { parseXml } from "../../../src/fronts/s3/xml-reader.ts";

setDefaultTimeout(30_000);

const code = (xml: string) => {
  try {
    tagsOf(parseXml(xml));
    return "ok";
  } catch (e) {
    return s3ErrorOf(e as ProxyError)!.code;
  }
};
const tag = (k: string, v: string) => `<Tag><Key>${k}</Key><Value>${v}</Value></Tag>`;

describe("tagsOf (a PutObjectTagging document, a form's tagging field)", () => {
  test("the tags in order, whitespace and comments between elements allowed", () => {
    expect(tagsOf(parseXml(`<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\n <TagSet>\n  <!-- two -->${tag("a", "1")}\n  ${tag("b", "")}\n </TagSet>\n</Tagging>`))).toEqual([["a", "1"], ["b", ""]]);
  });
  test("an element S3's schema does not have there is MalformedXML, never skipped: a <Tag> inside another element or beside the TagSet, a stray child of a tag", () => {
    expect(code(`<Tagging><TagSet>${tag("a", "1")}<Tags>${tag("b", "2")}</Tags></TagSet></Tagging>`)).toBe("MalformedXML");
    expect(code(`<Tagging><TagSet>${tag("a", "1")}</TagSet>${tag("b", "2")}</Tagging>`)).toBe("MalformedXML");
    expect(code(`<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value><Extra/></Tag></TagSet></Tagging>`)).toBe("MalformedXML");
    expect(code(`<Tagging><TagSet>${tag("a", "1")}</TagSet><TagSet>${tag("b", "2")}</TagSet></Tagging>`)).toBe("MalformedXML");
  });
});

describe("objectSettingsProblem: the x-amz-tagging header", () => {
  const headerCode = (tagging: string, copy = false) => objectSettingsProblem(new Headers({ "x-amz-tagging": tagging, ...(copy ? { "x-amz-tagging-directive": "REPLACE" } : {}) }), copy)?.code ?? "ok";
  test("not a query of distinct, non-empty names, each pair with one = at most: InvalidArgument, as S3 refuses the header whole (a key twice was InvalidTag)", () => {
    for (const h of ["a=1&a=2", "a=&a=", "a&a", "=", "=v", "TagSet=[{Key=k,Value=v}]", "a=b=c", "a=%E9"]) {
      expect([h, headerCode(h), headerCode(h, true)]).toEqual([h, "InvalidArgument", "InvalidArgument"]);
    }
  });
  test("what S3 takes: a name without a value, empty pairs, spaces and + in values; tags S3 refuses one by one stay InvalidTag", () => {
    for (const h of ["key", "&", "&&", "key=", "key1&key2", "key1=val1&key2", "a=b%20c&d=e+f", "a=b%3Dc"]) expect([h, headerCode(h)]).toEqual([h, "ok"]);
    for (const h of ["aws%3Ax=1", "a=%26", "k=" + "v".repeat(257)]) expect([h, headerCode(h)]).toEqual([h, "InvalidTag"]);
  });
});
