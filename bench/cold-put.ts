#!/usr/bin/env bun
/**
 * The S3 front's 1 KiB PutObject step by step, hot and with the data caches disturbed between
 * requests (bench/cold-phases.ts's `walk`: one word per 64-byte line of WALK_MIB read before each
 * timed call), beside the GetObject's same steps. Unlike cold-phases.ts the upstream is real: a
 * raw TCP listener in this process writing nginx's answers (a 1 KiB GET, a bodiless PUT with an
 * ETag), reached by the own HTTP/1.1 client over loopback as on the live path, so the upload's
 * head+body write and the owned answer are the live ones (a send's figure includes the loopback
 * and that listener's few lines, alike for both).
 *
 * Each timed step gets a fresh request and context, run untimed through the phases before it; the
 * walk comes after that set-up, right before the step. Steps (µs, a round's median call):
 *   whole            createHandler to the answer's body read (both fronts' whole request)
 *   s3Parse/s3Permit/s3Authorize   the phase alone (verification is s3Parse's)
 *   operate          s3Operate alone, to its answer's body read
 *   put prepare      prepareUploadBody (the payload mode's decision, the length rules)
 *   put bytes        req.bytes() and wholeBodyRead (with a hex x-amz-content-sha256: its check)
 *   put acls         refuseAcls
 *   put send         putObject to the upstream's answer (the signer, the head+body write, the read)
 *   get send         fetchObject of the GET (the signer, the head write, the 1 KiB read)
 *   put/get write    the same calls up to their promise (the signer, the head built and written)
 *   put answer       emptyAnswer on the upstream's answer (ETag/checksums kept, x-amz-request-id)
 *   put pick / put prepareSend / put sign / get sign   the write's JavaScript before the socket:
 *                    the object headers picked (pickHeaders), the request checked (prepareSend),
 *                    the upstream signer (a PUT with a body, a GET)
 * `putsha` is the same PutObject with its body's SHA-256 signed (x-amz-content-sha256 hex): the
 * gate's client sends UNSIGNED-PAYLOAD.
 *
 *   bun bench/cold-put.ts                    (R=8 rounds, N=2000 calls per step and mode)
 *   bun bench/cold-put.ts <before> <after>   (A/B of trees, interleaved in every round: the later
 *                                            tree's median paired difference per step, and in how
 *                                            many rounds it was lower)
 *   STEPS=whole,put.send limits the steps (a name's prefix, spaces as dots).
 *   PARTS=1 adds the answer's pieces (`ans ...`: its Headers' first lookup, Connection, the pass
 *   over its fields with and without the deletes, the x-amz-request-id set, Headers.count).
 */
import { resolve } from "node:path";
import { BENCH_S3_CLIENT, cacheWalker, inProcessYaml, interleavedRounds, median, printPairedDiffs, STUB_BODY } from "./in-process.ts";

const trees = process.argv.length > 2 ? process.argv.slice(2).map((t) => resolve(t)) : [resolve(import.meta.dir, "..")];
const R = Number(process.env.R ?? 8);
const N = Number(process.env.N ?? 2000);
const WALK_MIB = Number(process.env.WALK_MIB ?? 4);
const ONLY = process.env.STEPS?.split(",");

// The upstream in this process (a child's wall time is the scheduler's on a shared host): raw
// HTTP/1.1 answers written whole, a PUT's once its 1 KiB body arrived (nginx's /sink/ answers so).
const GET_ANSWER = Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nserver: nginx\r\ndate: Mon, 07 Dec 2026 00:00:00 GMT\r\ncontent-type: application/octet-stream\r\ncontent-length: 1024\r\nlast-modified: Mon, 07 Dec 2026 00:00:00 GMT\r\nconnection: keep-alive\r\netag: "e"\r\naccept-ranges: bytes\r\n\r\n'), Buffer.from(STUB_BODY)]);
const PUT_ANSWER = Buffer.from('HTTP/1.1 200 OK\r\nserver: nginx\r\ndate: Mon, 07 Dec 2026 00:00:00 GMT\r\ncontent-length: 0\r\nconnection: keep-alive\r\netag: "e"\r\n\r\n');
const upstream = Bun.listen<{ pending: number }>({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open(s) {
      s.data = { pending: -1 };
    },
    data(s, chunk) {
      let at = 0;
      while (at < chunk.length) {
        if (s.data.pending < 0) {
          const end = chunk.indexOf("\r\n\r\n", at);
          if (end < 0) throw new Error("bench upstream: a head split across reads");
          const head = chunk.toString("latin1", at, end);
          const m = /content-length: *(\d+)/i.exec(head);
          s.data.pending = m === null ? 0 : Number(m[1]);
          at = end + 4;
          if (head.startsWith("GET")) s.data.pending = -2;
        }
        if (s.data.pending === -2) {
          s.write(GET_ANSWER);
          s.data.pending = -1;
          continue;
        }
        const take = Math.min(s.data.pending, chunk.length - at);
        s.data.pending -= take;
        at += take;
        if (s.data.pending === 0) {
          s.write(PUT_ANSWER);
          s.data.pending = -1;
        }
      }
    },
  },
});
const endpoint = `http://127.0.0.1:${upstream.port}`;

