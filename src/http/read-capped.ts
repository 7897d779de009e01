/**
 * Reading a small body whole, with a cap: upstream XML answers (listings, Complete/Copy results,
 * errors) and small request bodies (STS forms). One place, so every such read is bounded the same
 * way whether or not the other side sent a Content-Length.
 */

/**
 * The body of a request or response, if it is at most `max` bytes; undefined when it is longer
 * (declared or seen while reading: the rest is cancelled). Rejects when the body fails.
 */
export async function readCapped(msg: { readonly body: ReadableStream<Uint8Array> | null; readonly headers: Headers }, max: number): Promise<Uint8Array | undefined> {
  const body = msg.body;
  if (body === null) return new Uint8Array(0);
  const declared = msg.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    body.cancel().catch(() => {});
    return undefined;
  }
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks));
}
