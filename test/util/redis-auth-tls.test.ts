/**
 * redisAuthFailure's words for a rediss:// server certificate refused in the handshake. Every
 * refusal but another host's name said "not trusted (...; a private CA's certificate goes in
 * NODE_EXTRA_CA_CERTS)": an expired certificate of a trusted CA too, and one sent without its
 * chain whose root CA was already in NODE_EXTRA_CA_CERTS. Only the handshake matters, so a TLS
 * listener that never speaks Redis stands in for the server.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

setDefaultTimeout(30_000);

let dir: string;
const servers: { stop(closeActive?: boolean): void }[] = [];

const at = (f: string) => join(dir, f);
async function openssl(...args: string[]): Promise<void> {
  const p = Bun.spawn(["openssl", ...args], { stdout: "ignore", stderr: "pipe" });
  const [code, err] = [await p.exited, await new Response(p.stderr).text()];
  if (code !== 0) throw new Error(`openssl ${args[0]} failed: ${err}`);
}
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const listen = (cert: string, key: string) => {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, tls: { cert: readFileSync(at(cert), "utf8"), key: readFileSync(at(key), "utf8") }, socket: { data() {} } });
  servers.push(l);
  return l.port;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "yata-redis-auth-tls-"));
  // An expired self-signed certificate (trusted below), and a leaf of an intermediate of a root.
  await writeFile(at("index.txt"), "");
  await writeFile(at("serial"), "01\n");
  await writeFile(at("ca.cnf"), `[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = ${at("index.txt")}\nnew_certs_dir = ${dir}\nserial = ${at("serial")}\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n[ p ]\ncommonName = supplied\n`);
  await openssl("req", "-new", ...EC, "-subj", "/CN=expired", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", at("expired.key"), "-out", at("expired.csr"));
  await openssl("ca", "-batch", "-notext", "-config", at("ca.cnf"), "-selfsign", "-keyfile", at("expired.key"), "-in", at("expired.csr"), "-out", at("expired.pem"), "-startdate", "20200101000000Z", "-enddate", "20200102000000Z");
  await writeFile(at("int.ext"), "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n");
  await writeFile(at("leaf.ext"), "subjectAltName=IP:127.0.0.1\n");
  await openssl("req", "-x509", ...EC, "-days", "1", "-subj", "/CN=test root", "-keyout", at("root.key"), "-out", at("root.pem"));
  await openssl("req", ...EC, "-subj", "/CN=test intermediate", "-keyout", at("int.key"), "-out", at("int.csr"));
  await openssl("x509", "-req", "-in", at("int.csr"), "-CA", at("root.pem"), "-CAkey", at("root.key"), "-CAcreateserial", "-days", "1", "-extfile", at("int.ext"), "-out", at("int.pem"));
  await openssl("req", ...EC, "-subj", "/CN=leaf", "-keyout", at("leaf.key"), "-out", at("leaf.csr"));
  await openssl("x509", "-req", "-in", at("leaf.csr"), "-CA", at("int.pem"), "-CAkey", at("int.key"), "-CAcreateserial", "-days", "1", "-extfile", at("leaf.ext"), "-out", at("leaf.pem"));
  await writeFile(at("trusted.pem"), readFileSync(at("expired.pem"), "utf8") + readFileSync(at("root.pem"), "utf8"));
});
afterAll(() => {
  for (const s of servers) s.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

test("a trusted certificate that expired is refused as expired, not as untrusted; one sent without its chain (its root trusted) asks for the chain", async () => {
  const expired = listen("expired.pem", "expired.key");
  const leafOnly = listen("leaf.pem", "leaf.key");
  // (NODE_EXTRA_CA_CERTS is read at start: another process asks)
  const script = at("ask.ts");
  await writeFile(script, `import { redisAuthFailure } from ${JSON.stringify(join(import.meta.dir, "../../src/util/redis-auth.ts"))};
console.log(JSON.stringify(await Promise.all([${expired}, ${leafOnly}].map((port) => redisAuthFailure("rediss://:Secret-pw-9@127.0.0.1:" + port, 3000)))));`);
  const ask = Bun.spawn([process.execPath, script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: at("trusted.pem") }, stdout: "pipe", stderr: "pipe" });
  const [out, err] = [await new Response(ask.stdout).text(), await new Response(ask.stderr).text()];
  expect({ code: await ask.exited, err }).toEqual({ code: 0, err: "" });
  expect(JSON.parse(out)).toEqual([
    "TLS: the Redis server's certificate was refused (CERT_HAS_EXPIRED)",
    "TLS: the Redis server's certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE; does the Redis server send its chain (the intermediate certificates after its own)? Else a private CA's certificate goes in NODE_EXTRA_CA_CERTS)",
  ]);
  expect(out).not.toContain("pw-");
});
