import assert from "node:assert/strict";
import { FrameDecoder } from "../protocol/frame.ts";
import {
  decodeMessage,
  encodeMessage,
  Kind,
  type Message,
  PROTOCOL_VERSION,
} from "../protocol/messages.ts";
import { concat } from "../protocol/_test_util.ts";
import { Audit } from "./_audit.ts";
import { Outbox } from "./_outbox.ts";
import { Session } from "./_session.ts";

/** What one write of the daemon carried: each message as kind and id. */
type Written = string[];

/** A message as the tests compare it: "result 1", "log f", "fatal". */
function label(m: Message): string {
  switch (m.kind) {
    case Kind.Result:
      return `result ${m.id}`;
    case Kind.Error:
      return `error ${m.id}`;
    case Kind.Log:
      return `log ${m.record.properties?.entrypoint}`;
    case Kind.Fatal:
      return "fatal";
    default:
      return `kind ${m.kind}`;
  }
}

/** Busy for `ms` milliseconds, synchronously. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* a slow synchronous function */ }
}

const hello = encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION, pid: 1 }]);
const call = (id: number, fn: string) => encodeMessage([Kind.Call, id, fn, []]);

/**
 * A session serving `fns`, fed `reads` (each one read of the channel, so
 * the messages in it are read together), its writes decoded.
 */
function serve(
  fns: Record<string, () => unknown>,
  reads: Uint8Array[],
  hold: { fastMs: number; maxMs: number },
  writes: Written[] = [],
): Written[] {
  const decoder = new FrameDecoder(1 << 20);
  const take = (data: Uint8Array) => {
    writes.push(decoder.push(data).map((b) => label(decodeMessage(b))));
    return data.length;
  };
  const out = new Outbox({
    writeSync: take,
    write: (data) => Promise.resolve(take(data)),
  });
  const audit = new Audit({
    context: "test",
    callerUid: null,
    callerPid: null,
    daemonPid: Deno.pid,
  }, (frame) => out.send(frame));
  const session = new Session({
    contextName: "test",
    entrypoints: new Map(
      Object.entries(fns).map(([key, fn]) => [key, { key, fn }]),
    ),
    concurrency: 4,
    queueLimit: 16,
    graceMs: 2000,
    limits: { maxFrameBytes: 1 << 20, withStack: false },
    out,
    log: () => {},
    audit,
    timers: new Set(),
    hold,
    channel: {
      read(into) {
        const data = reads.shift();
        // Then nothing more, ever: the session waits (no resource held).
        if (!data) return new Promise(() => {});
        into.set(data);
        return data.length;
      },
    },
  });
  void session.serve();
  return writes;
}

Deno.test("Session answers fast calls read together in one write", () => {
  const writes = serve({ "m#f": () => 1 }, [
    hello,
    concat(call(1, "m#f"), call(2, "m#f"), call(3, "m#f")),
  ], { fastMs: 60_000, maxMs: 60_000 });
  assert.deepEqual(writes, [[
    "log m#f",
    "result 1",
    "log m#f",
    "result 2",
    "log m#f",
    "result 3",
  ]]);
});

Deno.test("Session sends the replies read with a slow synchronous call before it runs", () => {
  // Fast: under 20 ms (it takes microseconds); slow: 60 ms.
  const hold = { fastMs: 20, maxMs: 60_000 };
  const seen: Written[][] = [];
  const writes: Written[] = [];
  const slow = () => {
    seen.push(structuredClone(writes));
    spin(3 * hold.fastMs);
    return 2;
  };
  serve(
    { "m#fast": () => 1, "m#slow": slow },
    [
      // The first call of each entrypoint read with others runs with nothing
      // held; after that, m#fast is known fast and m#slow known slow.
      concat(hello, call(1, "m#fast"), call(2, "m#slow")),
      concat(call(3, "m#fast"), call(4, "m#fast"), call(5, "m#slow")),
      concat(call(6, "m#slow"), call(7, "m#fast"), call(8, "m#slow")),
    ],
    hold,
    writes,
  );
  assert.deepEqual(seen, [
    [["log m#fast", "result 1"]],
    [
      ["log m#fast", "result 1"],
      ["log m#slow", "result 2"],
      ["log m#fast", "result 3", "log m#fast", "result 4"],
    ],
    [
      ["log m#fast", "result 1"],
      ["log m#slow", "result 2"],
      ["log m#fast", "result 3", "log m#fast", "result 4"],
      ["log m#slow", "result 5"],
    ],
    [
      ["log m#fast", "result 1"],
      ["log m#slow", "result 2"],
      ["log m#fast", "result 3", "log m#fast", "result 4"],
      ["log m#slow", "result 5"],
      ["log m#slow", "result 6", "log m#fast", "result 7"],
    ],
  ]);
  assert.deepEqual(writes.at(-1), ["log m#slow", "result 8"]);
});

Deno.test("Session holds a reply no longer than maxMs for the calls read with it", () => {
  // Each call known fast (under fastMs) but longer than a reply may wait:
  // every reply goes out before the next call runs.
  const hold = { fastMs: 60_000, maxMs: 4 };
  const took: number[] = [];
  const writes = serve({ "m#f": () => took.push(spin(2 * hold.maxMs) ?? 1) }, [
    hello,
    concat(...Array.from({ length: 20 }, (_, i) => call(i + 1, "m#f"))),
  ], hold);
  assert.equal(took.length, 20);
  assert.ok(
    writes.every((w) => w.length === 2),
    `one call's audit record and reply per write: ${JSON.stringify(writes)}`,
  );
  assert.equal(writes.length, 20);
});

Deno.test("Session sends the replies it holds before a Fatal", async () => {
  const exit = Deno.exit;
  const exited = Promise.withResolvers<number | undefined>();
  Deno.exit = ((code?: number) => exited.resolve(code)) as typeof Deno.exit;
  try {
    const writes = serve({ "m#f": () => 1 }, [
      hello,
      concat(
        call(1, "m#f"),
        call(2, "m#f"),
        // A kind only daemons send: the channel is broken.
        encodeMessage([Kind.Result, 3, null]),
      ),
    ], { fastMs: 60_000, maxMs: 60_000 });
    assert.equal(await exited.promise, 3);
    assert.deepEqual(writes, [
      ["log m#f", "result 1", "log m#f", "result 2"],
      ["fatal"],
    ]);
  } finally {
    Deno.exit = exit;
  }
});
