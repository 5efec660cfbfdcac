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
import { callSignal } from "../core/call_scope.ts";
import type { EntrypointOptions } from "../core/schema.ts";
import { WARM_UP_NAMES } from "../protocol/messages.ts";
import { Audit } from "./_audit.ts";
import type { DaemonLog } from "./_log_bridge.ts";
import { Outbox } from "./_outbox.ts";
import { type HoldRules, Session } from "./_session.ts";

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

/** The session's clock in these tests: functions move it as they "run". */
let clock = 0;
/** A function that takes `ms` by the session's clock and returns `value`. */
const takes = (ms: number, value: unknown = ms) => () => {
  clock += ms;
  return value;
};

/** A caller's hello without audit records: calls read together are batched. */
const hello = encodeMessage([Kind.Hello, {
  v: PROTOCOL_VERSION,
  pid: 1,
  audit: false,
}]);
/** A caller's hello that asks for audit records. */
const helloAudit = encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION, pid: 1 }]);
const call = (id: number, fn: string) => encodeMessage([Kind.Call, id, fn, []]);
const cancel = (id: number) => encodeMessage([Kind.Cancel, id]);

/** An entrypoint: its function, or its function and options. */
type Fn =
  | ((...args: never[]) => unknown)
  | { fn: (...args: never[]) => unknown; options: EntrypointOptions };

/** How a test session is made (see open()). */
interface SessionSetup {
  hold?: Partial<HoldRules>;
  /** Where the decoded writes go. */
  writes?: Written[];
  /** Where every message written goes, decoded whole. */
  messages?: Message[];
  concurrency?: number;
  /** log_daemon_traceback: error replies carry the stack, and it is logged. */
  withStack?: boolean;
  /** The daemon's own log (default: nowhere). */
  log?: DaemonLog;
  /**
   * An asynchronous write: `take` records the data and returns its length
   * (default: at once, in a microtask).
   */
  write?: (
    data: Uint8Array,
    take: (data: Uint8Array) => number,
  ) => Promise<number>;
}

/**
 * A session serving `fns`, fed `reads` (each one read of the channel, so
 * the messages in it are read together), its writes decoded, not started.
 */
function open(
  fns: Record<string, Fn>,
  reads: (Uint8Array | Promise<Uint8Array> | (() => Uint8Array))[],
  setup: SessionSetup = {},
): { session: Session; out: Outbox; writes: Written[] } {
  const writes = setup.writes ?? [];
  const decoder = new FrameDecoder(1 << 20);
  const take = (data: Uint8Array) => {
    const decoded = decoder.push(data).map((b) => decodeMessage(b));
    setup.messages?.push(...decoded);
    writes.push(decoded.map(label));
    return data.length;
  };
  const write = setup.write ?? ((data, take) => Promise.resolve(take(data)));
  const out = new Outbox({
    writeSync: take,
    write: (data) => write(data, take),
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
      Object.entries(fns).map(([key, f]) => [key, {
        key,
        fn: (typeof f === "function" ? f : f.fn) as (
          ...args: unknown[]
        ) => unknown,
        options: typeof f === "function" ? undefined : f.options,
      }]),
    ),
    concurrency: setup.concurrency ?? 4,
    queueLimit: 16,
    graceMs: 2000,
    limits: { maxFrameBytes: 1 << 20, withStack: setup.withStack ?? false },
    out,
    log: setup.log ?? (() => {}),
    audit,
    timers: new Set(),
    hold: { now: () => clock, ...setup.hold },
    channel: {
      read(into) {
        const next = reads.shift();
        // Then nothing more, ever: the session waits (no resource held).
        if (!next) return new Promise(() => {});
        const take = (data: Uint8Array) => {
          into.set(data);
          return data.length;
        };
        if (next instanceof Promise) return next.then(take);
        return take(typeof next === "function" ? next() : next);
      },
    },
  });
  return { session, out, writes };
}

