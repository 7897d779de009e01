/**
 * One in-process proxy with both fronts listening (the plain front on the chosen engine, the S3
 * front), from a YAML config, its access lines recorded; disposed with `await using`.
 */
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import type { AccessRecord } from "../../src/observe/log.ts";
import { listenBun, listenNode, type Listener } from "../../src/server.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { recordingLogger } from "./logger.ts";

export async function startBothFronts(engine: "bun" | "node", yaml: string) {
  const config = parseConfig(yaml);
  const access: AccessRecord[] = [];
  const log = { ...recordingLogger(), access: (r: AccessRecord) => void access.push(r) };
  const app = await App.create(config, { log, probeIntervalMs: 600_000 });
  const main: Listener = engine === "node" ? await listenNode(app, config) : listenBun(app, config);
  const front = (await listenS3(app, config))!;
  const stop = async () => {
    await front.stop(true);
    await main.stop(true);
    app.close();
  };
  return { access, main: `http://127.0.0.1:${main.port}`, front: { endpoint: `http://127.0.0.1:${front.port}`, port: front.port }, [Symbol.asyncDispose]: stop };
}
