/**
 * The main listener's dispatch: the control plane's reserved paths, else the plain front. (The S3
 * front has its own listener, so an S3 request and a plain GET can never be confused.)
 */
import type { App } from "../app.ts";
import { controlFront, isControlTarget } from "../control/index.ts";
import { createHandler, type Handler } from "../proxy/runner.ts";
import { plainFront } from "./plain.ts";

export function createMainHandler(app: App, peerOf?: (req: Request) => string): Handler {
  const plain = createHandler(app, plainFront, peerOf);
  const control = createHandler(app, controlFront, peerOf);
  return (req, peer, rawTarget) => (isControlTarget(rawTarget ?? req.url) ? control(req, peer, rawTarget) : plain(req, peer, rawTarget));
}