/** open(), serving: what it writes. */
function serve(
  fns: Record<string, Fn>,
  reads: (Uint8Array | Promise<Uint8Array> | (() => Uint8Array))[],
  hold: Partial<HoldRules> = {},
  writes: Written[] = [],
  concurrency = 4,
): Written[] {
  const opened = open(fns, reads, { hold, writes, concurrency });
  void opened.session.serve();
  return opened.writes;
}

Deno.test("Session answers calls read together in one write once their entrypoint is known fast", () => {
  const writes = serve({ "m#f": takes(0.1) }, [
    hello,
    concat(call(1, "m#f"), call(2, "m#f"), call(3, "m#f")),
    concat(call(4, "m#f"), call(5, "m#f"), call(6, "m#f")),
  ], { fastMs: 0.5, fastRuns: 2, maxMs: 1000 });
  assert.deepEqual(writes, [
    // Not known yet: each reply goes out before the next call runs, until
    // m#f has run fast twice.
    ["result 1"],
    ["result 2", "result 3"],
    ["result 4", "result 5", "result 6"],
  ]);
});

Deno.test("Session sends the replies read with a slow synchronous call before it runs", () => {
  const writes: Written[] = [];
  const seen: number[] = [];
  const slow = () => {
    seen.push(writes.flat().filter((m) => m.startsWith("result")).length);
    clock += 5;
    return "slow";
  };
  serve(
    { "m#fast": takes(0), "m#slow": slow },
    [
      hello,
      call(1, "m#slow"),
      // m#fast becomes known fast; m#slow never does.
      concat(call(2, "m#fast"), call(3, "m#slow")),
      concat(call(4, "m#fast"), call(5, "m#fast"), call(6, "m#slow")),
      concat(call(7, "m#slow"), call(8, "m#fast"), call(9, "m#slow")),
    ],
    { fastMs: 1, fastRuns: 1, maxMs: 1000 },
    writes,
  );
  // When each slow call ran, every reply before it had been written.
  assert.deepEqual(seen, [0, 2, 5, 6, 8]);
  assert.deepEqual(writes, [
    ["result 1"],
    ["result 2"],
    ["result 3"],
    ["result 4", "result 5"],
    ["result 6"],
    ["result 7", "result 8"],
    ["result 9"],
  ]);
});

Deno.test("Session forgets that an entrypoint was fast after one slow run", () => {
  let cost = 0;
  const varies = () => {
    clock += cost;
    return cost;
  };
  const writes = serve({ "m#fast": takes(0), "m#varies": varies }, [
    hello,
    concat(call(1, "m#fast"), call(2, "m#varies"), call(3, "m#varies")),
    // Slow once, in a read of its own.
    () => {
      cost = 5;
      return call(4, "m#varies");
    },
    () => {
      cost = 0;
      return concat(call(5, "m#fast"), call(6, "m#varies"));
    },
    concat(call(7, "m#fast"), call(8, "m#varies")),
  ], { fastMs: 1, fastRuns: 1, maxMs: 1000 });
  assert.deepEqual(writes, [
    ["result 1"],
    ["result 2", "result 3"],
    ["result 4"],
    // Not held for: its last run was slow.
    ["result 5"],
    ["result 6"],
    // Fast again.
    ["result 7", "result 8"],
  ]);
});

