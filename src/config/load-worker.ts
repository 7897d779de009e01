/**
 * Worker-thread entry of loadConfigOffThread (offthread.ts): reads, parses and validates one
 * config file (or the text it is given) and posts back the plain result and the text. Only the
 * ConfigError's issues or an error message cross back, never a stack.
 */
import { ConfigError, parseConfigUnfrozen, readConfigTextBlocking } from "./load.ts";
import type { LoadReply, LoadRequest } from "./offthread.ts";

declare const self: Worker;

self.onmessage = async (e: MessageEvent<LoadRequest>) => {
  const { path, env, baseDir } = e.data;
  let reply: LoadReply;
  try {
    // (blocking calls: a read that never ends holds this thread, which the timeout abandons, never
    // one of the runtime's shared I/O threads: see readConfigTextBlocking)
    const text = e.data.text ?? (await readConfigTextBlocking(path));
    const lines: Record<string, number> = {};
    const config = parseConfigUnfrozen(text, { file: path, env, baseDir, places: { keys: e.data.places ?? [], lines } });
    // As JSON text when it round-trips: JSON.parse on the serving thread is 3-5x cheaper than
    // structured-clone deserialization of the same object (an 80,000-value list: ~25 vs ~110 ms).
    // A non-finite number (YAML .inf/.nan in a claim value) does not survive JSON: send the object.
    let exact = true;
    const json = JSON.stringify(config, (_k, v: unknown) => {
      if (typeof v === "number" && !Number.isFinite(v)) exact = false;
      return v;
    });
    reply = exact ? { ok: true, json, text, lines } : { ok: true, config, text, lines };
  } catch (err) {
    reply = err instanceof ConfigError ? { ok: false, issues: err.issues, file: err.file, more: err.more } : { ok: false, error: `cannot load config: ${(err as Error)?.message ?? String(err)}` };
  }
  self.postMessage(reply);
};
