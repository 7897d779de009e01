#!/usr/bin/env bun
/**
 * SigV4 verification (the S3 front's one large step the plain signed GET does not take) hot, and
 * with the data caches disturbed between two calls, as a live proxy's are: between two
 * verifications it runs Bun's HTTP code, the kernel's network path and the rest of the request,
 * and shares the CPU's caches with wrk, the origin and whatever else the host runs. Prints, per
 * step, the median over rounds of the µs per call: `hot` is the usual hot loop; `walk` reads one
 * word per 64-byte line of a WALK_MIB buffer before each call (that walk is not timed).
 *
 * A hot loop shows verification at ~2.5-4 µs; the live ladder in bench/README.md ("Session 51")
 * measured it at ~11-18 µs inside the proxy. This tool shows the same multiplier in one process,
 * and which steps carry it: a change to verification should be judged in both columns.
 *
 *   bun bench/cold-verify.ts      (R=5 rounds, N=20000 calls, WALK_MIB=4; STAT=median: each round's
 *                                  median call rather than its mean; GUARD=1: after each walk, the
 *                                  request's Host read untimed, as the guard phase reads it before
 *                                  verification in every live request: the Headers' first touch
 *                                  and `Headers.get`'s code are then warm, as they are live)
 *
 * With source trees as arguments it is an A/B of them in one process instead: each tree's
 * `verifyRequest` (what s3Parse calls) on the same request, the trees interleaved in every round
 * (their order reversed every other round), and how many rounds each later tree was lower than
 * the first in each column.
 *
 *   bun bench/cold-verify.ts <before-tree> <after-tree>      (R=8 for an A/B)
 */
import { resolve } from "node:path";
import { SigningKeyCache, StringToSignMac } from "../src/fronts/s3/signing-keys.ts";
import { verifySigV4, type VerifyInput } from "../src/fronts/s3/verify.ts";
import { S3Signer } from "../src/s3/sigv4.ts";
import { S3_CLIENT } from "./scenarios.ts";

const trees = process.argv.slice(2).map((t) => resolve(t));
const R = Number(process.env.R ?? (trees.length > 0 ? 8 : 5));
const N = Number(process.env.N ?? 20_000);
const WALK_MIB = Number(process.env.WALK_MIB ?? 4);

const host = "127.0.0.1:9000";
const now = Date.now();
const input: VerifyInput = {
  method: "GET",
  rawPath: "/signed/1k.bin",
  rawQuery: "",
  headers: new Headers({ host, ...new S3Signer(S3_CLIENT, "us-east-1").sign({ method: "GET", host, path: "/signed/1k.bin" }) }),
};
const principal = { secretAccessKey: S3_CLIENT.secretAccessKey };
const lookup = (akid: string) => (akid === S3_CLIENT.accessKeyId ? principal : undefined);
const opts = { region: "us-east-1", now, maxSkewSeconds: 900, keyCache: new SigningKeyCache() };

// The pieces, each on data of the gate's request's size.
const creq = new Uint8Array(260).fill(0x41);
const sts = new Uint8Array(150).fill(0x42);
const digest = new Uint8Array(32);
const mac = new Uint8Array(64);
const keyed = new Bun.CryptoHasher("sha256", new Uint8Array(32).fill(7));
const keyMac = new StringToSignMac(new Uint8Array(32).fill(7), "20261207/us-east-1/s3/aws4_request");
const scratch = Buffer.allocUnsafe(4096) as Buffer & { latin1Write(s: string, at: number): number };
let sink = 0;
let steps: Record<string, () => void> = {
  verifySigV4: () => {
    if (verifySigV4(input, lookup, opts).kind !== "ok") throw new Error("the request did not verify");
  },
  "SHA-256 of the canonical request": () => void Bun.SHA256.hash(creq, digest),
  "HMAC (keyed.copy)": () => void keyed.copy().update(sts).digest(mac),
  "HMAC (StringToSignMac: two SHA-256)": () => keyMac.sign("20261207T180000Z", digest, mac),
  "4 Headers.get": () => {
    const h = input.headers;
    sink += h.get("authorization")!.length + h.get("x-amz-date")!.length + h.get("x-amz-content-sha256")!.length + h.get("host")!.length;
  },
  "13 latin1Write": () => {
    let n = 0;
    for (let i = 0; i < 13; i++) n += scratch.latin1Write("x-amz-content-sha256", n);
    sink += n;
  },
};

if (trees.length > 0) {
  steps = {};
  for (const [i, t] of trees.entries()) {
    const { verifyRequest } = await import(`${t}/src/fronts/s3/verify.ts`);
    const { SigningKeyCache: Cache } = await import(`${t}/src/fronts/s3/signing-keys.ts`);
    const o = { ...opts, keyCache: new Cache() };
    const ctx = { method: input.method, rawPath: input.rawPath, query: input.rawQuery, req: { headers: input.headers } };
    steps[`${i} ${t.split("/").pop()}`] = () => {
      if (verifyRequest(ctx, lookup, o).kind !== "ok") throw new Error(`${t}: the request did not verify`);
    };
  }
}

function med(xs: ArrayLike<number>): number {
  const s = Array.from(xs).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const junk = new Uint32Array((WALK_MIB << 20) / 4);
function walk(): void {
  for (let i = 0; i < junk.length; i += 16) sink += junk[i]++;
}

const MEDIAN = process.env.STAT === "median";
const GUARD = process.env.GUARD === "1";
const calls = new Float64Array(N);
const times: Record<string, number[]> = {};
for (let r = 0; r <= R; r++) {
  const entries = Object.entries(steps);
  for (const [name, step] of r % 2 ? entries.reverse() : entries) {
    for (const mode of r % 2 ? ["walk", "hot"] : ["hot", "walk"]) {
      let t = 0;
      for (let i = 0; i < N; i++) {
        if (mode === "walk") {
          walk();
          // (GUARD=1: the guard's Host read, untimed, as every live request makes it before verification)
          if (GUARD) sink += input.headers.get("host")!.length;
        }
        const t0 = Bun.nanoseconds();
        step();
        t += (calls[i] = Bun.nanoseconds() - t0);
      }
      // (round 0: warm-up; STAT=median: the round's median call, which the host's preemptions move less than the mean)
      if (r > 0) (times[`${name}\t${mode}`] ??= []).push((MEDIAN ? med(calls) : t / N) / 1000);
    }
  }
}
console.log(`µs per call (${MEDIAN ? "a round's median call" : "a round's mean"}), median of ${R} rounds of ${N} (walk: ${WALK_MIB} MiB read between calls)`);
for (const name of Object.keys(steps)) {
  const hot = med(times[`${name}\thot`]!);
  const cold = med(times[`${name}\twalk`]!);
  console.log(`  ${name.padEnd(34)} hot ${hot.toFixed(2).padStart(6)}   walk ${cold.toFixed(2).padStart(6)}   (${(cold / hot).toFixed(1)}×)`);
}
const names = Object.keys(steps);
for (const name of trees.length > 1 ? names.slice(1) : []) {
  for (const mode of ["hot", "walk"]) {
    const a = times[`${names[0]}\t${mode}`]!, b = times[`${name}\t${mode}`]!;
    const d = b.map((x, i) => x - a[i]!);
    console.log(`  ${name} − ${names[0]}, ${mode}: median paired ${med(d).toFixed(3)} µs, lower in ${d.filter((x) => x < 0).length} of ${d.length} rounds`);
  }
}
if (sink === -1) console.log(sink);
