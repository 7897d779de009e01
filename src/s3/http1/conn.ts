/**
 * One socket (connecting, in use, or idle) and the one handler object shared by every socket:
 * per-socket state lives in `socket.data` (a Conn), so no closure is made per connection.
 */
import type { Socket, SocketHandler } from "bun";
import type { Exchange } from "./exchange.ts";
import type { Http1Pool } from "./pool.ts";

export class Conn {
  /** Null until the TCP connection is established. */
  socket: Socket<Conn> | null = null;
  req: Exchange | null = null;
  closed = false;
  idle = false;
  reused = false;
  idleSince = 0;
  /** Its connect: 0 over (or never started), 1 under way, 2 given up on while still pending (pool.ts counts them). */
  connectState = 0;
  constructor(readonly pool: Http1Pool) {}

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.idle) this.pool.removeIdle(this);
    // terminate() calls the close handler synchronously; `closed` makes it a no-op.
    this.socket?.terminate();
  }
}

export const handlers: SocketHandler<Conn, "buffer"> = {
  binaryType: "buffer",
  open(socket) {
    const conn = socket.data;
    conn.socket = socket;
    if (conn.closed || conn.req === null) {
      // abandoned while connecting (timeout, abort, pool closed)
      conn.closed = true;
      socket.terminate();
      return;
    }
    socket.setNoDelay(true);
    conn.pool.send(conn, conn.req);
  },
  data(socket, data) {
    socket.data.pool.onData(socket.data, data);
  },
  drain(socket) {
    const conn = socket.data;
    const req = conn.req;
    if (req === null || req.pending === null || conn.closed) return;
    const n = socket.write(req.pending);
    if (n < 0) return; // closing; the close handler deals with it
    req.pending = n < req.pending.length ? req.pending.subarray(n) : null;
    if (req.pending === null) req.writer?.drained();
  },
  close(socket, err) {
    socket.data.pool.onClose(socket.data, err);
  },
  error(socket, err) {
    socket.data.pool.onClose(socket.data, err);
  },
  connectError(socket, err) {
    socket.data.pool.onConnectError(socket.data, err);
  },
};
