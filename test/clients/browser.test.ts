/**
 * launchBrowser: Debian's chromium, headless, through playwright-core, against pages served
 * by a Bun.serve on port 0 (loopback only; the machine has no internet).
 */
import { expect, setDefaultTimeout } from "bun:test";
import { launchBrowser } from "./browser.ts";
import { clientTest } from "./run.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const PAGES: Record<string, string> = {
  "/": `<!doctype html><title>home</title><h1>Yatagarasu</h1>
<p id="js">no script ran</p>
<a id="next" href="/next?x=1">next</a>
<script>document.getElementById("js").textContent = "script ran: " + (2 + 3);</script>`,
  "/next": `<!doctype html><title>next</title><h1 id="h">second page</h1>
<p id="name"></p>
<script>document.getElementById("name").textContent = new URLSearchParams(location.search).get("x");</script>`,
};

clientTest("chromium")(
  "chromium opens a page from Bun.serve, runs its script, follows a link and fetches cross-origin",
  async () => {
    const seen: string[] = [];
    using site = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        seen.push(url.pathname);
        if (url.pathname === "/favicon.ico") return new Response(null, { status: 204 }); // no console error for it
        const html = PAGES[url.pathname];
        return html ? new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } }) : new Response("nope", { status: 404 });
      },
    });
    // another origin (another port) with CORS, as the browser-upload tests will need
    using api = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        new Response(`hello ${req.headers.get("origin")}`, { headers: { "access-control-allow-origin": req.headers.get("origin") ?? "" } }),
    });

    await using b = await launchBrowser();
    const res = await b.page.goto(`http://127.0.0.1:${site.port}/`);
    expect(res?.status()).toBe(200);
    expect(await b.page.textContent("h1")).toBe("Yatagarasu");
    expect(await b.page.textContent("#js")).toBe("script ran: 5");

    await b.page.click("#next");
    await b.page.waitForURL(/\/next\?x=1$/);
    expect(await b.page.textContent("#h")).toBe("second page");
    expect(await b.page.textContent("#name")).toBe("1");

    const apiUrl = `http://127.0.0.1:${api.port}/`;
    const text = await b.page.evaluate(async (u) => (await fetch(u)).text(), apiUrl);
    expect(text).toBe(`hello http://127.0.0.1:${site.port}`);

    expect(seen).toContain("/");
    expect(seen).toContain("/next");
    expect(b.errors).toEqual([]);
  },
  60_000,
);
