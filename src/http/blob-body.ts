/**
 * A response whose body is a Blob held in memory (a memory-cache hit, or a range of one), marked
 * with that Blob so the node engine's writer can send it in bounded slices (src/server/node-response.ts):
 * the Blob's stream yields large fresh buffers per response, and node:http keeps whatever the
 * socket does not take, so each client that stopped reading held its own copy of the object
 * (100 stalled readers of a 10 MB hit: ~400 MB). Bun.serve sends the Blob itself, shared: the
 * mark is set only once a node listener asked for it, so the bun engine's responses stay as they were.
 */
const BLOB_BODY: unique symbol = Symbol("yatagarasu.blobBody");

interface Marked {
  [BLOB_BODY]?: Blob;
}

let wanted = false;

/** Called by the node engine's listener: from then on, responses built from a Blob say so. */
export function wantBlobBodies(): void {
  wanted = true;
}

/** Whether a node listener reads the mark (else marking is skipped: nothing on the bun engine's path). */
export function blobBodiesWanted(): boolean {
  return wanted;
}

/** Marks `res`, built with `blob` (held in memory) as its body. */
export function markBlobBody(res: Response, blob: Blob): Response {
  (res as Response & Marked)[BLOB_BODY] = blob;
  return res;
}

/** The Blob `res` was built with, when marked (its body stream is then untouched). */
export function blobBodyOf(res: Response): Blob | undefined {
  return (res as Response & Marked)[BLOB_BODY];
}
