import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { parseListing } from "../../../src/fronts/listing/parse.ts";
import { encodePath, escapeHtml, humanSize, renderHtml, renderJson } from "../../../src/fronts/listing/render.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const xml = (inner: string) => `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>${inner}</ListBucketResult>`;

describe("parseListing", () => {
  test("folders first, then objects; names relative to the prefix; next token only when truncated", () => {
    const page = parseListing(
      xml(`<Prefix>docs/</Prefix><KeyCount>3</KeyCount><IsTruncated>true</IsTruncated><NextContinuationToken>tok/+=</NextContinuationToken>
        <Contents><Key>docs/a.txt</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified><Size>1536</Size></Contents>
        <Contents><Key>docs/</Key><Size>0</Size></Contents>
        <CommonPrefixes><Prefix>docs/2024/</Prefix></CommonPrefixes>`),
      "docs/",
    );
    expect(page.entries.map((e) => [e.name, e.folder])).toEqual([["2024/", true], ["a.txt", false]]);
    expect(page.entries[1]).toMatchObject({ key: "docs/a.txt", size: 1536, lastModified: "2026-01-02T03:04:05.000Z" });
    expect(page.nextToken).toBe("tok/+=");
    expect(parseListing(xml(`<IsTruncated>false</IsTruncated>`), "").nextToken).toBeUndefined();
  });

  test("entries outside the requested prefix are never shown", () => {
    const page = parseListing(xml(`<Contents><Key>other/secret.txt</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>other/</Prefix></CommonPrefixes><Contents><Key>docs/ok</Key><Size>1</Size></Contents>`), "docs/");
    expect(page.entries.map((e) => e.key)).toEqual(["docs/ok"]);
  });

  test("url-encoded listings are decoded; entities are decoded", () => {
    const page = parseListing(xml(`<EncodingType>url</EncodingType><Contents><Key>a%20b%2Bc</Key><Size>1</Size></Contents><Contents><Key>x&amp;y</Key><Size>1</Size></Contents>`), "");
    expect(page.entries.map((e) => e.key)).toEqual(["a b+c", "x&y"]);
  });

  test("an entry whose Size or LastModified no S3 could give makes the listing unreadable (as on the S3 front), not 0 bytes or a junk date", () => {
    const entry = (size: string, modified: string) => xml(`<Contents><Key>docs/a.txt</Key><LastModified>${modified}</LastModified><Size>${size}</Size></Contents>`);
    const date = "2025-01-01T00:00:00.000Z";
    for (const [size, modified] of [["many", date], ["-5", date], ["", date], ["1.5", date], ["26", "junk"], ["26", ""]]) {
      expect(() => parseListing(entry(size!, modified!), "docs/")).toThrow();
    }
    expect(parseListing(entry("26", "2025-06-30T23:59:59Z"), "docs/").entries[0]).toMatchObject({ size: 26, lastModified: "2025-06-30T23:59:59Z" });
    expect(parseListing(xml(`<Contents><Key>docs/a.txt</Key></Contents>`), "docs/").entries[0]).toMatchObject({ size: 0, lastModified: "" });
  });

  test("a DOCTYPE (entity expansion) is refused", () => {
    expect(() => parseListing(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ListBucketResult>&a;</ListBucketResult>`, "")).toThrow();
  });
});

describe("render", () => {
  const page = {
    prefix: "a b/",
    entries: [
      { key: "a b/<script>alert(1)</script>/", name: "<script>alert(1)</script>/", folder: true, size: 0, lastModified: "" },
      { key: 'a b/x"y#?.txt', name: 'x"y#?.txt', folder: false, size: 5 * 1024 * 1024, lastModified: "2026-01-02T03:04:05.000Z" },
    ],
    nextToken: "t&<1>",
  };
  test("HTML: hostile key names are text, links are path-encoded, breadcrumbs and next link", () => {
    const html = renderHtml({ page, mount: "/pub", bucket: "pub" });
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;/");
    expect(html).toContain('href="/pub/a%20b/x%22y%23%3F.txt"');
    expect(html).toContain('<a href="/pub/">pub</a> / <a href="/pub/a%20b/">a b</a>');
    expect(html).toContain("5.0 MiB");
    expect(html).toContain('href="/pub/a%20b/?continuation-token=t%26%3C1%3E"');
  });
  test("HTML: bidi controls in a name are shown as code points, never applied (invoice\\u202Efdp.exe showed as invoiceexe.pdf); the link keeps the real name", () => {
    const bidi = { prefix: "r\u2067l/", entries: [{ key: "r\u2067l/invoice\u202efdp.exe", name: "invoice\u202efdp.exe", folder: false, size: 1, lastModified: "" }], nextToken: undefined };
    const html = renderHtml({ page: bidi, mount: "/pub", bucket: "pub" });
    expect(html).not.toMatch(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
    expect(html).toContain('invoice<span class="ctl">⟨U+202E⟩</span>fdp.exe');
    expect(html).toContain('>r<span class="ctl">⟨U+2067⟩</span>l</a>');
    expect(html).toContain('href="/pub/r%E2%81%A7l/invoice%E2%80%AEfdp.exe"');
    // JSON keeps the name exactly (a program reads it, not a person)
    expect(JSON.parse(renderJson({ page: bidi, mount: "/pub", bucket: "pub" })).entries[0].name).toBe("invoice\u202efdp.exe");
  });
  test("HTML: invisible characters show as code points (a zero-width space made a second 'hello.txt')", () => {
    const names = ["\u200bhello.txt", "\u00adhello.txt", "\u2060hello.txt", "\ufeffhello.txt", "\u3164hello.txt"];
    const spoof = { prefix: "", entries: names.map((n) => ({ key: n, name: n, folder: false, size: 1, lastModified: "" })), nextToken: undefined };
    const html = renderHtml({ page: spoof, mount: "/pub", bucket: "pub" });
    for (const n of names) expect(html).toContain(`<span class="ctl">⟨U+${n.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩</span>hello.txt`);
    // beyond the BMP too: tag characters, the musical format characters (they showed as nothing)
    const astral = ["\u{e0020}hello.txt", "\u{e0041}hello.txt", "\u{1d173}hello.txt", "\u{e0001}hello.txt", "\u{1bca0}hello.txt"];
    const astralPage = { prefix: "", entries: astral.map((n) => ({ key: n, name: n, folder: false, size: 1, lastModified: "" })), nextToken: undefined };
    const astralHtml = renderHtml({ page: astralPage, mount: "/pub", bucket: "pub" });
    for (const n of astral) expect(astralHtml).toContain(`<span class="ctl">⟨U+${n.codePointAt(0)!.toString(16).toUpperCase()}⟩</span>hello.txt`);
    expect(astralHtml).not.toMatch(/[\u{e0000}-\u{e0fff}\u{1d173}-\u{1d17a}]/u);
    // a subdivision flag (🏴 + tag letters + cancel tag) and an ideographic variation sequence stay as they are
    const flag = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}";
    const kept = { prefix: "", entries: [flag + ".png", "\u845b\u{e0100}.txt"].map((n) => ({ key: n, name: n, folder: false, size: 1, lastModified: "" })), nextToken: undefined };
    const keptHtml = renderHtml({ page: kept, mount: "/pub", bucket: "pub" });
    expect(keptHtml).toContain(`>${flag}.png</a>`);
    expect(keptHtml).toContain(">\u845b\u{e0100}.txt</a>");
    // joiners stay: emoji sequences and scripts need them
    const emoji = { prefix: "", entries: [{ key: "👩\u200d💻.png", name: "👩\u200d💻.png", folder: false, size: 1, lastModified: "" }], nextToken: undefined };
    expect(renderHtml({ page: emoji, mount: "/pub", bucket: "pub" })).toContain(">👩\u200d💻.png</a>");
  });
  test("HTML: the <title> shows the folder path as the names and breadcrumbs do (cafe\\u0301/ and café/ had the same title; a zero-width space or a tab was applied there)", () => {
    const title = (prefix: string) => /<title>([^<]*)<\/title>/.exec(renderHtml({ page: { prefix, entries: [], nextToken: undefined }, mount: "/pub", bucket: "pub" }))![1];
    expect(title("cafe\u0301/")).toBe("Index of pub/cafe⟨U+0301⟩/");
    expect(title("caf\u00e9/")).toBe("Index of pub/caf\u00e9/");
    expect(title("\u200bhello/a\tb/x /")).toBe("Index of pub/⟨U+200B⟩hello/a⟨U+0009⟩b/x⟨U+0020⟩/");
    expect(title("r\u2067l/<b>/")).toBe("Index of pub/r⟨U+2067⟩l/&lt;b&gt;/");
  });
  test("HTML: a page with no entry but a next page does not say the folder is empty (its marker object filled a page of max_keys: 1)", () => {
    const marker = parseListing(xml(`<Prefix>dir/</Prefix><IsTruncated>true</IsTruncated><NextContinuationToken>t1</NextContinuationToken><Contents><Key>dir/</Key><Size>0</Size></Contents>`), "dir/");
    expect(marker.entries).toEqual([]);
    const html = renderHtml({ page: marker, mount: "/f", bucket: "f" });
    expect(html).not.toContain("This folder is empty.");
    expect(html).toContain('href="/f/dir/?continuation-token=t1"');
    expect(renderHtml({ page: { ...marker, nextToken: undefined }, mount: "/f", bucket: "f" })).toContain("This folder is empty.");
  });
  test("JSON: entries and the next link", () => {
    const j = JSON.parse(renderJson({ page, mount: "/pub", bucket: "pub" }));
    expect(j.entries[0]).toEqual({ name: "<script>alert(1)</script>/", type: "folder" });
    expect(j.entries[1]).toEqual({ name: 'x"y#?.txt', type: "object", size: 5242880, last_modified: "2026-01-02T03:04:05.000Z" });
    expect(j.next).toBe("/pub/a%20b/?continuation-token=t%26%3C1%3E");
  });
  test("a key with control characters is linked (percent-encoded) and shown with each as its code point; one with a NUL (the plain front refuses it) is listed without a link, served: false in JSON", () => {
    const ctl = { prefix: "", entries: [{ key: "a\tb.txt", name: "a\tb.txt", folder: false, size: 1, lastModified: "" }, { key: "k\nx/", name: "k\nx/", folder: true, size: 0, lastModified: "" }, { key: "n\0l.txt", name: "n\0l.txt", folder: false, size: 1, lastModified: "" }, { key: "ok.txt", name: "ok.txt", folder: false, size: 1, lastModified: "" }], nextToken: undefined };
    const html = renderHtml({ page: ctl, mount: "/pub", bucket: "pub" });
    expect(html).toContain('href="/pub/a%09b.txt"');
    expect(html).toContain('href="/pub/k%0Ax/"');
    expect(html).toContain("a<span class=\"ctl\">⟨U+0009⟩</span>b.txt");
    expect(html).toContain("k<span class=\"ctl\">⟨U+000A⟩</span>x/");
    expect(html).not.toMatch(/[\x00-\x08\x0b-\x1f]/);
    expect(html).not.toContain("n%00l.txt");
    expect(html).toContain('<span class="unserved"');
    expect(html).toContain('href="/pub/ok.txt"');
    const j = JSON.parse(renderJson({ page: ctl, mount: "/pub", bucket: "pub" }));
    expect(j.entries.map((e: { served?: boolean }) => e.served)).toEqual([undefined, undefined, false, undefined]);
  });
  test("keys with a . or .. segment (the plain front refuses such paths; a browser would resolve the link to another page) are listed without a link, served: false; '...' and 'a..b' are ordinary names", () => {
    const e = (key: string, folder = false) => ({ key, name: key, folder, size: 1, lastModified: "" });
    const dots = { prefix: "", entries: [e(".."), e("."), e("../", true), e("./x.txt"), e("...", false), e("a..b.txt")], nextToken: undefined };
    const html = renderHtml({ page: dots, mount: "/files", bucket: "files" });
    expect(html).not.toContain('href="/files/.."');
    expect(html).not.toContain('href="/files/."');
    expect(html).not.toContain('href="/files/../"');
    expect(html).toContain('href="/files/..."');
    expect(html).toContain('href="/files/a..b.txt"');
    const j = JSON.parse(renderJson({ page: dots, mount: "/files", bucket: "files" }));
    expect(j.entries.map((x: { served?: boolean }) => x.served)).toEqual([false, false, false, false, undefined, undefined]);
  });
  test("keys with an empty segment (routing collapses slashes: the link would lead elsewhere, or name no host) are listed without a link, served: false", () => {
    const e = (key: string, name: string, folder = true) => ({ key, name, folder, size: 1, lastModified: "" });
    const page = { prefix: "docs/", entries: [e("docs//", "/"), e("docs/a//b.txt", "a//b.txt", false), e("docs/ok/", "ok/")], nextToken: undefined };
    const html = renderHtml({ page, mount: "/f", bucket: "f" });
    expect(html).not.toContain('href="/f/docs//"');
    expect(html).not.toContain("a//b.txt\"");
    expect(html).toContain('href="/f/docs/ok/"');
    const j = JSON.parse(renderJson({ page, mount: "/f", bucket: "f" }));
    expect(j.entries.map((x: { served?: boolean }) => x.served)).toEqual([false, false, undefined]);
    const root = JSON.parse(renderJson({ page: { prefix: "", entries: [e("/", "/")], nextToken: undefined }, mount: "/", bucket: "r" }));
    expect(root.entries[0].served).toBe(false);
  });
  test("helpers", () => {
    expect(humanSize(0)).toBe("0 B");
    expect(humanSize(1023)).toBe("1023 B");
    expect(humanSize(1536)).toBe("1.5 KiB");
    expect(humanSize(20 * 1024 * 1024)).toBe("20 MiB");
    // sizes just under a unit read as the next unit, never "1024 KiB"; and "10 KiB", never "10.0 KiB"
    expect(humanSize(1024 * 1024 - 1)).toBe("1.0 MiB");
    expect(humanSize(1024 * 1024 - 600)).toBe("1023 KiB");
    expect(humanSize(1024 ** 3 - 1)).toBe("1.0 GiB");
    expect(humanSize(10 * 1024 - 1)).toBe("10 KiB");
    expect(humanSize(9.9 * 1024)).toBe("9.9 KiB");
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    expect(encodePath("/a b/c#d")).toBe("/a%20b/c%23d");
  });
});

describe("content negotiation (wantsHtml)", () => {
  test("HTML when text/html is named and preferred; JSON otherwise", async () => {
    const { wantsHtml } = await import("../../../src/fronts/listing/serve.ts");
    const cases: Array<[string | null, boolean]> = [
      ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true], // a browser
      ["text/html", true],
      ["text/*", true],
      ["text/html, application/json", true], // a tie: HTML
      ["application/json, text/html;q=0.1", false], // JSON preferred by q
      ["text/html;q=0.5, */*", false], // */* stands for JSON at 1
      ["text/html;q=0.5, */*;q=0.4", true],
      ["text/html;q=0, application/json", false],
      ["*/*", false], // curl
      ["application/json", false],
      [null, false],
      ["text/html;q=abc", false],
    ];
    for (const [accept, html] of cases) expect([accept, wantsHtml(accept)]).toEqual([accept, html]);
  });
});
