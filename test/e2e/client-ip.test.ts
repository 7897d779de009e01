/**
 * The client address behind a trusted proxy, end to end: X-Forwarded-For is believed only when its
 * entry is an IP address (ip:port and [v6]:port read as their IP); anything else never reaches the
 * access log or the audit trail, and ip_filter's blocklist applies to the normalized address.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { waitFor } from "../helpers/wait.ts";
import { startProxy, type ProxyProcess } from "./harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

let s3: S3Fixture;
let px: ProxyProcess;

const BAD = ["not-an-ip", "<script>", "9".repeat(5000), "garbage"];

beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "data", public: true }], credentials: [] });
  await s3.put("data", "a.txt", "aaa", { contentType: "text/plain" });
  px = await startProxy(
    `server: { address: 127.0.0.1, port: 0, trusted_proxies: [127.0.0.0/8] }\n` +
      `audit: { enabled: true, path: audit.log }\n` +
      `buckets:\n  - name: pub\n    path_prefix: /pub\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n    ip_filter: { blocklist: [1.2.3.0/24] }\n`,
  );
});
afterAll(async () => {
  await px?.stop();
  await s3?.stop();
});

async function get(xff: string, id: string): Promise<number> {
  const res = await fetch(px.url("/pub/a.txt"), { headers: { "x-forwarded-for": xff, "x-request-id": id } });
  await res.arrayBuffer();
  return res.status;
}

const access = (id: string) => px.waitForLog((l) => l.msg === "request" && l.request_id === id);

describe("X-Forwarded-For behind a trusted proxy", () => {
  test("ip:port and [v6]:port are read as their IP, and the blocklist applies to it", async () => {
    expect(await get("1.2.3.4:5555", "xff-port")).toBe(403);
    expect((await access("xff-port")).client_ip).toBe("1.2.3.4");
    expect(await get("9.9.9.9, 1.2.3.4", "xff-plain")).toBe(403);
    expect(await get("[2001:db8::7]:8443", "xff-v6")).toBe(200);
    expect((await access("xff-v6")).client_ip).toBe("2001:db8::7");
  });

  test("an entry that is not an IP address is never the client: the peer is, in the access log and the audit trail, and it is warned about once", async () => {
    for (const [i, bad] of BAD.entries()) {
      expect(await get(bad, `xff-bad-${i}`)).toBe(200);
      expect((await access(`xff-bad-${i}`)).client_ip).toBe("127.0.0.1");
    }
    const warnings = px.logs().filter((l) => l.level === "warn" && String(l.msg).includes("X-Forwarded-For"));
    expect(warnings).toHaveLength(1);
    const audit = join(px.dir, "audit.log");
    const lines = await waitFor(() => {
      if (!existsSync(audit)) return undefined;
      // complete lines only: the file may be read while a line is being written
      const ls = readFileSync(audit, "utf8").split("\n").slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>);
      return ls.filter((l) => String(l.request_id).startsWith("xff-bad-")).length === BAD.length ? ls : undefined;
    });
    for (const l of lines.filter((l) => String(l.request_id).startsWith("xff-bad-"))) expect(l.client_ip).toBe("127.0.0.1");
    const out = px.output();
    for (const bad of BAD) expect(out.includes(bad)).toBe(false);
  });
});

test('on a dual-stack listener (address "::") an IPv4 client is logged as its IPv4 address, not "::ffff:127.0.0.1"', async () => {
  await using dual = await startProxy(`server: { address: "::", port: 0 }\nbuckets:\n  - name: pub\n    path_prefix: /pub\n    s3: { bucket: data, endpoint: "${s3.endpoint}" }\n`);
  const res = await fetch(`http://127.0.0.1:${dual.port}/pub/a.txt`, { headers: { "x-request-id": "dual-v4" } });
  expect([res.status, await res.text()]).toEqual([200, "aaa"]);
  expect((await dual.waitForLog((l) => l.msg === "request" && l.request_id === "dual-v4")).client_ip).toBe("127.0.0.1");
});
