/**
 * S3's answer to an operation that may work for minutes (CopyObject and UploadPartCopy of large
 * objects, streamed or server-side; CompleteMultipartUpload of many parts): when the answer is
 * not ready within a few seconds, the 200 head goes out with the XML declaration, then a space
 * every few seconds while the operation works, then its result document, or the <Error> document
 * of its failure. S3 does exactly this and documents it ("a 200 OK response can contain either a
 * success or an error"); the AWS SDKs, aws-cli and rclone read such an error as the error it is.
 *
 * Without it, a long copy was cut: Bun.serve closes a connection that has seen no byte for its
 * idleTimeout (60 s: a handler still working does not count), and clients give up on a silent
 * socket (botocore's read timeout is 60 s).
 *
 * Once the head is out, the answer's own headers (x-amz-version-id, ...) cannot follow: only its
 * document does. The access log keeps status 200 (what the client got) and the error's code.
 */
import type { RequestContext } from "../../proxy/context.ts";
import { finish } from "../../proxy/deliver.ts";
import { markLiveBody } from "../../http/live-body.ts";
import { XML_DECL } from "./xml.ts";

/**
 * How long the answer may take before the 200 head goes out, and then between two spaces (ms):
 * 10 s, well inside Bun.serve's 60 s idle timeout and botocore's read timeout, and at most half
 * of server.request_timeout (whose 504 would come first otherwise). Tests shorten it.
 */
function intervalMs(ctx: RequestContext): number {
  const v = Number(process.env.YATAGARASU_S3_KEEPALIVE_MS);
  const base = Number.isFinite(v) && v >= 10 ? v : 10_000;
  return Math.max(10, Math.min(base, (ctx.rt.config.server.request_timeout * 1000) / 2));
}

const encoder = new TextEncoder();

/**
 * `work`'s answer, or, when it is not ready within the interval (and the request's body is not
 * still being read: only an operation's own wait counts), S3's 200 with spaces until it is.
 * `render` turns a failure into the front's error response (the runner's `failed`).
 */
export function patiently(ctx: RequestContext, work: Promise<Response>, render: (thrown: unknown) => Response): Promise<Response> {
  const ms = intervalMs(ctx);
  return new Promise<Response>((resolve, reject) => {
    let done = false;
    let late = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      timer = setTimeout(() => {
        if (done) return;
        if (ctx.readingBody || ctx.req.signal.aborted) return arm();
        late = true;
        resolve(lateAnswer(ctx, work, render, ms));
      }, ms);
    };
    arm();
    work.then(
      (res) => {
        done = true;
        clearTimeout(timer);
        if (!late) resolve(res);
      },
      (err) => {
        done = true;
        clearTimeout(timer);
        if (!late) reject(err);
      },
    );
  });
}

/** The 200 whose body is the XML declaration, a space per interval, then `work`'s document. */
function lateAnswer(ctx: RequestContext, work: Promise<Response>, render: (thrown: unknown) => Response, ms: number): Response {
  ctx.streaming = true;
  ctx.declaredBytes = -1;
  let ticker: ReturnType<typeof setInterval> | undefined;
  let open = true;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      const push = (s: string) => {
        if (!open) return;
        const b = encoder.encode(s);
        ctx.bytes += b.byteLength;
        c.enqueue(b);
      };
      push(XML_DECL);
      ticker = setInterval(() => push(" "), ms);
      const end = async (answer: Response) => {
        clearInterval(ticker);
        if (!open) return;
        const doc = await answer.text().catch(() => "");
        if (!open) return; // (the client went away meanwhile: the stream is cancelled)
        push(doc.startsWith(XML_DECL) ? doc.slice(XML_DECL.length) : doc.replace(/^<\?xml[^>]*\?>\s*/, ""));
        open = false;
        c.close();
        finish(ctx);
      };
      work.then(end, (err) => {
        // (the runner's renderer records the error for the log, and counts only its own document)
        const sent = ctx.bytes;
        const answer = render(err);
        ctx.streaming = true;
        ctx.bytes = sent;
        return end(answer);
      });
    },
    cancel() {
      // The client went away: the operation is cut by its signal (the request's).
      open = false;
      clearInterval(ticker);
      ctx.bodyError = "ClientClosedRequest";
      finish(ctx);
    },
  });
  return markLiveBody(new Response(body, { status: 200, headers: { "content-type": "application/xml" } }));
}
