/**
 * Settles "does a SigV4-signed GET cost more than an anonymous one?" (issue #10's lead) without
 * the network: the same App, the same 1 KiB answer from an in-process upstream, requests handed to
 * the handler directly, CPU time per request measured with process.cpuUsage over interleaved
 * rounds. What differs between the two buckets is only the signing. The S3 front's GetObject of
 * the same object (SigV4 verified, grant checked, re-signed) is measured the same way, and so is a
 * 1 KiB PutObject (UNSIGNED-PAYLOAD, as bench/load.ts's) answered 200 by the in-process upstream.
 *
 *   bun bench/signed-vs-anon.ts        (BENCH_ROUNDS=6, BENCH_REQUESTS=50000)
 *   ALLOC=1 bun bench/signed-vs-anon.ts  (objects allocated per request, by type)
 *   ALLOC=own bun bench/signed-vs-anon.ts  (the same through the own upstream client, the live
 *                                           path: the upstream a Bun.serve in a child process)
 */
import { App } from "../src/app.ts";
import { parseConfig } from "../src/config/load.ts";
import { createMainHandler } from "../src/fronts/index.ts";
import { s3Front } from "../src/fronts/s3/front.ts";
import { nullLogger } from "../src/observe/log.ts";
import { createHandler } from "../src/proxy/runner.ts";
import { S3Signer } from "../src/s3/sigv4.ts";
import { BENCH_S3_CLIENT, inProcessYaml, STUB_BODY, stubUpstream } from "./in-process.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
let N = Number(process.env.BENCH_REQUESTS ?? 50_000);
const body = STUB_BODY;
const upstream = stubUpstream;

// ALLOC=own: a real upstream (a fixed 1 KiB answer with S3's headers) in a child process, reached
// by the own HTTP/1.1 client as on the live path; its allocations are not this process's.
const child = process.env.ALLOC === "own"
  ? Bun.spawn([process.execPath, "-e", `const body = Buffer.alloc(1024, 97); const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(req.method === "PUT" ? null : body, { headers: { "content-type": "application/octet-stream", etag: '"e"', "last-modified": "Mon, 07 Dec 2026 00:00:00 GMT", "x-amz-request-id": "0A1B2C3D4E5F6789", "x-amz-id-2": "bench" } }) }); console.log(s.port);`], { stdout: "pipe" })
  : undefined;
const endpoint = child === undefined ? "http://upstream.test:9000" : `http://127.0.0.1:${parseInt(new TextDecoder().decode((await child.stdout.getReader().read()).value))}`;
const yaml = inProcessYaml(endpoint);
const app = await App.create(parseConfig(yaml, { env: {} }), { log: nullLogger, fetch: child === undefined ? upstream : undefined, probeIntervalMs: 3_600_000 });
const handle = createMainHandler(app, () => "127.0.0.1");
const s3Handle = createHandler(app, s3Front, () => "127.0.0.1");
// The S3 front's client signs as an SDK would (one signature, replayed: the skew allows an hour).
// The signer leaves Host to the HTTP client, which the wire carries; a Request built here must set it.
const clientSigner = new S3Signer(BENCH_S3_CLIENT, "us-east-1");
const s3PutHeaders = { ...clientSigner.sign({ method: "PUT", host: "s3.test", path: "/sink/put-1k.bin", payloadHash: "UNSIGNED-PAYLOAD" }), host: "s3.test", "content-length": "1024" };
const s3Headers = { ...new S3Signer(BENCH_S3_CLIENT, "us-east-1").sign({ method: "GET", host: "s3.test", path: "/signed/1k.bin" }), host: "s3.test" };

// ALLOC's jwt case: the plain signed GET of a bucket that requires a JWT (HS256, no exp: verified once, then the verified-token cache's).
const jwtPart = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwtUnsigned = `${jwtPart({ alg: "HS256", typ: "JWT" })}.${jwtPart({ sub: "bench" })}`;
const jwtHeaders = { authorization: `Bearer ${jwtUnsigned}.${new Bun.CryptoHasher("sha256", "bench-jwt-secret-0123456789abcdefgh").update(jwtUnsigned).digest("base64url")}` };

