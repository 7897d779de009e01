/**
 * What a listener really sent for an answer of known size (a cache hit from memory or a disk file,
 * a buffered object), for the access log and metrics. Such a body is not metered as it streams
 * (src/proxy/deliver.ts), so without a report its line said 200 with the full size, whatever the
 * client got: a client that left after 100 KiB of a 32 MiB hit, or a file that could not be opened
 * (503) or read to its end. The node engine's writer knows, and reports it here; Bun.serve sends
 * such a body itself and tells nothing of it.
 */
const REPORTS: unique symbol = Symbol("yatagarasu.writerReports");
const ON_SENT: unique symbol = Symbol("yatagarasu.onSent");

export interface Delivered {
  /** The status line sent (the answer's, or the error answer that replaced it before its head). */
  status: number;
  /** Body bytes handed to the socket. */
  bytes: number;
  /** The answer was not sent whole: the code it is logged with (ClientClosedRequest, a replacing error's code...). */
  error?: string;
  /** True when `error` replaced the answer before its head went out (then it is an error answer, not a cut body). */
  replaced?: boolean;
}

interface Marks {
  [REPORTS]?: true;
  [ON_SENT]?: (d: Delivered | undefined) => void;
}

/** A request whose listener reports what it sent (the node engine's). */
export function markWriterReports(req: Request): void {
  (req as Request & Marks)[REPORTS] = true;
}

export function writerReports(req: Request): boolean {
  return (req as Request & Marks)[REPORTS] === true;
}

/**
 * `fn` runs once, when the listener has sent `res` (or failed to); before that with `undefined`
 * when the listener holds `res` back for the client (reportHeld).
 */
export function onSent(res: Response, fn: (d: Delivered | undefined) => void): void {
  (res as Response & Marks)[ON_SENT] = fn;
}

export function reportSent(res: Response, d: Delivered): void {
  const m = res as Response & Marks;
  const fn = m[ON_SENT];
  if (fn === undefined) return;
  m[ON_SENT] = undefined;
  fn(d);
}

/**
 * The listener holds `res` back while it reads and drops the client's refused body (up to 5 s,
 * src/server/refused-body.ts): the request's admission slots are given back now, its access line
 * still written when `res` is sent. Held, they let clients that send nothing past a refused
 * upload's first bytes take every request slot without credentials.
 */
export function reportHeld(res: Response): void {
  (res as Response & Marks)[ON_SENT]?.(undefined);
}
