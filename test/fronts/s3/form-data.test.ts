import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { FormDataError, formBoundary, FormReader } from "../../../src/fronts/s3/form-data.ts";

setDefaultTimeout(30_000);

const enc = new TextEncoder();
const BOUNDARY = "----WebKitFormBoundaryAbC123";

function body(parts: Array<{ name: string; value: string | Uint8Array; filename?: string; type?: string }>, tail = "--\r\n"): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    let head = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    head += "\r\n";
    if (p.type !== undefined) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(enc.encode(head + "\r\n"), typeof p.value === "string" ? enc.encode(p.value) : p.value, enc.encode("\r\n"));
  }
  chunks.push(enc.encode(`--${BOUNDARY}${tail}`));
  return Buffer.concat(chunks);
}

/** The bytes as a stream cut into pieces of `size` (the last may be shorter). */
function streamOf(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

async function readAll(stream: ReadableStream<Uint8Array>, opts: { releaseChunks?: boolean } = {}) {
  const r = new FormReader(stream, BOUNDARY, opts);
  const out: Array<{ name: string; filename?: string; type?: string; value: Uint8Array }> = [];
  for (let p = await r.nextPart(); p !== undefined; p = await r.nextPart()) {
    const chunks: Uint8Array[] = [];
    for await (const c of r.body()) chunks.push(c.slice());
    out.push({ name: p.name, filename: p.filename, type: p.contentType, value: Buffer.concat(chunks) });
  }
  return out;
}

describe("formBoundary", () => {
  test("multipart/form-data with a boundary, quoted or not; anything else undefined", () => {
    expect(formBoundary(`multipart/form-data; boundary=${BOUNDARY}`)).toBe(BOUNDARY);
    expect(formBoundary('Multipart/Form-Data;boundary="a b"')).toBe("a b");
    expect(formBoundary("multipart/form-data")).toBeUndefined();
    expect(formBoundary("application/x-www-form-urlencoded")).toBeUndefined();
    expect(formBoundary(`multipart/form-data; boundary=${"x".repeat(71)}`)).toBeUndefined();
    expect(formBoundary(null)).toBeUndefined();
  });
});

describe("FormReader", () => {
  // a file whose bytes contain near-misses of the delimiter
  const file = Buffer.concat([enc.encode(`\r\n--${BOUNDARY.slice(0, -1)}X\r\n--`), crypto.getRandomValues(new Uint8Array(3000)), enc.encode(`\r\n-`)]);
  const bytes = body([
    { name: "key", value: "uploads/${filename}" },
    { name: "Policy", value: "eyJ9" },
    { name: "file", value: file, filename: "a \\\"b\\\".bin", type: "application/octet-stream" },
    { name: "after", value: "ignored?" },
  ]);

  test("every chunking of the body gives the same fields and the file byte-exact", async () => {
    for (const size of [1, 2, 3, 7, 31, 32, 33, 64, 100, 1000, bytes.length]) {
      const got = await readAll(streamOf(bytes, size));
      expect(got.map((p) => [p.name, p.filename, p.type, p.name === "file" ? p.value.length : Buffer.from(p.value).toString()])).toEqual([
        ["key", undefined, undefined, "uploads/${filename}"],
        ["Policy", undefined, undefined, "eyJ9"],
        ["file", 'a "b".bin', "application/octet-stream", file.length],
        ["after", undefined, undefined, "ignored?"],
      ]);
      expect(Buffer.from(got[2]!.value).equals(file)).toBe(true);
    }
  });

  test("releaseChunks: every chunking still reads byte-exact, and each chunk handed in is freed (detached) once used; without it none is", async () => {
    for (const release of [true, false]) {
      for (const size of [1, 3, 33, 100, 1000, bytes.length]) {
        const given: Uint8Array[] = [];
        const source = streamOf(bytes, size);
        const reader = source.getReader();
        const tracked = new ReadableStream<Uint8Array>({
          async pull(c) {
            const r = await reader.read();
            if (r.done) return c.close();
            const own = new Uint8Array(r.value); // a whole ArrayBuffer (streamOf's are views of one Buffer)
            given.push(own);
            c.enqueue(own);
          },
        });
        const got = await readAll(tracked, { releaseChunks: release });
        expect(got.map((p) => p.name)).toEqual(["key", "Policy", "file", "after"]);
        expect(Buffer.from(got[2]!.value).equals(file)).toBe(true);
        expect(Buffer.from(got[0]!.value).toString()).toBe("uploads/${filename}");
        // every chunk but perhaps the last (the reader's buffer at the end) is gone when releasing
        const freed = given.filter((c) => c.byteLength === 0).length;
        if (release) expect(freed).toBeGreaterThanOrEqual(given.length - 1);
        else expect(freed).toBe(0);
      }
    }
  });

  test("a quoted name is taken as browsers write it (a backslash as itself), or unescaped when it holds an escaped quote (Go, older curl)", async () => {
    const one = async (disposition: string) => {
      const raw = enc.encode(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n\r\nx\r\n--${BOUNDARY}--\r\n`);
      const [p] = await readAll(streamOf(raw, raw.length));
      return [p!.name, p!.filename];
    };
    expect(await one('form-data; name="file"; filename="C:\\Program Files\\file.txt"')).toEqual(["file", "C:\\Program Files\\file.txt"]);
    expect(await one('form-data; name="file"; filename="trail\\"')).toEqual(["file", "trail\\"]);
    expect(await one('form-data; name="file"; filename="a%22b; c.txt"')).toEqual(["file", "a%22b; c.txt"]);
    expect(await one('form-data; name="file"; filename="a \\"q\\" \\\\x.txt"')).toEqual(["file", 'a "q" \\x.txt']);
    expect(await one('form-data; filename=plain.txt ; name="file"')).toEqual(["file", "plain.txt"]);
    expect(await one("form-data; name=\"file\"; filename*=UTF-8''%E2%9C%93.txt")).toEqual(["file", undefined]);
  });

  test("text() bounds a field; nextPart() skips an unread part", async () => {
    const r = new FormReader(streamOf(bytes, 5), BOUNDARY);
    expect((await r.nextPart())?.name).toBe("key");
    expect(await r.text(5)).toBeUndefined();
    expect((await r.nextPart())?.name).toBe("Policy");
    expect(await r.text(100)).toBe("eyJ9");
    expect((await r.nextPart())?.name).toBe("file");
    expect((await r.nextPart())?.name).toBe("after");
    expect(await r.nextPart()).toBeUndefined();
  });

  test("malformed bodies are FormDataError: no boundary, cut inside a part, a part without a name", async () => {
    const fail = async (b: Uint8Array) => {
      try {
        await readAll(streamOf(b, 10));
        return "no error";
      } catch (e) {
        return e instanceof FormDataError ? "FormDataError" : String(e);
      }
    };
    expect(await fail(enc.encode("hello world, no boundary here"))).toBe("FormDataError");
    expect(await fail(bytes.subarray(0, bytes.length - 300))).toBe("FormDataError");
    expect(await fail(enc.encode(`--${BOUNDARY}\r\nContent-Disposition: attachment\r\n\r\nx\r\n--${BOUNDARY}--`))).toBe("FormDataError");
    expect(await fail(enc.encode(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n`))).toBe("FormDataError");
  });
});