async function round(path: string, front: "plain" | "jwt" | "s3" | "s3put" = "plain"): Promise<number> {
  const url = front === "plain" || front === "jwt" ? `http://proxy.test${path}` : `http://s3.test${path}`;
  const h = front === "plain" || front === "jwt" ? handle : s3Handle;
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const req = front === "plain" ? new Request(url) : front === "jwt" ? new Request(url, { headers: jwtHeaders }) : front === "s3" ? new Request(url, { headers: s3Headers }) : new Request(url, { method: "PUT", headers: s3PutHeaders, body });
    const res = await h(req, "127.0.0.1");
    // Measure answers, not refusals (an earlier version timed the S3 front's 403s).
    if (res.status !== 200) throw new Error(`${front} ${path}: status ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  }
  const d = process.cpuUsage(before);
  return (d.user + d.system) / N;
}

/**
 * ALLOC=1: the objects each request allocates, by type, instead of CPU time (deterministic, unlike
 * time on a shared host): JavaScriptCore's per-type cell counts before and after 400 requests with
 * no collection between them (a collection would only lower the counts: 400 stay well below one).
 */
async function allocations(): Promise<void> {
  const { heapStats } = await import("bun:jsc");
  // (fewer through the own client: its sockets and answers count toward the collector's budget, and a
  // collection within the window would lower the counts)
  const M = child === undefined ? 400 : 100;
  const counts = () => heapStats().objectTypeCounts as Record<string, number>;
  const rows: Record<string, Record<string, number>> = {};
  const cases = { plain: ["/signed/1k.bin", "plain"], jwt: ["/jwt/1k.bin", "jwt"], s3: ["/signed/1k.bin", "s3"], s3put: ["/sink/put-1k.bin", "s3put"] } as const;
  for (const [id, [path, front]] of Object.entries(cases)) {
    N = 2_000;
    await round(path, front); // warm
    N = M;
    Bun.gc(true);
    const before = counts();
    await round(path, front);
    const after = counts();
    rows[id] = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, (v - (before[k] ?? 0)) / M]).filter(([, d]) => Math.abs(d as number) >= 0.05));
  }
  const types = [...new Set(Object.values(rows).flatMap((r) => Object.keys(r)))].sort((a, b) => (rows.s3![b] ?? 0) - (rows.s3![a] ?? 0));
  console.log(`objects per request (the loop's own Request included)\n${"type".padEnd(34)}${Object.keys(rows).map((id) => id.padStart(8)).join("")}`);
  for (const t of types) console.log(`${t.padEnd(34)}${Object.keys(rows).map((id) => (rows[id]![t] ?? 0).toFixed(1).padStart(8)).join("")}`);
  console.log(`${"all cells".padEnd(34)}${Object.keys(rows).map((id) => Object.values(rows[id]!).reduce((a, b) => a + b, 0).toFixed(1).padStart(8)).join("")}`);
}
if (process.env.ALLOC) {
  await allocations();
  await app.close();
  child?.kill();
  process.exit(0);
}

for (let i = 0; i < 2; i++) {
  await round("/anon/1k.bin");
  await round("/signed/1k.bin");
  await round("/signed/1k.bin", "s3");
  await round("/sink/put-1k.bin", "s3put");
}
const anon: number[] = [];
const signed: number[] = [];
const s3: number[] = [];
const put: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  anon.push(await round("/anon/1k.bin"));
  signed.push(await round("/signed/1k.bin"));
  s3.push(await round("/signed/1k.bin", "s3"));
  put.push(await round("/sink/put-1k.bin", "s3put"));
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const fmt = (a: number[]) => a.map((v) => v.toFixed(2)).join(" ");
console.log(`anonymous µs CPU/req: ${fmt(anon)}  median ${median(anon).toFixed(2)}`);
console.log(`signed    µs CPU/req: ${fmt(signed)}  median ${median(signed).toFixed(2)}`);
console.log(`S3 front  µs CPU/req: ${fmt(s3)}  median ${median(s3).toFixed(2)}`);
console.log(`S3 PUT    µs CPU/req: ${fmt(put)}  median ${median(put).toFixed(2)}`);
console.log(`signed − anonymous (median): ${(median(signed) - median(anon)).toFixed(2)} µs; ratio ${(median(signed) / median(anon)).toFixed(3)}`);
console.log(`S3 front − signed (median): ${(median(s3) - median(signed)).toFixed(2)} µs; ratio ${(median(s3) / median(signed)).toFixed(3)}`);
console.log(`S3 PUT − S3 GET (median): ${(median(put) - median(s3)).toFixed(2)} µs; ratio ${(median(put) / median(s3)).toFixed(3)}`);
await app.close();