Deno.test("Session does not count a call that waited for a slot as a fast run", async () => {
  const writes: Written[] = [];
  const seen: number[] = [];
  let release!: () => void;
  const holding = new Promise<void>((r) => release = r);
  const slow = () => {
    seen.push(writes.flat().filter((m) => m.startsWith("result")).length);
    clock += 5;
    return "slow";
  };
  const later = Promise.withResolvers<Uint8Array>();
  serve(
    {
      "m#fast": takes(0),
      "m#slow": slow,
      "m#async": () => holding,
    },
    [
      hello,
      call(1, "m#fast"),
      // One slot: m#slow waits for m#async's, and runs later, asynchronously.
      concat(call(2, "m#async"), call(3, "m#slow")),
      later.promise,
    ],
    { fastMs: 1, fastRuns: 1, maxMs: 1000 },
    writes,
    1,
  );
  release();
  for (let i = 0; i < 10; i++) await Promise.resolve();
  assert.deepEqual(seen, [2]);
  // That run did not make m#slow known fast.
  later.resolve(concat(call(4, "m#fast"), call(5, "m#slow")));
  for (let i = 0; i < 10; i++) await Promise.resolve();
  assert.deepEqual(seen, [2, 4]);
});

Deno.test("Session sends what it holds before a cancellation runs the call's abort listeners", () => {
  const writes: Written[] = [];
  const seen: number[] = [];
  serve(
    {
      "m#fast": takes(0),
      "m#wait": () => {
        const signal = callSignal();
        signal.addEventListener("abort", () => {
          seen.push(writes.flat().filter((m) => m.startsWith("result")).length);
          clock += 100;
        });
        return new Promise(() => {});
      },
    },
    [
      hello,
      concat(call(1, "m#fast"), call(2, "m#wait")),
      concat(call(3, "m#fast"), cancel(2)),
    ],
    { fastMs: 1, fastRuns: 1, maxMs: 1000 },
    writes,
  );
  assert.deepEqual(seen, [2], "replies 1 and 3 were out when the listener ran");
});

Deno.test("Session holds a reply no longer than maxMs for the calls read with it", () => {
  const writes = serve({ "m#f": takes(0.6) }, [
    hello,
    call(1, "m#f"),
    concat(...Array.from({ length: 10 }, (_, i) => call(i + 2, "m#f"))),
  ], { fastMs: 10, fastRuns: 1, maxMs: 1 });
  // Each call takes 0.6 ms: a reply is held for the next call, and sent
  // before the one after it.
  assert.deepEqual(writes.map((w) => w.length), [1, 2, 2, 2, 2, 2]);
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
    ], { fastRuns: 0 });
    assert.equal(await exited.promise, 3);
    assert.deepEqual(writes, [
      ["result 1", "result 2"],
      ["fatal"],
    ]);
  } finally {
    Deno.exit = exit;
  }
});

Deno.test("Session sends a call's audit record and its reply in one write", () => {
  const audited = serve({ "m#f": takes(0) }, [helloAudit, call(1, "m#f")]);
  assert.deepEqual(audited, [["log m#f", "result 1"]]);
  const quiet = serve({ "m#f": takes(0) }, [
    encodeMessage([Kind.Hello, { v: PROTOCOL_VERSION, pid: 1, audit: false }]),
    call(1, "m#f"),
  ]);
  assert.deepEqual(quiet, [["result 1"]]);
});

Deno.test("Session answers a call whose audited arguments stopped encoding, and never holds a Fatal", async () => {
  const exit = Deno.exit;
  const exited = Promise.withResolvers<number | undefined>();
  Deno.exit = ((code?: number) => exited.resolve(code)) as typeof Deno.exit;
  try {
    // auditArgs: the record carries the arguments, which the function
    // changed into something msgpack cannot carry.
    const fn = (o: Record<string, unknown>) => {
      o.f = () => 1;
      return 1;
    };
    const { session, out, writes } = open(
      { "m#f": { fn, options: { auditArgs: true } } },
      [helloAudit, encodeMessage([Kind.Call, 1, "m#f", [{}]])],
    );
    void session.serve();
    // The record goes without the arguments (daemon/_audit_test.ts).
    assert.deepEqual(writes, [["log m#f", "result 1"]]);
    // A Fatal while frames are held: they go first, and it is not held.
    out.cork();
    out.send(encodeMessage([Kind.Result, 9, null]));
    void session.fatal(new Error("broken"));
    assert.deepEqual(writes.slice(1), [["result 9"], ["fatal"]]);
    assert.equal(await exited.promise, 3);
  } finally {
    Deno.exit = exit;
  }
});

