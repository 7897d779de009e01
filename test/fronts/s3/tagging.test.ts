import { describe, expect, test } from "bun:test";
import type { ProxyError } from "../../../src/errors.ts";
import { s3ErrorOf } from "../../../src/fronts/s3/fail.ts";
import { tagsOf } from "../../../src/fronts/s3/tagging.ts";
import { parseXml } from "../../../src/fronts/s3/xml-reader.ts";

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
