/**
 * cfgfuzz: a value with a tag the parser does not know (`!vault path`, `!!js/function ...`) was
 * read as the plain string after it (the yaml package reports it as a warning, not an error): a
 * `secret_key: !vault prod/s3` was used literally. It is an error naming the line, never the
 * value. A `!!binary` or `!!timestamp` value where a string goes was "got a mapping".
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { ConfigError, parseConfig } from "../../src/config/load.ts";

setDefaultTimeout(30_000);

function messages(yaml: string): string[] {
  try {
    parseConfig(yaml, { env: {}, file: "c.yaml" });
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split("\n");
    throw err;
  }
  throw new Error("expected a ConfigError");
}
const cfg = (region: string) => `buckets:\n  - name: b\n    path_prefix: /b\n    s3:\n      bucket: bkt\n      region: ${region}\n      endpoint: "http://127.0.0.1:9000"\n`;

describe("YAML tags", () => {
  test("an unknown tag is an error with its line, never silently dropped", () => {
    for (const v of ["!vault us-east-1", "!!js/function us-east-1", "!<tag:example.com,2000:x> us-east-1"]) {
      const m = messages(cfg(v));
      expect(m.join("\n")).toContain("c.yaml:6");
      expect(m.join("\n")).toContain("unknown tag");
      expect(m.join("\n")).not.toContain("vault");
    }
  });

  test("a known tag still works", () => {
    expect(() => parseConfig(cfg("!!str us-east-1"), { env: {} })).not.toThrow();
  });

  test("the core schema's tags are honoured as YAML 1.2 defines; a value the tag cannot take is named as such", () => {
    const c = parseConfig(`server:\n  port: !!int "8080"\n  shutdown_timeout: !!float 30\n  request_timeout: !!float "5"\n${cfg("!!str us-east-1")}`, { env: {} });
    expect([c.server.port, c.server.shutdown_timeout, c.server.request_timeout]).toEqual([8080, 30, 5]);
    const m = messages(`server:\n  shutdown_timeout: !!bool yes\n${cfg("us-east-1")}`).join("\n");
    expect(m).toContain("c.yaml:2");
    expect(m).toContain("not a valid !!bool value (YAML 1.2: true or false)");
    expect(messages(`server:\n  port: !!int abc\n${cfg("us-east-1")}`).join("\n")).toContain("not a valid !!int value");
    // (a tag meets the text before substitution)
    expect(messages(`server:\n  port: !!int \${PORT}\n${cfg("us-east-1")}`).join("\n")).toContain("not a valid !!int value (YAML 1.2: digits with an optional sign, 0x… or 0o…) (a tag is applied to the text as written, before ${VAR} substitution: drop the tag");
  });

  test("an unquoted ${VAR} tagged !!str (or !) stays a string, as a quoted one does", () => {
    for (const tag of ["!!str", "!"]) {
      const c = parseConfig(cfg(`${tag} \${R}`), { env: { R: "2024" } });
      expect(c.buckets[0]!.s3.region).toBe("2024");
    }
    // untagged, it takes its value's type (a number where a string goes: an error)
    expect(() => parseConfig(cfg("${R}"), { env: { R: "2024" } })).toThrow("its value reads as a number or boolean");
  });

  test("a ${VAR} tagged !!str (or !) where a number goes says the tag made it a string, not that the variable is no number", () => {
    for (const tag of ["!!str", "!"]) {
      let m = "";
      try {
        parseConfig(`server:\n  port: ${tag} \${PORT}\n${cfg("us-east-1")}`, { env: { PORT: "8080" }, file: "c.yaml" });
      } catch (err) {
        if (err instanceof ConfigError) m = err.message;
        else throw err;
      }
      expect(m).toContain(`c.yaml:2: server.port: "${tag} \${PORT}" is tagged as a string, so its value is a string, and a number or a boolean goes here: drop the tag (an unquoted \${PORT} alone takes its value's type)`);
      expect(m).not.toContain("set PORT to a plain number");
    }
  });

  test("a number or true/false tagged !!str (or !) where one goes is told to drop the tag, not the quotes it does not have", () => {
    const cases: Array<[string, string]> = [
      ["server: { port: !!str 8080 }", "server.port: expected a number, got a string (drop the !!str tag)"],
      ["server: { port: ! 8080 }", "server.port: expected a number, got a string (drop the ! tag)"],
      ['server: { port: !!str "8080" }', "server.port: expected a number, got a string (drop the !!str tag and the quotes)"],
      ["server: { workers: !!str 4 }", 'server.workers: expected a number or "auto", got a string (drop the !!str tag)'],
      ["server: { rate_limit: { enabled: !!str true } }", "server.rate_limit.enabled: expected a boolean, got a string (write true or false, and drop the !!str tag)"],
      // (quoted alone, the quotes are what to drop)
      ['server: { port: "8080" }', "server.port: expected a number, got a string (write it without quotes)"],
    ];
    expect(cases.map(([yaml]) => messages(`${yaml}\n${cfg("us-east-1")}`)[0])).toEqual(cases.map(([, m]) => `c.yaml:1: ${m}`));
    // (a block scalar has no quotes to drop, and is a string without the tag too)
    expect(messages(`server:\n  port: !!str >-\n    8080\n${cfg("us-east-1")}`)[0]).toBe("c.yaml:2: server.port: expected a number, got a string (drop the !!str tag and write the value after the colon, not as a block scalar)");
  });

  test("binary and timestamp values are named as what they are", () => {
    expect(messages(cfg("!!binary dXMtZWFzdC0x")).join("\n")).toContain("got binary data (!!binary)");
    expect(messages(cfg("!!timestamp 2001-12-14")).join("\n")).toContain("got a timestamp");
    expect(messages(`server: { shutdown_timeout: .nan }\n${cfg("us-east-1")}`).join("\n")).toContain("got not a number (.nan)");
  });

  test("a missing comma in a flow list says what is missing", () => {
    const m = messages(`x-a: [\${X}]\n${cfg("us-east-1")}`).join("\n");
    expect(m).toContain("missing , or : between flow sequence items");
  });
});
