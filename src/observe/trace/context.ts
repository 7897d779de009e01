/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing `traceparent`/`tracestate`
 * strictly, and fresh trace and span ids.
 *
 * A header that breaks any rule is ignored as a whole (the request starts a new trace), as the
 * spec asks: a half-trusted parent would put our spans under someone else's made-up ids.
 * A valid traceparent with an invalid tracestate keeps the traceparent and drops the tracestate.
 */

export interface RemoteParent {
  traceId: string;
  spanId: string;
  sampled: boolean;
  /** The vendor state to pass on unchanged; undefined when absent or invalid. */
  traceState: string | undefined;
}

const HEX2 = /^[0-9a-f]{2}$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const ZERO_TRACE = "00000000000000000000000000000000";
const ZERO_SPAN = "0000000000000000";

/**
 * `version-traceid-parentid-flags`, lower-case hex only. Version 00 is exactly 55 characters;
 * a later version may append fields after a "-" (read as version 00, as the spec says); version
 * ff is invalid. All-zero ids are invalid. Two traceparent headers arrive joined by ", " and
 * fail the length check: ignored, as the spec asks for a repeated header.
 */
export function parseTraceparent(value: string | null): { traceId: string; spanId: string; sampled: boolean } | undefined {
  if (value === null || value.length < 55) return undefined;
  const version = value.slice(0, 2);
  if (!HEX2.test(version) || version === "ff") return undefined;
  if (version === "00" ? value.length !== 55 : value.length > 55 && value[55] !== "-") return undefined;
  if (value[2] !== "-" || value[35] !== "-" || value[52] !== "-") return undefined;
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  if (!TRACE_ID.test(traceId) || traceId === ZERO_TRACE) return undefined;
  if (!SPAN_ID.test(spanId) || spanId === ZERO_SPAN) return undefined;
  if (!HEX2.test(flags)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

// tracestate list-member keys: simple (`vendor`) or multi-tenant (`tenant@vendor`).
const KEY = /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
// Values: printable ASCII except "," and "=", not ending in a space, at most 256 characters.
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
/**
 * We pass on at most this much (the spec's minimum a vendor should propagate): a longer valid state
 * is truncated as the spec asks, members longer than TRACESTATE_LARGE_MEMBER first, then members
 * from the end.
 */
const MAX_TRACESTATE = 512;
const TRACESTATE_LARGE_MEMBER = 128;

/**
 * A valid tracestate (at most 32 members, unique keys, each `key=value`), truncated to
 * MAX_TRACESTATE characters; undefined when invalid or absent. (A valid state longer than 512
 * characters was dropped whole: one large vendor entry cost every other vendor its state.)
 */
export function parseTracestate(value: string | null): string | undefined {
  if (value === null) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of value.split(",")) {
    const m = raw.trim(); // optional white space around members; empty members are allowed
    if (m === "") continue;
    const eq = m.indexOf("=");
    if (eq <= 0) return undefined;
    const key = m.slice(0, eq);
    if (!KEY.test(key) || !VALUE.test(m.slice(eq + 1)) || keys.has(key)) return undefined;
    keys.add(key);
    members.push(m);
  }
  if (members.length === 0 || members.length > 32) return undefined;
  let length = members.length - 1;
  for (const m of members) length += m.length;
  while (length > MAX_TRACESTATE) {
    let drop = -1;
    for (let i = members.length - 1; i >= 0 && drop < 0; i--) if (members[i].length > TRACESTATE_LARGE_MEMBER) drop = i;
    if (drop < 0) drop = members.length - 1;
    length -= members[drop].length + 1;
    members.splice(drop, 1);
  }
  return members.length === 0 ? undefined : members.join(",");
}

/** The client's trace context, or undefined (absent or invalid: the request starts a new trace). */
export function remoteParent(headers: Headers): RemoteParent | undefined {
  const tp = parseTraceparent(headers.get("traceparent"));
  if (tp === undefined) return undefined;
  return { traceId: tp.traceId, spanId: tp.spanId, sampled: tp.sampled, traceState: parseTracestate(headers.get("tracestate")) };
}

// Ids come from a pool of random bytes refilled 4 KiB at a time: one getRandomValues call per
// ~170 requests instead of one per id.
const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, "0"));
const pool = new Uint8Array(4096);
let pos = pool.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (pos + bytes > pool.length) {
      crypto.getRandomValues(pool);
      pos = 0;
    }
    let s = "";
    let any = 0;
    for (let i = 0; i < bytes; i++) {
      const b = pool[pos++];
      any |= b;
      s += HEX[b];
    }
    if (any !== 0) return s; // all-zero ids are invalid
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

/** `00-<trace>-<span>-<flags>`. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`;
}