type Kind = "get" | "put" | "putsha";
interface Step { name: string; kind: Kind; run: () => Promise<void> | void; timed: () => Promise<unknown> | unknown; sync?: boolean }
const steps: Step[][] = [];
const none = () => "127.0.0.1";
let t0 = 0;
const calls = new Float64Array(N);

for (const t of trees) {
  const { App } = await import(`${t}/src/app.ts`);
  const { parseConfig } = await import(`${t}/src/config/load.ts`);
  const { s3Front } = await import(`${t}/src/fronts/s3/front.ts`);
  const { nullLogger } = await import(`${t}/src/observe/log.ts`);
  const { createHandler } = await import(`${t}/src/proxy/runner.ts`);
  const { S3Signer } = await import(`${t}/src/s3/sigv4.ts`);
  const { createContext } = await import(`${t}/src/proxy/context.ts`);
  const { finish } = await import(`${t}/src/proxy/deliver.ts`);
  const ub = await import(`${t}/src/fronts/s3/upload-body.ts`);
  const writes = await import(`${t}/src/fronts/s3/writes.ts`);
  const { emptyAnswer } = await import(`${t}/src/fronts/s3/relay.ts`);
  const ops = await import(`${t}/src/s3/operations/index.ts`);
  const app = await App.create(parseConfig(inProcessYaml(endpoint), { env: {} }), { log: nullLogger, probeIntervalMs: 3_600_000 });
  const handle = createHandler(app, s3Front, none);
  const signer = new S3Signer(BENCH_S3_CLIENT, "us-east-1");
  const sha = new Bun.CryptoHasher("sha256").update(STUB_BODY).digest("hex");
  const heads: Record<Kind, Record<string, string>> = {
    get: { ...signer.sign({ method: "GET", host: "s3.test", path: "/signed/1k.bin" }), host: "s3.test" },
    put: { ...signer.sign({ method: "PUT", host: "s3.test", path: "/sink/put-1k.bin", payloadHash: "UNSIGNED-PAYLOAD" }), host: "s3.test", "content-length": "1024" },
    putsha: { ...signer.sign({ method: "PUT", host: "s3.test", path: "/sink/put-1k.bin", payloadHash: sha }), host: "s3.test", "content-length": "1024" },
  };
  const request = (k: Kind) => (k === "get" ? new Request("http://s3.test/signed/1k.bin", { headers: heads.get }) : new Request("http://s3.test/sink/put-1k.bin", { method: "PUT", headers: heads[k], body: STUB_BODY }));
  // A fresh context run through the phases before `upTo` (exclusive).
  let ctx: any;
  const setUp = (k: Kind, upTo: number) => () => {
    // (the last step's context given back: its admission and upload slots)
    if (ctx !== undefined) finish(ctx);
    const req = request(k);
    ctx = createContext(app, s3Front.name, req, req.url, "127.0.0.1", none);
    for (let i = 0; i < upTo; i++) if (s3Front.phases[i](ctx) !== undefined) throw new Error(`${k}: ${s3Front.phases[i].name} answered`);
  };
  const mine: Step[] = [];
  const add = (name: string, kind: Kind, run: Step["run"], timed: Step["timed"], sync = false) => {
    if (ONLY === undefined || ONLY.some((p) => name.replace(/ +/g, ".").startsWith(p))) mine.push({ name, kind, run, timed, sync });
  };
  let req: Request;
  let res: Response;
  for (const k of ["get", "put", "putsha"] as const) {
    add(`${k} whole`, k, () => void (req = request(k)), async () => {
      const r = await handle(req, "127.0.0.1");
      if (r.status !== 200) throw new Error(`${k}: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    });
    for (const p of [4, 5, 6]) add(`${k} ${s3Front.phases[p].name}`, k, setUp(k, p), () => s3Front.phases[p](ctx));
    add(`${k} operate`, k, setUp(k, 7), async () => {
      const r = await s3Front.phases[7](ctx);
      if (r.status !== 200) throw new Error(`${k}: ${r.status}`);
      await r.arrayBuffer();
    });
  }
  let prepared: any;
  const payloadOf = () => ctx.s3.payload;
  for (const k of ["put", "putsha"] as const) {
    add(`${k} prepare`, k, setUp(k, 7), () => ub.prepareUploadBody(ctx.req, payloadOf(), ub.MAX_UPLOAD_BYTES, { small: true, budget: ctx.svc.formBuffers }));
    add(`${k} bytes`, k, () => {
      setUp(k, 7)();
      prepared = ub.prepareUploadBody(ctx.req, payloadOf(), ub.MAX_UPLOAD_BYTES, { small: true, budget: ctx.svc.formBuffers });
    }, async () => ub.wholeBodyRead(prepared, await ctx.req.bytes()));
  }
  add("put acls", "put", setUp("put", 7), () => writes.refuseAcls(ctx));
  const sendPut = () => {
    const a = prepared.args;
    return ops.putObject(writes.writeUpstream(ctx), { key: ctx.key, headers: ctx.req.headers, signedHeaders: payloadOf().signedHeaders, body: a.body, contentLength: a.contentLength, payloadHash: a.payloadHash, awsChunked: a.awsChunked, checksum: a.checksum }, writes.callOf(ctx));
  };
  const readPut = async () => {
    setUp("put", 7)();
    prepared = ub.prepareUploadBody(ctx.req, payloadOf(), ub.MAX_UPLOAD_BYTES, { small: true, budget: ctx.svc.formBuffers });
    ub.wholeBodyRead(prepared, await ctx.req.bytes());
  };
  add("put send", "put", readPut, async () => {
    const r = await sendPut();
    if (r.status !== 200) throw new Error(`put send: ${r.status}`);
  });
  add("get send", "get", setUp("get", 7), async () => {
    const r = await ctx.bucket.upstream.fetchObject("GET", ctx.key, {}, ctx.req.signal, ctx.timing);
    await r.arrayBuffer();
  });
  // the calls up to their promise: the signer, the head (and body) built and written to the socket
  add("put write", "put", readPut, () => sendPut().then((r: Response) => r.status), true);
  add("get write", "get", setUp("get", 7), () => ctx.bucket.upstream.fetchObject("GET", ctx.key, {}, ctx.req.signal, ctx.timing).then((r: Response) => r.arrayBuffer()), true);
  // the write's JavaScript pieces: the object headers picked, the request checked, the signer
  const { prepareSend } = await import(`${t}/src/s3/send.ts`);
  const PUT_ALLOW = { names: new Set([...ops.OBJECT_HEADERS, "content-md5", ...ops.CHECKSUM_VALUE_HEADERS, "x-amz-sdk-checksum-algorithm", "if-match", "if-none-match", "x-amz-tagging", ops.EXPECTED_OWNER]), meta: true, contentEncoding: true };
  add("put pick", "put", setUp("put", 7), () => ops.pickHeaders(ctx.req.headers, PUT_ALLOW, payloadOf().signedHeaders));
  add("put prepareSend", "put", setUp("put", 7), () => prepareSend({ method: "PUT", key: ctx.key, headers: {}, payloadHash: "UNSIGNED-PAYLOAD", body: STUB_BODY, contentLength: 1024, signal: ctx.req.signal, timing: ctx.timing, emptyAnswer: true }));
  add("put sign", "put", setUp("put", 7), () => ctx.bucket.upstream.signer.signRequest({ method: "PUT", host: "127.0.0.1", path: "/sink/put-1k.bin", headers: {}, payloadHash: "UNSIGNED-PAYLOAD" }));
  add("get sign", "get", setUp("get", 7), () => ctx.bucket.upstream.prepare("GET", ctx.key));
  add("put answer", "put", async () => {
    await readPut();
    res = await sendPut();
  }, () => emptyAnswer(ctx, res, 200));
  if (process.env.PARTS === "1") {
    const hdrs = await import(`${t}/src/http/headers.ts`);
    const fetchPut = async () => { await readPut(); res = await sendPut(); };
    const noop = () => {};
    const gather: string[] = [];
    const g = (_v: string, k: string) => { if (k !== "etag") gather.push(k); };
    add("ans get-cl", "put", fetchPut, () => res.headers.get("content-length"));
    add("ans connection", "put", fetchPut, () => hdrs.connectionListed(res.headers));
    add("ans forEach", "put", fetchPut, () => res.headers.forEach(noop));
    add("ans forEach+del", "put", fetchPut, () => { gather.length = 0; res.headers.forEach(g); for (const k of gather) res.headers.delete(k); });
    add("ans set", "put", fetchPut, () => res.headers.set("x-amz-request-id", "abcdef0123456789"));
    add("ans count", "put", fetchPut, () => (res.headers as any).count);
  }
  steps.push(mine);
}

const walk = cacheWalker(WALK_MIB);
async function round(s: Step, mode: string): Promise<number> {
  for (let i = 0; i < N; i++) {
    await s.run();
    if (mode === "walk") walk();
    t0 = Bun.nanoseconds();
    const r = s.timed();
    if (s.sync) calls[i] = Bun.nanoseconds() - t0;
    if (r instanceof Promise) await r;
    if (!s.sync) calls[i] = Bun.nanoseconds() - t0;
  }
  return median(calls) / 1000;
}
let times: Map<string, number[]>;
try {
  times = await interleavedRounds(R, steps, round);
} finally {
  upstream.stop(true);
}
console.log(`µs per call (a round's median), median of ${R} rounds of ${N} (walk: ${WALK_MIB} MiB read before each call)`);
for (const [ti, t] of trees.entries()) {
  console.log(t.split("/").pop());
  for (const s of steps[ti]!) {
    const hot = median(times.get(`${ti}\t${s.name}\thot`)!), cold = median(times.get(`${ti}\t${s.name}\twalk`)!);
    console.log(`  ${s.name.padEnd(22)} hot ${hot.toFixed(2).padStart(7)}   walk ${cold.toFixed(2).padStart(7)}`);
  }
}
printPairedDiffs(trees, steps, times, 22);
