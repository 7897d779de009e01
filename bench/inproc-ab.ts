/**
 * In-process A/B of source trees in ONE process: each tree's App is built side by side (its own
 * module graph), and their rounds interleave, so the host's load falls on every tree alike. Times
 * the S3 front's GetObject and 1 KiB PutObject (UNSIGNED-PAYLOAD) against a fetch stub, CPU µs per
 * request, as bench/signed-vs-anon.ts does for one tree, and the plain front's signed GET of the
 * same object (its main handler); prints each tree's medians, its PUT/GET and GET/signed (issue
 * 11's s3_get_vs_signed is signed/GET), and how the last tree's PUT and GET compare with the
 * first's round by round. PUT=0 leaves the PutObject rounds out.
 *
 *   bun bench/inproc-ab.ts <before-tree> <after-tree>      (R=8 rounds, N=20000 requests)
 */
import { resolve } from "node:path";
import { BENCH_S3_CLIENT, STUB_BODY, treeApp } from "./in-process.ts";

const body = STUB_BODY;

const trees = process.argv.slice(2).length > 0 ? process.argv.slice(2).map((t) => resolve(t)) : [resolve(import.meta.dir, "..")];
type Handler = (r: Request, ip: string) => Promise<Response>;
const hs: Handler[] = [];
const plain: Handler[] = [];
let putH: Record<string, string> = {}, getH: Record<string, string> = {};
for (const t of trees) {
  const { app, s3Front, createHandler, S3Signer } = await treeApp(t);
  const { createMainHandler } = await import(`${t}/src/fronts/index.ts`);
  hs.push(createHandler(app, s3Front, () => "127.0.0.1"));
  plain.push(createMainHandler(app, () => "127.0.0.1"));
  const sg = new S3Signer(BENCH_S3_CLIENT, "us-east-1");
  putH = { ...sg.sign({ method: "PUT", host: "s3.test", path: "/sink/put-1k.bin", payloadHash: "UNSIGNED-PAYLOAD" }), host: "s3.test", "content-length": "1024" };
  getH = { ...sg.sign({ method: "GET", host: "s3.test", path: "/signed/1k.bin" }), host: "s3.test" };
}
const N = Number(process.env.N ?? 20000);
const PUT = process.env.PUT !== "0";
/** One round: the S3 front's PutObject, its GetObject, or (`signed`) the plain front's signed GET. */
async function round(h: Handler, put: boolean, signed = false): Promise<number> {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    const req = signed ? new Request("http://proxy.test/signed/1k.bin") : put ? new Request("http://s3.test/sink/put-1k.bin", { method: "PUT", headers: putH, body }) : new Request("http://s3.test/signed/1k.bin", { headers: getH });
    const res = await h(req, "127.0.0.1");
    if (res.status !== 200) throw new Error(String(res.status));
    await res.arrayBuffer();
  }
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / N;
}
for (const [i, h] of hs.entries()) { if (PUT) await round(h, true); await round(h, false); await round(plain[i]!, false, true); }
const R = Number(process.env.R ?? 8);
const put: number[][] = trees.map(() => []);
const get: number[][] = trees.map(() => []);
const sig: number[][] = trees.map(() => []);
for (let r = 0; r < R; r++) {
  const order = r % 2 ? hs.map((_, i) => hs.length - 1 - i) : hs.map((_, i) => i);
  for (const i of order) {
    if (PUT) put[i]!.push(await round(hs[i]!, true));
    get[i]!.push(await round(hs[i]!, false));
    sig[i]!.push(await round(plain[i]!, false, true));
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const rounds = (a: number[]) => a.map((x) => x.toFixed(1)).join(" ");
trees.forEach((t, i) => {
  const puts = PUT ? `  PUT ${med(put[i]!).toFixed(2)} µs  PUT/GET ${med(put[i]!.map((p, k) => p / get[i]![k]!)).toFixed(3)}  (PUT rounds ${rounds(put[i]!)})` : "";
  console.log(`${t}: signed GET ${med(sig[i]!).toFixed(2)} µs  GET ${med(get[i]!).toFixed(2)} µs  GET/signed ${med(get[i]!.map((g, k) => g / sig[i]![k]!)).toFixed(3)}  (GET rounds ${rounds(get[i]!)})${puts}`);
});
const last = trees.length - 1;
const versus = (what: string, a: number[][]) => console.log(`${what} of the last tree lower than the first's in ${a[last]!.filter((p, k) => p < a[0]![k]!).length}/${R} rounds; median paired difference ${med(a[last]!.map((p, k) => p - a[0]![k]!)).toFixed(2)} µs`);
if (last > 0) {
  versus("GET", get);
  if (PUT) versus("PUT", put);
}
process.exit(0);
