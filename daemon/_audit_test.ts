import assert from "node:assert/strict";
import { decodeMessage, Kind } from "../protocol/messages.ts";
import { FRAME_HEADER_BYTES } from "../protocol/frame.ts";
import { Audit, type AuditIdentity, auditRecord } from "./_audit.ts";

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
