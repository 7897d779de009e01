/**
 * A folder listing in a real browser (Debian's chromium through playwright-core): the proxy in
 * process in front of the S3 fixture. Opens the bucket's root, sees folders first and human sizes,
 * clicks into a folder, goes to the next page, downloads a file (bytes checked), and shows that an
 * object named like markup renders as text: no dialog, no element made from it.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout } from "bun:test";
import { readFile } from "node:fs/promises";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { launchBrowser } from "../clients/browser.ts";
import { clientTest } from "../clients/run.ts";
import { bucketYaml, startInProcess, type InProcessProxy } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const CREDS = { accessKeyId: "AKIAE2EBROWSER", secretAccessKey: "e2e-browser-secret" };
const HOSTILE = "<img src=x onerror=alert(1)>.txt";
const BIG = Uint8Array.from({ length: 2560 }, (_, i) => (i * 7) & 0xff); // 2.5 KiB of every byte value

/**
 * Names that differ only in spaces, or in how Unicode writes the same text (é as one character or
 * as e and a combining accent, as macOS writes names; Å or the Angstrom sign; a Hangul syllable
 * or its jamo; ≮ or < and a combining slash): each pair looked the same on the page.
 */
const LOOKALIKES = [
  "report.pdf", "report.pdf ", " report.pdf", "a b.txt", "a  b.txt", "a\u00a0b.txt", "c\u2009d.txt", "c d.txt", "dir /x", "dir/x",
  "caf\u00e9.txt", "cafe\u0301.txt", "\u00c5.txt", "\u212b.txt", "\ud55c.txt", "\u1112\u1161\u11ab.txt", "\u226e.txt", "<\u0338.txt",
];

/** A name as long as S3 allows, with no space to break at: three 200-character folders and a file. */
const LONG = `${"y".repeat(200)}/${"z".repeat(200)}/${"w".repeat(200)}/${"v".repeat(200)}.txt`;

let s3: S3Fixture;
let px: InProcessProxy;

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "site" }, { name: "look" }, { name: "long" }], credentials: [{ ...CREDS, buckets: ["site", "look", "long"] }] });
  for (const k of LOOKALIKES) await s3.put("look", k, k);
  await s3.put("long", LONG, "long");
  // root, in S3's order: "<img…" < "big.bin" < "folder/" < "small.txt" | "zz/" (page size 4)
  await s3.put("site", HOSTILE, "hostile");
  await s3.put("site", "big.bin", BIG);
  await s3.put("site", "small.txt", "small");
  await s3.put("site", "zz/last.txt", "last");
  for (const n of ["a", "b", "c", "d", "e", "f"]) await s3.put("site", `folder/${n}.txt`, `file ${n}`);
  px = await startInProcess(`server: { address: 127.0.0.1, port: 0 }
buckets:
${bucketYaml({ name: "site", prefix: "/site", bucket: "site", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    listing: { enabled: true, max_keys: 4 }\n" })}${bucketYaml({
    name: "look",
    prefix: "/look",
    bucket: "look",
    endpoint: s3.endpoint,
    key: CREDS.accessKeyId,
    secret: CREDS.secretAccessKey,
    extra: "    listing: { enabled: true }\n",
  })}${bucketYaml({ name: "long", prefix: "/long", bucket: "long", endpoint: s3.endpoint, key: CREDS.accessKeyId, secret: CREDS.secretAccessKey, extra: "    listing: { enabled: true }\n" })}`);
});

afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

