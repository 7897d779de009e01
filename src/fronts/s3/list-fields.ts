/**
 * An upstream listing entry's Size and LastModified as S3 writes them: a whole number of bytes and
 * an ISO 8601 time. Both fronts refuse a listing whose entry breaks this (a store's bug: a Size of
 * -5 or "many", a LastModified of "junk") rather than relay it (list.ts) or show it (the plain
 * front's folder index, listing/parse.ts). An absent field is not checked.
 */
const SIZE = /^\d{1,16}$/;
const LAST_MODIFIED = /^\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$/;

export function readableEntryFields(size: string | undefined, modified: string | undefined): boolean {
  return (size === undefined || SIZE.test(size.trim())) && (modified === undefined || LAST_MODIFIED.test(modified.trim()));
}
