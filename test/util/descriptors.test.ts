import { expect, test, setDefaultTimeout } from "bun:test";
import { startFetchClient } from "../../src/util/descriptors.ts";

setDefaultTimeout(30_000);

test("startFetchClient sends nothing to an HTTP proxy the environment names (nor waits for one)", async () => {
  const seen: string[] = [];
  // A proxy that records what reaches it and never answers.
  const proxy = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data(_s, d) { seen.push(d.toString("latin1").split("\r\n")[0]!); } } });
  const saved = { HTTP_PROXY: process.env.HTTP_PROXY, http_proxy: process.env.http_proxy };
  process.env.HTTP_PROXY = process.env.http_proxy = `http://127.0.0.1:${proxy.port}`;
  try {
    await startFetchClient();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    proxy.stop(true);
  }
  expect(seen).toEqual([]);
});
