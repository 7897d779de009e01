/**
 * Worker-thread entry of loadConfigOffThread (offthread.ts): reads, parses and validates one
 * config file and posts back the plain result. Only the ConfigError's issues or an error message
 * cross back, never a stack.
 */
import { ConfigError, parseConfigUnfrozen, readConfigText } from "./load.ts";
import type { LoadReply, LoadRequest } from "./offthread.ts";

declare const self: Worker;

self.onmessage = async (e: MessageEvent<LoadRequest>) => {
  const { path, env, baseDir } = e.data;
  let reply: LoadReply;
  try {
    const text = await readConfigText(path);
    reply = { ok: true, config: parseConfigUnfrozen(text, { file: path, env, baseDir }) };
  } catch (err) {
    reply = err instanceof ConfigError ? { ok: false, issues: err.issues, file: err.file } : { ok: false, error: `cannot load config: ${(err as Error)?.message ?? String(err)}` };
  }
  self.postMessage(reply);
};
