/**
 * /ready answers anyone who can reach the listener: a Redis layer's reason keeps what an operator
 * acts on (NOPERM, the command) without what Redis 7.2+ writes beside it, the ACL user's name and
 * the key or channel it refused. A stand-in Redis answers in 7.2's words (the local redis-server
 * may be older, whose NOPERM names no user).
 */
import { expect, test, setDefaultTimeout } from "bun:test";
import { startInProcess } from "../e2e/harness.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(30_000);

/** A Redis that completes HELLO and refuses every other command with `refusal(command)`. */
function refusingRedis(refusal: (command: string) => string) {
  return Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, d) {
        const command = /\r\n\$\d+\r\n([A-Za-z]+)\r\n/.exec(d.toString("latin1"))?.[1]?.toLowerCase() ?? "";
        s.write(command === "hello" ? "%3\r\n+server\r\n+redis\r\n+version\r\n+7.2.4\r\n+proto\r\n:3\r\n" : `-${refusal(command)}\r\n`);
      },
    },
  });
}

test.each([
  ["a command", (c: string) => `NOPERM User cache-acl-user has no permissions to run the '${c}' command`, "the 'subscribe' command"],
  ["a channel", () => "NOPERM User cache-acl-user has no permissions to access the 'yatagarasu:secret-report.csv' channel", "a channel"],
])("a Redis refusal of %s in 7.2's words: /ready names NOPERM and what was refused, never the ACL user nor the key", async (_what, refusal, kept) => {
  const redis = refusingRedis(refusal);
  try {
    await using px = await startInProcess(
      `server: { address: 127.0.0.1, port: 0 }\n` +
        `buckets:\n  - { name: b, path_prefix: /b, s3: { bucket: bb, endpoint: "http://127.0.0.1:1" }, cache: { enabled: true } }\n` +
        `cache:\n  cache_layers: [memory, redis]\n  redis: { url: "redis://cache-acl-user:Redis-pw-0123@127.0.0.1:${redis.port}/0", connect_timeout_ms: 300 }\n`,
    );
    const text = await waitFor(
      async () => {
        const t = await (await fetch(px.url("/ready"))).text();
        return (JSON.parse(t) as { cache_layers?: { redis?: { state: string } } }).cache_layers?.redis?.state === "down" ? t : undefined;
      },
      { message: "/ready to show the Redis layer down" },
    );
    const body = JSON.parse(text) as { degraded: string[]; cache_layers: { redis: { reason: string } } };
    expect(body.cache_layers.redis.reason).toContain("NOPERM");
    expect(body.cache_layers.redis.reason).toContain(kept);
    expect(body.degraded.find((d) => d.startsWith("cache layer redis"))).toContain("NOPERM");
    expect(text).not.toContain("cache-acl-user");
    expect(text).not.toContain("secret-report");
    expect(text).not.toContain("Redis-pw");
  } finally {
    redis.stop(true);
  }
});
