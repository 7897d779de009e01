/**
 * URL-valued config keys (s3.endpoint, jwt.jwks_url, authorization.opa_url,
 * authorization.openfga_endpoint) must not carry credentials in their userinfo
 * (`http://user:pass@host`): the proxy would not use them (S3 signs with access_key/secret_key,
 * OpenFGA takes openfga_api_token) and every place that prints the URL would leak them.
 * Messages name the problem, never the value.
 */
import { z } from "zod";
import { canonicalIp } from "../http/cidr.ts";

/** Whether a URL's host is an IPv6 address written without its brackets (`http://::1:9000`, `redis://:pw@fd00::2:6379`). */
export function unbracketedIpv6(url: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/(?:[^/?#@]*@)?[0-9a-f]*:[0-9a-f]*:/i.test(url);
}

/** A host with an optional port and path but no scheme (`minio:9000`, `127.0.0.1:9000/`, `[::1]:9000`): a URL with its `http://` left out. */
export function schemeless(url: string): boolean {
  return !/^https?:/i.test(url) && /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::\d+)?(?:\/(?!\/)\S*)?$/i.test(url);
}

/** The words a message about a URL without its scheme ends with. */
export const NO_SCHEME = "it has no scheme: write http:// or https:// before the host";

/**
 * A URL-valued key's schema. A value that is not a URL gets `message`, and one whose host is an
 * IPv6 address without its brackets (`http://::1:9000`, which no URL parser reads) is told so:
 * "must be a valid http(s) URL" alone left the reader to guess.
 */
export function urlKey(message?: string, protocol?: RegExp) {
  return z.url({
    protocol,
    error: (iss) => {
      const s = typeof iss.input === "string" ? iss.input : "";
      if (unbracketedIpv6(s)) return `${message ?? "is not a URL"}: an IPv6 host goes in brackets (http://[::1]:9000)`;
      return schemeless(s) ? `${message ?? "is not a URL"}: ${NO_SCHEME}` : message;
    },
  });
}

/** Why a URL's userinfo is refused, with what to use instead; undefined when it has none (or is not a URL). */
export function userinfoProblem(url: string, instead: string): string | undefined {
  const u = URL.parse(url);
  if (u === null) return undefined; // the schema reports invalid URLs
  if (u.username === "" && u.password === "") return undefined;
  return `must not contain a user name or password (user:password@host): ${instead}`;
}

/**
 * Why a URL's host is no host name: empty, or with an empty label (`https://...`, the original
 * README's placeholder for "your endpoint", `http://minio..local`). It parsed, passed --check and
 * every request then failed with ENOTFOUND. A final dot (`minio.`, a fully qualified name) is fine.
 * Undefined when the host is fine (or the value is no URL: the schema says so).
 */
export function emptyLabelHostProblem(url: string): string | undefined {
  const u = URL.parse(url);
  if (u === null) return undefined;
  const host = u.hostname;
  // (not http(s), `minio:9000` among them: the scheme check says what is wrong)
  if (!/^https?:$/.test(u.protocol) || host.startsWith("[")) return undefined;
  const name = host.length > 1 && host.endsWith(".") ? host.slice(0, -1) : host;
  if (name !== "" && !name.split(".").includes("")) return undefined;
  return `its host '${host}' is not a host name (a label between dots is empty: the original README's \`https://...\` is a placeholder): write the real URL in its place`;
}

/** A URL as it may be printed: scheme, host, port and path; never userinfo, query or fragment. */
export function printableUrl(url: string): string {
  const u = URL.parse(url);
  if (u === null) return "(invalid URL)";
  return `${u.protocol}//${u.host}${u.pathname === "/" && !url.endsWith("/") ? "" : u.pathname}`;
}

/** A listener's `scheme://host:port` as a URL writes it: an IPv6 address in brackets (http://[::1]:8080). */
export function listenerUrl(scheme: "http" | "https", address: string, port: number): string {
  return `${scheme}://${address.includes(":") && !address.startsWith("[") ? `[${address}]` : address}:${port}`;
}

/**
 * Whether two listeners on one port collide at bind: the same address, or a wildcard covering the
 * other. `::` takes the port on every address (IPv4 too, dual-stack); `0.0.0.0` on every IPv4
 * address only, so it coexists with a specific IPv6 one (`::1`).
 */
export function bindsClash(a: string, b: string): boolean {
  // One address however written (0:0:0:0:0:0:0:1 is ::1, ::ffff:127.0.0.1 is 127.0.0.1, 0::0 is
  // ::): compared as written, such a pair passed --check and the second bind failed at start.
  // A host name is compared without case or a final dot; `localhost` is the loopback, whichever of
  // 127.0.0.1 and ::1 the system gives first (with 127.0.0.1 it passed --check, and the start failed).
  const strip = (x: string) => canonicalIp(x) ?? x.toLowerCase().replace(/\.$/, "");
  const x = strip(a);
  const y = strip(b);
  if (x === y || x === "::" || y === "::") return true;
  const loopback = (s: string) => s === "localhost" || s === "127.0.0.1" || s === "::1";
  if ((x === "localhost" || y === "localhost") && loopback(x) && loopback(y)) return true;
  const v4 = (s: string) => !s.includes(":");
  return (x === "0.0.0.0" && v4(y)) || (y === "0.0.0.0" && v4(x));
}
