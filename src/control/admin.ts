/**
 * The admin API, on the main listener under /admin. It exists only when `jwt.admin_claims` are
 * configured (otherwise every /admin path is a 404), and every call needs a token that satisfies
 * them (401 without a valid token, 403 when the claims do not hold).
 *
 *   POST /admin/reload                      200 reloaded (every worker), 400 failed (nothing changed),
 *                                           500 partial (worker 0 reloaded, another worker did not)
 *   POST /admin/cache/purge                 everything
 *   POST /admin/cache/purge/{bucket}        one bucket
 *   POST /admin/cache/purge/{bucket}/{key…} one object
 *   GET  /admin/cache/stats
 */
import { readCapped } from "../http/read-capped.ts";
import { workerCount, workerIndex } from "../workers.ts";
import type { App } from "../app.ts";
import { queryTokenNames } from "../auth/sources.ts";
import { ProxyError } from "../errors.ts";
import type { Runtime } from "../runtime.ts";
import { jwtSubject } from "../observe/audit.ts";
import { decodeComponent } from "../util/text.ts";

/** A JSON answer with its Content-Length (the control plane's answers are small documents). */
export function json(status: number, body: unknown): Response {
  const text = JSON.stringify(body);
  return new Response(text, { status, headers: { "content-type": "application/json", "cache-control": "no-store", "content-length": String(Buffer.byteLength(text)) } });
}

/** The most of an admin call's body read to see whether it names anything (`{}` and white space do not). */
const MAX_EMPTY_BODY_BYTES = 64;
/** A body that names nothing: none, white space, or an empty JSON object (`requests.post(url, json={})`, `curl --json '{}'`). */
const NAMES_NOTHING = /^\s*(?:\{\s*\})?\s*$/;

/** Whether the request's body says anything (read up to MAX_EMPTY_BODY_BYTES with readCapped; a longer one does). */
async function hasArgumentBody(req: Request): Promise<boolean> {
  const headers = req.headers;
  const length = headers.get("content-length");
  if (!headers.has("transfer-encoding") && (length === null || length === "0")) return false;
  // (a chunked body may be empty: Node's http.request after flushHeaders(), a stream that ended at once)
  const body = await readCapped(req, MAX_EMPTY_BODY_BYTES);
  return body === undefined || !NAMES_NOTHING.test(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("latin1"));
}

/**
 * A 400 (`detail`) for a request with a body or a query parameter other than a token_sources one:
 * what an admin call does is named by its path alone. A body that names nothing (empty, `{}`) is
 * none: a script's or a client library's habit, refused as an argument it was not.
 */
async function refuseArguments(req: Request, url: URL, sources: Parameters<typeof queryTokenNames>[0], detail: string): Promise<void> {
  const tokenNames = queryTokenNames(sources);
  if ([...url.searchParams.keys()].some((k) => !tokenNames.includes(k)) || (await hasArgumentBody(req))) throw new ProxyError("BadRequest", { detail });
}

