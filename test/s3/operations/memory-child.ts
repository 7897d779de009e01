/**
 * Run by memory.test.ts in a process of its own (RSS is process-wide: measured inside the test
 * runner, it would include whatever the other test files left on the heap). Streams a 1 GiB PUT
 * through one client to a raw server that counts and drops the bytes, and prints
 * {"growth": bytes, "received": bytes}.
 */
import { bulk, ctx, makeUpstream, rawServer, type ClientKind } from "./helpers.ts";

const GiB = 1024 ** 3;
const client = process.argv[2] as ClientKind;
using srv = rawServer();
using u = makeUpstream(client, { bucket: "b", endpoint: `http://127.0.0.1:${srv.port}`, accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" });
const body = bulk(GiB);
Bun.gc(true);
const base = process.memoryUsage.rss();
let peak = base;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
const res = await u.upstream.send({ method: "PUT", key: "big", body: body.stream, contentLength: GiB, ...ctx() });
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage.rss());
console.log(JSON.stringify({ status: res.status, growth: peak - base, received: srv.requests()[0]?.bodyBytes ?? 0 }));
