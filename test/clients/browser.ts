/**
 * Debian's chromium (/usr/bin/chromium), headless, driven by playwright-core.
 *
 *   await using b = await launchBrowser();
 *   await b.page.goto(url);
 *   expect(await b.page.textContent("h1")).toBe("...");
 *
 * The machine has no internet: the flags below keep Chromium from phoning home (QUIC,
 * background networking, component updates, sync). playwright-core adds most of them too,
 * and gives every launch a fresh, empty profile directory of its own (it refuses a
 * --user-data-dir argument for a non-persistent launch), removed when the browser closes.
 * No browser is downloaded: playwright-core only drives the executable we name.
 */
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from "playwright-core";
import { isolatedEnv, requireBinary, tempDir } from "./run.ts";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
] as const;

export interface BrowserSession extends AsyncDisposable {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console messages of type "error" and uncaught page errors, in order (for assertions). */
  errors: string[];
  /** Closes the browser and removes its HOME. Idempotent. */
  close(): Promise<void>;
  /** A page in a fresh context of this browser (its own cache, cookies and errors), for tests sharing one browser. */
  openPage(opts?: BrowserContextOptions): Promise<BrowserPage>;
}

/** A page of its own context; disposing it closes the context, not the browser. */
export interface BrowserPage extends AsyncDisposable {
  context: BrowserContext;
  page: Page;
  errors: string[];
}

async function pageIn(browser: Browser, opts?: BrowserContextOptions): Promise<BrowserPage> {
  const context = await browser.newContext(opts);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  return { context, page, errors, [Symbol.asyncDispose]: () => context.close().catch(() => {}) };
}

export interface LaunchOptions {
  context?: BrowserContextOptions;
  /** Launch timeout. Default 30 000 ms (a loaded 2-core machine starts Chromium slowly). */
  timeoutMs?: number;
}

export async function launchBrowser(opts: LaunchOptions = {}): Promise<BrowserSession> {
  const executablePath = requireBinary("chromium");
  const home = tempDir("yata-chromium-");
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: [...CHROMIUM_FLAGS],
      // HOME in a temp dir: nothing from the developer's ~/.config/chromium is read
      env: isolatedEnv(home.path),
      timeout: opts.timeoutMs ?? 30_000,
    });
  } catch (e) {
    home.remove();
    throw e;
  }
  const { context, page, errors } = await pageIn(browser, opts.context);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await browser.close().catch(() => {});
    home.remove();
  };
  return { browser, context, page, errors, close, openPage: (o) => pageIn(browser, o), [Symbol.asyncDispose]: close };
}
