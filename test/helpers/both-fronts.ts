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

/** Every engine with every upstream client (the own HTTP/1.1 client, fetch), for describe.each. */
export const ENGINES_AND_CLIENTS = [
  ["bun", "auto"],
  ["bun", "fetch"],
  ["node", "auto"],
  ["node", "fetch"],
] as const;

/**
 * A config with one bucket `b` (path /b, anonymous on the plain front; `writable`: read-write with
 * anonymous writes) over the upstream bucket `data` at 127.0.0.1:`port`, tried once, and one S3-front
 * credential granted `grants` on it (`[read, write]`).
 */
export function oneBucketYaml(o: { engine: "bun" | "node"; client?: "auto" | "fetch"; port: number; creds: { accessKeyId: string; secretAccessKey: string }; grants: string; writable?: boolean; s3Extra?: string }): string {
  const access = o.writable === true ? "    access: read-write\n    auth: { enabled: false, anonymous_writes: true }\n" : "    auth: { enabled: false }\n";
  return `server: { address: 127.0.0.1, port: 0, engine: ${o.engine}, upstream_client: ${o.client ?? "auto"} }
buckets:
  - name: b
    path_prefix: /b
${access}    s3: { bucket: data, endpoint: "http://127.0.0.1:${o.port}", access_key: AKIDONEBUCKET, secret_key: one-bucket-secret-0123456789, retry: { max_attempts: 1 }${o.s3Extra ?? ""} }
s3_api:
  address: 127.0.0.1
  port: 0
  credentials:
    - { access_key_id: "${o.creds.accessKeyId}", secret_access_key: "${o.creds.secretAccessKey}", identity: c, buckets: { b: ${o.grants} } }
`;
}