Deno.test("Session does not hold audit records for the calls read after theirs", () => {
  const writes: Written[] = [];
  const seen: number[] = [];
  const slow = () => {
    seen.push(writes.length);
    clock += 5;
    return 2;
  };
  serve(
    { "m#fast": takes(0), "m#slow": slow },
    [
      helloAudit,
      call(1, "m#fast"),
      call(2, "m#slow"),
      // Both known fast enough to be held for, were audit records not made.
      concat(call(3, "m#fast"), call(4, "m#fast"), call(5, "m#slow")),
    ],
    { fastMs: 1000, fastRuns: 1, maxMs: 1000 },
    writes,
  );
  assert.deepEqual(writes, [
    ["log m#fast", "result 1"],
    ["log m#slow", "result 2"],
    ["log m#fast", "result 3"],
    ["log m#fast", "result 4"],
    ["log m#slow", "result 5"],
  ]);
  assert.deepEqual(seen, [1, 4], "each record was out before the next call");
});

Deno.test("Session writes a call's audit record before the next call runs, also behind a large reply's write", async () => {
  const writes: Written[] = [];
  const seen: Written[][] = [];
  serve(
    {
      "m#big": () => "x".repeat(20_000),
      "m#fast": takes(0),
      "m#slow": () => {
        seen.push(structuredClone(writes));
        return "slow";
      },
    },
    [
      helloAudit,
      // The big reply is written asynchronously (more calls follow it); the
      // record of m#fast must not wait behind it while m#slow runs.
      concat(call(1, "m#big"), call(2, "m#fast"), call(3, "m#slow")),
    ],
    {},
    writes,
  );
  for (let i = 0; i < 20 && seen.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 0));
  }
  assert.equal(seen.length, 1, "m#slow ran");
  assert.ok(
    seen[0].flat().includes("log m#fast") &&
      seen[0].flat().includes("result 2"),
    `written when m#slow ran: ${JSON.stringify(seen[0])}`,
  );
});

Deno.test("Session waits for a queued audit record, not for the output queued after it", async () => {
  // Asynchronous writes finish when the test says.
  const finish: (() => void)[] = [];
  const seen: Written[][] = [];
  const { session, out, writes } = open({
    "m#big": () => "x".repeat(20_000),
    "m#fast": () => 2,
    "m#slow": () => {
      seen.push(structuredClone(writes));
      return 3;
    },
  }, [
    helloAudit,
    concat(call(1, "m#big"), call(2, "m#fast"), call(3, "m#slow")),
  ], {
    write: (data, take) =>
      new Promise((resolve) => finish.push(() => resolve(take(data)))),
  });
  void session.serve();
  const settle = async () => {
    for (let i = 0; i < 10; i++) await Promise.resolve();
  };
  // Reply 1 is being written; m#fast's record and reply wait behind it,
  // and m#slow (parked) has not run.
  assert.equal(seen.length, 0);
  // Output that comes meanwhile, after the record.
  out.send(encodeMessage([Kind.Result, 90, null]));
  finish.shift()!(); // reply 1 written
  await settle();
  assert.equal(seen.length, 0, "the record is not written yet");
  out.send(encodeMessage([Kind.Result, 91, null]));
  finish.shift()!(); // m#fast's record and reply (and result 90) written
  await settle();
  assert.equal(seen.length, 1, "m#slow ran once the record was written");
  assert.ok(seen[0].flat().includes("log m#fast"), JSON.stringify(seen[0]));
  assert.ok(
    !seen[0].flat().includes("result 91"),
    "it did not wait for the output queued after the record",
  );
  while (finish.length) {
    finish.shift()!();
    await settle();
  }
});

