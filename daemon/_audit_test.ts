import assert from "node:assert/strict";
import { decodeMessage, Kind } from "../protocol/messages.ts";
import { FRAME_HEADER_BYTES } from "../protocol/frame.ts";
import {
  Audit,
  type AuditIdentity,
  auditRecord,
  tracebackMessage,
} from "./_audit.ts";

const IDENTITY: AuditIdentity = {
  context: "file:///app/privsep/mod.ts#ops",
  callerUid: 1000,
  callerPid: 4242,
  daemonPid: 77,
};

Deno.test("auditRecord() says who called what, when, for how long, and how it ended", () => {
  const record = auditRecord(
    IDENTITY,
    "ops.ts#echo",
    1000,
    "ok",
    undefined,
    undefined,
    1012,
    Date.UTC(2026, 0, 1, 0, 0, 1),
  );
  assert.deepEqual(record, {
    category: ["privsep", "audit"],
    level: "info",
    message: "ops.ts#echo ok in 12 ms",
    timestamp: Date.UTC(2026, 0, 1, 0, 0, 1),
    properties: {
      context: "file:///app/privsep/mod.ts#ops",
      entrypoint: "ops.ts#echo",
      callerUid: 1000,
      callerPid: 4242,
      daemonPid: 77,
      start: "2026-01-01T00:00:00.988Z",
      durationMs: 12,
      outcome: "ok",
    },
  });
});

Deno.test("auditRecord() warns of failures with their error name, and adds args only when given", () => {
  const record = auditRecord(
    { ...IDENTITY, callerPid: null, callerPidUnknown: "through sudo" },
    "ops.ts#fail",
    0,
    "error",
    "NotFound",
    ["a"],
    1,
    0,
  );
  assert.equal(record.level, "warning");
  assert.equal(record.properties!.errorName, "NotFound");
  assert.deepEqual(record.properties!.args, ["a"]);
  assert.equal(record.properties!.callerPid, null);
  assert.equal(record.properties!.callerPidUnknown, "through sudo");
});

Deno.test("auditRecord() replaces control characters of a name from the caller", () => {
  const record = auditRecord(
    IDENTITY,
    "evil\n\x1b[31m\x7f#x",
    0,
    "refused",
    "NotAnEntrypoint",
    undefined,
    0,
    0,
  );
  assert.equal(record.properties!.entrypoint, "evil??[31m?#x");
  assert.equal(record.message, "evil??[31m?#x refused in 0 ms");
});

Deno.test("auditRecord() replaces C1 controls, line and paragraph separators and bidi controls of a name from the caller", () => {
  const hostile = [
    "\x80",
    "\x85", // NEL
    "\x9b", // CSI
    "\x9f",
    "\u2028",
    "\u2029",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
  ];
  for (const c of hostile) {
    const code = c.codePointAt(0)!.toString(16);
    const record = auditRecord(
      IDENTITY,
      `evil${c}31m#x`,
      0,
      "refused",
      "NotAnEntrypoint",
      undefined,
      0,
      0,
    );
    assert.equal(record.properties!.entrypoint, "evil?31m#x", `U+${code}`);
    assert.equal(record.message, "evil?31m#x refused in 0 ms", `U+${code}`);
  }
  // Letters beyond ASCII are names like any other.
  const plain = auditRecord(IDENTITY, "é#ü", 0, "ok", undefined, undefined);
  assert.equal(plain.properties!.entrypoint, "é#ü");
});

Deno.test("auditRecord() cuts a long name from the caller", () => {
  const record = auditRecord(
    IDENTITY,
    "x".repeat(100_000),
    0,
    "refused",
    "NotAnEntrypoint",
    undefined,
    0,
    0,
  );
  const name = record.properties!.entrypoint as string;
  assert.ok(name.length <= 200, `${name.length} characters`);
  assert.ok(record.message.length <= 200 + " refused in 0 ms".length);
  // Not in the middle of a character.
  const astral = auditRecord(
    IDENTITY,
    "x".repeat(199) + "\u{1f600}",
    0,
    "refused",
    "NotAnEntrypoint",
    undefined,
  );
  assert.equal(astral.properties!.entrypoint, "x".repeat(199));
});

