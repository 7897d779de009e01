/**
 * The entry point. It only installs the start-up signal handlers (src/early-signals.ts), then loads
 * the program (src/cli.ts): a signal sent while the program loads (most of a start's first
 * ~100-200 ms) is then caught instead of killing the process with 129/143 and no log line.
 */
import "./early-signals.ts";

await import("./cli.ts");
