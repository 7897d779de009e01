/**
 * A plain-front PUT carrying x-amz-copy-source is refused (400), never read as a plain write: on S3
 * that header makes the PUT a CopyObject, and the plain front, which does not copy, wrote the
 * request's body (most often empty) over the destination instead of the source's bytes.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { startS3Fixture, type S3Fixture } from "../fixtures/s3.ts";
import { bearer, bucket, startWriteEnv, WRITER, type WriteEnv } from "./plain-write-env.ts";

setDefaultTimeout(30_000);

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3Fixture({ buckets: [{ name: "rw" }, { name: "ro" }], credentials: [WRITER] });
});
afterAll(async () => {
  await s3?.stop();
});

const buckets = (ep: string) => bucket("rw", "/rw", "rw", ep, "    access: read-write\n    auth: { enabled: true }\n");
const text = async (key: string) => {
  const b = await s3.read("rw", key);
  return b === undefined || b === null ? undefined : new TextDecoder().decode(b);
};

for (const engine of ["bun", "node"] as const) {
  describe(`plain-front PUT with x-amz-copy-source (${engine} engine)`, () => {
    let env: WriteEnv;
    beforeAll(async () => {
      env = await startWriteEnv({ engine, buckets }, s3);
    });
    afterAll(async () => {
      await env?.stop();
    });

    test("400 naming the S3 operation; the destination is neither created nor overwritten, nothing goes upstream", async () => {
      await s3.put("rw", `${engine}/src.txt`, "source bytes");
      await s3.put("rw", `${engine}/kept.txt`, "old destination");
      for (const [dest, body] of [[`${engine}/new.txt`, ""], [`${engine}/kept.txt`, ""], [`${engine}/kept.txt`, "a body"]] as const) {
        const from = s3.requests.length;
        const res = await fetch(env.url(`/rw/${dest}`), { method: "PUT", body, headers: { ...bearer(), "x-amz-copy-source": `/rw/${engine}/src.txt` } });
        expect(res.status).toBe(400);
        const j = (await res.json()) as { error: string; message: string };
        expect(j.error).toBe("BadRequest");
        expect(j.message).toContain("x-amz-copy-source");
        expect(s3.requests.slice(from).filter((r) => !r.admin && r.method === "PUT")).toEqual([]);
      }
      expect(await text(`${engine}/new.txt`)).toBeUndefined();
      expect(await text(`${engine}/kept.txt`)).toBe("old destination");
      // a PUT without the header still writes
      const ok = await fetch(env.url(`/rw/${engine}/new.txt`), { method: "PUT", body: "plain", headers: bearer() });
      expect(ok.status).toBe(200);
      expect(await text(`${engine}/new.txt`)).toBe("plain");
    });
  });
}