test("hostile bodies (random bytes, truncations and splices of a valid body): every one parses or is a FormDataError, none hangs", async () => {
  // xorshift, seeded: the same cases every run
  let x = 0x9e3779b9;
  const rnd = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const valid = body([{ name: "key", value: "k" }, { name: "file", value: new Uint8Array(500).fill(45), filename: "f" }]);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    let b: Uint8Array;
    const kind = i % 4;
    if (kind === 0) b = crypto.getRandomValues(new Uint8Array(rnd(300)));
    else if (kind === 1) b = valid.subarray(0, rnd(valid.length));
    else if (kind === 2) {
      b = valid.slice();
      for (let j = 0; j < 5; j++) b[rnd(b.length)] = [13, 10, 45, 34, 59][rnd(5)]!;
    } else b = Buffer.concat([valid.subarray(0, rnd(valid.length)), valid.subarray(rnd(valid.length))]);
    let outcome: string;
    try {
      await readAll(streamOf(b, 1 + rnd(64)));
      outcome = "parsed";
    } catch (e) {
      outcome = e instanceof FormDataError ? "FormDataError" : `unexpected ${String(e)}`;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  expect([...outcomes.keys()].filter((k) => k.startsWith("unexpected"))).toEqual([]);
  expect(outcomes.get("FormDataError")).toBeGreaterThan(100);
});
