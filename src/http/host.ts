/**
 * Whether a Host header value is `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3): a reg-name
 * (letters, digits, `-._~`, RFC 3986's sub-delims but `,`, and %HH), an IPv4 address (a reg-name
 * lexically) or an `[IPv6]` literal (hex digits, `:` and `.`, with an optional `%25` zone of
 * unreserved characters), then optionally `:` and a port of 1 to 5 digits, at most 65535. An empty
 * value is valid (RFC 9112 §3.2: a target without an authority). Refused: a `,` (the listeners join
 * a second Host header with ", "), userinfo (`@`), whitespace, a path, a non-numeric, empty or
 * out-of-range port (`x:abc`, `x:`, `x:99999`), any character outside ASCII.
 *
 * Runs on every request: one pass over the characters, no allocation.
 */

/** Bit 1: a reg-name character (unreserved, sub-delims but ",", "%"). Bit 2: hex digit. Bit 4: unreserved (zone id). */
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  const alnum = /[A-Za-z0-9]/.test(ch);
  const unreserved = alnum || "-._~".includes(ch);
  if (unreserved || "!$&'()*+;=%".includes(ch)) CLASS[c] |= 1;
  if (/[0-9A-Fa-f]/.test(ch)) CLASS[c] |= 2;
  if (unreserved) CLASS[c] |= 4;
}

const isHex = (c: number) => c < 128 && (CLASS[c] & 2) !== 0;

export function validHost(h: string): boolean {
  const n = h.length;
  if (n === 0) return true;
  let i = 0;
  if (h.charCodeAt(0) === 91 /* [ */) {
    // [IPv6] or [IPv6%25zone]
    let colons = 0;
    for (i = 1; i < n; i++) {
      const c = h.charCodeAt(i);
      if (c === 58) colons++;
      else if (c !== 46 && !isHex(c)) break;
    }
    if (colons < 2) return false;
    if (h.charCodeAt(i) === 37 /* % */) {
      if (h.charCodeAt(i + 1) !== 50 || h.charCodeAt(i + 2) !== 53) return false; // "%25"
      const zone = (i += 3);
      for (; i < n; i++) {
        const c = h.charCodeAt(i);
        if (c === 37 && isHex(h.charCodeAt(i + 1)) && isHex(h.charCodeAt(i + 2))) i += 2;
        else if (c >= 128 || (CLASS[c] & 4) === 0) break;
      }
      if (i === zone) return false;
    }
    if (h.charCodeAt(i) !== 93 /* ] */) return false;
    i++;
  } else {
    for (; i < n; i++) {
      const c = h.charCodeAt(i);
      if (c >= 128 || (CLASS[c] & 1) === 0) break;
      if (c === 37 /* %HH */) {
        if (!isHex(h.charCodeAt(i + 1)) || !isHex(h.charCodeAt(i + 2))) return false;
        i += 2;
      }
    }
    if (i === 0) return false; // ":80": a port without a host
  }
  if (i === n) return true;
  if (h.charCodeAt(i) !== 58 /* : */) return false;
  const digits = n - i - 1;
  if (digits < 1 || digits > 5) return false;
  let port = 0;
  for (i++; i < n; i++) {
    const d = h.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    port = port * 10 + d;
  }
  return port <= 65535;
}
