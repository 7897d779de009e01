/**
 * Signals that arrive while the process starts, before serve() installs its handlers (the rest of
 * the program loading, the config read and validated: a second or more for a large one, the
 * listeners starting): by default they kill it (SIGHUP 129, SIGTERM 143, with no log line). This
 * module is the entry point's first import, so it runs before any other module loads, and catches
 * them from then on: a SIGHUP is applied once serving (README: "one received while the process
 * starts is applied once it serves"); a SIGTERM/SIGINT/SIGQUIT stops it: at once (exit 0) if
 * nothing is served yet, else as a drain once the handlers are in place. What comes before the
 * runtime runs any JavaScript (its first few tens of milliseconds) cannot be caught. `stopped` ends
 * the start-up wait for Redis (src/cli.ts serve).
 */
let stopNow!: () => void;

export const early = {
  hup: false,
  stop: undefined as NodeJS.Signals | undefined,
  /** Settles once `stop` is set: a start-up wait (Redis) ends early for it. */
  stopped: new Promise<void>((r) => (stopNow = r)),
  handlers: [] as Array<[NodeJS.Signals, () => void]>,
  catch(): void {
    for (const sig of ["SIGHUP", "SIGTERM", "SIGINT", "SIGQUIT"] as const) {
      const h = () => {
        if (sig === "SIGHUP") early.hup = true;
        else {
          early.stop ??= sig;
          stopNow();
        }
      };
      process.on(sig, h);
      early.handlers.push([sig, h]);
    }
    // A worker process: its primary's shutdown message while it starts is a stop too, and so is
    // its primary's going (killed): the disconnect comes once, and serve() would miss it.
    if (process.env.YATAGARASU_WORKER !== undefined && typeof process.send === "function") {
      process.on("message", early.onMessage);
      process.on("disconnect", early.onDisconnect);
    }
  },
  onMessage(m: unknown): void {
    const msg = m as { type?: string; signal?: string } | null;
    if (msg?.type !== "shutdown") return;
    early.stop ??= msg.signal === "SIGINT" || msg.signal === "SIGQUIT" ? msg.signal : "SIGTERM";
    stopNow();
  },
  onDisconnect(): void {
    early.stop ??= "SIGTERM";
    stopNow();
  },
  /** serve() installs its own handlers (or main() runs --check / --healthcheck). */
  release(): void {
    for (const [sig, h] of early.handlers) process.off(sig, h);
    early.handlers = [];
    process.off("message", early.onMessage);
    process.off("disconnect", early.onDisconnect);
  },
};

early.catch();
