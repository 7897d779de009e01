/**
 * A black-holed TCP port on 127.0.0.1, without root: a listening socket (made through libc, since
 * Bun.listen accepts at once) whose accept queue is full and which never accepts. Linux drops
 * further SYNs while the queue is full, so a connect to the port neither succeeds nor fails: it
 * hangs until the kernel gives up (about two minutes), as toward a firewalled host.
 *
 * Linux only (the libc calls and struct layout); `blackHoleSupported` says whether it can run.
 *
 *   using hole = await blackHole();
 *   // connect to 127.0.0.1:hole.port → no answer
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import type { Socket } from "bun";

export const blackHoleSupported = process.platform === "linux";

const AF_INET = 2;
const SOCK_STREAM = 1;

function libc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}

export interface BlackHole extends Disposable {
  readonly port: number;
  /** Closes the listener and the connections that fill its queue; pending connects then get refused. */
  close(): void;
}

export async function blackHole(): Promise<BlackHole> {
  const lib = libc();
  const fd = lib.symbols.socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw new Error("socket() failed");
  const fillers: Socket[] = [];
  let closed = false;
  const close = () => {
    if (closed) return; // a second close() must not close an fd number reused meanwhile
    closed = true;
    for (const s of fillers) s.terminate();
    lib.symbols.close(fd);
    lib.close();
  };
  try {
    // struct sockaddr_in { u16 family; u16 port (BE); u32 addr (BE); u8 zero[8] }: 127.0.0.1, port 0.
    const addr = new Uint8Array(16);
    const view = new DataView(addr.buffer);
    view.setUint16(0, AF_INET, true);
    view.setUint32(4, 0x7f000001, false);
    if (lib.symbols.bind(fd, ptr(addr), 16) !== 0) throw new Error("bind() failed");
    // Backlog 0: the queue is full once one connection waits in it.
    if (lib.symbols.listen(fd, 0) !== 0) throw new Error("listen() failed");
    const len = new Uint32Array([16]);
    if (lib.symbols.getsockname(fd, ptr(addr), ptr(len)) !== 0) throw new Error("getsockname() failed");
    const port = view.getUint16(2, false);
    // Fill the queue: connect until a connect no longer completes.
    for (let i = 0; i < 8; i++) {
      let opened = false;
      const pending = Bun.connect({ hostname: "127.0.0.1", port, socket: { open: () => void (opened = true), data() {}, error() {}, connectError() {} } });
      // A deadline, not a wait: a loopback connect that has not completed in 300 ms is not going to.
      const done = await Promise.race([pending.then((s) => s), Bun.sleep(300).then(() => null)]);
      if (done === null || !opened) {
        // This connect hangs: the hole is ready. (It is refused once the listener closes.)
        pending.then((s) => s.terminate(), () => {});
        return { port, close, [Symbol.dispose]: close };
      }
      fillers.push(done);
    }
    throw new Error("could not fill the accept queue");
  } catch (err) {
    close();
    throw err;
  }
}