/** `who`: told the caller's identity once the token is valid (the access line's subject: who reloaded or purged, or tried to). */
export async function handleAdmin(app: App, rt: Runtime, req: Request, path: string, who?: (subject: string) => void, rawPath = path): Promise<Response> {
  const jwt = rt.config.jwt;
  // Off: said so (an operator following the original README's `curl -X POST …/admin/reload`
  // would otherwise read "No bucket is mapped to this path").
  if (!rt.auth || !jwt?.enabled || jwt.admin_claims.length === 0) {
    throw new ProxyError("NotFound", { detail: "The admin API is off: it needs jwt.enabled and jwt.admin_claims (a reload also follows SIGHUP)" });
  }
  // (the subject is told once the token is valid, before the admin rules: a refused attempt is logged with who made it)
  const url = new URL(req.url);
  await rt.auth.authenticateAdmin(req.headers, url, (claims) => who?.(jwtSubject(claims)));

  const method = req.method;
  const post = () => {
    if (method !== "POST") throw new ProxyError("MethodNotAllowed", { detail: "Use POST", headers: { allow: "POST" } });
  };
  if (path === "/admin/reload") {
    post();
    // (`?dry_run=true`, `?config=/etc/other.yaml`, a config document in the body as some proxies'
    // admin APIs take it: ignored, the file was read and applied, answered 200 "reloaded")
    await refuseArguments(req, url, jwt.token_sources, "A reload takes no query parameters and no body: it reads and applies the config file (to check a config without applying it: yatagarasu --check --config PATH)");
    // With server.workers > 1, every other process reloads too (App.reloadEverywhere asks the
    // process group through the hook main.ts installed; the control plane knows no supervisor),
    // and the answer comes once each has applied it, failed to, or not answered in time:
    // `workers` says which. 200: every worker serves `generation`. 400: the config was refused,
    // nobody changed. 500 "partial": worker 0 (and maybe others) serve `generation`, the workers
    // whose status is not "reloaded" do not (a script must not take the change as applied).
    const r = await app.reloadEverywhere();
    const workers = r.workers ? { workers: r.workers } : undefined;
    if (r.ok) return json(200, { status: "reloaded", generation: r.generation, ...workers });
    if (r.partial) return json(500, { status: "partial", error: r.error, generation: r.generation, ...workers });
    return json(400, { status: "failed", error: r.error, generation: r.generation });
  }
  if (path === "/admin/cache/stats") {
    // (HEAD as GET without the body, as /health, /ready and /metrics answer it: RFC 9110 §9.3.2)
    if (method !== "GET" && method !== "HEAD") throw new ProxyError("MethodNotAllowed", { detail: "Use GET", headers: { allow: "GET, HEAD" } });
    const res = json(200, { ...app.cache.stats(), ...answeredBy(app) });
    return method === "HEAD" ? new Response(null, res) : res;
  }
  if (path === "/admin/cache/purge" || path.startsWith("/admin/cache/purge/")) {
    post();
    const rest = path.slice("/admin/cache/purge".length).replace(/^\//, "");
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const key = slash < 0 ? "" : rest.slice(slash + 1);
    // An empty bucket or key segment as sent (`purge/`, `purge/b/`, `purge/b/%2F`: a script's empty
    // variable) is refused, never widened into a purge of the whole bucket or of everything; so is
    // a bucket segment that decodes to more than a name (`purge/%2Fb` read as bucket b: an empty
    // bucket, then b) or a key that starts with an empty segment (`purge/b/%2Fk`).
    const raw = /^\/admin\/cache\/purge(?:\/([^/]+)(\/.*)?)?$/s.exec(rawPath);
    const rawBucket = raw?.[1] === undefined ? undefined : decodeComponent(raw[1]);
    const rawKey = raw?.[2] === undefined ? undefined : decodeComponent(raw[2].slice(1));
    if (
      raw === null ||
      (raw[1] !== undefined && (bucket === "" || rawBucket !== bucket)) ||
      ((raw[2] !== undefined || slash >= 0) && (key === "" || rawKey !== key))
    ) {
      throw new ProxyError("BadRequest", { detail: "An empty bucket or key in the purge path: POST /admin/cache/purge (everything), /admin/cache/purge/{bucket} or /admin/cache/purge/{bucket}/{key}" });
    }
    // What to purge is named by the path alone: a query (`?prefix=img/`, `?bucket=b&key=k`) or a
    // body (a JSON document naming it) is refused, never ignored: it was a purge of the whole
    // bucket, or of everything. (A token sent as a query parameter, token_sources type query, is fine.)
    await refuseArguments(req, url, jwt.token_sources, "A purge takes no query parameters and no body (there is no purge by prefix): POST /admin/cache/purge (everything), /admin/cache/purge/{bucket} or /admin/cache/purge/{bucket}/{key}");
    if (rest === "") return json(200, { purged: await app.cache.purgeAll(), ...answeredBy(app) });
    const named = rt.buckets.get(bucket);
    if (named === undefined) throw new ProxyError("NotFound", { detail: `No bucket named ${bucket}` });
    if (key === "") return json(200, { purged: await app.cache.purgeBucket(bucket), ...answeredBy(app) });
    // One object is purged wherever it may be cached, as a write through the proxy purges it: in
    // every bucket that reads the same store (an object replaced around the proxy, purged through
    // one bucket, was served on as a HIT through the others). `purged` counts the copies removed.
    const names = named.cacheMates.includes(bucket) ? named.cacheMates : [bucket, ...named.cacheMates];
    return json(200, { purged: await app.cache.purgeObjectIn(names, key), ...answeredBy(app) });
  }
  throw new ProxyError("NotFound", { detail: "No such admin endpoint: POST /admin/reload, POST /admin/cache/purge[/{bucket}[/{key}]], GET /admin/cache/stats" });
}

/**
 * With server.workers > 1, the worker that answered: the cache's stats and a purge's count are
 * its own (a purge reaches every worker before the answer, but another worker's entries are not
 * counted in `purged`). Nothing for a single process.
 */
function answeredBy(app: App): { worker?: number } {
  // (the group's primary is worker 0: its children are told their index, it is not)
  const worker = workerIndex() ?? (workerCount(app.runtime.config) > 1 ? 0 : undefined);
  return worker === undefined ? {} : { worker };
}
