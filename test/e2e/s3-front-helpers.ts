/**
 * The S3 front end to end, in the test process: the S3 fixture (s3rver behind independent SigV4
 * verification) as the upstream, and the proxy's App with its main listener and its S3 listener.
 *
 *   await using env = await startS3FrontEnv({ engine: "bun" });
 *   env.endpoint            // the S3 front, "http://127.0.0.1:PORT"
 *   env.upstreamCalls()     // requests that reached the fixture since env.mark()
 *
 * `s3Extra: "  engine: node\n"` puts the S3 listener on the node engine; pass a fixture to share one.
 *
 * Credentials: APP (read+list on `data`, read on `private`), LISTER (list only on `data`), and a
 * JWT (HS256) for STS. Buckets: `data` and `private` (signed upstream), `open` (no auth: anonymous
 * reads), `jwtonly` (auth with a claim rule team=a).
 */
import { App } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { nullLogger, type Logger } from "../../src/observe/log.ts";
import { listenBun, listenNode, type Listener } from "../../src/server.ts";
import { listenS3 } from "../../src/server/s3-listener.ts";
import { startS3Fixture, type RequestLogEntry, type S3Fixture } from "../fixtures/s3.ts";

export const APP = { accessKeyId: "AKIDS3FRONTAPP01", secretAccessKey: "s3-front-app-secret/+=0123456789" };
export const LISTER = { accessKeyId: "AKIDS3FRONTLIST1", secretAccessKey: "s3-front-lister-secret-0123456789" };
export const UPSTREAM = { accessKeyId: "AKIDUPSTREAMREAD", secretAccessKey: "upstream-secret-key-0123456789" };
export const JWT_SECRET = "s3-front-jwt-secret-0123456789abcdef";
export const STS_KEY = "s3-front-sts-session-key-0123456789abcdef";
export const REGION = "us-east-1";

export function hs256(claims: Record<string, unknown>, secret = JWT_SECRET): string {
  const b64 = (s: string | Uint8Array) => Buffer.from(s).toString("base64url");
  const h = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const p = b64(JSON.stringify(claims));
  const sig = new Bun.CryptoHasher("sha256", secret).update(`${h}.${p}`).digest();
  return `${h}.${p}.${b64(sig)}`;
}

export interface S3FrontEnv extends AsyncDisposable {
  s3: S3Fixture;
  app: App;
  /** The S3 front: "http://127.0.0.1:PORT". */
  endpoint: string;
  port: number;
  /** The main (plain) listener. */
  mainUrl(path: string): string;
  /** Forget the fixture requests so far (upstreamCalls counts from here). */
  mark(): void;
  /** Requests the proxy sent to the fixture since mark() (the fixture admin's and the readiness probes are left out). */
  upstreamCalls(): RequestLogEntry[];
  stop(): Promise<void>;
}

export interface EnvOptions {
  engine?: "bun" | "node";
  /** Extra YAML under s3_api (indented by 2). */
  s3Extra?: string;
  /** Extra top-level YAML. */
  extra?: string;
  /** Replace the default buckets section entirely (gets the fixture endpoint). */
  buckets?: (endpoint: string) => string;
  cache?: boolean;
  sts?: boolean;
  /** s3_api.region (default REGION, us-east-1). */
  region?: string;
}

export function frontYaml(endpoint: string, o: EnvOptions = {}): string {
  const up = `access_key: "${UPSTREAM.accessKeyId}", secret_key: "${UPSTREAM.secretAccessKey}"`;
  const buckets = o.buckets?.(endpoint) ?? `buckets:
  - name: data
    path_prefix: /data
    s3: { bucket: data, endpoint: "${endpoint}", ${up} }
${o.cache ? "    cache: { enabled: true }\n" : ""}  - name: private
    path_prefix: /private
    s3: { bucket: private, endpoint: "${endpoint}", ${up} }
    auth: { enabled: true }
  - name: open
    path_prefix: /open
    s3: { bucket: data, endpoint: "${endpoint}", ${up} }
  - name: jwtonly
    path_prefix: /jwtonly
    s3: { bucket: private, endpoint: "${endpoint}", ${up} }
    auth: { enabled: true, claims: [{ claim: team, operator: equals, value: a }] }
`;
  return `server:
  address: 127.0.0.1
  port: 0
  engine: ${o.engine ?? "bun"}
logging: { level: error }
jwt:
  enabled: true
  algorithm: HS256
  secret: "${JWT_SECRET}"
${o.cache ? "cache:\n  enabled: true\n" : ""}${buckets}s3_api:
  enabled: true
  address: 127.0.0.1
  port: 0
  region: ${o.region ?? REGION}
${o.sts === false ? "" : `  sts: { enabled: true, session_key: "${STS_KEY}", max_session_seconds: 3600 }\n`}  credentials:
    - access_key_id: "${APP.accessKeyId}"
      secret_access_key: "${APP.secretAccessKey}"
      identity: app1
      claims: { team: a }
      buckets: { data: [read, list], private: [read] }
    - access_key_id: "${LISTER.accessKeyId}"
      secret_access_key: "${LISTER.secretAccessKey}"
      identity: lister
      buckets: { data: [list] }
${o.s3Extra ?? ""}${o.extra ?? ""}`;
}

export async function startS3FrontEnv(o: EnvOptions = {}, fixture?: S3Fixture): Promise<S3FrontEnv> {
  const s3 = fixture ?? (await startS3Fixture({
    buckets: [{ name: "data" }, { name: "private" }],
    credentials: [{ ...UPSTREAM, buckets: ["data", "private"] }],
  }));
  return startFrontsOn(frontYaml(s3.endpoint, o), s3, fixture === undefined);
}

/**
 * The App with its main listener and S3 listener on `yaml`, in front of `s3`; stop() closes them,
 * and the fixture too when `ownsFixture`. Shared by the read and upload e2e helpers. `log`: the
 * App's logger (default: none).
 */
export async function startFrontsOn(yaml: string, s3: S3Fixture, ownsFixture: boolean, log: Logger = nullLogger): Promise<S3FrontEnv> {
  const config = parseConfig(yaml);
  // readiness probes once at start, then rarely: they are not what these tests look at
  const app = await App.create(config, { log, probeIntervalMs: 600_000 });
  const main: Listener = config.server.engine === "node" ? await listenNode(app, config) : listenBun(app, config);
  const front = (await listenS3(app, config))!;
  let from = s3.requests.length;
  const stop = async () => {
    await front.stop(true);
    await main.stop(true);
    app.close();
    if (ownsFixture) await s3.stop();
  };
  return {
    s3,
    app,
    endpoint: `http://127.0.0.1:${front.port}`,
    port: front.port,
    mainUrl: (p) => `http://127.0.0.1:${main.port}${p}`,
    mark: () => {
      from = s3.requests.length;
    },
    // the readiness prober's HEAD of each bucket root is not a request the front made
    upstreamCalls: () => s3.requests.slice(from).filter((r) => !r.admin && !(r.method === "HEAD" && /^\/[^/]+\/?$/.test(r.pathname))),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
