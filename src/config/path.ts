/** YAML paths as config errors name them: `buckets[1].s3.region` ("" for the document root). */
export type PathSegment = string | number;

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}
