/**
 * A directory index for people: HTML for browsers (breadcrumbs, folders first, human-readable
 * sizes, dates, a link to the next page), JSON for everything else. Every key is escaped for the
 * context it lands in (HTML text, attribute, URL path), so a key named `<script>` renders as text.
 */
import type { ListingPage } from "./parse.ts";

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

// Characters that change how the text around them is ordered on screen (the bidi embeddings,
// overrides and isolates, and the invisible direction marks): `invoice\u202Efdp.exe` shows as
// "invoiceexe.pdf". And characters that show as nothing at all (soft hyphen, zero-width space,
// word joiner and the invisible operators, BOM, the Hangul fillers, ...: Unicode's default
// ignorables, less the joiners and variation selectors that emoji and scripts need): with them
// one writer's `\u200Bhello.txt` showed exactly as `hello.txt`, beside it, linking elsewhere.
// A name shown in the page has them as visible code points instead. Beyond the BMP: the shorthand
// format controls, the musical format characters, and the tag characters (U+E0000-E0FFF less the
// variation selectors supplement), except a tag sequence after U+1F3F4 (a subdivision flag, 🏴 +
// tags + cancel tag): a tag alone is invisible too.
const BIDI_CONTROLS =
  /[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\u{1bca0}-\u{1bca3}\u{1d173}-\u{1d17a}\u{e0000}-\u{e001f}\u{e0080}-\u{e00ff}\u{e01f0}-\u{e0fff}]|(?<!\u{1f3f4}[\u{e0020}-\u{e007e}]*)[\u{e0020}-\u{e007f}]/gu;

