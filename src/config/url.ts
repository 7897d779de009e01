/**
 * URL-valued config keys (s3.endpoint, jwt.jwks_url, authorization.opa_url,
 * authorization.openfga_endpoint) must not carry credentials in their userinfo
 * (`http://user:pass@host`): the proxy would not use them (S3 signs with access_key/secret_key,
 * OpenFGA takes openfga_api_token) and every place that prints the URL would leak them.
 * Messages name the problem, never the value.
 */

/** Why a URL's userinfo is refused, with what to use instead; undefined when it has none (or is not a URL). */
export function userinfoProblem(url: string, instead: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined; // the schema reports invalid URLs
  }
  if (u.username === "" && u.password === "") return undefined;
  return `must not contain a user name or password (user:password@host): ${instead}`;
}

/** A URL as it may be printed: scheme, host, port and path; never userinfo, query or fragment. */
export function printableUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === "/" && !url.endsWith("/") ? "" : u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
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
  const strip = (x: string) => (x.startsWith("[") && x.endsWith("]") ? x.slice(1, -1) : x);
  const x = strip(a);
  const y = strip(b);
  if (x === y || x === "::" || y === "::") return true;
  const v4 = (s: string) => !s.includes(":");
  return (x === "0.0.0.0" && v4(y)) || (y === "0.0.0.0" && v4(x));
}
