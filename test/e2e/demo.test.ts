/**
 * `bun run demo` works as the README promises: it starts, prints its curl and aws-cli lines, and
 * those lines do what their comments say (run here through fetch and the real aws-cli).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { awsCli } from "../clients/aws.ts";
import { clientTest } from "../clients/run.ts";
import { waitFor } from "../helpers/wait.ts";

setDefaultTimeout(60_000);

let demo: ReturnType<typeof Bun.spawn>;
let out = "";

beforeAll(async () => {
  demo = Bun.spawn([process.execPath, join(import.meta.dir, "../fixtures/demo.ts")], {
    // S3_API_PORT=0: the demo picks the port before it starts the proxy (presigned URLs name it,
    // which a port chosen by the listener at start could not be), so its ?presign lines work.
    env: { ...process.env, PORT: "0", METRICS_PORT: "0", S3_API_PORT: "0" },
    // (a process group of its own, as a terminal gives it: the last test signals the group as Ctrl-C does)
    detached: true,
    stdout: "pipe",
    stderr: "pipe",
  });
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of demo.stdout as ReadableStream<Uint8Array>) out += dec.decode(chunk, { stream: true });
  })();
  await waitFor(() => out.includes("Press Ctrl-C to stop."), { timeoutMs: 30_000, message: () => `the demo's instructions\n${out}` });
});
afterAll(async () => {
  demo?.kill("SIGINT");
  await demo?.exited;
});

const line = (re: RegExp) => {
  const m = re.exec(out);
  if (!m) throw new Error(`no line matching ${re} in:\n${out}`);
  return m;
};

test("the curl lines: public object, folder index, 401 without a token, 200 with the printed token, a PUT, a presigned PUT and a form upload", async () => {
  const base = line(/curl -i (http:\/\/127\.0\.0\.1:\d+)\/public\/hello\.txt/)[1];
  const hello = await fetch(`${base}/public/hello.txt`);
  expect(hello.status).toBe(200);
  expect(await hello.text()).toContain("Hello from Yatagarasu");
  // the demo's proxy runs with the default max_header_size in force (Bun's own limit raised)
  const bigHead = await fetch(`${base}/public/hello.txt`, { headers: { "x-big": "y".repeat(30 * 1024) } });
  expect(bigHead.status).toBe(200);
  await bigHead.arrayBuffer();
  const index = (await (await fetch(`${base}/public/`)).json()) as { entries: Array<{ name: string }> };
  expect(index.entries.map((e) => e.name)).toContain("hello.txt");
  expect((await fetch(`${base}/private/reports/q3.csv`)).status).toBe(401);
  const token = line(/Authorization: Bearer ([\w.-]+)' http:\/\/127\.0\.0\.1:\d+\/private\/reports\/q3\.csv/)[1];
  const q3 = await fetch(`${base}/private/reports/q3.csv`, { headers: { authorization: `Bearer ${token}` } });
  expect(await q3.text()).toBe("quarter,revenue\nq3,42\n");
  const put = await fetch(`${base}/private/uploads/demo-test.txt`, { method: "PUT", headers: { authorization: `Bearer ${token}` }, body: "uploaded" });
  expect(put.status).toBe(200);
  expect(await (await fetch(`${base}/private/uploads/demo-test.txt`, { headers: { authorization: `Bearer ${token}` } })).text()).toBe("uploaded");
  // the presign lines: a PUT URL, and a form upload's url and fields, each used as printed
  line(/\?presign&method=PUT'/);
  const putUrl = (await (await fetch(`${base}/private/uploads/photo.txt?presign&method=PUT`, { method: "POST", headers: { authorization: `Bearer ${token}` } })).json()) as { url: string };
  expect((await fetch(putUrl.url, { method: "PUT", body: "via presigned PUT" })).status).toBe(200);
  line(/\?presign&method=POST'/);
  const post = (await (await fetch(`${base}/private/uploads/form.txt?presign&method=POST`, { method: "POST", headers: { authorization: `Bearer ${token}` } })).json()) as { url: string; fields: Record<string, string> };
  const form = new FormData();
  for (const [k, v] of Object.entries(post.fields)) form.append(k, v);
  form.append("file", new Blob(["via form"]), "form.txt");
  expect((await fetch(post.url, { method: "POST", body: form })).status).toBe(204);
  for (const [key, body] of [["photo.txt", "via presigned PUT"], ["form.txt", "via form"]]) {
    expect(await (await fetch(`${base}/private/uploads/${key}`, { headers: { authorization: `Bearer ${token}` } })).text()).toBe(body!);
  }
});

clientTest("aws")("the aws-cli lines: who the keys are, ls, cp down, cp up, a server-side copy, a copy across buckets, presign", async () => {
  const endpoint = line(/aws --endpoint-url (http:\/\/127\.0\.0\.1:\d+) s3 ls\n/)[1];
  const [, key, secret] = line(/export AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)/);
  await using aws = awsCli({ endpoint, credentials: { accessKeyId: key, secretAccessKey: secret } });
  expect(line(/s3 cp (README\.md s3:\/\/private\/uploads\/README\.md)\n/)[1]).toBeTruthy();
  expect(line(/s3 cp (s3:\/\/private\/uploads\/README\.md s3:\/\/private\/uploads\/copy\.md) /)[1]).toBeTruthy();
  expect(line(/s3 cp (s3:\/\/public\/hello\.txt s3:\/\/private\/uploads\/hello\.txt) /)[1]).toBeTruthy();
  // (the lines that do not build on each other run side by side, each chain in its order, on keys
  // of its own: each call is mostly aws-cli's start-up)
  await Promise.all([
    (async () => {
      const ls = await aws.s3("ls");
      expect(ls.code).toBe(0);
      expect(ls.stdout).toContain("public");
    })(),
    (async () => {
      const cp = await aws.s3("cp", "s3://private/reports/q3.csv", "-");
      expect(cp.stdout).toBe("quarter,revenue\nq3,42\n");
    })(),
    (async () => {
      const up = await aws.s3("cp", join(import.meta.dir, "../../README.md"), "s3://private/uploads/README.md");
      expect(up.code).toBe(0);
      const copy = await aws.s3("cp", "s3://private/uploads/README.md", "s3://private/uploads/copy.md");
      expect(copy.code).toBe(0);
      const back = await aws.s3("cp", "s3://private/uploads/copy.md", "-");
      expect(back.stdout).toBe(readFileSync(join(import.meta.dir, "../../README.md"), "utf8"));
    })(),
    (async () => {
      const across = await aws.s3("cp", "s3://public/hello.txt", "s3://private/uploads/hello.txt");
      expect(across.code, across.stderr).toBe(0);
      expect((await aws.s3("cp", "s3://private/uploads/hello.txt", "-")).stdout).toContain("Hello from Yatagarasu");
    })(),
    (async () => {
      expect(line(/aws --endpoint-url http:\/\/127\.0\.0\.1:\d+ (sts get-caller-identity) /)[1]).toBeTruthy();
      const who = await aws.sts("get-caller-identity");
      expect(who.code, who.stderr).toBe(0);
      expect(JSON.parse(who.stdout)).toMatchObject({ Arn: expect.stringMatching(/^arn:aws:iam::000000000000:user\//), Account: "000000000000" });
    })(),
    (async () => {
      const presign = await aws.s3("presign", "s3://public/hello.txt");
      expect(presign.code).toBe(0);
      expect(await (await fetch(presign.stdout.trim())).text()).toContain("Hello from Yatagarasu");
    })(),
  ]);
});

// The proxy runs in a process group of its own (Ctrl-C below): a SIGKILL of the demo's group (a CI
// job cancelled, `timeout -s KILL`) left it running, on the demo's ports, its store gone.
test("the demo's group killed (SIGKILL): its proxy stops too, no orphan left on its ports", async () => {
  const second = Bun.spawn([process.execPath, join(import.meta.dir, "../fixtures/demo.ts")], {
    env: { ...process.env, PORT: "0", METRICS_PORT: "0", S3_API_PORT: "0" },
    detached: true,
    stdout: "pipe",
    stderr: "ignore",
  });
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  let proxyPid = 0;
  try {
    let text = "";
    const dec = new TextDecoder();
    const reader = (second.stdout as ReadableStream<Uint8Array>).getReader();
    while (!text.includes("Press Ctrl-C to stop.")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the second demo ended before its instructions:\n${text}`);
      text += dec.decode(value, { stream: true });
    }
    void reader.cancel().catch(() => {});
    const pgrep = Bun.spawn(["pgrep", "-P", String(second.pid)], { stdout: "pipe" });
    proxyPid = Number((await new Response(pgrep.stdout).text()).trim().split("\n")[0]);
    expect(alive(proxyPid)).toBe(true);
    process.kill(-second.pid, "SIGKILL");
    await second.exited;
    await waitFor(() => !alive(proxyPid), { timeoutMs: 10_000, message: () => `the proxy (pid ${proxyPid}) to stop after its demo was killed` });
  } finally {
    if (second.exitCode === null && second.signalCode === null) second.kill("SIGKILL");
    if (proxyPid > 0 && alive(proxyPid)) process.kill(proxyPid, "SIGKILL");
  }
});

// Ctrl-C signals the terminal's whole process group: the proxy, in the demo's group, got SIGINT from
// the terminal and SIGTERM from the demo, and logged "second signal: cutting the drain short", so
// one Ctrl-C cut every transfer in flight instead of draining. (Runs last: it stops the demo.)
test("Ctrl-C (SIGINT to the demo's process group) drains the proxy once: an upload in flight ends", async () => {
  const base = new URL(line(/curl -i (http:\/\/127\.0\.0\.1:\d+)\/public\/hello\.txt/)[1]);
  const token = line(/Authorization: Bearer ([\w.-]+)' http:\/\/127\.0\.0\.1:\d+\/private\/reports\/q3\.csv/)[1];
  // (its body's second half sent once the drain has begun: the request cannot end before both signals)
  const put = request({ host: base.hostname, port: base.port, method: "PUT", path: "/private/uploads/drain.txt", headers: { authorization: `Bearer ${token}`, "content-length": "8" } });
  const answered = new Promise<number>((resolve, reject) => {
    put.on("response", (res) => (res.resume(), resolve(res.statusCode ?? 0)));
    put.on("error", reject);
  });
  put.write("half");
  const metrics = line(/curl -s (http:\/\/127\.0\.0\.1:\d+\/metrics)/)[1];
  await waitFor(async () => /^yatagarasu_uploads_in_flight 1$/m.test(await (await fetch(metrics)).text()), { timeoutMs: 5_000, message: () => "the upload never reached the proxy" });
  process.kill(-demo.pid, "SIGINT");
  await waitFor(() => out.includes('"msg":"draining"'), { timeoutMs: 5_000, message: () => out });
  put.end("done");
  expect(await answered).toBe(200);
  expect(await demo.exited).toBe(0);
  await waitFor(() => out.includes("demo stopped"), { timeoutMs: 5_000, message: () => out });
  expect(out).not.toContain("second signal");
});
