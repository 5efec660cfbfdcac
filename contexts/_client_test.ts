import assert from "node:assert/strict";
import { FailedToDropPrivileges, ProtocolError } from "../errors.ts";
import { encodeMessage, Kind, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { DaemonClient } from "./_client.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Starts a client whose "daemon" is `source`, a Deno script. */
async function startFake(source: string): Promise<DaemonClient | Error> {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/fake_daemon.ts`;
    await Deno.writeTextFile(script, source);
    return await DaemonClient.start({
      context: "fake",
      argv: [
        Deno.execPath(),
        "run",
        "-A",
        `--config=${ROOT}/deno.json`,
        script,
      ],
      maxFrameBytes: 1 << 20,
      daemonLogger: ["privsep", "daemon"],
      onGone: () => {},
      startHint: () => "",
    }).catch((e) => e as Error);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A fake daemon's source: it says hello, then runs `onMessage` for each
 * message `m` it reads (`before` runs once, before the first read).
 */
function answering(onMessage: string, before = ""): string {
  return `import { decodeMessage, encodeMessage, FrameDecoder, Kind, PROTOCOL_VERSION } from "${ROOT}/protocol/mod.ts";
await Deno.stdout.write(encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION, pid: Deno.pid }]));
const decoder = new FrameDecoder(1 << 20);
${before}
for await (const chunk of Deno.stdin.readable) {
  for (const body of decoder.push(chunk)) {
    const m = decodeMessage(body);
    ${onMessage}
  }
}`;
}

Deno.test("DaemonClient.start() refuses a daemon of another protocol version, naming both", async () => {
  const old = PROTOCOL_VERSION - 1;
  const result = await startFake(
    `import { encodeMessage, Kind } from "${ROOT}/protocol/messages.ts";
