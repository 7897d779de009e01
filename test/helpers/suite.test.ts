/**
 * Rules every test file keeps so that the suite holds under `bun test --parallel=2` (.ci/run) on a
 * loaded host.
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { Glob } from "bun";
import { join } from "node:path";

setDefaultTimeout(30_000);

const ROOT = join(import.meta.dir, "../..");

test("every test file sets its own default timeout (bunfig.toml's is ignored, a preload's reaches one file): Bun's 5 s cut a 1 s test on a loaded host", async () => {
  const files: string[] = [];
  for (const dir of ["test", "bench"]) for await (const f of new Glob("**/*.test.ts").scan({ cwd: join(ROOT, dir) })) files.push(`${dir}/${f}`);
  expect(files.length).toBeGreaterThan(300);
  const without: string[] = [];
  for (const f of files) if (!/^setDefaultTimeout\(\d[\d_]*\);/m.test(await Bun.file(join(ROOT, f)).text())) without.push(f);
  expect(without).toEqual([]);
});
