/**
 * `text` cut to at most `max` UTF-16 units, never between the halves of a surrogate pair (half of
 * one is written as a lone `\ud83d`, which strict JSON readers refuse: the whole line is lost to them).
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const high = text.charCodeAt(max - 1);
  return text.slice(0, high >= 0xd800 && high <= 0xdbff ? max - 1 : max);
}

/**
 * `text` with each lone surrogate as U+FFFD. A JSON string may hold one (`"\ud800"`, as a JWT's sub
 * may): written as it was, JSON.stringify gave it as a `\ud800` escape, which strict JSON readers
 * (RFC 7493, serde_json) refuse, losing the whole access or audit line.
 */
export function wellFormed(text: string): string {
  return text.isWellFormed() ? text : text.toWellFormed();
}

/** `text` whole up to `max` UTF-16 units; longer, cut (cutText) to `max` - 3 and marked with "...". */
export function ellipsized(text: string, max: number): string {
  return text.length > max ? `${cutText(text, max - 3)}...` : text;
}

/** Percent-decodes a path or query component. Undefined on a malformed escape or invalid UTF-8. */
export function decodeComponent(s: string): string | undefined {
  if (s.indexOf("%") < 0) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * A failed fetch's message for a log line or a readiness reason, without the advice Bun gives its
 * own caller ("For more information, pass `verbose: true` in the second argument to fetch()"),
 * which means nothing to an operator.
 */
export function fetchErrorMessage(err: unknown): string {
  const message = (err as Error)?.message ?? String(err);
  return message.replace(/\s*For more information, pass `verbose: true` in the second argument to fetch\(\)\.?/, "");
}

/**
 * A connection's failure as the Redis and JWKS messages say a host name that does not resolve
 * (UNRESOLVED_HOST), for its error code (Bun's `ENOTFOUND` and `DNSException`, getaddrinfo's
 * `EAI_*`), or undefined for any other.
 */
export function unresolvedHost(code: unknown): string | undefined {
  return code === "ENOTFOUND" || code === "DNSException" || (typeof code === "string" && code.startsWith("EAI_")) ? UNRESOLVED_HOST : undefined;
}
const UNRESOLVED_HOST = "the URL's host name does not resolve";

/** The URL without credentials or query, for logs and readiness messages. */
export function urlForLogs(url: string): string {
  const u = URL.parse(url);
  return u === null ? "(invalid url)" : `${u.origin}${u.pathname}`;
}

/** Names a log line or a note lists: at most this many are written, then how many more. */
const LISTED_NAMES = 10;

/**
 * `names` joined with ", " for a note or a log line, the first LISTED_NAMES of them and "… and N
 * more" past that: a config with 900 unused or misnamed buckets wrote all 900 on one line.
 */
export function listed(names: readonly string[], max = LISTED_NAMES): string {
  return names.length <= max ? names.join(", ") : `${names.slice(0, max).join(", ")}, … and ${names.length - max} more`;
}
