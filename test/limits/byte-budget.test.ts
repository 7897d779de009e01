import { expect, test, setDefaultTimeout } from "bun:test";
import { ByteBudget } from "../../src/limits/index.ts";

setDefaultTimeout(30_000);

test("ByteBudget: reservations up to max; release frees them; a lowered max keeps what is held but admits nothing more", () => {
  const b = new ByteBudget(10);
  expect([b.tryReserve(6), b.tryReserve(5), b.tryReserve(4), b.reserved]).toEqual([true, false, true, 10]);
  b.release(6);
  expect([b.reserved, b.tryReserve(6), b.tryReserve(1)]).toEqual([4, true, false]);
  b.max = 5;
  expect([b.reserved, b.tryReserve(1)]).toEqual([10, false]);
  b.release(10);
  b.release(3); // never below zero
  expect([b.reserved, b.tryReserve(5)]).toEqual([0, true]);
  expect(() => new ByteBudget(-1)).toThrow(RangeError);
});
