/** 400 Gregorian years, in milliseconds: the calendar repeats exactly after them. */
const FOUR_CENTURIES_MS = 146_097 * 86_400_000;

/**
 * Date.UTC for a four-digit year as written: Date.UTC reads years 0 to 99 as 1900 to 1999 (a date
 * in 0099 was 1999), so such a year is taken 400 years on and brought back. `month` from 0.
 */
export function utcMs(year: number, month: number, day: number, h: number, m: number, s: number): number {
  return year >= 100 ? Date.UTC(year, month, day, h, m, s) : Date.UTC(year + 400, month, day, h, m, s) - FOUR_CENTURIES_MS;
}
