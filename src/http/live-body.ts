/**
 * A response whose body must reach the client as it is produced, never held back to learn its
 * length: S3's long-operation answer (src/fronts/s3/patient.ts), whose spaces exist only to show
 * the client that the connection is alive. The node engine buffers a generated body of unknown
 * length (up to 64 KiB) to give it a Content-Length; it streams a marked one at once.
 */
const LIVE: unique symbol = Symbol("yatagarasu.liveBody");

export function markLiveBody(res: Response): Response {
  (res as Response & { [LIVE]?: true })[LIVE] = true;
  return res;
}

export function isLiveBody(res: Response): boolean {
  return (res as Response & { [LIVE]?: true })[LIVE] === true;
}