Deno.test("Session answers warm-up calls with their argument, unaudited and uncounted, until a call of another name", async () => {
  const [first, second] = WARM_UP_NAMES;
  const messages: Message[] = [];
  const warm = (id: number, name: string, value: unknown) =>
    encodeMessage([Kind.Call, id, name, [value]]);
  const { session, writes } = open({ "m#f": () => "f" }, [
    helloAudit,
    warm(1, first, 7),
    concat(warm(2, second, new Uint8Array([1, 2])), warm(3, first, null)),
    call(4, "m#f"),
    warm(5, first, 8),
  ], { messages });
  void session.serve();
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.deepEqual(writes.flat(), [
    "result 1",
    "result 2",
    "result 3",
    "log m#f",
    "result 4",
    // After a call of another name, a warm-up name is no entrypoint.
    "log #privsep-warm-up-1",
    "error 5",
  ]);
  const values = messages.flatMap((m) =>
    m.kind === Kind.Result ? [m.value] : []
  );
  assert.deepEqual(values, [7, new Uint8Array([1, 2]), null, "f"]);
  const refused = messages.find((m) => m.kind === Kind.Error);
  assert.equal(
    refused?.kind === Kind.Error && refused.error.name,
    "NotAnEntrypoint",
  );
  assert.equal(session.status().completed, 1);
});

Deno.test("Session logs a failed call's error name and stack frames under log_daemon_traceback, never its message", async () => {
  const secret = "hunter2-SECRET";
  const logged: string[] = [];
  const messages: Message[] = [];
  const { session } = open({
    "m#range": (arg: string) => {
      throw new RangeError("out of range: " + arg);
    },
    "m#async": async (arg: string) => {
      await Promise.resolve();
      throw new TypeError(`not a network device name: "${arg}"`, {
        cause: new Error(`cause: ${arg}`),
      });
    },
    "m#value": (arg: string) => {
      throw arg;
    },
  }, [
    helloAudit,
    encodeMessage([Kind.Call, 1, "m#range", [secret]]),
    encodeMessage([Kind.Call, 2, "m#async", [secret]]),
    encodeMessage([Kind.Call, 3, "m#value", [secret]]),
  ], {
    withStack: true,
    log: (level, message) => logged.push(`${level} ${message}`),
    messages,
  });
  void session.serve();
  for (let i = 0; i < 20 && messages.length < 6; i++) {
    await new Promise((r) => setTimeout(r, 0));
  }
  assert.equal(logged.length, 3, JSON.stringify(logged));
  for (const line of logged) {
    assert.ok(!line.includes(secret), `the argument was logged: ${line}`);
  }
  const of = (key: string) =>
    logged.find((l) => l.startsWith(`error ${key} `))!.split("\n");
  const [range, async, value] = ["m#range", "m#async", "m#value"].map(of);
  assert.equal(range[0], "error m#range failed: RangeError");
  assert.equal(async[0], "error m#async failed: TypeError");
  for (const frames of [range.slice(1), async.slice(1)]) {
    assert.ok(frames.length > 0);
    for (const frame of frames) assert.match(frame, /^ {4}at /);
    assert.ok(frames.some((f) => f.includes("_session_test.ts")));
  }
  assert.equal(
    value[0],
    "error m#value failed: a value that is not an Error (string), without a stack",
  );
  // The caller, who passed the value, still gets the message and the stack.
  const errors = new Map(
    messages.flatMap((m) => m.kind === Kind.Error ? [[m.id, m.error]] : []),
  );
  assert.equal(errors.size, 3);
  assert.equal(errors.get(1)?.message, `out of range: ${secret}`);
  assert.match(
    errors.get(1)?.stack ?? "",
    /^RangeError: out of range: hunter2-SECRET\n {4}at /,
  );
  assert.equal(
    errors.get(2)?.message,
    `not a network device name: "${secret}"`,
  );
  assert.equal(errors.get(3)?.message, "non-Error value thrown: string");
});