// Spaces no one can tell apart, as --check tells of a path_prefix: a plain space at either end of a
// name shows as nothing (`report.pdf ` beside `report.pdf`), and the no-break, typographic and
// ideographic spaces and the line and paragraph separators look like a plain one (`a\u00A0b.txt`
// beside `a b.txt`). (Runs of plain spaces inside a name are kept on the page: white-space: pre-wrap.)
const UNSEEN_SPACES = /^ | $|[\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g;

// Control characters (C0, DEL, C1): a tab or a line break in a name shows as white space, the
// others as nothing; on the page each is its code point.
const CONTROLS = /[\x00-\x1f\x7f-\x9f]/g;

const codePoint = (c: string) => `<span class="ctl">⟨U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}⟩</span>`;

// Text Unicode holds equal written two ways: `cafe\u0301.txt` (e and a combining acute, as macOS
// writes file names) showed exactly as `café.txt` (é) beside it, linking elsewhere; so did the
// Angstrom sign and Å, a Hangul syllable and its jamo, `<` with a combining slash and `≮`. In a
// name not in NFC (the composed form nearly all text is in), each character a composed form would
// merge or replace shows as its code point: `cafe⟨U+0301⟩.txt`, `⟨U+212B⟩.txt`. Escaped here,
// segment by segment: escaped first, `<\u0338` became `&lt;\u0338`, which is in NFC, and still
// showed as `≮`. (A name in NFC, nearly every one, is only escaped: not segmented.)
const GRAPHEMES = new Intl.Segmenter("en", { granularity: "grapheme" });
/**
 * Short graphemes of names not in NFC as shown: a page of such names repeats the same few, each
 * checked once (~340 normalizations for a 1 KB key made a page of 1000 such keys take 0.7-1 s; the
 * zero-width spaces' page takes ~0.2 s). At most 4096 graphemes of at most 8 UTF-16 units (~2 MiB
 * of HTML at most), cleared when full.
 */
const SHOWN_GRAPHEMES = new Map<string, string>();
const MAX_SHOWN_GRAPHEMES = 4096;
const MAX_CACHED_GRAPHEME = 8;
function shownGrapheme(g: string): string {
  let shown = SHOWN_GRAPHEMES.get(g);
  if (shown !== undefined) return shown;
  if (g.normalize("NFC") === g) shown = escapeHtml(g);
  else {
    const [first, ...rest] = g;
    shown = first!.normalize("NFC") === first ? escapeHtml(first!) : codePoint(first!);
    for (const c of rest) shown += codePoint(c);
  }
  if (g.length <= MAX_CACHED_GRAPHEME) {
    if (SHOWN_GRAPHEMES.size >= MAX_SHOWN_GRAPHEMES) SHOWN_GRAPHEMES.clear();
    SHOWN_GRAPHEMES.set(g, shown);
  }
  return shown;
}
function escapeUncomposed(s: string): string {
  if (s.normalize("NFC") === s) return escapeHtml(s);
  let out = "";
  for (const { segment } of GRAPHEMES.segment(s)) out += shownGrapheme(segment);
  return out;
}

/** A key name as page text: HTML-escaped, and every control, bidi control, invisible character, unseen space or uncomposed character shown as its code point (`⟨U+202E⟩`), never applied. */
export function displayName(s: string): string {
  return escapeUncomposed(s).replace(UNSEEN_SPACES, codePoint).replace(BIDI_CONTROLS, codePoint).replace(CONTROLS, codePoint);
}

/** The folder path (`bucket/dir/`) as displayName shows it, in plain text (a <title> holds no markup: the code points without their spans), segment by segment as the breadcrumbs show it. */
const CTL_SPAN = /<span class="ctl">(⟨U\+[0-9A-F]+⟩)<\/span>/g;
function displayPathText(path: string): string {
  return path.split("/").map((segment) => displayName(segment).replace(CTL_SPAN, "$1")).join("/");
}

/** A URL path segment-wise encoded (so `#`, `?`, `%` and spaces in keys stay part of the path). */
export function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

/**
 * Whether the plain front serves a key: it refuses paths with a NUL character and with `.` or
 * `..` segments (router.ts, raw-target.ts), which S3 keys may hold (stored through the S3 front),
 * and reads an empty segment (a leading "/", or "//") as none, since routing collapses slashes (a
 * folder `docs//` linked back to `docs/`; under a bucket at "/", `//` named no host at all).
 * Nor does it serve a key whose path another route takes (RenderInput.routesHere).
 * Such entries are listed without a link (HTML) or with `"served": false` (JSON), never with a
 * link that can only fail (a browser resolves `/files/..` to `/`, another page altogether).
 */
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;
function servable(input: RenderInput, key: string): boolean {
  if (key.includes("\0") || DOT_SEGMENT.test(key) || key.charCodeAt(0) === 47 || key.includes("//")) return false;
  return input.routesHere === undefined || input.routesHere(`${input.mount}/${key}`);
}

export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes / 1024;
  let i = 0;
  // (compared as shown: 1,048,575 bytes read "1024 KiB", and 10,239 "10.0 KiB")
  while (Math.round(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 9.95 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export interface RenderInput {
  page: ListingPage;
  /** The bucket's path prefix on the plain front ("/products", or "" for a bucket at "/"). */
  mount: string;
  bucket: string;
  /**
   * A raw `name=value` query pair every generated link carries: the token of a client that
   * authenticated with a query parameter (jwt.token_sources type query), so that its next page,
   * sub-folders and downloads are authorized as this page was.
   */
  carry?: string;
  /**
   * Whether the path a link would name reaches this bucket's key (serve.ts asks the router): under
   * a bucket at "/", a key `health` linked to the proxy's /health, and a key `files/a.txt` to the
   * bucket mounted at /files. Absent: every path does.
   */
  routesHere?: (path: string) => boolean;
}

/** `path` (already encoded) with the carried query pair, if any. */
function link(input: RenderInput, path: string, query = ""): string {
  const q = input.carry === undefined ? query : query === "" ? input.carry : `${query}&${input.carry}`;
  return q === "" ? path : `${path}?${q}`;
}

/** The link to the next page of the same folder. */
function nextHref(input: RenderInput): string | undefined {
  const t = input.page.nextToken;
  return t === undefined ? undefined : link(input, encodePath(`${input.mount}/${input.page.prefix}`), `continuation-token=${encodeURIComponent(t)}`);
}

export function renderJson(input: RenderInput): string {
  const { page } = input;
  return JSON.stringify({
    bucket: input.bucket,
    prefix: page.prefix,
    entries: page.entries.map((e) => {
      const entry: Record<string, unknown> = e.folder ? { name: e.name, type: "folder" } : { name: e.name, type: "object", size: e.size, last_modified: e.lastModified };
      if (!servable(input, e.key)) entry.served = false; // (a NUL, dot segments, another route: see servable)
      return entry;
    }),
    next: nextHref(input) ?? null,
  });
}

export function renderHtml(input: RenderInput): string {
  const { page, mount } = input;
  const crumbs: string[] = [`<a href="${escapeHtml(link(input, encodePath(`${mount}/`)))}">${escapeHtml(input.bucket)}</a>`];
  let acc = "";
  for (const part of page.prefix.split("/").filter((p) => p !== "")) {
    acc += `${part}/`;
    crumbs.push(`<a href="${escapeHtml(link(input, encodePath(`${mount}/${acc}`)))}">${displayName(part)}</a>`);
  }
  const rows = page.entries.map((e) => {
    const href = escapeHtml(link(input, encodePath(`${mount}/${e.key}`)));
    const name = displayName(e.name);
    const cls = e.folder ? "folder" : "object";
    const size = e.folder ? "—" : `<span title="${e.size} bytes">${escapeHtml(humanSize(e.size))}</span>`;
    const date = e.lastModified ? `<time datetime="${escapeHtml(e.lastModified)}">${escapeHtml(e.lastModified.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC"))}</time>` : "";
    const cell = servable(input, e.key) ? `<a href="${href}"${e.folder ? "" : " download"}>${name}</a>` : `<span class="unserved" title="not served on this front: the name has a NUL character or a . or .. segment, or its path belongs to another bucket or to the proxy (the S3 API serves it)">${name}</span>`;
    return `<tr class="${cls}"><td>${cell}</td><td>${size}</td><td>${date}</td></tr>`;
  });
  // (a page can hold no entry and still have a next one: a folder's marker object, `dir/` itself,
  // filled a page of max_keys: 1, and it is no entry of its own folder)
  const next = nextHref(input);
  // (as the names and breadcrumbs show it: `cafe\u0301/` and `café/` had the same title; a control
  // was U+FFFD there, or, outside the bidi ones, applied)
  const title = displayPathText(`${input.bucket}/${page.prefix}`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of ${title}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;min-width:40em}td,th{padding:.25em 1em .25em 0;text-align:left}tr.folder td:first-child a{font-weight:600}nav{margin-bottom:1em}td:first-child,nav{white-space:pre-wrap;overflow-wrap:anywhere}.ctl{color:#b00;font-size:.85em}</style>
</head><body>
<nav aria-label="breadcrumbs">${crumbs.join(" / ")} /</nav>
<table><thead><tr><th>Name</th><th>Size</th><th>Last modified</th></tr></thead>
<tbody>
${rows.length > 0 ? rows.join("\n") : `<tr><td colspan="3">${next ? "Nothing on this page: the folder continues on the next page." : "This folder is empty."}</td></tr>`}
</tbody></table>
${next ? `<p><a rel="next" id="next" href="${escapeHtml(next)}">Next page</a></p>` : ""}
</body></html>
`;
}
