/**
 * The known name an unknown one is most likely a typo of: config keys (load.ts), enum values,
 * command-line options (cli.ts) and the bucket names a grant names (s3-api.ts). Its own module, so
 * that s3-api.ts (which load.ts reaches through validate.ts) imports it without a cycle.
 */

/**
 * One credential's names: a bucket's `s3` says access_key/secret_key/session_token, the S3 front's
 * credentials access_key_id/secret_access_key, and ~/.aws/credentials (and the SDKs) the aws_ ones.
 * Each is too far from the others for a typo (`access_key_id` in a bucket's s3 got a bare "unknown key").
 */
const CREDENTIAL_NAMES: ReadonlyArray<readonly string[]> = [
  ["access_key", "access_key_id", "aws_access_key_id"],
  ["secret_key", "secret_access_key", "aws_secret_access_key"],
  ["session_token", "aws_session_token"],
];

/**
 * The known key an unknown one is most likely a typo of (case, `-` for `_`, or at most two letters
 * added, dropped, changed or swapped; or another name of the same credential, CREDENTIAL_NAMES), or undefined.
 */
export function likelyKey(key: string, known: readonly string[]): string | undefined {
  if (key.length > 64) return undefined;
  const norm = (k: string) => k.toLowerCase().replace(/-/g, "_");
  const a = norm(key);
  // (camelCase as the SDKs write it: accessKeyId)
  const snake = norm(key.replace(/([a-z0-9])(?=[A-Z])/g, "$1_"));
  const names = CREDENTIAL_NAMES.find((n) => n.includes(snake));
  const named = names && known.find((k) => k !== key && names.includes(k));
  if (named !== undefined) return named;
  let best: string | undefined;
  let bestD = a.length <= 3 ? 1 : 2;
  for (const k of known) {
    const b = norm(k);
    if (Math.abs(a.length - b.length) > bestD) continue;
    // (optimal string alignment distance: a swap of two neighbours is one edit)
    const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        const cost = a[i - 1] === b[j - 1] ? 0 : 1;
        let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
        if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
        d[i]![j] = v;
      }
    }
    const dist = d[a.length]![b.length]!;
    if (dist < bestD || (dist === bestD && best === undefined)) {
      best = k;
      bestD = dist;
    }
  }
  return best;
}
