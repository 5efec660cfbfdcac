// The daemon's logs go to the caller: stdout is the channel, so LogTape
// records (the daemon's and its entrypoints') and console output become log
// messages on the wire.

import {
  compareLogLevel,
  configure,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import { encodeValue } from "../protocol/codec.ts";
import { encodeMessage, Kind } from "../protocol/messages.ts";
import type { Outbox } from "./_outbox.ts";

/** Logs one message of the daemon's own (category privsep.daemon). */
export type DaemonLog = (level: LogRecord["level"], message: string) => void;

/** A value as text for a log message; never throws. */
export function safeString(value: unknown): string {
  try {
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * A LogTape sink that sends each record to the caller as a log message.
 * Properties that do not encode as msgpack are left out.
 */
export function wireSink(out: Outbox): Sink {
  return (record: LogRecord) => {
    let properties: Record<string, unknown> | undefined;
    try {
      encodeValue(record.properties);
      properties = record.properties;
    } catch { /* properties that do not encode are left out */ }
    out.send(encodeMessage([Kind.Log, {
      category: [...record.category],
      level: record.level,
      message: record.message.map((p: unknown) =>
        typeof p === "string" ? p : safeString(p)
      ).join(""),
      timestamp: record.timestamp,
      properties,
    }]));
  };
}

/** A record of `category` with one message and no properties. */
function plainRecord(
  category: string[],
  level: LogRecord["level"],
  message: string,
): LogRecord {
  return {
    category,
    level,
    message: [message],
    rawMessage: "",
    timestamp: Date.now(),
    properties: {},
  };
}

/**
 * Sends what the daemon and its entrypoints log at `lowest` or above to the
 * caller (the context's `log_level`): LogTape records, and `console.*` as
 * records of category `console`. Returns the daemon's own logger, whose
 * messages (privsep's, never an argument's value) are sent at any level.
 */
export async function bridgeLogs(
  out: Outbox,
  lowest: LogLevel,
): Promise<DaemonLog> {
  const sink = wireSink(out);
  await configure({
    sinks: { wire: sink },
    loggers: [
      { category: [], sinks: ["wire"], lowestLevel: lowest },
      {
        category: ["logtape", "meta"],
        sinks: ["wire"],
        lowestLevel: compareLogLevel(lowest, "warning") > 0
          ? lowest
          : "warning",
      },
    ],
  });
  // stdout is the channel: console output becomes log records instead.
  const consoleLog = (level: LogLevel) =>
    compareLogLevel(level, lowest) < 0
      ? () => {}
      : (...parts: unknown[]) =>
        sink(plainRecord(
          ["console"],
          level,
          parts.map((p) => typeof p === "string" ? p : safeString(p)).join(
            " ",
          ),
        ));
  bridgeConsole(consoleLog);
  return (level, message) =>
    sink(plainRecord(["privsep", "daemon"], level, message));
}

/** Console methods that print only through `console.log` (indented). */
const THROUGH_LOG = new Set(["group", "groupCollapsed", "groupEnd"]);

/**
 * Makes every console method but `group`'s do nothing: Deno's `dir`,
 * `dirxml`, `table`, `count`, `timeLog`, `timeEnd` and `clear` write to
 * stdout themselves, not through `console.log`, and `assert` to stderr; the
 * daemon's stdout is its channel, which one of them closed
 * (tests/channel_test.ts). The first stage runs with this alone (a context
 * module's top-level code runs there too, as root, before any log level is
 * known; the serving stage runs it again, bridged).
 */
export function muteConsole(): void {
  const methods = console as unknown as Record<string, unknown>;
  for (const key of Object.keys(methods)) {
    if (typeof methods[key] === "function" && !THROUGH_LOG.has(key)) {
      methods[key] = () => {};
    }
  }
}

/**
 * Replaces every console method that prints with one that makes a record
 * (see muteConsole(); anything else does nothing). `group` prints through
 * `console.log`.
 */
function bridgeConsole(
  consoleLog: (level: LogLevel) => (...parts: unknown[]) => void,
): void {
  muteConsole();
  const info = consoleLog("info");
  const warn = consoleLog("warning");
  const error = consoleLog("error");
  const inspect = (value: unknown, options?: Deno.InspectOptions): string => {
    try {
      return Deno.inspect(value, { ...options, colors: false });
    } catch {
      return safeString(value);
    }
  };
  const counts = new Map<string, number>();
  const timers = new Map<string, number>();
  const elapsed = (label: string): string | undefined => {
    const started = timers.get(label);
    if (started === undefined) warn(`Timer '${label}' does not exist`);
    else return `${label}: ${(performance.now() - started).toFixed(3)}ms`;
  };
  console.log = console.info = console.dirxml = info;
  console.debug = console.trace = consoleLog("debug");
  console.warn = warn;
  console.error = error;
  console.dir = (value?: unknown, options?: Deno.InspectOptions) =>
    info(inspect(value, options));
  console.table = (data?: unknown) => info(inspect(data));
  console.count = (label = "default") => {
    const n = (counts.get(String(label)) ?? 0) + 1;
    counts.set(String(label), n);
    info(`${label}: ${n}`);
  };
  console.countReset = (label = "default") => {
    if (!counts.delete(String(label))) {
      warn(`Count for '${label}' does not exist`);
    }
  };
  console.time = (label = "default") => {
    if (timers.has(String(label))) warn(`Timer '${label}' already exists`);
    else timers.set(String(label), performance.now());
  };
  console.timeLog = (label = "default", ...data: unknown[]) => {
    const line = elapsed(String(label));
    if (line !== undefined) info(line, ...data);
  };
  console.timeEnd = (label = "default") => {
    const line = elapsed(String(label));
    timers.delete(String(label));
    if (line !== undefined) info(line);
  };
  console.assert = (condition?: boolean, ...data: unknown[]) => {
    if (!condition) error("Assertion failed:", ...data);
  };
}