clientTest("chromium")(
  "open a folder, folders first with sizes, into a folder, next page, download, a hostile name stays text",
  async () => {
    await using b = await launchBrowser({ context: { acceptDownloads: true } });
    const page = b.page;
    const dialogs: string[] = [];
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    const rows = () =>
      page.$$eval("tbody tr", (trs) => trs.map((tr) => ({ cls: tr.className, name: tr.querySelector("td a")?.textContent ?? "", size: tr.children[1]?.textContent ?? "" })));

    const res = await page.goto(px.url("/site/"));
    expect(res?.status()).toBe(200);
    expect(await page.title()).toBe("Index of site/");
    expect(await rows()).toEqual([
      { cls: "folder", name: "folder/", size: "—" },
      { cls: "object", name: HOSTILE, size: "7 B" },
      { cls: "object", name: "big.bin", size: "2.5 KiB" },
      { cls: "object", name: "small.txt", size: "5 B" },
    ]);
    // the hostile name is text: no <img> was made from it, no script ran
    expect(await page.$$eval("img", (imgs) => imgs.length)).toBe(0);
    expect(dialogs).toEqual([]);

    // download a file: the bytes as stored
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=big.bin")]);
    expect(download.suggestedFilename()).toBe("big.bin");
    const path = await download.path();
    expect(new Uint8Array(await readFile(path!))).toEqual(BIG);

    // the root's second page
    await page.click("#next");
    await page.waitForURL(/\/site\/\?continuation-token=/);
    expect(await rows()).toEqual([{ cls: "folder", name: "zz/", size: "—" }]);
    expect(await page.$("#next")).toBeNull();

    // into a folder, and through its pages
    await page.goto(px.url("/site/"));
    await page.click("text=folder/");
    await page.waitForURL(px.url("/site/folder/"));
    expect(await page.$$eval("nav a", (as) => as.map((a) => a.textContent))).toEqual(["site", "folder"]);
    expect((await rows()).map((r) => r.name)).toEqual(["a.txt", "b.txt", "c.txt", "d.txt"]);
    await page.click("#next");
    await page.waitForURL(/\/site\/folder\/\?continuation-token=/);
    expect((await rows()).map((r) => r.name)).toEqual(["e.txt", "f.txt"]);

    // the breadcrumb leads back to the root
    await page.click("nav a >> text=site");
    await page.waitForURL(px.url("/site/"));
    expect(dialogs).toEqual([]);
    // nothing but the missing favicon may complain (no CSP violation: no script was ever attempted)
    expect(b.errors.filter((e) => !/favicon|404/.test(e))).toEqual([]);
  },
  90_000,
);

clientTest("chromium")(
  "names that differ only in spaces (one at either end, two in a row, a no-break or thin space) or in their Unicode form (composed or not) read differently, and each link opens its own object",
  async () => {
    await using b = await launchBrowser({ context: { acceptDownloads: true } });
    const page = b.page;
    await page.goto(px.url("/look/"));
    // (innerText: the text as laid out, white space collapsed as the page shows it)
    const shown = await page.locator("tbody td:first-child a").allInnerTexts();
    expect(shown.length).toBe(LOOKALIKES.length); // (two of them as the folders "dir /" and "dir/")
    expect(shown.filter((name, i) => shown.indexOf(name) !== i)).toEqual([]);
    expect(shown).toContain("report.pdf⟨U+0020⟩");
    expect(shown).toContain("⟨U+0020⟩report.pdf");
    expect(shown).toContain("a⟨U+00A0⟩b.txt");
    expect(shown).toContain("c⟨U+2009⟩d.txt");
    // the composed forms read as they are, the others with what a composed form would merge shown
    // (in S3's order: by UTF-8 bytes)
    expect(shown.filter((n) => !/^[a-z ⟨]/i.test(n) || n.startsWith("⟨U+212B"))).toEqual(["<⟨U+0338⟩.txt", "\u00c5.txt", "\u1112⟨U+1161⟩⟨U+11AB⟩.txt", "⟨U+212B⟩.txt", "\u226e.txt", "\ud55c.txt"]);
    expect(shown).toContain("caf\u00e9.txt");
    expect(shown).toContain("cafe⟨U+0301⟩.txt");
    const bodies: string[] = [];
    for (const [i, name] of shown.entries()) {
      if (name.endsWith("/")) continue;
      // (the page loaded afresh for each: Chromium lets one page start about ten downloads, then
      // holds the rest as "multiple automatic downloads", whatever clicked them)
      if (i > 0) await page.goto(px.url("/look/"));
      const [download] = await Promise.all([page.waitForEvent("download"), page.locator("tbody td:first-child a").nth(i).click()]);
      bodies.push(await readFile((await download.path())!, "utf8"));
    }
    expect(bodies.sort()).toEqual(LOOKALIKES.filter((k) => !k.includes("/")).sort());
  },
  90_000,
);

clientTest("chromium")(
  "a long name with nothing to break at wraps: the Size and Last modified columns and the breadcrumbs stay on screen (they were pushed ~700 px past a 1280 px window)",
  async () => {
    await using b = await launchBrowser({ context: { viewport: { width: 1280, height: 800 } } });
    const page = b.page;
    const folder = LONG.slice(0, LONG.lastIndexOf("/") + 1);
    for (const path of ["/long/", `/long/${folder}`]) {
      expect((await page.goto(px.url(path)))?.status()).toBe(200);
      expect(await page.$eval("html", (html) => html.scrollWidth <= html.clientWidth)).toBe(true);
      const sizeCell = await page.locator("tbody td:nth-child(2)").last().boundingBox();
      expect(sizeCell!.x + sizeCell!.width).toBeLessThanOrEqual(1280);
    }
    // (and the link still opens the object)
    const text = await page.locator("tbody td:first-child a").first().textContent();
    expect(text).toBe(LONG.slice(folder.length));
  },
  90_000,
);
