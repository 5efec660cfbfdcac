import assert from "node:assert/strict";
import { getLogger, type LogRecord, reset } from "@logtape/logtape";
import { decodeMessage, Kind } from "../protocol/messages.ts";
import { FrameDecoder } from "../protocol/frame.ts";
import { bridgeLogs, safeString, wireSink } from "./_log_bridge.ts";
import { Outbox } from "./_outbox.ts";

function capture(): { out: Outbox; messages: () => unknown[] } {
  const written: Uint8Array[] = [];
  const out = new Outbox({
    writeSync: (data) => {
      written.push(data.slice());
      return data.length;
    },
    write: (data) => Promise.resolve(data.length),
  });
  return {
    out,
    messages: () => {
      const decoder = new FrameDecoder();
      return written.flatMap((w) => decoder.push(w)).map(decodeMessage);
    },
  };
}

Deno.test("safeString() renders values as text and never throws", () => {
  assert.equal(safeString("x"), "x");
  assert.equal(safeString(42), "42");
  assert.equal(safeString({ a: [1] }), '{"a":[1]}');
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(safeString(cyclic), "[object Object]");
  assert.equal(safeString(10n), "10");
});

Deno.test("wireSink() sends a record as a log message, dropping properties that do not encode", () => {
  const { out, messages } = capture();
  const sink = wireSink(out);
  const record = (properties: Record<string, unknown>): LogRecord => ({
    category: ["app", "ops"],
    level: "warning",
    message: ["user ", { id: 1 }, " done"],
    rawMessage: "",
    timestamp: 5,
    properties,
  });
  sink(record({ n: 1 }));
  sink(record({ fn: () => 1 }));
  assert.deepEqual(messages(), [
    {
      kind: Kind.Log,
      record: {
        category: ["app", "ops"],
        level: "warning",
        message: 'user {"id":1} done',
        timestamp: 5,
        properties: { n: 1 },
      },
    },
    {
      kind: Kind.Log,
      record: {
        category: ["app", "ops"],
        level: "warning",
        message: 'user {"id":1} done',
        timestamp: 5,
      },
    },
  ]);
});

Deno.test("bridgeLogs() sends records and console output at the lowest level or above, and its own at any level", async () => {
  const { out, messages } = capture();
  const saved = { ...console };
  try {
    const log = await bridgeLogs(out, "info");
    const logger = getLogger(["app", "ops"]);
    logger.debug("secret {value}", { value: "s3cret" });
    logger.info("kept");
    console.debug("secret too");
    console.log("console kept");
    log("debug", "privsep's own");
    const sent = messages().map((m) => {
      const { record } = m as { record: { level: string; message: string } };
      return `${record.level} ${record.message}`;
    });
    assert.deepEqual(sent, [
      "info kept",
      "info console kept",
      "debug privsep's own",
    ]);
  } finally {
    Object.assign(console, saved);
    await reset();
  }
});
