/**
 * An https upstream whose certificate is refused (unknown CA, another name) is a clear 502 that
 * says the upstream could not be reached: the handshake failed, no request went out. It said "the
 * upstream connection closed before it answered", as if a write might have reached the store.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { surelyNotSent, tlsFailure } from "../../src/s3/upstream.ts";
import { waitFor } from "../helpers/wait.ts";
import { startInProcess, startProxy } from "./harness.ts";

setDefaultTimeout(30_000);

let dir: string;
let store: ReturnType<typeof Bun.serve>;
let asked = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-upstream-tls-"));
  const gen = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=untrusted",
    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdout: "ignore", stderr: "ignore" });
  expect(await gen.exited).toBe(0);
  store = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    tls: { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") },
    fetch: () => {
      asked++;
      return new Response("object");
    },
  });
});
afterAll(() => {
  store?.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

test("a certificate refused in the handshake counts as never sent", () => {
  for (const code of ["UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "DEPTH_ZERO_SELF_SIGNED_CERT", "ERR_TLS_CERT_ALTNAME_INVALID", "CERT_HAS_EXPIRED"]) {
    expect([code, surelyNotSent(Object.assign(new Error("tls"), { code }))]).toEqual([code, true]);
  }
  expect(surelyNotSent(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe(false);
});

test("an https upstream with an untrusted certificate: 502 'could not be reached', nothing served", async () => {
  await using px = await startInProcess(
    `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "https://127.0.0.1:${store.port}", retry: { max_attempts: 1 } } }
`,
    { probeIntervalMs: 600_000 },
  );
  const r = await fetch(px.url("/b/k"));
  const body = (await r.json()) as { message: string };
  expect(r.status).toBe(502);
  expect(body.message).toContain("could not be reached");
  expect(asked).toBe(0);
});

// Retried max_attempts times, each a handshake refused the same way: a certificate refused cannot be accepted on the next try.
test("an untrusted certificate is not retried: one attempt, one S3 error counted, no retry, the same 502", async () => {
  await using px = await startInProcess(
    `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "https://127.0.0.1:${store.port}", retry: { max_attempts: 3, initial_backoff_ms: 1, max_backoff_ms: 1 } } }
`,
    { probeIntervalMs: 600_000 },
  );
  const r = await fetch(px.url("/b/k"));
  const body = (await r.json()) as { message: string };
  expect([r.status, body.message]).toEqual([502, expect.stringContaining("could not be reached")]);
  const text = px.app.metrics!.render();
  const count = (name: string) => Number(new RegExp(`^${name}\\{bucket="b"[^}]*\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
  expect([count("yatagarasu_s3_retries_total"), /^yatagarasu_s3_requests_total\{bucket="b",status="error"\} (\d+)$/m.exec(text)?.[1]]).toEqual([0, "1"]);
  expect(asked).toBe(0);
});

// An https:// endpoint whose store speaks plain http: /ready said "upstream unreachable (EPROTO)"
// and the log had only upstream_error EPROTO.
test("an https:// endpoint that speaks plain http: /ready and a warning (once) say the TLS handshake failed; the client's 502 stays generic", async () => {
  const plain = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("object") });
  try {
    await using px = await startProxy(
      `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "https://127.0.0.1:${plain.port}", retry: { max_attempts: 1 } } }
`,
      { env: { YATAGARASU_PROBE_INTERVAL_MS: "100" } },
    );
    const words = "TLS handshake failed (EPROTO): does the endpoint speak https, with TLS 1.2 or later? (one that speaks plain http is written http://)";
    const r = await fetch(px.url("/b/k"));
    const text = await r.text();
    expect(r.status).toBe(502);
    expect(text).not.toContain(String(plain.port));
    expect(text).not.toContain("TLS");
    await waitFor(async () => ((await (await fetch(px.url("/ready"))).json()) as { buckets: { b: { reason?: string } } }).buckets.b.reason === `upstream unreachable: ${words}`, { message: "the /ready reason", intervalMs: 50 });
    const warned = await px.waitForLog((l) => l.level === "warn" && l.msg === `upstream ${words}`);
    expect(warned).toMatchObject({ bucket: "b", endpoint: `https://127.0.0.1:${plain.port}`, upstream_error: "EPROTO" });
    // once, not per request or probe round
    await fetch(px.url("/b/k")).then((x) => x.arrayBuffer());
    await waitFor(() => px.logs().filter((l) => l.msg === "request" && l.path === "/b/k").length === 2, { message: "the second access line" });
    expect(px.logs().filter((l) => l.msg === `upstream ${words}`).length).toBe(1);
  } finally {
    plain.stop(true);
  }
});

// An endpoint that sends its certificate without the intermediate one, its root CA trusted
// (NODE_EXTRA_CA_CERTS): /ready and the warning said only "a private CA's certificate goes in
// NODE_EXTRA_CA_CERTS", where it already was; they now ask whether the endpoint sends its chain.
test("an https upstream that sends no chain (its CA trusted): /ready and the warning ask for the chain", async () => {
  const at = (f: string) => join(dir, f);
  const run = async (...args: string[]) => {
    const p = Bun.spawn(["openssl", ...args], { stdout: "ignore", stderr: "ignore" });
    expect([args[0], await p.exited]).toEqual([args[0], 0]);
  };
  await writeFile(at("ca.ext"), "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n");
  await writeFile(at("leaf.ext"), "subjectAltName=IP:127.0.0.1\n");
  await run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=test root", "-keyout", at("root.key"), "-out", at("root.pem"));
  await run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=test intermediate", "-keyout", at("int.key"), "-out", at("int.csr"));
  await run("x509", "-req", "-in", at("int.csr"), "-CA", at("root.pem"), "-CAkey", at("root.key"), "-CAcreateserial", "-days", "1", "-extfile", at("ca.ext"), "-out", at("int.pem"));
  await run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=leaf", "-keyout", at("leaf.key"), "-out", at("leaf.csr"));
  await run("x509", "-req", "-in", at("leaf.csr"), "-CA", at("int.pem"), "-CAkey", at("int.key"), "-CAcreateserial", "-days", "1", "-extfile", at("leaf.ext"), "-out", at("leaf.pem"));
  const leafOnly = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert: readFileSync(at("leaf.pem"), "utf8"), key: readFileSync(at("leaf.key"), "utf8") }, fetch: () => new Response("object") });
  try {
    await using px = await startProxy(
      `server: { address: 127.0.0.1, port: 0 }
buckets:
  - { name: b, path_prefix: /b, s3: { bucket: data, endpoint: "https://127.0.0.1:${leafOnly.port}", retry: { max_attempts: 1 } } }
`,
      { env: { YATAGARASU_PROBE_INTERVAL_MS: "100", NODE_EXTRA_CA_CERTS: at("root.pem") } },
    );
    const words =
      "TLS handshake failed: the endpoint's certificate was refused (UNABLE_TO_VERIFY_LEAF_SIGNATURE; does the endpoint send its chain (the intermediate certificates after its own)? Else a private CA's certificate goes in NODE_EXTRA_CA_CERTS)";
    // (until the first probe round, the reason is "not probed yet")
    const reason = await waitFor(
      async () => {
        const r = ((await (await fetch(px.url("/ready"))).json()) as { buckets: { b: { reason?: string } } }).buckets.b.reason;
        return r?.startsWith("upstream") && r;
      },
      { message: "the /ready reason", intervalMs: 50 },
    );
    expect(reason).toBe(`upstream unreachable: ${words}`);
    expect(await px.waitForLog((l) => l.level === "warn" && String(l.msg).startsWith("upstream TLS"))).toMatchObject({ msg: `upstream ${words}`, upstream_error: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
  } finally {
    leafOnly.stop(true);
  }
});

test("EPROTO is not 'surely not sent' (Bun's fetch says so for a TLS failure after the request went out too: a write resent would be applied twice); a refused certificate is", () => {
  expect(surelyNotSent(Object.assign(new Error("The TLS handshake failed"), { code: "EPROTO" }))).toBe(false);
  expect(surelyNotSent(Object.assign(new Error("x"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }))).toBe(true);
});

test("tlsFailure names EPROTO and a refused certificate, and nothing else", () => {
  expect(tlsFailure(Object.assign(new Error("x"), { code: "EPROTO" }))).toStartWith("TLS handshake failed (EPROTO): does the endpoint speak https, with TLS 1.2 or later?");
  expect(tlsFailure(Object.assign(new Error("x"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }))).toBe("TLS handshake failed: the endpoint's certificate was refused (DEPTH_ZERO_SELF_SIGNED_CERT; a private CA's certificate goes in NODE_EXTRA_CA_CERTS)");
  // an issuer this process does not know says where a private CA goes; another refusal does not
  expect(tlsFailure(Object.assign(new Error("x"), { code: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" }))).toEndWith("(UNABLE_TO_GET_ISSUER_CERT_LOCALLY; a private CA's certificate goes in NODE_EXTRA_CA_CERTS)");
  // (a certificate that came without its issuer's: a missing chain, the CA perhaps trusted)
  expect(tlsFailure(Object.assign(new Error("x"), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }))).toEndWith("? Else a private CA's certificate goes in NODE_EXTRA_CA_CERTS)");
  expect(tlsFailure(Object.assign(new Error("x"), { code: "CERT_HAS_EXPIRED" }))).toBe("TLS handshake failed: the endpoint's certificate was refused (CERT_HAS_EXPIRED)");
  expect(tlsFailure(Object.assign(new Error("x"), { code: "ECONNRESET" }))).toBeUndefined();
});
