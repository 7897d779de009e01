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
 *   bun bench/cold-verify.ts      (R=5 rounds, N=20000 calls, WALK_MIB=4)
 */
import { SigningKeyCache } from "../src/fronts/s3/signing-keys.ts";
import { verifySigV4, type VerifyInput } from "../src/fronts/s3/verify.ts";
import { S3Signer } from "../src/s3/sigv4.ts";
import { S3_CLIENT } from "./scenarios.ts";

const R = Number(process.env.R ?? 5);
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
const scratch = Buffer.allocUnsafe(4096) as Buffer & { latin1Write(s: string, at: number): number };
let sink = 0;
const steps: Record<string, () => void> = {
  verifySigV4: () => {
    if (verifySigV4(input, lookup, opts).kind !== "ok") throw new Error("the request did not verify");
  },
  "SHA-256 of the canonical request": () => void Bun.SHA256.hash(creq, digest),
  "HMAC (keyed.copy)": () => void keyed.copy().update(sts).digest(mac),
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

const junk = new Uint32Array((WALK_MIB << 20) / 4);
function walk(): void {
  for (let i = 0; i < junk.length; i += 16) sink += junk[i]++;
}

const times: Record<string, number[]> = {};
for (let r = 0; r <= R; r++) {
  for (const [name, step] of Object.entries(steps)) {
    for (const mode of r % 2 ? ["walk", "hot"] : ["hot", "walk"]) {
      let t = 0;
      for (let i = 0; i < N; i++) {
        if (mode === "walk") walk();
        const t0 = performance.now();
        step();
        t += performance.now() - t0;
      }
      if (r > 0) (times[`${name}\t${mode}`] ??= []).push((t / N) * 1000); // (round 0: warm-up)
    }
  }
}
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
console.log(`µs per call, median of ${R} rounds of ${N} (walk: ${WALK_MIB} MiB read between calls)`);
for (const name of Object.keys(steps)) {
  const hot = med(times[`${name}\thot`]!);
  const cold = med(times[`${name}\twalk`]!);
  console.log(`  ${name.padEnd(34)} hot ${hot.toFixed(2).padStart(6)}   walk ${cold.toFixed(2).padStart(6)}   (${(cold / hot).toFixed(1)}×)`);
}
if (sink === -1) console.log(sink);
