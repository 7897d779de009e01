import { expect, test, setDefaultTimeout } from "bun:test";
import { OpenWork } from "../../src/util/open-work.ts";

setDefaultTimeout(30_000);

test("a shutdown's wait for open work: ends once all is closed, or at its bound with what is still open (each named by its fields, an upload id learnt late included)", async () => {
  const work = new OpenWork();
  expect(await work.settle(10_000)).toEqual([]);
  const a = { bucket: "up", key: "a" };
  const closeA = work.add(a);
  const closeB = work.add({ bucket: "up", key: "b", upload_id: "B" });
  (a as Record<string, string>).upload_id = "A";
  closeB();
  expect(await work.settle(20)).toEqual([{ bucket: "up", key: "a", upload_id: "A" }]);
  const waited = work.settle(10_000);
  closeA();
  expect([await waited, work.size]).toEqual([[], 0]);
});
