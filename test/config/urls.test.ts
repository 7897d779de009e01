/**
 * Defect 10: credentials in URL-valued keys (`http://user:pass@host`) are refused at validation,
 * with a message saying where credentials go and never echoing them; no output path prints them.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, parseConfig, type ConfigIssue } from "../../src/config/load.ts";
import { summarize } from "../../src/config/summary.ts";
import { printableUrl, userinfoProblem } from "../../src/config/url.ts";
import { runCli } from "../e2e/harness.ts";

// Bun 1.4.5 ignores bunfig's [test] timeout (5 s default); servers and real clients on a loaded machine need more.
setDefaultTimeout(30_000);

const PASSWORD = "hunter2-Pw-7c1e";
const USER = "AKIAUSERINURL";

function issues(yaml: string, env: Record<string, string | undefined> = {}): ConfigIssue[] {
  try {
    parseConfig(yaml, { env });
  } catch (err) {
    if (err instanceof ConfigError) {
      // Whatever is refused, the error text never carries the credentials.
      expect(err.message).not.toContain(PASSWORD);
      expect(err.message).not.toContain(USER);
      return err.issues;
    }
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const bucket = (s3 = "", extra = "") => `buckets:\n  - name: b\n    path_prefix: /b\n    s3: { bucket: bkt${s3} }\n${extra}`;

describe("userinfo in URL-valued keys is refused", () => {
  test("s3.endpoint with user:password points to access_key/secret_key", () => {
    const got = issues(bucket(`, endpoint: "http://${USER}:${PASSWORD}@127.0.0.1:9000"`));
    expect(got).toEqual([
      {
        path: "buckets[0].s3.endpoint",
        message: "must not contain a user name or password (user:password@host): S3 credentials go in access_key and secret_key",
        line: 4,
      },
    ]);
  });

  for (const [what, url] of [
    ["a user name only", `https://${USER}@s3.example.com`],
    ["a password only", `https://:${PASSWORD}@s3.example.com`],
    ["percent-encoded characters", `http://${USER}:${PASSWORD}%40x@127.0.0.1:9000/base`],
  ] as const) {
    test(`s3.endpoint with ${what} is refused`, () => {
      const got = issues(bucket(`, endpoint: "${url}"`));
      expect(got.map((i) => i.path)).toEqual(["buckets[0].s3.endpoint"]);
      expect(got[0].message).toContain("access_key and secret_key");
    });
  }

  test("credentials arriving through ${VAR} substitution are refused too, and not echoed", () => {
    const got = issues(bucket(', endpoint: "${EP}"'), { EP: `http://${USER}:${PASSWORD}@127.0.0.1:9000` });
    expect(got.map((i) => i.path)).toEqual(["buckets[0].s3.endpoint"]);
  });

  test("jwt.jwks_url (even with jwt disabled), opa_url and openfga_endpoint are refused the same way", () => {
    const url = `https://${USER}:${PASSWORD}@auth.example.com/x`;
    const yaml =
      `jwt: { enabled: false, jwks_url: "${url}" }\n` +
      bucket(
        "",
        `    authorization: { type: opa, opa_url: "${url}", opa_policy_path: p/allow }\n` +
          `  - name: c\n    path_prefix: /c\n    s3: { bucket: c }\n    auth: { enabled: true }\n` +
          `    authorization: { type: openfga, openfga_endpoint: "${url}", openfga_store_id: s }\n`,
      );
    const got = issues(yaml).filter((i) => i.message.startsWith("must not contain a user name or password"));
    // (in file order)
    expect(got.map((i) => [i.path, i.message.split(": ").at(-1)])).toEqual([
      ["jwt.jwks_url", "a JWKS is public key material and needs no credentials"],
      ["buckets[0].authorization.opa_url", "credentials in the URL are not supported"],
      ["buckets[1].authorization.openfga_endpoint", "put the OpenFGA token in openfga_api_token"],
    ]);
  });

  test("URL keys other than s3.endpoint must be http(s) too", () => {
    const got = issues(`jwt: { secret: s, jwks_url: "ftp://keys.example.com/jwks" }\n${bucket()}`);
    expect(got).toContainEqual({ path: "jwt.jwks_url", message: "must be an http:// or https:// URL", line: 1 });
  });

  test("URLs without userinfo pass (an @ in the path is not userinfo)", () => {
    const c = parseConfig(bucket(', endpoint: "http://127.0.0.1:9000/base/@x"'), { env: {} });
    expect(c.buckets[0].s3.endpoint).toBe("http://127.0.0.1:9000/base/@x");
    expect(userinfoProblem("http://@127.0.0.1:9000", "x")).toBeUndefined();
  });
});

describe("a URL whose host is no host name is refused", () => {
  const NO_HOST = (host: string) =>
    `its host '${host}' is not a host name (a label between dots is empty: the original README's \`https://...\` is a placeholder): write the real URL in its place`;

  test("the original README's `endpoint: \"https://...\"` placeholder is refused, not loaded to fail every request with ENOTFOUND", () => {
    expect(issues(bucket(', endpoint: "https://..."'))).toEqual([{ path: "buckets[0].s3.endpoint", message: NO_HOST("..."), line: 4 }]);
    const rep = issues(`buckets:\n  - name: b\n    path_prefix: /b\n    s3: { replicas: [{ name: r, bucket: bkt, endpoint: "http://minio..local:9000" }] }\n`);
    expect(rep).toEqual([{ path: "buckets[0].s3.replicas[0].endpoint", message: NO_HOST("minio..local"), line: 4 }]);
    expect(issues(`jwt: { secret: s-0123456789abcdef0123456789abcdef, jwks_url: "https://.example.com/jwks" }\n${bucket()}`)).toContainEqual({ path: "jwt.jwks_url", message: NO_HOST(".example.com"), line: 1 });
  });

  test("a fully qualified name (one final dot) and IPv6 hosts pass", () => {
    expect(parseConfig(bucket(', endpoint: "http://minio.svc.cluster.local.:9000"'), { env: {} }).buckets[0].s3.endpoint).toBe("http://minio.svc.cluster.local.:9000");
    expect(parseConfig(bucket(', endpoint: "http://[::1]:9000"'), { env: {} }).buckets[0].s3.endpoint).toBe("http://[::1]:9000");
  });
});

describe("printableUrl", () => {
  test("drops userinfo, query and fragment; keeps scheme, host, port and path", () => {
    expect(printableUrl(`http://${USER}:${PASSWORD}@h.example:9000/p?X-Amz-Security-Token=t#f`)).toBe("http://h.example:9000/p");
    expect(printableUrl("http://127.0.0.1:9000")).toBe("http://127.0.0.1:9000");
    expect(printableUrl("not a url")).toBe("(invalid URL)");
  });

  test("the --check summary prints endpoints through it (a config that bypassed validation still prints no credentials)", () => {
    const c = parseConfig(bucket(', endpoint: "http://127.0.0.1:9000"'), { env: {} });
    const forged = { ...c, buckets: [{ ...c.buckets[0], s3: { ...c.buckets[0].s3, endpoint: `http://${USER}:${PASSWORD}@127.0.0.1:9000` } }] };
    const text = summarize(forged, "c.yaml");
    expect(text).toContain("@ http://127.0.0.1:9000)");
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(USER);
  });
});

describe("the command line", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "yata-urls-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("--check on an endpoint with credentials exits 1 and prints neither the user nor the password", async () => {
    const p = join(dir, "userinfo.yaml");
    writeFileSync(p, bucket(`, endpoint: "http://${USER}:${PASSWORD}@127.0.0.1:9000"`));
    const r = await runCli(["--check", "--config", p]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${p}:4: buckets[0].s3.endpoint: must not contain a user name or password`);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    expect(r.stdout + r.stderr).not.toContain(USER);
  });

  test("serving with it refuses to start (exit 1), without printing them", async () => {
    const p = join(dir, "userinfo-serve.yaml");
    writeFileSync(p, `server: { address: 127.0.0.1, port: 0 }\n${bucket(`, endpoint: "http://${USER}:${PASSWORD}@127.0.0.1:9000"`)}`);
    const r = await runCli(["--config", p]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    expect(r.stdout + r.stderr).not.toContain(USER);
  });
});
