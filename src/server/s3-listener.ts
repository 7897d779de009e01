/**
 * The S3 front's own listener (s3_api.address:s3_api.port), so an S3 request and a plain GET can
 * never be confused: `/products/a.txt` is a path-prefix route on the main listener and object
 * `a.txt` of bucket `products` here. Same TLS and limits as the main listener, and the same engine
 * unless s3_api.engine says otherwise (node: Content-Length on every streamed GetObject); every
 * request goes through the S3 front's phases (src/fronts/s3/front.ts). Credentials come from the
 * Runtime of the request's generation, so a reload applies to it like to the main listener.
 */
import type { App } from "../app.ts";
import type { Config } from "../config/load.ts";
import type { ProxyError } from "../errors.ts";
import { fromProxyError, s3ErrorResponse } from "../fronts/s3/errors.ts";
import { s3Front } from "../fronts/s3/front.ts";
import { S3_SERVER_ALLOW } from "../fronts/s3/route.ts";
import { createHandler } from "../proxy/runner.ts";
import { listenBun, listenNode, type Listener, type TlsMaterial } from "../server.ts";

export async function listenS3(app: App, cfg: Config, opts: { reusePort?: boolean; baseDir?: string; tls?: TlsMaterial } = {}): Promise<Listener | undefined> {
  const s3 = cfg.s3_api;
  if (!s3?.enabled) return undefined;
  const as = {
    address: s3.address,
    port: s3.port,
    handler: (a: App, peerOf?: (req: Request) => string) => createHandler(a, s3Front, peerOf),
    errorAnswer: (err: ProxyError, requestId: string) => s3ErrorResponse(fromProxyError(err), { requestId }),
    asteriskAllow: () => S3_SERVER_ALLOW,
    front: "s3",
  };
  return (s3.engine ?? cfg.server.engine) === "node" ? listenNode(app, cfg, { reusePort: opts.reusePort, as }) : listenBun(app, cfg, { ...opts, as });
}
