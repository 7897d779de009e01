/**
 * The proxy in the test process (main listener, and the S3 listener when asked) in front of the S3
 * fixture, for the upload, presign and CORS tests.
 *
 *   await using env = await startWriteEnv({ buckets: (ep) => bucketYaml(...) });
 *   await fetch(env.url("/rw/a.txt"), { method: "PUT", body, headers: { authorization: bearer(...) } });
 *
 * The fixture holds buckets `rw` and `ro`, writable with WRITER's key. The proxy's JWT is HS256
 * with SECRET; `token(claims)` signs one (sub "alice", an hour of validity, unless overridden).
 * With `s3Api`, the S3 listener gets a free port of its own (so presigned URLs can name it) and
 * STS sessions; `s3Extra` adds YAML under s3_api.
 */
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger } from "../../src/observe/log.ts";
import { listenBun, listenNode, type Listener } from "../../src/server.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { freePort } from "../fixtures/services.ts";

export const WRITER = { accessKeyId: "AKIAPLAINWRITER00001", secretAccessKey: "plain-writer-secret-000000000000000000000", buckets: ["rw", "ro"], write: true };
export const SECRET = "plain-write-jwt-secret-0123456789abcdef";
export const STS_KEY = "plain-write-sts-session-key-0123456789abcdef";

export function token(claims: Record<string, unknown> = {}, secret = SECRET): string {
  const b64 = (s: string | Uint8Array) => Buffer.from(s).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const h = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const p = b64(JSON.stringify({ sub: "alice", iat: now, exp: now + 3600, ...claims }));
  const sig = new Bun.CryptoHasher("sha256", secret).update(`${h}.${p}`).digest();
  return `${h}.${p}.${b64(sig)}`;
}

export const bearer = (claims: Record<string, unknown> = {}) => ({ authorization: `Bearer ${token(claims)}` });

/** One bucket entry of the YAML list, signed upstream with WRITER's key. */
export function bucket(name: string, prefix: string, upstream: string, endpoint: string, extra = ""): string {
  return `  - name: ${name}\n    path_prefix: ${prefix}\n    s3: { bucket: ${upstream}, endpoint: "${endpoint}", access_key: "${WRITER.accessKeyId}", secret_key: "${WRITER.secretAccessKey}" }\n${extra}`;
}

export interface WriteEnvOptions {
  engine?: "bun" | "node";
  buckets: (endpoint: string) => string;
  /** Extra top-level YAML. */
  extra?: string;
  /** Extra `server:` keys (indented by 2). */
  server?: string;
  /** Start the S3 listener (with STS unless `sts: false`). */
  s3Api?: boolean;
  sts?: boolean;
  /** Extra keys of the `sts:` flow map ("cors: { … }"). */
  stsExtra?: string;
  /** Extra YAML under s3_api (indented by 2). */
  s3Extra?: string;
  /** Extra keys of the `jwt:` flow map ("token_sources: [...]"). */
  jwtExtra?: string;
}

export interface WriteEnv extends AsyncDisposable {
  s3: S3Fixture;
  app: App;
  port: number;
  url(path: string): string;
  /** The S3 listener ("http://127.0.0.1:PORT"), when started. */
  s3Endpoint: string | undefined;
  s3Port: number | undefined;
  stop(): Promise<void>;
}

export function writeYaml(endpoint: string, o: WriteEnvOptions, s3Port = 0): string {
  const s3 = o.s3Api
    ? `s3_api:
  enabled: true
  address: 127.0.0.1
  port: ${s3Port}
${o.sts === false ? "" : `  sts: { enabled: true, session_key: "${STS_KEY}"${o.stsExtra ? `, ${o.stsExtra}` : ""} }\n`}${o.s3Extra ?? ""}`
    : "";
  return `server:
  address: 127.0.0.1
  port: 0
  engine: ${o.engine ?? "bun"}
${o.server ?? ""}logging: { level: error }
jwt: { enabled: true, algorithm: HS256, secret: "${SECRET}"${o.jwtExtra ? `, ${o.jwtExtra}` : ""} }
buckets:
${o.buckets(endpoint)}${s3}${o.extra ?? ""}`;
}

export async function startWriteEnv(o: WriteEnvOptions, fixture?: S3Fixture): Promise<WriteEnv> {
  const s3 = fixture ?? (await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] }));
  let app: App | undefined;
  let main: Listener | undefined;
  let front: Listener | undefined;
  // The S3 port must be known before the config is parsed (presigned URLs name it): a free port,
  // again if someone else took it meanwhile.
  for (let attempt = 1; ; attempt++) {
    const s3Port = o.s3Api ? freePort() : 0;
    const config = parseConfig(writeYaml(s3.endpoint, o, s3Port));
    app = await App.create(config, { log: nullLogger, probeIntervalMs: 600_000 });
    try {
      front = o.s3Api ? await listenS3(app, config) : undefined;
    } catch (err) {
      app.close();
      if (attempt < 5) continue;
      throw err;
    }
    main = config.server.engine === "node" ? await listenNode(app, config) : listenBun(app, config);
    break;
  }
  const stop = async () => {
    await front?.stop(true);
    await main!.stop(true);
    app!.close();
    if (!fixture) await s3.stop();
  };
  return {
    s3,
    app: app!,
    port: main!.port,
    url: (p) => `http://127.0.0.1:${main!.port}${p}`,
    s3Endpoint: front ? `http://127.0.0.1:${front.port}` : undefined,
    s3Port: front?.port,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Sends raw bytes on a new connection; resolves with everything received until the server closes or `ms` passes. */
export async function rawRequest(port: number, head: string, body: Uint8Array | string = "", ms = 3000): Promise<{ status: number; text: string }> {
  let out = "";
  let closed!: () => void;
  const done = new Promise<void>((r) => (closed = r));
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        out += new TextDecoder().decode(d);
        if (/\r\n\r\n/.test(out) && /content-length: 0\r\n|\r\n\r\n[\s\S]*\}$/i.test(out)) closed();
      },
      close: () => closed(),
      error: () => closed(),
    },
  });
  sock.write(head);
  if (body.length > 0) sock.write(body);
  const timer = setTimeout(closed, ms);
  await done;
  clearTimeout(timer);
  sock.end();
  const m = /^HTTP\/1\.1 (\d{3})/.exec(out);
  return { status: m ? Number(m[1]) : 0, text: out };
}