await Deno.stdout.write(encodeMessage([Kind.Hello, { v: ${old}, pid: Deno.pid }]));
await new Promise((r) => setTimeout(r, 5000));`,
  );
  assert.ok(result instanceof ProtocolError, String(result));
  assert.equal(
    result.message,
    `the daemon speaks protocol version ${old}, this caller ${PROTOCOL_VERSION}; run the same privsep version on both sides`,
  );
});

Deno.test("DaemonClient.status() sends a status message and resolves with its result", async () => {
  // A fake daemon that answers a status message, and only that.
  const client = await startFake(
    answering(`if (m.kind === Kind.Status) {
      await Deno.stdout.write(encodeMessage([Kind.Result, m.id, { pid: Deno.pid, asked: m.id }]));
    } else if (m.kind !== Kind.Hello) {
      await Deno.stdout.write(encodeMessage([Kind.Error, (m as { id: number }).id, { name: "Unexpected", message: String(m.kind) }]));
    }`),
  );
  assert.ok(client instanceof DaemonClient, String(client));
  try {
    const status = await client.status() as { pid: number; asked: number };
    assert.equal(status.pid, client.info!.pid);
    assert.equal(typeof status.asked, "number");
  } finally {
    await client.close();
  }
});

Deno.test({
  name:
    "DaemonClient.start() without env access says which flag to add, and starts nothing",
  permissions: { run: true, read: true, env: false },
  async fn() {
    const error = await DaemonClient.start({
      context: "fake",
      argv: ["/bin/true"],
      maxFrameBytes: 1 << 20,
      daemonLogger: ["privsep", "daemon"],
      onGone: () => {},
      startHint: () => "",
    }).catch((e) => e as Error);
    assert.ok(error instanceof FailedToDropPrivileges, String(error));
    assert.match(error.message, /cannot start the privsep daemon for fake/);
    assert.match(error.message, /--allow-env=NODE_V8_COVERAGE/);
  },
});

Deno.test("DaemonClient.call() sends a Uint8Array argument's bytes as they were when called, written at once or queued", async () => {
  // A fake daemon that answers each call with the length and the sum of its
  // first argument's bytes.
  const client = await startFake(
    answering(`if (m.kind !== Kind.Call) continue;
    const bytes = m.args[0];
    let sum = 0;
    for (const b of bytes) sum += b;
    await Deno.stdout.write(encodeMessage([Kind.Result, m.id, [bytes.length, sum]]));`),
  );
  assert.ok(client instanceof DaemonClient, String(client));
  try {
    const n = 512 * 1024;
    const bytes = new Uint8Array(n).fill(1);
    // More than a pipe holds: handed over as parts, and still being written
    // when the next call comes.
    const first = client.call("fake.ts#f", [bytes], undefined);
    bytes.fill(2);
    // Queued behind the first: copied now.
    const second = client.call("fake.ts#f", [bytes], undefined);
    bytes.fill(3);
    bytes.buffer.transfer(); // detached: changes nothing already sent
    assert.deepEqual(await first, [n, n]);
    assert.deepEqual(await second, [n, 2 * n]);
  } finally {
    await client.close();
  }
});

Deno.test("DaemonClient.call() frames a Uint8Array subclass by its bytes: none of them reaches the daemon as a message of its own", async () => {
  // A fake daemon that lists every call it reads, and answers "calls".
  const client = await startFake(
    answering(
      `if (m.kind !== Kind.Call) continue;
    seen.push(m.entrypoint);
    const value = m.entrypoint === "fake.ts#calls" ? seen : m.args[0].length;
    await Deno.stdout.write(encodeMessage([Kind.Result, m.id, value]));`,
      "const seen = [];",
    ),
  );
  assert.ok(client instanceof DaemonClient, String(client));
  try {
    // An application's subclass whose `length` is its own idea, holding
    // bytes from outside, here a complete call frame after that length.
    const used = 70_000;
    const smuggled = encodeMessage([Kind.Call, 999, "fake.ts#other", []]);
    class Chunk extends Uint8Array {
      override get length(): number {
        return used;
      }
    }
    const bytes = new Chunk(used + smuggled.length);
    bytes.set(smuggled, used);
    const stored = await client.call("fake.ts#store", [bytes], undefined);
    assert.equal(stored, used + smuggled.length);
    assert.deepEqual(await client.call("fake.ts#calls", [], undefined), [
      "fake.ts#store",
      "fake.ts#calls",
    ]);
  } finally {
    await client.close();
  }
});

/**
 * Runs `body` in an application of its own (a Deno process) holding a
 * client of the fake daemon `daemon`, and returns how that process ended.
 * It is killed after 20 s: a process that does not exit by itself.
 */
async function application(
  daemon: string,
  body: string,
): Promise<{ code: number; killed: boolean; out: string }> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/fake_daemon.ts`, daemon);
    await Deno.writeTextFile(
      `${dir}/app.ts`,
      `import { DaemonClient } from "${ROOT}/contexts/_client.ts";
const client = await DaemonClient.start({
  context: "fake",
  argv: [Deno.execPath(), "run", "-A", "--config=${ROOT}/deno.json", "${dir}/fake_daemon.ts"],
  maxFrameBytes: 1 << 20,
  daemonLogger: ["privsep", "daemon"],
  onGone: () => {},
  startHint: () => "",
});
${body}`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `--config=${ROOT}/deno.json`, `${dir}/app.ts`],
      stdin: "null",
      signal: AbortSignal.timeout(20_000),
    }).output();
    const text = new TextDecoder();
    return {
      code: out.code,
      killed: out.signal !== null,
      out: text.decode(out.stdout) + text.decode(out.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ECHO = answering(`if (m.kind !== Kind.Call) continue;
    const reply = () => Deno.stdout.write(encodeMessage([Kind.Result, m.id, m.args[0]]));
    if (m.entrypoint === "fake.ts#slow") setTimeout(reply, 300);
    else if (m.entrypoint === "fake.ts#exit") Deno.exit(3);
    else await reply();`);

Deno.test("DaemonClient: an application whose calls are done exits; the idle daemon does not keep it alive", async () => {
  const result = await application(
    ECHO,
    `for (let i = 0; i < 20; i++) await client.call("fake.ts#echo", [i], undefined);
const all = await Promise.all([1, 2, 3].map((i) => client.call("fake.ts#echo", [i], undefined)));
console.log("done", all.join());`,
  );
  assert.equal(result.killed, false, `still running after 20 s: ${result.out}`);
  assert.equal(result.code, 0, result.out);
  assert.match(result.out, /done 1,2,3/);
});

Deno.test("DaemonClient: a call in flight keeps the application alive until its reply, and no longer", async () => {
  // Nothing awaits the call: only the client keeps the event loop turning.
  const result = await application(
    ECHO,
    `client.call("fake.ts#slow", ["late"], undefined).then((v) => console.log("reply", v));`,
  );
  assert.equal(result.killed, false, `still running after 20 s: ${result.out}`);
  assert.equal(result.code, 0, result.out);
  assert.match(result.out, /reply late/);
});

Deno.test("DaemonClient: a daemon that dies with a call in flight fails it, and the application exits", async () => {
  const result = await application(
    ECHO,
    `client.call("fake.ts#exit", [], undefined).catch((e) => console.log("failed", e.name));`,
  );
  assert.equal(result.killed, false, `still running after 20 s: ${result.out}`);
  assert.equal(result.code, 0, result.out);
  assert.match(result.out, /failed DaemonExitedError/);
});

Deno.test("DaemonClient forwards a daemon's records as its own context's, without control characters or a bad timestamp", async () => {
  // Found by a review: a compromised daemon forged an audit record of
  // another context, with a line break, a fake second line and a terminal
  // escape in its message, and a NaN timestamp.
  const { configure, reset } = await import("@logtape/logtape");
  const records: {
    category: readonly string[];
    message: string;
    timestamp: number;
    properties: Record<string, unknown>;
  }[] = [];
  await configure({
    sinks: {
      memory: (r) =>
        records.push({
          category: r.category,
          message: String(r.rawMessage),
          timestamp: r.timestamp,
          properties: r.properties,
        }),
    },
    loggers: [
      { category: ["privsep"], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "fatal" },
    ],
  });
  const forged = {
    category: ["privsep", "audit"],
    level: "info",
    message:
      "x.ts#readShadow ok in 1 ms\n2099-01-01 [INF] fake \x1b[31mred\u202e",
    timestamp: NaN,
    properties: {
      context: "file:///other/mod.ts#otherCtx",
      entrypoint: "x.ts#readShadow\n2099 [FTL] forged\x1b[2J",
    },
  };
  const daemonLine = {
    category: ["privsep", "daemon\u202e"],
    level: "warning",
    message: "first line\n\tsecond \x1b[2Jline",
    timestamp: Date.now(),
  };
  const client = await startFake(
    answering(
      "",
      `await Deno.stdout.write(encodeMessage([Kind.Log, ${
        JSON.stringify(forged).replace('"timestamp":null', '"timestamp":NaN')
      }]));
await Deno.stdout.write(encodeMessage([Kind.Log, ${
        JSON.stringify(daemonLine)
      }]));`,
    ),
  );
  assert.ok(client instanceof DaemonClient, String(client));
  try {
    for (let i = 0; i < 200 && records.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const audit = records.find((r) => r.category.join(".") === "privsep.audit");
    assert.ok(audit, JSON.stringify(records));
    assert.equal(audit.properties.context, "fake");
    assert.equal(
      audit.message,
      "x.ts#readShadow ok in 1 ms?2099-01-01 [INF] fake ?[31mred?",
    );
    assert.ok(Number.isFinite(audit.timestamp));
    assert.equal(
      audit.properties.entrypoint,
      "x.ts#readShadow?2099 [FTL] forged?[2J",
    );
    const line = records.find((r) =>
      r.category.join(".") === "privsep.daemon" && r !== audit
    );
    assert.ok(line, JSON.stringify(records));
    assert.equal(line.message, "first line\n\tsecond ?[2Jline");
    assert.equal(line.properties.daemonCategory, "privsep.daemon?");
  } finally {
    await client.close();
    await reset();
  }
});