Deno.test("tracebackMessage() gives the error's name and stack frames, never its message", () => {
  const secret = "hunter2-SECRET";
  const fail = (arg: string) => {
    throw new RangeError("out of range: " + arg);
  };
  let error: unknown;
  try {
    fail(secret);
  } catch (e) {
    error = e;
  }
  const message = tracebackMessage("m#f", error);
  assert.ok(!message.includes(secret), message);
  assert.ok(!message.includes("out of range"), message);
  const [first, ...frames] = message.split("\n");
  assert.equal(first, "m#f failed: RangeError");
  assert.ok(frames.length > 0, message);
  for (const frame of frames) assert.match(frame, /^ {4}at /);
  assert.ok(frames.some((f) => f.includes("_audit_test.ts")), message);
});

/** `error`, its stack made (V8 makes it when first read), then `message` set. */
function changed(error: Error, message: string): Error {
  void error.stack;
  error.message = message;
  return error;
}

Deno.test("tracebackMessage() leaves out multi-line messages, causes and thrown values that are not errors", () => {
  const secret = "hunter2-SECRET";
  const cases: unknown[] = [
    // A message that looks like stack frames.
    new TypeError(`bad value:\n    at ${secret}\n    at x (${secret}:1:1)`),
    new Error("wrapped", { cause: new Error(secret) }),
    new AggregateError([new Error(secret)], `all failed: ${secret}`),
    // The message changed after the stack was made.
    changed(new Error(`first ${secret}`), "second"),
    changed(new Error(`first\n    at ${secret}`), "second"),
    Object.assign(new Error(secret), { stack: undefined }),
    Object.assign(new Error(secret), { stack: `Error: ${secret}` }),
    secret,
    { message: secret },
    null,
  ];
  for (const error of cases) {
    const message = tracebackMessage("m#f", error);
    assert.ok(!message.includes(secret), message);
    assert.match(message, /^m#f failed: /);
    for (const frame of message.split("\n").slice(1)) {
      assert.match(frame, /^ {4}at /);
    }
  }
  assert.equal(
    tracebackMessage("m#f", secret),
    "m#f failed: a value that is not an Error (string), without a stack",
  );
});

Deno.test("Audit.record() sends a log message, and nothing once the caller said it does not listen", () => {
  const sent: Uint8Array[] = [];
  const audit = new Audit(IDENTITY, (frame) => sent.push(frame));
  audit.record("ops.ts#echo", performance.now(), "ok");
  assert.equal(sent.length, 1);
  const m = decodeMessage(sent[0].subarray(FRAME_HEADER_BYTES)) as {
    record: { category: string[] };
  };
  assert.deepEqual(m.record.category, ["privsep", "audit"]);
  audit.on = false;
  audit.record("ops.ts#echo", performance.now(), "ok");
  assert.equal(sent.length, 1);
});

Deno.test("Audit.record() sends a record without its arguments when they do not encode", () => {
  const frames: Uint8Array[] = [];
  const audit = new Audit({
    context: "m#ctx",
    callerUid: 1000,
    callerPid: null,
    daemonPid: 2,
  }, (f) => frames.push(f));
  audit.record("m#f", performance.now(), "ok", undefined, [{ f: () => 1 }]);
  assert.equal(frames.length, 1);
  const m = decodeMessage(frames[0].subarray(4));
  assert.equal(m.kind, Kind.Log);
  const props = (m as { record: { properties: Record<string, unknown> } })
    .record.properties;
  assert.equal(props.args, undefined);
  assert.equal(props.argsOmitted, "not encodable");
  assert.equal(props.outcome, "ok");
});
